"""Cityscapes video snippets as scenes: 30 frames each, the 20th with fine labels, intrinsics from the camera files.

The layout, as the Cityscapes packages unpack under one root (see shared/reference/datasets.md):

  leftImg8bit_sequence/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png   8-bit RGB, 2048x1024
  gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png                     8-bit label ids 0..33
  camera/<split>/<city>/<city>_<seq>_<frame>_camera.json                             {"intrinsic": {fx, fy, u0, v0}}

Each fine label anchors one snippet: frames frame - 19 .. frame + 10 of its sequence, the labelled frame being the
20th (index 19). Without a gtFine/<split> folder (sequences only, for unsupervised training), each run of consecutive
frames of a sequence is cut into 30-frame snippets. A snippet is a `scannet.SceneIndex` named after its 20th frame
("aachen_000000_000019"), with no depth and no poses; its label table maps label ids to the 19 train ids (every other
id to IGNORE_LABEL, ids above 33 fail the load), and its K comes from the camera file of its 20th frame (or, without
one, of any of its frames). The camera files hold the intrinsics at 2048x1024 (`CAMERA_SIZE`), whatever the size of
the images: a downscaled copy of the dataset gets its K scaled to its own size here (one of another aspect ratio is
refused: it is not a resize of the camera's images), then `load_frame` scales it with every resize and, with
`crop=True`, with the struct2depth crop (the middle half of the rows, then the centred columns of the working aspect
ratio).
"""

import collections
import json
import os
import re

import numpy as np

from datasets import labels as labels_lib
from datasets.labels import DataError
from datasets.readers import png
from datasets.readers import scannet
from depth_motion import geometry

SPLITS = ("train", "val", "test")
SNIPPET_LENGTH = 30
LABELLED_INDEX = 19
# (height, width) of the images the camera files' intrinsics describe (Cityscapes' full resolution).
CAMERA_SIZE = (1024, 2048)
# Relative difference of the two scale factors tolerated when an image is a downscaled copy (sizes are rounded).
_ASPECT_TOLERANCE = 0.01

IMAGE_FOLDER = "leftImg8bit_sequence"
LABEL_FOLDER = "gtFine"
CAMERA_FOLDER = "camera"

_IMAGE_NAME = re.compile(r"^([A-Za-z_\-]+?)_(\d{6})_(\d{6})_leftImg8bit\.png$")
_LABEL_NAME = re.compile(r"^([A-Za-z_\-]+?)_(\d{6})_(\d{6})_gtFine_labelIds\.png$")


def _stem(city, seq, frame):
  return f"{city}_{seq:06d}_{frame:06d}"


def image_path(root, split, city, seq, frame):
  return os.path.join(root, IMAGE_FOLDER, split, city, f"{_stem(city, seq, frame)}_leftImg8bit.png")


def label_path(root, split, city, seq, frame):
  return os.path.join(root, LABEL_FOLDER, split, city, f"{_stem(city, seq, frame)}_gtFine_labelIds.png")


def camera_path(root, split, city, seq, frame):
  return os.path.join(root, CAMERA_FOLDER, split, city, f"{_stem(city, seq, frame)}_camera.json")


def read_camera(path):
  """[3, 3] float32 K from a Cityscapes camera JSON file ({"intrinsic": {"fx", "fy", "u0", "v0"}, ...}).

  Raises:
    DataError: naming the file when it is unreadable, not JSON, or lacks positive intrinsics.
  """
  try:
    with open(path, encoding="utf-8") as f:
      camera = json.load(f)
  except OSError as e:
    raise DataError(f"Cannot read the camera file {path}: {e.strerror or e}.") from None
  except ValueError as e:
    raise DataError(f"The camera file {path} is not valid JSON: {e}.") from None
  intrinsic = camera.get("intrinsic") if isinstance(camera, dict) else None
  keys = ("fx", "fy", "u0", "v0")
  if not isinstance(intrinsic, dict) or any(key not in intrinsic for key in keys):
    raise DataError(f"The camera file {path} has no intrinsics: expected an object \"intrinsic\" with keys "
                    f"{', '.join(keys)}. Received keys: {sorted(camera) if isinstance(camera, dict) else camera!r}.")
  try:
    fx, fy, cx, cy = (float(intrinsic[key]) for key in keys)
  except (TypeError, ValueError):
    raise DataError(f"The camera file {path}: intrinsic {', '.join(keys)} must be numbers. "
                    f"Received: {intrinsic}.") from None
  # Finite as float32 too: the K the pipeline computes with.
  with np.errstate(over="ignore"):
    finite = np.isfinite(np.array([fx, fy, cx, cy], np.float32)).all()
  if not (fx > 0 and fy > 0 and finite):
    raise DataError(f"The camera file {path}: expected finite fx, fy > 0 and finite u0, v0. Received: {intrinsic}.")
  return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], np.float32)


