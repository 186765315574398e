"""Scene reader for ScanNet frame exports and the synthetic scenes that are written in the same layout.

A scene folder, as ScanNet's SensReader exports it (see shared/reference/datasets.md):

  <scene>/color/<i>.jpg (or .png)         RGB, ScanNet 1296x968
  <scene>/depth/<i>.png                    uint16 millimetres, ScanNet 640x480, 0 = missing
  <scene>/pose/<i>.txt                     4x4 camera-to-world, row-major text; frames with -inf/NaN are skipped
  <scene>/intrinsic/intrinsic_color.txt    4x4 text, K in the top-left 3x3
  <scene>/intrinsic/intrinsic_depth.txt    (optional here: the color K resized to the depth size stands in)
  <scene>/label/<i>.png                    optional, NYU40 ids (8-bit), or
  <scene>/label-filt/<i>.png               optional, raw ScanNet ids (16-bit) mapped by scannetv2-labels.combined.tsv

Reading is in two steps. `read_scene` builds an immutable `SceneIndex` from file names, pose and intrinsics text and
the headers of the first images: cheap, NumPy, no image decoding. `load_frame` decodes one frame with TensorFlow ops
only, so the same code runs eagerly (tests, the inspect command) and inside `tf.data.Dataset.map` (the pipeline); its
inputs are exactly the columns of `SceneIndex.frame_table()`.

Color and depth cameras: ScanNet's depth (640x480) and color (1296x968) images come from different sensors. Like
ScanNet's own 2-D exports, this reader treats them as registered: both are resized to one working resolution and share
the color intrinsics scaled to that resolution. Labels (label/ at 1296x968 or label-filt/ at 640x480, whichever the
export holds) are resized by nearest neighbour to the same working resolution.

`SceneIndex` and `load_frame` also serve the other datasets' readers (cityscapes.py, camvid.py): a scene may lack
depth (`depth_paths` None: depth loads as zeros, which means missing), poses (`poses` None: the frame table holds NaN
poses, meaning unknown) and labels on some frames (`label_paths` entries ""), and may ask for the struct2depth crop.
"""

import dataclasses
import os
import re

from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from datasets import labels as labels_lib
from datasets.labels import DataError
from datasets.readers import checked_decode
from depth_motion import geometry

SPLITS = ("train", "val")
SPLIT_FILES = {"train": "scannetv2_train.txt", "val": "scannetv2_val.txt"}

# Label folders, in order of preference when a scene has both.
LABEL_NYU40 = "label"
LABEL_RAW = "label-filt"

# Depth PNG value per metre.
DEPTH_SCALE = 1000.0

