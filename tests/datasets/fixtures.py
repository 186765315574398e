"""Tiny datasets written in exactly their distributed layouts, with known content, for reader and inspect tests.

ScanNet scenes (`write_scene`, `write_dataset`), Cityscapes snippets (`write_cityscapes`), SegNet's CamVid folder
(`write_camvid`), KITTI flow 2015 pairs (`write_kitti_flow`) and H.264 videos (`write_video`); `write_png` writes 8-
or 16-bit PNGs without PIL or TensorFlow, so the readers' decoders are checked against an independent encoder.

Content of frame k of a ScanNet scene (color image of height H, width W):
  color  R = 8 x, G = 10 y (exact ramps: a resized image tells which original pixel it shows), B = region shade + 20 k.
  depth  a slanted plane, 1500 mm + 40 mm per row (+ 10 mm per frame), with a missing (0) block at the top left.
  labels top rows wall, bottom rows floor, a chair box, a desk strip and an otherprop strip (NYU40 40 -> background);
         stored as NYU40 ids in label/ or as raw ScanNet ids in label-filt/ (through the tsv written next to it).
  pose   camera-to-world: the camera moves 5 cm along x per frame and turns 1 degree about y.
"""

import collections
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

from datasets import to_video
from depth_motion import geometry

DEFAULT_INTRINSICS = np.array([[30.0, 0.0, 15.2], [0.0, 28.0, 11.7], [0.0, 0.0, 1.0]], np.float32)

# Raw ScanNet id -> NYU40 id, as the fixture tsv lists them (raw ids go past 255, as in ScanNet).
RAW_TO_NYU40 = {1: 1, 2: 5, 3: 2, 7: 14, 300: 12, 1163: 40}
# The regions the fixture paints: (NYU40 id, raw id, benchmark class).
WALL, FLOOR, CHAIR, DESK, OTHERPROP = (1, 1, 1), (2, 3, 2), (5, 2, 5), (14, 7, 13), (40, 1163, 0)
# A raw id that the tsv does not list: background.
UNLISTED_RAW_ID = 5000

FixtureScene = collections.namedtuple(
    "FixtureScene", ["directory", "frame_ids", "colors", "depths_mm", "stored_labels", "classes", "poses",
                     "intrinsics", "depth_intrinsics"])
FixtureScene.__doc__ = """What `write_scene` wrote, for the usable frames (non-finite poses left out).

colors [N, H, W, 3] uint8; depths_mm [N, h, w] uint16; stored_labels [N, H, W] (file values) or None; classes [N, H, W]
expected benchmark classes or None; poses [N, 4, 4]; intrinsics [3, 3] at (H, W); depth_intrinsics [3, 3] at (h, w).
"""


def _write_matrix(path, matrix4):
  with open(path, "w", encoding="utf-8") as f:
    for row in matrix4:
      f.write(" ".join(f"{v:.9g}" for v in row) + "\n")


def _as_4x4(k):
  m = np.eye(4)
  m[:3, :3] = k
  return m


