"""KITTI optical flow 2015: image pairs, the 16-bit flow PNG format (decode and encode), and ground-truth loading.

The layout under the root (data_scene_flow.zip; calibration from data_scene_flow_calib.zip, optional):

  training/image_2/<i:06d>_10.png, <i>_11.png    8-bit RGB, about 1242x375 (sizes vary per sequence)
  training/flow_occ/<i>_10.png                    16-bit RGB flow, all pixels with ground truth
  training/flow_noc/<i>_10.png                    16-bit RGB flow, non-occluded pixels only
  training/calib_cam_to_cam/<i>.txt               optional: P_rect_02 gives the left colour camera's K
  testing/image_2/...                             pairs without flow

Flow PNG (the devkit's io_flow.h): u = (R - 2^15) / 64, v = (G - 2^15) / 64, valid = B > 0; invalid pixels decode
to zero flow. Writing clamps u * 64 + 2^15 to [0, 65535] and truncates, with B = 1 on valid pixels, as the devkit.

A pair (`FlowPair`) also answers the inspect command's scene protocol (`name`, `frame_ids`, `num_frames`,
`color_size`, `intrinsics`, `load(index, size)`), so `python -m datasets.inspect --dataset=kitti_flow` draws it with
its ground-truth flow.
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from datasets.labels import DataError
from datasets.readers import png
from depth_motion import geometry

SPLITS = {"train": "training", "test": "testing"}
FLOW_OFFSET = 2.0 ** 15
FLOW_SCALE = 64.0

_IMAGE_NAME = re.compile(r"^(\d{6})_10\.png$")


def decode_flow(encoded):
  """Flow and validity from the bytes of a KITTI flow PNG (TensorFlow ops).

  Args:
    encoded: scalar string tensor: a 16-bit RGB PNG.

  Returns:
    (flow [H, W, 2] float32 (u, v) in pixels, zero where invalid; valid [H, W] bool).
  """
  values = tf.cast(tf.io.decode_png(encoded, channels=3, dtype=tf.uint16), tf.float32)
  valid = values[..., 2] > 0
  flow = (values[..., :2] - FLOW_OFFSET) / FLOW_SCALE
  return tf.where(valid[..., tf.newaxis], flow, 0.0), valid


def encode_flow(flow, valid=None):
  """[H, W, 3] uint16 KITTI flow PNG samples of `flow` [H, W, 2] (NumPy), as the devkit's writeFlowField."""
  flow = np.asarray(flow, np.float32)
  if flow.ndim != 3 or flow.shape[-1] != 2:
    raise ValueError(f"flow must be [H, W, 2]. Received shape {flow.shape}.")
  valid = np.isfinite(flow).all(-1) if valid is None else np.asarray(valid, bool) & np.isfinite(flow).all(-1)
  samples = np.floor(np.clip(flow * np.float32(FLOW_SCALE) + np.float32(FLOW_OFFSET), 0.0, 65535.0))
  out = np.zeros(flow.shape[:2] + (3,), np.uint16)
  out[..., :2] = np.where(valid[..., np.newaxis], samples, 0).astype(np.uint16)
  out[..., 2] = valid
  return out


def write_flow(path, flow, valid=None):
  """Writes `flow` [H, W, 2] (pixels) as a KITTI flow PNG at `path`; `valid` [H, W] defaults to finite pixels."""
  encoded = tf.io.encode_png(tf.constant(encode_flow(flow, valid)))
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tf.io.write_file(path, encoded)


def read_flow(path):
  """(flow [H, W, 2] float32, valid [H, W] bool) NumPy arrays of a KITTI flow PNG.

  Raises:
    DataError: naming the file when it is not a readable 16-bit RGB PNG.
  """
  png.check_header(path, "KITTI flow image", 16, (png.RGB,))
  try:
    flow, valid = decode_flow(tf.io.read_file(path))
  except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
    raise DataError(f"Cannot decode the KITTI flow image {path}: {e.message.splitlines()[0]}.") from None
  return flow.numpy(), valid.numpy()