_COLOR_NAME = re.compile(r"^(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
_PNG_NAME = re.compile(r"^(\d+)\.png$", re.IGNORECASE)
_POSE_NAME = re.compile(r"^(\d+)\.txt$", re.IGNORECASE)
_SCENE_SUBFOLDERS = ("color", "depth", "pose", "intrinsic")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _frozen(array):
  array.setflags(write=False)
  return array


@dataclasses.dataclass(frozen=True, eq=False)
class SceneIndex:
  """Everything about one scene except the pixels; frame k of every per-frame field is the same frame.

  Attributes:
    name: scene name, the folder's name (e.g. "scene0000_00").
    directory: the scene folder.
    frame_ids: [N] sorted frame ids (file stems) of the usable frames.
    color_paths: [N] file paths.
    depth_paths: [N] file paths, or None when the dataset has no depth (it loads as zeros: missing).
    label_paths: [N] file paths ("" for a frame without a label), or None when the scene has no labels.
    poses: [N, 4, 4] float32 camera-to-world, or None when the dataset has no poses (`frame_table` gives NaN).
    intrinsics: [3, 3] float32 color intrinsics at `color_size`.
    depth_intrinsics: [3, 3] float32 depth intrinsics at `depth_size` (None without depth).
    color_size: (height, width) of the first color image.
    depth_size: (height, width) of the first depth image (None without depth).
    label_source: LABEL_NYU40, LABEL_RAW, another reader's label folder name, or None: the labels read.
    label_table: [M] int32 stored label value -> class, IGNORE_LABEL or INVALID_LABEL (None without labels); feed it
      to `load_frame`.
    skipped_frame_ids: ids left out because their pose is not finite.
    crop: load frames with the struct2depth crop (`load_frame`'s `crop`).
    intrinsics_known: False when `intrinsics` is a stand-in (`stand_in_intrinsics`) for a camera without calibration.
    native_size: (height, width) of the source video when its frames were resized on import (datasets/readers/video.py),
      else None (`color_size` is the source's size).
  """
  name: str
  directory: str
  frame_ids: tuple
  color_paths: tuple
  depth_paths: tuple
  label_paths: tuple | None
  poses: np.ndarray
  intrinsics: np.ndarray
  depth_intrinsics: np.ndarray
  color_size: tuple
  depth_size: tuple
  label_source: str | None
  label_table: np.ndarray | None
  skipped_frame_ids: tuple = ()
  crop: bool = False
  intrinsics_known: bool = True
  native_size: tuple | None = None

  def __post_init__(self):
    check_utf8_path(self.directory, f"The folder of scene {self.name!r}")

  @property
  def num_frames(self):
    return len(self.frame_ids)

  def __len__(self):
    return len(self.frame_ids)

  @property
  def has_labels(self):
    """Whether any frame of the scene has a label."""
    return self.label_paths is not None and any(self.label_paths)

  @property
  def has_depth(self):
    return self.depth_paths is not None

  @property
  def has_poses(self):
    return self.poses is not None

  @property
  def unlisted_label(self):
    """The class of stored label values past the end of `label_table` (`load_frame`'s `label_default`): background
    for raw ScanNet ids (an id the tsv does not list), INVALID_LABEL (the load fails) for every other id space."""
    return 0 if self.label_source == LABEL_RAW else labels_lib.INVALID_LABEL

  def labelled_frame_ids(self):
    """The ids of the frames that have a label."""
    if self.label_paths is None:
      return ()
    return tuple(i for i, path in zip(self.frame_ids, self.label_paths) if path)

  def frame_table(self):
    """Parallel per-frame columns for `tf.data.Dataset.from_tensor_slices`, in frame order.

    Returns:
      A dict of NumPy arrays with leading dimension N: `frame_id` [N] int64; `color_path`, `depth_path`,
      `label_path` [N] str ("" where the frame has no depth or no label); `pose` [N, 4, 4] float32 (NaN without
      poses); `intrinsics` [N, 3, 3] float32 (the color K at full resolution, repeated); `crop` [N] bool; and what
      `load_frame` checks the files against, repeated: `label_default` [N] int32 (`unlisted_label`), `color_size`
      and `depth_size` [N, 2] int32 (the scene's; (0, 0) without depth), `first_color_path` and `first_depth_path`
      [N] str (the files that set them).
    """
    n = self.num_frames
    empty = [""] * n
    return {
        "frame_id": np.asarray(self.frame_ids, np.int64),
        "color_path": np.asarray(self.color_paths, dtype=object).astype(str),
        "depth_path": np.asarray(self.depth_paths if self.has_depth else empty, dtype=object).astype(str),
        "label_path": np.asarray(self.label_paths if self.label_paths else empty, dtype=object).astype(str),
        "pose": np.array(self.poses, np.float32) if self.has_poses else np.full([n, 4, 4], np.nan, np.float32),
        "intrinsics": np.repeat(self.intrinsics[np.newaxis], n, axis=0),
        "crop": np.full([n], self.crop, bool),
        "label_default": np.full([n], self.unlisted_label, np.int32),
        "color_size": np.repeat(np.array([self.color_size], np.int32), n, axis=0),
        "depth_size": np.repeat(np.array([self.depth_size or (0, 0)], np.int32), n, axis=0),
        "first_color_path": np.full([n], self.color_paths[0], dtype=object).astype(str),
        "first_depth_path": np.full([n], self.depth_paths[0] if self.has_depth else "", dtype=object).astype(str),
    }

  def load_kwargs(self):
    """`load_frame`'s keyword arguments (but `size`) for the frames of this scene."""
    return dict(intrinsics=self.intrinsics, label_table=self.label_table, label_default=self.unlisted_label,
                crop=self.crop, color_size=self.color_size, depth_size=self.depth_size or (0, 0),
                first_color_path=self.color_paths[0], first_depth_path=self.depth_paths[0] if self.has_depth else "")

  def load(self, index, size):
    """Eagerly loads frame `index` (0..N-1, not a frame id) at `size`; bad files raise a `DataError` naming them.

    Returns:
      `load_frame`'s dict plus `pose` [4, 4] float32 and `frame_id` (int); `depth` and `pose` only when the scene
      has them.
    """
    label_path = self.label_paths[index] if self.label_paths else None
    depth_path = self.depth_paths[index] if self.has_depth else None
    try:
      frame = load_frame(self.color_paths[index], depth_path, label_path or None, size=size, **self.load_kwargs())
    except tf.errors.OpError as e:
      error = labels_lib.data_error_from(e)
      if error is None:
        raise
      message = str(error)
      if label_path and message.startswith(f"label image {label_path} holds label id(s)"):
        message = self._label_range_error(label_path) or message
      raise DataError(f"Scene {self.name}, frame {self.frame_ids[index]}: {message}") from None
    if not self.has_depth:
      del frame["depth"]
    if self.has_poses:
      frame["pose"] = tf.constant(self.poses[index])
    frame["frame_id"] = self.frame_ids[index]
    return frame

  def _label_range_error(self, label_path):
    """The label range message with the ids the dataset defines, or None when PIL cannot read the file."""
    try:
      with Image.open(label_path) as image:
        values = np.unique(np.asarray(image))
    except (OSError, ValueError, SyntaxError):
      return None
    table = np.asarray(self.label_table if self.label_table is not None else labels_lib.NYU40_TO_CLASS)
    bad = [int(v) for v in values
           if (v >= len(table) and self.unlisted_label == labels_lib.INVALID_LABEL) or
           (v < len(table) and table[v] == labels_lib.INVALID_LABEL)]
    return (f"label image {label_path} holds label id(s) {format_ids(bad, max_ranges=5)} outside the ids this "
            f"dataset defines (expected ids in {format_ids(labels_lib.defined_ids(table))}).")


def stand_in_intrinsics(size):
  """The K that stands in for an unknown camera at `size` (height, width): fx = fy = width (a 53 degree horizontal
  field of view), principal point at the centre."""
  height, width = size
  return np.array([[width, 0.0, (width - 1) / 2.0], [0.0, width, (height - 1) / 2.0], [0.0, 0.0, 1.0]], np.float32)


def check_utf8_path(path, what):
  """Raises a DataError naming `path` (as bytes) when it is not valid UTF-8, which TensorFlow's file ops need.

  Args:
    path: str (undecodable bytes held as surrogates, as os.listdir gives them) or bytes.
    what: what the path is, starting the message ("The scene folder").
  """
  try:
    (path if isinstance(path, bytes) else os.fspath(path).encode("utf-8")).decode("utf-8")
  except (UnicodeEncodeError, UnicodeDecodeError):
    raise DataError(f"{what} {os.fsencode(path)!r} has a name that is not valid UTF-8: TensorFlow reads only UTF-8 "
                    f"paths. Rename it (or the folder above it that is not UTF-8).") from None


# ----------------------------------------------------------------------------------------------------------------------
# Frame loading (TensorFlow ops only).

# The struct2depth crop keeps this middle fraction of the rows.
CROP_ROWS = 0.5


def crop_box(image_size, size, crop):
  """Fractions (top, left, bottom, right) of an image that the struct2depth crop keeps; the whole image without it.

  The crop keeps the middle half of the rows (struct2depth's Cityscapes preprocessing, which also drops the ego car's
  hood) and then the centred columns that give the working aspect ratio `size`, when the image is wider than that.

  Args:
    image_size: [2] (height, width) of the color image (tensor).
    size: static working (height, width).
    crop: bool or scalar bool tensor.
  """
  image_size = tf.cast(image_size, tf.float32)
  kept_width = tf.minimum(1.0, CROP_ROWS * image_size[0] * size[1] / (size[0] * image_size[1]))
  crop = tf.convert_to_tensor(crop, tf.bool)
  top = tf.where(crop, (1.0 - CROP_ROWS) / 2.0, 0.0)
  left = tf.where(crop, (1.0 - kept_width) / 2.0, 0.0)
  return tf.stack([top, left, 1.0 - top, 1.0 - left])


def _crop(image, box):
  """`image` [h, w, C] cut to the fractional `box`; returns it and the (top, left) offset in pixels."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  top, bottom = tf.cast(tf.round(box[0] * shape[0]), tf.int32), tf.cast(tf.round(box[2] * shape[0]), tf.int32)
  left, right = tf.cast(tf.round(box[1] * shape[1]), tf.int32), tf.cast(tf.round(box[3] * shape[1]), tf.int32)
  return image[top:bottom, left:right], (top, left)


def load_frame(color_path, depth_path, label_path=None, *, intrinsics, size, label_table=None,
               label_default=labels_lib.INVALID_LABEL, crop=False, color_size=None, depth_size=None,
               first_color_path=None, first_depth_path=None):
  """Decodes one frame, checking every file, and brings image, depth, labels and K to the working resolution.

  Color and depth are treated as registered (see the module docstring): each is resized to `size` on its own, and
  the color intrinsics, scaled with `geometry.resize_intrinsics`, describe both.

  Every file is checked as it is decoded (`checked_decode`): a color PNG or JPEG, a 16-bit grayscale depth PNG, an 8-
  or 16-bit grayscale label PNG whose every value the label table defines, each of the scene's size when given, and
  each decodable. A file that fails fails the op with an InvalidArgumentError naming it, which
  `labels.data_error_from` turns into a `DataError`.

  Args:
    color_path: scalar string (tensor): a JPEG or PNG color image.
    depth_path: scalar string: a 16-bit PNG of millimetres, 0 = missing; None or "" means no depth (zeros).
    label_path: scalar string or None; None or "" means no label (label filled with IGNORE_LABEL).
    intrinsics: [3, 3] color intrinsics at the color image's own resolution.
    size: static (height, width) working resolution.
    label_table: [M] int stored label value -> class, IGNORE_LABEL or INVALID_LABEL (`SceneIndex.label_table`); None
      means the labels are NYU40 ids (`labels.NYU40_TO_CLASS`). A value mapped to INVALID_LABEL fails the load,
      naming the file and the ids.
    label_default: the class of stored values at or past the end of `label_table` (`SceneIndex.unlisted_label`):
      INVALID_LABEL (they fail the load), or 0 for raw ScanNet ids that the tsv does not list.
    crop: bool or scalar bool tensor: first cut every image to `crop_box` (the struct2depth crop); K follows exactly.
    color_size, depth_size: [2] (height, width) that the color and depth images must have (the scene's, from its
      first frame), or None for unchecked; a label image must have one of them. A (0, 0) depth size means none.
    first_color_path, first_depth_path: scalar strings: the images that set those sizes, named in the messages.

  Returns:
    A dict: `image` [H, W, 3] float32 in [0, 1] (bilinear, antialiased); `depth` [H, W] float32 metres, 0 = missing
    (nearest); `label` [H, W] int32 class or IGNORE_LABEL (nearest); `has_label` scalar bool; `intrinsics` [3, 3]
    float32 at the working resolution.
  """
  height, width = int(size[0]), int(size[1])
  size = (height, width)
  no_path = tf.constant("")

  color = checked_decode.decode_color(color_path, color_size, first_color_path)
  color.set_shape([None, None, 3])
  box = crop_box(tf.shape(color)[:2], size, crop)
  color, (top, left) = _crop(color, box)
  color_size_cropped = tf.shape(color)[:2]
  image = tf.image.resize(tf.image.convert_image_dtype(color, tf.float32), size, method="bilinear", antialias=True)
  image = tf.clip_by_value(image, 0.0, 1.0)

  # The files are decoded outside tf.cond (see `checked_decode.decode_single_channel`'s `present`).
  if depth_path is None:
    depth = tf.zeros(size, tf.float32)
  else:
    has_depth = tf.strings.length(depth_path) > 0
    expected = () if depth_size is None else (depth_size,)
    reference = () if depth_size is None else (no_path if first_depth_path is None else first_depth_path,)
    values = checked_decode.decode_single_channel(depth_path, "depth image", (16,), expected, reference,
                                                  "the scene's depth images", note=" (millimetres)",
                                                  present=has_depth)

    def read_depth():
      depth_mm, _ = _crop(values[..., tf.newaxis], box)
      depth = tf.image.resize(depth_mm, size, method="nearest")[..., 0]
      return tf.cast(depth, tf.float32) / DEPTH_SCALE

    depth = tf.cond(has_depth, read_depth, lambda: tf.zeros(size, tf.float32))
  depth = tf.ensure_shape(depth, size)

  if label_table is None:
    label_table = labels_lib.NYU40_TO_CLASS
  no_label = tf.fill(size, tf.constant(labels_lib.IGNORE_LABEL, tf.int32))
  if label_path is None:
    label, has_label = no_label, tf.constant(False)
  else:
    has_label = tf.strings.length(label_path) > 0
    expected, references = (), ()
    if color_size is not None:
      expected, references = (color_size,), (no_path if first_color_path is None else first_color_path,)
      if depth_size is not None:
        expected += (depth_size,)
        references += (no_path if first_depth_path is None else first_depth_path,)
    values = checked_decode.decode_single_channel(label_path, "label image", (8, 16), expected, references,
                                                  "the scene's color (or depth) images", present=has_label)

    def read_label():
      checked = checked_decode.check_labels(label_path, values, label_table, label_default)  # every value
      checked, _ = _crop(checked[..., tf.newaxis], box)
      checked = tf.image.resize(checked, size, method="nearest")[..., 0]
      return checked_decode.map_labels(checked, label_table, label_default)

    label = tf.cond(has_label, read_label, lambda: no_label)
  label = tf.ensure_shape(label, size)

  k = geometry.crop_intrinsics(tf.convert_to_tensor(intrinsics, tf.float32), tf.cast(top, tf.float32),
                               tf.cast(left, tf.float32))
  k = geometry.resize_intrinsics(k, color_size_cropped, size)
  return {"image": image, "depth": depth, "label": label, "has_label": has_label, "intrinsics": k}


# ----------------------------------------------------------------------------------------------------------------------
# Scene and split listing.


def list_scenes(root, split=None):
  """Scene folders of a dataset root.

  Args:
    root: the dataset root. Scene folders sit directly under it or under `root/scans` (ScanNet's download layout);
      a root that is itself a scene folder (has `color/`) is a one-scene dataset.
    split: "train" or "val" for the scenes named in `scannetv2_<split>.txt` at the root; None for every scene folder
      (a subfolder holding any of color/, depth/, pose/, intrinsic/).

  Returns:
    A list of scene folder paths, in split-file order (split) or sorted by name (no split).

  Raises:
    ValueError: for an unknown split.
    DataError: naming the root, split file or scene folder that is missing.
  """
  root = os.fspath(root)
  if split is not None and split not in SPLITS:
    raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS} or None (every scene).")
  if not os.path.isdir(root):
    raise DataError(f"Dataset root {root} is not a directory.")
  check_utf8_path(root, "The dataset root")
  scans = os.path.join(root, "scans")
  scene_parent = scans if os.path.isdir(scans) else root
  if split is None:
    if os.path.isdir(os.path.join(root, "color")):
      return [root]
    scenes = sorted(entry.path for entry in os.scandir(scene_parent)
                    if entry.is_dir() and not entry.name.startswith(".") and
                    any(os.path.isdir(os.path.join(entry.path, sub)) for sub in _SCENE_SUBFOLDERS))
    for scene in scenes:
      check_utf8_path(scene, "The scene folder")
    if not scenes:
      raise DataError(f"No scene folders (with color/, depth/, pose/ or intrinsic/) under {scene_parent}.")
    return scenes
  split_file = os.path.join(root, SPLIT_FILES[split])
  try:
    with open(split_file, encoding="utf-8") as f:
      names = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
  except OSError as e:
    raise DataError(f"Cannot read the {split} split file {split_file}: {e.strerror or e}.") from e
  except UnicodeDecodeError as e:
    raise DataError(f"The {split} split file {split_file} is not UTF-8 text: {e}.") from None
  if not names:
    raise DataError(f"The split file {split_file} lists no scenes.")
  scenes = []
  for name in names:
    directory = os.path.join(scene_parent, name)
    if not os.path.isdir(directory):
      raise DataError(f"Scene {name!r} listed in {split_file} has no folder {directory}.")
    scenes.append(directory)
  return scenes


def iter_scenes(root, split=None):
  """Yields `read_scene` of every folder `list_scenes(root, split)` names, reading the root's label tsv once."""
  directories = list_scenes(root, split)
  tsv = find_label_tsv(directories[0]) if directories else None
  raw_to_nyu40 = labels_lib.read_label_tsv(tsv) if tsv else None
  for directory in directories:
    yield read_scene(directory, label_table=raw_to_nyu40)


def read_scenes(root, split=None):
  """The scenes of a dataset root (or one split of it) that a pipeline trains or evaluates on."""
  return list(iter_scenes(root, split))


def find_label_tsv(scene_directory):
  """Path of `scannetv2-labels.combined.tsv` at the dataset root of a scene folder (or above `scans/`), or None."""
  parent = os.path.dirname(os.path.abspath(scene_directory))
  for folder in (parent, os.path.dirname(parent)):
    path = os.path.join(folder, labels_lib.LABEL_TSV_NAME)
    if os.path.isfile(path):
      return path
  return None


# ----------------------------------------------------------------------------------------------------------------------
# Scene index.


def read_scene(directory, label_table=None, label_tsv=None):
  """Indexes one scene folder (file names, poses, intrinsics, image headers; no pixels are decoded).

  Args:
    directory: the scene folder.
    label_table: optional raw ScanNet id -> NYU40 table from `labels.read_label_tsv`, for `label-filt/` labels
      (pass it when reading many scenes, so the tsv is read once).
    label_tsv: optional path of `scannetv2-labels.combined.tsv`; by default it is looked for at the dataset root
      (`find_label_tsv`). Only needed for `label-filt/` labels.

  Returns:
    A `SceneIndex`. Frames whose pose holds -inf or NaN are left out, with a warning naming them.

  Raises:
    DataError: naming the folder or file that is missing or malformed.
  """
  directory = os.fspath(directory)
  name = os.path.basename(os.path.normpath(directory))
  if not os.path.isdir(directory):
    raise DataError(f"Scene folder {directory} does not exist.")
  check_utf8_path(directory, "The scene folder")

  color_files = _list_frames(os.path.join(directory, "color"), _COLOR_NAME, "color images (<i>.jpg or <i>.png)")
  if not color_files:
    raise DataError(f"Scene {name}: no color images (<i>.jpg or <i>.png) in {os.path.join(directory, 'color')}.")
  depth_files = _list_frames(os.path.join(directory, "depth"), _PNG_NAME, "depth images (<i>.png)")
  pose_files = _list_frames(os.path.join(directory, "pose"), _POSE_NAME, "poses (<i>.txt)")
  _check_same_frames(name, "color", color_files, "depth", depth_files)
  _check_same_frames(name, "color", color_files, "pose", pose_files)

  label_source, label_files = None, None
  for folder in (LABEL_NYU40, LABEL_RAW):
    if os.path.isdir(os.path.join(directory, folder)):
      label_source = folder
      label_files = _list_frames(os.path.join(directory, folder), _PNG_NAME, "label images (<i>.png)")
      # A label folder may hold more frames than a subsampled color export, never fewer.
      _check_same_frames(name, "color", color_files, folder, label_files, allow_extra=True)
      break

  frame_ids = sorted(color_files)
  poses, finite = [], []
  for i in frame_ids:
    pose = _read_matrix(pose_files[i], "pose", allow_nonfinite=True)
    poses.append(pose)
    finite.append(np.all(np.isfinite(pose)))
    if finite[-1]:
      _check_rigid(pose, pose_files[i])
  skipped = tuple(i for i, ok in zip(frame_ids, finite) if not ok)
  if skipped:
    logging.warning("Scene %s: skipping %d of %d frames whose pose is not finite (-inf/NaN): frame ids %s.",
                    name, len(skipped), len(frame_ids), format_ids(skipped))
  kept = [k for k, ok in enumerate(finite) if ok]
  if not kept:
    files = [pose_files[i] for i in skipped]
    raise DataError(f"Scene {name}: every pose in {os.path.join(directory, 'pose')} is non-finite; no usable frame "
                    f"({', '.join(files[:3])}{' ...' if len(files) > 3 else ''}).")
  frame_ids = [frame_ids[k] for k in kept]
  poses = np.stack([poses[k] for k in kept]).astype(np.float32)

  intrinsic_dir = os.path.join(directory, "intrinsic")
  if not os.path.isdir(intrinsic_dir):
    raise DataError(f"Scene {name}: missing intrinsics folder {intrinsic_dir}.")
  intrinsics = _read_intrinsics(os.path.join(intrinsic_dir, "intrinsic_color.txt"))
  color_size = _image_size(color_files[frame_ids[0]], "color")
  depth_size = _image_size(depth_files[frame_ids[0]], "depth", sixteen_bit=True)
  depth_k_path = os.path.join(intrinsic_dir, "intrinsic_depth.txt")
  if os.path.exists(depth_k_path):
    depth_intrinsics = _read_intrinsics(depth_k_path)
  else:
    depth_intrinsics = geometry.resize_intrinsics(intrinsics, color_size, depth_size).numpy()

  table = None
  if label_source == LABEL_NYU40:
    table = labels_lib.NYU40_TO_CLASS
  elif label_source == LABEL_RAW:
    if label_table is None:
      label_tsv = label_tsv or find_label_tsv(directory)
      if label_tsv is None:
        root = os.path.dirname(os.path.abspath(directory))
        raise DataError(f"Scene {name} has {LABEL_RAW}/ labels (raw ScanNet ids) but no label mapping file: expected "
                        f"{os.path.join(root, labels_lib.LABEL_TSV_NAME)} (or pass label_tsv).")
      label_table = labels_lib.read_label_tsv(label_tsv)
    table = _frozen(labels_lib.raw_to_class_table(label_table))

  return SceneIndex(
      name=name,
      directory=directory,
      frame_ids=tuple(frame_ids),
      color_paths=tuple(color_files[i] for i in frame_ids),
      depth_paths=tuple(depth_files[i] for i in frame_ids),
      label_paths=tuple(label_files[i] for i in frame_ids) if label_files is not None else None,
      poses=_frozen(poses),
      intrinsics=_frozen(intrinsics),
      depth_intrinsics=_frozen(np.asarray(depth_intrinsics, np.float32)),
      color_size=color_size,
      depth_size=depth_size,
      label_source=label_source,
      label_table=table,
      skipped_frame_ids=skipped,
  )


def _list_frames(folder, pattern, what):
  """{frame id: path} of the files in `folder` whose names match `pattern`; other files are ignored."""
  if not os.path.isdir(folder):
    raise DataError(f"Missing folder {folder} (expected {what}).")
  frames = {}
  for entry in os.scandir(folder):
    match = pattern.match(entry.name)
    if not match:
      continue
    frame_id = int(match.group(1))
    if frame_id in frames:
      raise DataError(f"Two files for frame {frame_id} in {folder}: {os.path.basename(frames[frame_id])} and "
                      f"{entry.name}.")
    frames[frame_id] = entry.path
  return frames


def _check_same_frames(scene, reference_name, reference, other_name, other, allow_extra=False):
  missing = sorted(set(reference) - set(other))
  extra = [] if allow_extra else sorted(set(other) - set(reference))
  if not missing and not extra:
    return
  problems = []
  if missing:
    problems.append(f"{other_name}/ lacks frame ids {format_ids(missing)}")
  if extra:
    problems.append(f"{other_name}/ has frame ids without a {reference_name} image: {format_ids(extra)}")
  raise DataError(f"Scene {scene}: {len(reference)} {reference_name} frames but {len(other)} {other_name} frames; "
                  f"{'; '.join(problems)}.")


def format_ids(ids, max_ranges=12):
  """'0-4, 7, 9-10' for sorted ids; long lists are cut after `max_ranges` ranges."""
  ranges = []
  for i in ids:
    if ranges and i == ranges[-1][1] + 1:
      ranges[-1][1] = i
    else:
      ranges.append([i, i])
  text = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:max_ranges]]
  if len(ranges) > max_ranges:
    text.append(f"... ({len(ranges) - max_ranges} more ranges)")
  return ", ".join(text)