def intrinsics_at(intrinsics, size, path):
  """The camera file's K (at `CAMERA_SIZE`) for images of `size` (height, width), as a resize to that size gives it.

  Raises:
    DataError: naming `path` (an image of that size) when its aspect ratio is not the camera's, so that it cannot be a
      resized copy and no K follows from the camera file.
  """
  scale_y, scale_x = size[0] / CAMERA_SIZE[0], size[1] / CAMERA_SIZE[1]
  if abs(scale_y - scale_x) > _ASPECT_TOLERANCE * max(scale_x, scale_y):
    raise DataError(f"Cityscapes image {path} is {size[1]}x{size[0]}: the camera files' intrinsics are for "
                    f"{CAMERA_SIZE[1]}x{CAMERA_SIZE[0]} images, and this is not a resize of them (aspect ratio "
                    f"{size[1] / size[0]:.3f}, expected {CAMERA_SIZE[1] / CAMERA_SIZE[0]:.3f}). Resize the dataset "
                    "whole, without cropping, or use the original images.")
  if tuple(size) == CAMERA_SIZE:
    return intrinsics
  return geometry.resize_intrinsics(intrinsics, CAMERA_SIZE, tuple(size)).numpy().astype(np.float32)


def _list_sequence_frames(folder, pattern, what):
  """{(city, seq): sorted frame numbers} of the files in the city folders of `folder`."""
  frames = collections.defaultdict(list)
  for city_entry in sorted(os.scandir(folder), key=lambda e: e.name):
    if not city_entry.is_dir():
      continue
    for entry in os.scandir(city_entry.path):
      match = pattern.match(entry.name)
      if match and match.group(1) == city_entry.name:
        frames[(city_entry.name, int(match.group(2)))].append(int(match.group(3)))
  if not frames:
    raise DataError(f"No {what} in the city folders of {folder}.")
  return {key: sorted(value) for key, value in sorted(frames.items())}


def _snippets_from_labels(root, split, sequences):
  """[(city, seq, [frames])] anchored on the fine labels: frames label - 19 .. label + 10."""
  label_dir = os.path.join(root, LABEL_FOLDER, split)
  labelled = _list_sequence_frames(label_dir, _LABEL_NAME,
                                   "fine label images (<city>_<seq>_<frame>_gtFine_labelIds.png)")
  snippets = []
  for (city, seq), label_frames in labelled.items():
    available = set(sequences.get((city, seq), ()))
    for frame in label_frames:
      wanted = list(range(frame - LABELLED_INDEX, frame - LABELLED_INDEX + SNIPPET_LENGTH))
      missing = [f for f in wanted if f not in available]
      if missing:
        raise DataError(f"The fine label {label_path(root, split, city, seq, frame)} anchors a {SNIPPET_LENGTH}-frame "
                        f"snippet (frames {wanted[0]:06d}..{wanted[-1]:06d}), but {len(missing)} of its frames are "
                        f"missing, e.g. {image_path(root, split, city, seq, missing[0])}.")
      snippets.append((city, seq, wanted))
  return snippets


def _snippets_from_runs(sequences):
  """[(city, seq, [frames])]: each run of consecutive frames cut into whole snippets."""
  snippets = []
  for (city, seq), frames in sequences.items():
    runs, run = [], [frames[0]]
    for frame in frames[1:]:
      if frame == run[-1] + 1:
        run.append(frame)
      else:
        runs.append(run)
        run = [frame]
    runs.append(run)
    for run in runs:
      for start in range(0, len(run) - SNIPPET_LENGTH + 1, SNIPPET_LENGTH):
        snippets.append((city, seq, run[start:start + SNIPPET_LENGTH]))
  return snippets