def label_regions(height, width):
  """[H, W] index into (WALL, FLOOR, CHAIR, DESK, OTHERPROP) of each pixel."""
  region = np.zeros([height, width], np.int64)
  region[height // 2:] = 1
  region[height // 4: 3 * height // 4, width // 4: width // 2] = 2
  region[height // 2:, 3 * width // 4:] = 3
  region[:, :2] = 4
  return region


def camera_pose(k):
  """4x4 camera-to-world pose of frame k."""
  angle = np.deg2rad(1.0) * k
  c, s = np.cos(angle), np.sin(angle)
  pose = np.eye(4)
  pose[:3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
  pose[:3, 3] = [0.05 * k, 0.0, 0.0]
  return pose


def write_scene(root, name, num_frames=4, size=(24, 32), depth_size=None, color_format="png", labels="nyu40",
                nonfinite_pose_ids=(), first_id=0, intrinsics=DEFAULT_INTRINSICS, write_depth_intrinsics=True):
  """Writes one scene folder `root/name` and returns a `FixtureScene`.

  Args:
    root: dataset root (created if needed).
    name: scene name.
    num_frames: frames written, ids first_id .. first_id + num_frames - 1.
    size: (H, W) of the color images; `depth_size` (default `size`) of the depth images.
    color_format: "png" (lossless) or "jpg".
    labels: "nyu40" (label/, 8-bit NYU40 ids), "raw" (label-filt/, 16-bit raw ids; also writes the tsv at root)
      or None.
    nonfinite_pose_ids: frame ids whose pose file holds -inf / NaN.
    intrinsics: [3, 3] color K at `size`.
    write_depth_intrinsics: also write intrinsic_depth.txt (K scaled to the depth size, as ScanNet's differ).
  """
  height, width = size
  depth_height, depth_width = depth_size or size
  directory = os.path.join(root, name)
  for sub in ("color", "depth", "pose", "intrinsic"):
    os.makedirs(os.path.join(directory, sub), exist_ok=True)
  intrinsics = np.asarray(intrinsics, np.float32)
  _write_matrix(os.path.join(directory, "intrinsic", "intrinsic_color.txt"), _as_4x4(intrinsics))
  depth_k = geometry.resize_intrinsics(intrinsics, size, (depth_height, depth_width)).numpy()
  if write_depth_intrinsics:
    _write_matrix(os.path.join(directory, "intrinsic", "intrinsic_depth.txt"), _as_4x4(depth_k))
  # ScanNet also exports extrinsics; the reader ignores them.
  _write_matrix(os.path.join(directory, "intrinsic", "extrinsic_color.txt"), np.eye(4))

  regions = label_regions(height, width)
  label_folder = {"nyu40": "label", "raw": "label-filt", None: None}[labels]
  if label_folder:
    os.makedirs(os.path.join(directory, label_folder), exist_ok=True)
  if labels == "raw":
    write_label_tsv(root)

  ys, xs = np.mgrid[0:height, 0:width]
  kept = collections.defaultdict(list)
  for k in range(num_frames):
    frame_id = first_id + k
    color = np.stack([8 * xs, 10 * ys, 40 + 30 * regions + 20 * k], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(color).save(os.path.join(directory, "color", f"{frame_id}.{color_format}"),
                                **({"quality": 95} if color_format == "jpg" else {}))
    dys = np.arange(depth_height)[:, np.newaxis] * np.ones([1, depth_width])
    depth = (1500 + 40 * dys * height / depth_height + 10 * k).astype(np.uint16)
    depth[:depth_height // 4, :depth_width // 4] = 0
    Image.fromarray(depth).save(os.path.join(directory, "depth", f"{frame_id}.png"))
    pose = camera_pose(k)
    if frame_id in nonfinite_pose_ids:
      pose = np.full([4, 4], -np.inf) if frame_id % 2 == 0 else np.full([4, 4], np.nan)
    _write_matrix(os.path.join(directory, "pose", f"{frame_id}.txt"), pose)

    stored = classes = None
    if labels == "nyu40":
      stored = np.array([r[0] for r in (WALL, FLOOR, CHAIR, DESK, OTHERPROP)], np.uint8)[regions]
      Image.fromarray(stored).save(os.path.join(directory, "label", f"{frame_id}.png"))
    elif labels == "raw":
      stored = np.array([r[1] for r in (WALL, FLOOR, CHAIR, DESK, OTHERPROP)], np.uint16)[regions]
      stored[0, -1] = UNLISTED_RAW_ID
      Image.fromarray(stored).save(os.path.join(directory, "label-filt", f"{frame_id}.png"))
    if labels:
      classes = np.array([r[2] for r in (WALL, FLOOR, CHAIR, DESK, OTHERPROP)], np.int32)[regions]
      if labels == "raw":
        classes[0, -1] = 0  # UNLISTED_RAW_ID

    if frame_id in nonfinite_pose_ids:
      continue
    kept["frame_ids"].append(frame_id)
    kept["colors"].append(color)
    kept["depths_mm"].append(depth)
    kept["stored_labels"].append(stored)
    kept["classes"].append(classes)
    kept["poses"].append(pose)
  return FixtureScene(
      directory=directory, frame_ids=kept["frame_ids"], colors=np.stack(kept["colors"]),
      depths_mm=np.stack(kept["depths_mm"]),
      stored_labels=np.stack(kept["stored_labels"]) if labels else None,
      classes=np.stack(kept["classes"]) if labels else None,
      poses=np.stack(kept["poses"]).astype(np.float32), intrinsics=intrinsics, depth_intrinsics=depth_k)


def write_label_tsv(root, raw_to_nyu40=None):
  """Writes `scannetv2-labels.combined.tsv` at `root`, with ScanNet's leading columns ('id' is not the only one)."""
  raw_to_nyu40 = RAW_TO_NYU40 if raw_to_nyu40 is None else raw_to_nyu40
  path = os.path.join(root, "scannetv2-labels.combined.tsv")
  with open(path, "w", encoding="utf-8") as f:
    f.write("id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\n")
    for raw_id, nyu40_id in raw_to_nyu40.items():
      f.write(f"{raw_id}\tthing{raw_id}\tthing\t10\t{nyu40_id}\t1\tthing\tnyu{nyu40_id}\n")
  return path


def write_splits(root, train=(), val=()):
  for split, names in (("train", train), ("val", val)):
    with open(os.path.join(root, f"scannetv2_{split}.txt"), "w", encoding="utf-8") as f:
      f.write("".join(f"{n}\n" for n in names))


def write_dataset(root):
  """A two-scene root with split files: scene0000_00 (train; 5 png frames, NYU40 labels, frame 2's pose -inf) and
  scene0001_00 (val; 3 jpg frames from id 10, raw labels, depth at half resolution). Returns {name: FixtureScene}."""
  scenes = {
      "scene0000_00": write_scene(root, "scene0000_00", num_frames=5, labels="nyu40", nonfinite_pose_ids=(2,)),
      "scene0001_00": write_scene(root, "scene0001_00", num_frames=3, color_format="jpg", labels="raw",
                                  depth_size=(12, 16), first_id=10),
  }
  write_splits(root, train=["scene0000_00"], val=["scene0001_00"])
  return scenes


# ----------------------------------------------------------------------------------------------------------------------
# A PNG writer independent of PIL and TensorFlow (KITTI flow needs 16-bit RGB, which PIL cannot write).


def write_png(path, array):
  """Writes a PNG of `array` [H, W] (grayscale) or [H, W, 3 | 4] (RGB | RGBA), uint8 or uint16, without filtering."""
  array = np.asarray(array)
  if array.dtype not in (np.uint8, np.uint16):
    raise ValueError(f"write_png takes uint8 or uint16. Received {array.dtype}.")
  height, width = array.shape[:2]
  color_type = {2: 0, 3: {3: 2, 4: 6}[array.shape[-1]] if array.ndim == 3 else None}[array.ndim]
  bit_depth = 8 if array.dtype == np.uint8 else 16
  rows = array.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1)
  raw = b"".join(b"\0" + row.tobytes() for row in rows)

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

  header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
  return path


def ramp_image(size, shade):
  """[H, W, 3] uint8: R = 8 x, G = 10 y (exact ramps), B = `shade`."""
  height, width = size
  ys, xs = np.mgrid[0:height, 0:width]
  return np.stack([8 * xs, 10 * ys, np.full_like(xs, shade)], axis=-1).clip(0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------------
# Cityscapes: leftImg8bit_sequence/, gtFine/, camera/.

CITYSCAPES_SIZE = (16, 32)
# K at the fixture's CITYSCAPES_SIZE, what the reader must give. The camera files hold K at Cityscapes' 2048x1024
# (`cityscapes_camera_file`): the fixture is a downscaled copy of the dataset.
CITYSCAPES_CAMERA = {"fx": 20.0, "fy": 21.0, "u0": 15.3, "v0": 7.6}


def cityscapes_camera_file(size=CITYSCAPES_SIZE):
  """The camera file's "intrinsic" of a dataset downscaled to `size`: CITYSCAPES_CAMERA at 2048x1024 (half-pixel
  centres, as a resize maps them)."""
  scale_y, scale_x = 1024 / size[0], 2048 / size[1]
  k = CITYSCAPES_CAMERA
  return {"fx": k["fx"] * scale_x, "fy": k["fy"] * scale_y, "u0": (k["u0"] + 0.5) * scale_x - 0.5,
          "v0": (k["v0"] + 0.5) * scale_y - 0.5}
# Label ids painted in the fixture's label images, and the train ids they must become.
CITYSCAPES_IDS = {7: 0, 26: 13, 0: 255, 33: 18, 23: 10, 4: 255, 11: 2}


def cityscapes_label_ids(size=CITYSCAPES_SIZE):
  """[H, W] uint8 label ids: a band of each id of CITYSCAPES_IDS, 4 columns wide, repeating."""
  ids = np.array(list(CITYSCAPES_IDS), np.uint8)
  height, width = size
  columns = ids[(np.arange(width) // 4) % len(ids)]
  rows = columns[np.newaxis].repeat(height, axis=0)
  rows[height // 2:] = ids[((np.arange(width) // 4) + 3) % len(ids)]
  return rows


def cityscapes_frame_shade(frame):
  return (3 * frame) % 256


def write_cityscapes_snippet(root, split, city, seq, labelled_frame, labels=True, camera=True,
                             size=CITYSCAPES_SIZE):
  """Writes the 30 frames of one snippet (labelled frame + its label and camera file); returns the label ids."""
  for frame in range(labelled_frame - 19, labelled_frame + 11):
    stem = f"{city}_{seq:06d}_{frame:06d}"
    Image.fromarray(ramp_image(size, cityscapes_frame_shade(frame))).save(
        _mkdirs(os.path.join(root, "leftImg8bit_sequence", split, city, f"{stem}_leftImg8bit.png")))
  stem = f"{city}_{seq:06d}_{labelled_frame:06d}"
  ids = cityscapes_label_ids(size)
  if labels:
    Image.fromarray(ids).save(_mkdirs(os.path.join(root, "gtFine", split, city, f"{stem}_gtFine_labelIds.png")))
  if camera:
    path = _mkdirs(os.path.join(root, "camera", split, city, f"{stem}_camera.json"))
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"extrinsic": {"baseline": 0.21, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0,
                               "z": 1.2}, "intrinsic": cityscapes_camera_file(size)}, f)
  return ids


def write_cityscapes(root):
  """train: aachen seq 0 (labelled frame 19) and seq 3 (labelled frame 119); val: frankfurt seq 0 (frame 294)."""
  write_cityscapes_snippet(root, "train", "aachen", 0, 19)
  write_cityscapes_snippet(root, "train", "aachen", 3, 119)
  write_cityscapes_snippet(root, "val", "frankfurt", 0, 294)
  return root


def _mkdirs(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return path


# ----------------------------------------------------------------------------------------------------------------------
# CamVid in SegNet's layout.

CAMVID_SIZE = (8, 12)
CAMVID_TRAIN = ("0001TP_006720", "0001TP_006690", "Seq05VD_f00000", "0001TP_006750")
CAMVID_VAL = ("0016E5_07959",)


def camvid_annotation(index, size=CAMVID_SIZE):
  """[H, W] uint8 class ids 0..11 (11 = void), shifted by `index`."""
  height, width = size
  return ((np.arange(height * width).reshape(height, width) + index) % 12).astype(np.uint8)


def write_camvid(root):
  """SegNet's CamVid/ folder: train.txt (absolute SegNet paths), val.txt, images and annotations."""
  for split, names in (("train", CAMVID_TRAIN), ("val", CAMVID_VAL)):
    lines = []
    for index, name in enumerate(names):
      Image.fromarray(ramp_image(CAMVID_SIZE, 10 * index)).save(_mkdirs(os.path.join(root, split, f"{name}.png")))
      Image.fromarray(camvid_annotation(index)).save(_mkdirs(os.path.join(root, f"{split}annot", f"{name}.png")))
      lines.append(f"/SegNet/CamVid/{split}/{name}.png /SegNet/CamVid/{split}annot/{name}.png\n")
    with open(os.path.join(root, f"{split}.txt"), "w", encoding="utf-8") as f:
      f.writelines(lines)
  return root


# ----------------------------------------------------------------------------------------------------------------------
# KITTI flow 2015.

KITTI_SIZE = (6, 10)
KITTI_P_RECT_02 = "7.2e+01 0.0 3.1e+01 4.5e+01 0.0 7.3e+01 1.7e+01 2.1e-01 0.0 0.0 1.0 2.7e-03"


def kitti_flow_samples(index, size=KITTI_SIZE):
  """[H, W, 3] uint16 samples of pair `index`'s ground truth: u = x / 4 - index, v = -y / 2, some pixels invalid."""
  height, width = size
  ys, xs = np.mgrid[0:height, 0:width]
  u, v = xs / 4.0 - index, -ys / 2.0
  samples = np.stack([u * 64 + 2 ** 15, v * 64 + 2 ** 15, np.ones_like(u)], axis=-1).astype(np.uint16)
  samples[0, :3, 2] = 0
  return samples


def write_kitti_flow(root, num_pairs=2, calibrated=(0,)):
  """training/image_2, flow_occ (all valid but three pixels), flow_noc (also the last column invalid), calib."""
  training = os.path.join(root, "training")
  for i in range(num_pairs):
    for frame in (10, 11):
      Image.fromarray(ramp_image(KITTI_SIZE, 50 * i + frame)).save(
          _mkdirs(os.path.join(training, "image_2", f"{i:06d}_{frame}.png")))
    samples = kitti_flow_samples(i)
    write_png(os.path.join(training, "flow_occ", f"{i:06d}_10.png"), samples)
    samples = samples.copy()
    samples[:, -1, 2] = 0
    write_png(os.path.join(training, "flow_noc", f"{i:06d}_10.png"), samples)
    if i in calibrated:
      with open(_mkdirs(os.path.join(training, "calib_cam_to_cam", f"{i:06d}.txt")), "w", encoding="utf-8") as f:
        f.write(f"calib_time: 09-Jan-2012 13:57:47\nP_rect_00: {KITTI_P_RECT_02}\nP_rect_02: {KITTI_P_RECT_02}\n")
  return root


def write_video(path, frames, fps=30):
  """Writes RGB uint8 `frames` ([H, W, 3] each, even H and W) as a lossless H.264 video (`to_video.write_video`)."""
  to_video.write_video(path, frames, fps, lossless=True)
  return str(path)


def video_frame(index, size=(60, 90)):
  """Frame `index` of the test videos: smooth ramps that move with the index (R), a fixed ramp (G), a shade (B)."""
  height, width = size
  y, x = np.mgrid[0:height, 0:width]
  red = (2 * x + 3 * index) % 256
  return np.stack([red, (3 * y) % 256, np.full_like(x, (20 * index) % 256)], axis=-1).astype(np.uint8)