def _read_matrix(path, what, allow_nonfinite=False):
  """[4, 4] float64 from a text file of 16 numbers (rows on lines)."""
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise DataError(f"Cannot read {what} file {path}: {e.strerror or e}.") from e
  except UnicodeDecodeError:
    raise DataError(f"Malformed {what} file {path}: not UTF-8 text (expected 16 numbers, a 4x4 matrix).") from None
  try:
    values = np.array([float(v) for v in text.split()], np.float64)
  except ValueError:
    raise DataError(f"Malformed {what} file {path}: expected 16 numbers (a 4x4 matrix). "
                    f"Received: {text.strip()[:80]!r}.") from None
  if values.size != 16:
    raise DataError(f"Malformed {what} file {path}: expected 16 numbers (a 4x4 matrix). Received {values.size}.")
  if not allow_nonfinite and not np.all(np.isfinite(values)):
    raise DataError(f"Malformed {what} file {path}: holds non-finite values.")
  return values.reshape(4, 4)


# Largest deviation of a pose's rotation from orthonormal (|R^T R - I|), and of its last row from (0, 0, 0, 1):
# ScanNet's and the synthetic poses are rigid to about 1e-6.
POSE_TOLERANCE = 1e-3


def _check_rigid(pose, path):
  """Raises a DataError naming `path` unless the finite 4x4 `pose` is a rigid transform (rotation and translation)."""
  rotation = pose[:3, :3]
  error = max(np.abs(rotation.T @ rotation - np.eye(3)).max(), np.abs(pose[3] - [0.0, 0.0, 0.0, 1.0]).max())
  if not error <= POSE_TOLERANCE:
    raise DataError(f"Malformed pose file {path}: expected a rigid camera-to-world transform (an orthonormal rotation "
                    f"and a translation, last row 0 0 0 1); it is off by {error:.3g}. Received: {pose.tolist()}.")


def _read_intrinsics(path):
  """[3, 3] float32 K from a 4x4 intrinsics text file."""
  if not os.path.isfile(path):
    raise DataError(f"Missing intrinsics file {path}.")
  k = _read_matrix(path, "intrinsics")[:3, :3]
  if not (k[0, 0] > 0 and k[1, 1] > 0 and np.allclose(k[2], [0, 0, 1]) and k[0, 1] == 0 and k[1, 0] == 0):
    raise DataError(f"Malformed intrinsics file {path}: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 "
                    f"in the top-left 3x3. Received: {k.tolist()}.")
  return k.astype(np.float32)


def _image_size(path, what, sixteen_bit=False):
  """(height, width) from an image header; checks that depth is 16-bit."""
  try:
    with Image.open(path) as image:
      width, height = image.size
      mode = image.mode
  except (OSError, ValueError, SyntaxError) as e:
    raise DataError(f"Cannot read {what} image {path}: {e}.") from None
  if sixteen_bit and mode not in _SIXTEEN_BIT_MODES:
    raise DataError(f"{what.capitalize()} image {path} is not a 16-bit single-channel PNG (millimetres). "
                    f"Received image mode {mode!r}.")
  return (height, width)