def _snippet_intrinsics(root, split, city, seq, frames):
  anchor = frames[LABELLED_INDEX] if len(frames) > LABELLED_INDEX else frames[0]
  for frame in [anchor] + frames:
    path = camera_path(root, split, city, seq, frame)
    if os.path.isfile(path):
      return read_camera(path)
  raise DataError(f"Missing camera file {camera_path(root, split, city, seq, anchor)} (intrinsics of the snippet "
                  f"{_stem(city, seq, anchor)}; Cityscapes' camera_trainvaltest package).")


def list_splits(root):
  """The splits present under `root/leftImg8bit_sequence`."""
  folder = os.path.join(root, IMAGE_FOLDER)
  if not os.path.isdir(folder):
    raise DataError(f"Missing folder {folder}: expected Cityscapes' {IMAGE_FOLDER}/<split>/<city>/ images under the "
                    f"root {root}.")
  splits = [split for split in SPLITS if os.path.isdir(os.path.join(folder, split))]
  if not splits:
    raise DataError(f"No split folder ({', '.join(SPLITS)}) in {folder}.")
  return splits


def iter_scenes(root, split=None, crop=False):
  """Yields the snippets (`scannet.SceneIndex`) of one split of a Cityscapes root, or of every split present.

  Args:
    root: the folder holding leftImg8bit_sequence/ (and gtFine/, camera/).
    split: "train", "val", "test", or None for every split present.
    crop: load frames with the struct2depth crop.

  Raises:
    ValueError: for an unknown split.
    DataError: naming the folder or file that is missing or malformed.
  """
  root = os.fspath(root)
  if split is not None and split not in SPLITS:
    raise ValueError(f"Unknown Cityscapes split {split!r}; expected one of {SPLITS} or None (every split).")
  if not os.path.isdir(root):
    raise DataError(f"Dataset root {root} is not a directory.")
  splits = list_splits(root) if split is None else [split]
  for name in splits:
    folder = os.path.join(root, IMAGE_FOLDER, name)
    if not os.path.isdir(folder):
      raise DataError(f"Missing folder {folder}: expected the {name} split of Cityscapes' {IMAGE_FOLDER}.")
    sequences = _list_sequence_frames(folder, _IMAGE_NAME,
                                      "sequence images (<city>_<seq>_<frame>_leftImg8bit.png)")
    has_labels = os.path.isdir(os.path.join(root, LABEL_FOLDER, name))
    snippets = _snippets_from_labels(root, name, sequences) if has_labels else _snippets_from_runs(sequences)
    if not snippets:
      raise DataError(f"No {SNIPPET_LENGTH}-frame snippet in {folder} (no run of {SNIPPET_LENGTH} consecutive frames).")
    for city, seq, frames in snippets:
      yield _snippet(root, name, city, seq, frames, has_labels, crop)


def read_scenes(root, split=None, crop=False):
  """`list(iter_scenes(...))`: the snippets a pipeline trains or evaluates on."""
  return list(iter_scenes(root, split, crop))


def _snippet(root, split, city, seq, frames, has_labels, crop):
  color_paths = tuple(image_path(root, split, city, seq, f) for f in frames)
  header = png.check_header(color_paths[0], "Cityscapes image", 8, (png.RGB,))
  label_paths = None
  if has_labels:
    anchor = frames[LABELLED_INDEX]
    path = label_path(root, split, city, seq, anchor)
    png.check_header(path, "Cityscapes label image (label ids)", 8, (png.GRAY,))
    label_paths = tuple(path if f == anchor else "" for f in frames)
  intrinsics = intrinsics_at(_snippet_intrinsics(root, split, city, seq, frames), header.size, color_paths[0])
  intrinsics.setflags(write=False)
  name = _stem(city, seq, frames[LABELLED_INDEX] if len(frames) > LABELLED_INDEX else frames[0])
  return scannet.SceneIndex(
      name=name,
      directory=os.path.dirname(color_paths[0]),
      frame_ids=tuple(frames),
      color_paths=color_paths,
      depth_paths=None,
      label_paths=label_paths,
      poses=None,
      intrinsics=intrinsics,
      depth_intrinsics=None,
      color_size=header.size,
      depth_size=None,
      label_source=LABEL_FOLDER if has_labels else None,
      label_table=labels_lib.CITYSCAPES_LABEL_ID_TO_CLASS if has_labels else None,
      crop=bool(crop),
  )