def read_calibration(path):
  """[3, 3] float32 K of the left colour camera (P_rect_02) from a KITTI calib_cam_to_cam file."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"Cannot read the calibration file {path}: {getattr(e, 'strerror', None) or e}.") from None
  for line in lines:
    key, _, values = line.partition(":")
    if key.strip() == "P_rect_02":
      try:
        numbers = np.array([float(v) for v in values.split()], np.float64)
      except ValueError:
        numbers = np.zeros([0])
      # Finite as float32 too: the K the pipeline computes with.
      with np.errstate(over="ignore"):
        finite = np.isfinite(numbers.astype(np.float32)).all()
      if numbers.size != 12 or not (numbers[0] > 0 and numbers[5] > 0 and finite):
        raise DataError(f"The calibration file {path}: P_rect_02 must hold 12 finite numbers (a 3x4 matrix with "
                        f"fx, fy > 0). Received: {values.strip()[:80]!r}.")
      return numbers.reshape(3, 4)[:, :3].astype(np.float32)
  raise DataError(f"The calibration file {path} has no P_rect_02 line (the left colour camera's projection).")


@dataclasses.dataclass(frozen=True)
class FlowPair:
  """One KITTI flow pair: frames 10 and 11 of a sequence, with its ground truth when the split has it.

  Attributes:
    name: the pair's number, e.g. "000042".
    image_paths: (frame 10, frame 11) PNG paths.
    flow_occ_path, flow_noc_path: ground-truth flow PNGs, or None (testing split).
    color_size: (height, width) of frame 10.
    intrinsics: [3, 3] float32 K from the calibration file, or NaN when there is none.
  """
  name: str
  image_paths: tuple
  flow_occ_path: str | None
  flow_noc_path: str | None
  color_size: tuple
  intrinsics: np.ndarray

  frame_ids = (10, 11)
  num_frames = 2

  @property
  def has_flow(self):
    return self.flow_occ_path is not None

  def load_ground_truth(self):
    """NumPy ground truth at full resolution: {"flow_occ", "valid_occ", "flow_noc", "valid_noc"}."""
    flow_occ, valid_occ = read_flow(self.flow_occ_path)
    flow_noc, valid_noc = read_flow(self.flow_noc_path)
    for path, flow in ((self.flow_occ_path, flow_occ), (self.flow_noc_path, flow_noc)):
      if flow.shape[:2] != tuple(self.color_size):
        raise DataError(f"KITTI flow image {path} is {flow.shape[0]}x{flow.shape[1]}, but its image "
                        f"{self.image_paths[0]} is {self.color_size[0]}x{self.color_size[1]}.")
    return {"flow_occ": flow_occ, "valid_occ": valid_occ, "flow_noc": flow_noc, "valid_noc": valid_noc}

  def load(self, index, size):
    """Frame `index` (0: frame 10, 1: frame 11) at `size`; frame 10 also holds the ground-truth flow (all pixels).

    Returns:
      {"image" [H, W, 3] float32 in [0, 1], "intrinsics" [3, 3], "has_label" False, "frame_id"}, and for frame 10
      of a training pair "flow" [H, W, 2] (scaled to `size`, nearest) and "flow_valid" [H, W] bool.
    """
    path = self.image_paths[index]
    # Checked before decoding (a damaged header may claim a size too large to allocate); frame 11's was not indexed.
    header = png.read_header(path, "KITTI image")
    if header.size != tuple(self.color_size):
      raise DataError(f"KITTI image {path} is {header.height}x{header.width}, but the pair's first image "
                      f"{self.image_paths[0]} is {self.color_size[0]}x{self.color_size[1]}: the two frames of a pair "
                      f"have one size.")
    try:
      color = tf.io.decode_png(tf.io.read_file(path), channels=3)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      raise DataError(f"Cannot decode the KITTI image {path}: {e.message.splitlines()[0]}.") from None
    image = tf.image.resize(tf.image.convert_image_dtype(color, tf.float32), size, antialias=True)
    frame = {"image": tf.clip_by_value(image, 0.0, 1.0), "has_label": tf.constant(False),
             "intrinsics": geometry.resize_intrinsics(self.intrinsics, tf.shape(color)[:2], size),
             "frame_id": self.frame_ids[index]}
    if index == 0 and self.has_flow:
      flow, valid = read_flow(self.flow_occ_path)
      if flow.shape[:2] != tuple(self.color_size):
        raise DataError(f"KITTI flow image {self.flow_occ_path} is {flow.shape[0]}x{flow.shape[1]}, but its image "
                        f"{self.image_paths[0]} is {self.color_size[0]}x{self.color_size[1]}.")
      scale = np.array([size[1] / flow.shape[1], size[0] / flow.shape[0]], np.float32)
      frame["flow"] = tf.image.resize(flow * scale, size, method="nearest")
      frame["flow_valid"] = tf.image.resize(valid[..., np.newaxis].astype(np.uint8), size, method="nearest")[..., 0] > 0
    return frame


def read_pairs(root, split="train"):
  """The `FlowPair`s of `root/training` ("train", with ground truth) or `root/testing` ("test").

  Raises:
    ValueError: for an unknown split.
    DataError: naming the folder or file that is missing or malformed.
  """
  root = os.fspath(root)
  if split not in SPLITS:
    raise ValueError(f"Unknown KITTI flow split {split!r}; expected one of {sorted(SPLITS)}.")
  split_dir = os.path.join(root, SPLITS[split])
  image_dir = os.path.join(split_dir, "image_2")
  if not os.path.isdir(image_dir):
    raise DataError(f"Missing folder {image_dir}: expected KITTI flow 2015's {SPLITS[split]}/image_2/ under the "
                    f"root {root}.")
  names = sorted(m.group(1) for m in map(_IMAGE_NAME.match, os.listdir(image_dir)) if m)
  if not names:
    raise DataError(f"No <i>_10.png images in {image_dir}.")
  flow_dirs = {kind: os.path.join(split_dir, kind) for kind in ("flow_occ", "flow_noc")}
  with_flow = split == "train"
  if with_flow:
    for folder in flow_dirs.values():
      if not os.path.isdir(folder):
        raise DataError(f"Missing folder {folder}: expected the ground-truth flow of KITTI flow 2015's training split.")
  calib_dir = os.path.join(split_dir, "calib_cam_to_cam")
  pairs = []
  for name in names:
    images = (os.path.join(image_dir, f"{name}_10.png"), os.path.join(image_dir, f"{name}_11.png"))
    if not os.path.isfile(images[1]):
      raise DataError(f"Missing image {images[1]}: the second frame of the pair {images[0]}.")
    header = png.check_header(images[0], "KITTI image", 8, (png.RGB,))
    flows = {kind: None for kind in flow_dirs}
    if with_flow:
      for kind, folder in flow_dirs.items():
        flows[kind] = os.path.join(folder, f"{name}_10.png")
        if not os.path.isfile(flows[kind]):
          raise DataError(f"Missing ground-truth flow {flows[kind]} of the pair {images[0]}.")
        flow_header = png.check_header(flows[kind], "KITTI flow image", 16, (png.RGB,))
        if flow_header.size != header.size:
          raise DataError(f"KITTI flow image {flows[kind]} is {flow_header.height}x{flow_header.width}, but its "
                          f"image {images[0]} is {header.height}x{header.width}.")
    calib = os.path.join(calib_dir, f"{name}.txt")
    k = read_calibration(calib) if os.path.isfile(calib) else np.full([3, 3], np.nan, np.float32)
    k.setflags(write=False)
    pairs.append(FlowPair(name=name, image_paths=images, flow_occ_path=flows["flow_occ"],
                          flow_noc_path=flows["flow_noc"], color_size=header.size, intrinsics=k))
  return pairs


def iter_scenes(root, split=None):
  """The pairs of `read_pairs` (split None: training), for the inspect command."""
  return iter(read_pairs(root, split or "train"))
