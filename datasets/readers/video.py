"""Your own video as scenes: every video file and every folder of frames under a root is one scene.

The layout of the root (`--dataset=video --data_root=DIR`):

  <name>.mp4 / .mov / .mkv / .avi / .webm   a video (decoded with PyAV, whose wheels bundle FFmpeg): scene <name>
  <name>/                                   a folder of frames (.png / .jpg / .jpeg, in natural order: 2 before 10)
  <name>.intrinsics.txt                     optional: "fx fy cx cy" of that video at its own size
  labels/classes.json                       the class names, {"names": [...], "palette": [[r, g, b], ...]} (palette
                                            optional); needed when labels/ exists
  labels/<name>/<frame index>.png           optional, sparse: 8-bit class ids (0 .. classes - 1), 255 = ignore, as a
                                            grey or palette PNG (a palette PNG's indices are the ids). The
                                            index counts the video's frames from 0 as decoded, before subsampling (a
                                            folder's frames in natural order)
  val.txt                                   optional: the names of the validation scenes, one per line (or `val=`)

Import, once per video: the frames are decoded, subsampled to `fps` frames per second (every round(native fps / fps)-th
frame; 0 keeps every frame; a folder of frames has no frame rate and keeps every frame), resized to the working size
and written as PNGs into a cache folder under `cache_root` (never under the root), keyed by the file's path, size and
modification time and the settings; labels are resized (nearest) into the same cache, keyed by their files. The scenes
are then read by the ScanNet reader's frame loader like every other dataset (`scannet.SceneIndex`).

Intrinsics: a video's `<name>.intrinsics.txt`, else `intrinsics` (one fx, fy, cx, cy for every video, at its own
size), else unknown: the scene carries a stand-in K (`scannet.stand_in_intrinsics`, `intrinsics_known` False) and the
depth_motion stage learns one (`--dm_intrinsics=per_video`).

Everything the user owns is only read. A bad input is a `DataError` naming the file and what was expected: a file that
does not decode as a video, an empty file, a video with fewer than 2 frames after subsampling, a label folder without a
scene, a label past the video's end or on a frame that subsampling drops, a label whose size has another aspect than the
frame's, a label with ids that classes.json does not define.
"""

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile

from absl import logging
import numpy as np
from PIL import Image

from datasets import labels as labels_lib
from datasets.labels import DataError
from datasets.readers import png
from datasets.readers import scannet
from depth_motion import geometry

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg")
LABELS_DIR = "labels"
CLASSES_FILE = "classes.json"
VAL_FILE = "val.txt"
INTRINSICS_SUFFIX = ".intrinsics.txt"
LABEL_SOURCE = "labels/ (sparse)"
# The fewest frames a scene may have after subsampling: one pair.
MIN_FRAMES = 2
# Bump when the cache's content changes meaning: older caches are then re-imported.
_CACHE_VERSION = 1
_SCENE_FILE = "scene.json"
_LABEL_NAME = re.compile(r"^(\d+)\.png$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class VideoSettings:
  """How videos are imported.

  Attributes:
    size: (height, width) working size the frames are cached at.
    fps: frames per second kept (every round(native fps / fps)-th frame); 0 keeps every frame.
    intrinsics: (fx, fy, cx, cy) at a video's own size, for every video without a <name>.intrinsics.txt; () for none.
    val: names of the validation scenes; () reads val.txt at the root, if any.
  """
  size: tuple = (128, 160)
  fps: float = 0.0
  intrinsics: tuple = ()
  val: tuple = ()

  def __post_init__(self):
    if self.fps < 0:
      raise ValueError(f"video_fps must be >= 0 (0 keeps every frame). Received: {self.fps}")
    if self.intrinsics and (len(self.intrinsics) != 4 or min(self.intrinsics[:2]) <= 0):
      raise ValueError(f"video_intrinsics must be fx,fy,cx,cy with fx, fy > 0. Received: {self.intrinsics}")


@dataclasses.dataclass(frozen=True)
class Source:
  """One scene's input: a video file or a folder of frames."""
  name: str
  path: str
  is_video: bool

  @property
  def frame_paths(self):
    """The frames of a folder, in natural order."""
    names = [n for n in os.listdir(self.path) if n.lower().endswith(FRAME_EXTENSIONS)]
    return [os.path.join(self.path, n) for n in sorted(names, key=natural_key)]


def natural_key(name):
  """Sort key that orders the digit runs of `name` by value: frame2.png before frame10.png."""
  return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def find_sources(root):
  """The scenes' inputs under `root`, sorted by name.

  Raises:
    DataError: naming the root when it is not a folder or holds no video and no folder of frames, or two inputs that
      would be the same scene (a.mp4 and a/).
  """
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise DataError(f"--data_root {root} is not a directory: expected a folder of video files "
                    f"({', '.join(VIDEO_EXTENSIONS)}) and/or folders of frames.")
  sources = {}
  for entry in sorted(os.listdir(root)):
    path = os.path.join(root, entry)
    stem, extension = os.path.splitext(entry)
    if os.path.isfile(path) and extension.lower() in VIDEO_EXTENSIONS:
      source = Source(stem, path, True)
    elif os.path.isdir(path) and entry != LABELS_DIR and not entry.startswith("."):
      if not any(n.lower().endswith(FRAME_EXTENSIONS) for n in os.listdir(path)):
        continue
      source = Source(entry, path, False)
    else:
      continue
    if source.name in sources:
      raise DataError(f"{sources[source.name].path} and {path} would both be scene {source.name!r}: rename one.")
    sources[source.name] = source
  if not sources:
    raise DataError(f"No video ({', '.join(VIDEO_EXTENSIONS)}) and no folder of frames ({', '.join(FRAME_EXTENSIONS)}) "
                    f"in {root}.")
  return [sources[name] for name in sorted(sources)]


# ----------------------------------------------------------------------------------------------------------------------
# Classes, splits, intrinsics: small text files at the root.


def read_classes(root):
  """(names, palette or None) of `root/labels/classes.json`; None when the root has no labels/ folder.

  Raises:
    DataError: naming classes.json when labels/ exists without it, or it is malformed.
  """
  labels_dir = os.path.join(root, LABELS_DIR)
  if not os.path.isdir(labels_dir):
    return None
  path = os.path.join(labels_dir, CLASSES_FILE)
  expected = ('{"names": ["road", "car", ...], "palette": [[r, g, b], ...]} (palette optional; at most 255 classes, '
              'id 255 is ignore)')
  try:
    with open(path, encoding="utf-8") as f:
      description = json.load(f)
  except FileNotFoundError:
    raise DataError(f"{labels_dir} exists but {path} does not: expected {expected}.") from None
  except (OSError, ValueError) as e:
    raise DataError(f"Cannot read {path}: {e}. Expected {expected}.") from None
  names = description.get("names") if isinstance(description, dict) else None
  if (not isinstance(names, list) or not names or len(names) > labels_lib.IGNORE_LABEL or
      not all(isinstance(n, str) and n for n in names)):
    raise DataError(f"{path}: 'names' must be a list of 1 to 255 class names. Expected {expected}.")
  palette = description.get("palette")
  if palette is not None:
    try:
      array = np.asarray(palette)
    except ValueError:  # ragged
      array = np.zeros([0])
    if (array.shape != (len(names), 3) or not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or
        array.max() > 255):
      raise DataError(f"{path}: 'palette' must hold one [r, g, b] (integers 0..255) per class name ({len(names)}). "
                      f"Received shape {list(array.shape)}.")
    palette = tuple(tuple(int(c) for c in color) for color in palette)
  return tuple(names), palette


def label_table(num_classes):
  """[256] int32: stored id -> class for ids below `num_classes`, 255 -> IGNORE_LABEL, every other id invalid."""
  table = np.full([256], labels_lib.INVALID_LABEL, np.int32)
  table[:num_classes] = np.arange(num_classes)
  table[labels_lib.IGNORE_LABEL] = labels_lib.IGNORE_LABEL
  table.setflags(write=False)
  return table


def validation_names(root, settings, names):
  """The validation scenes' names: `settings.val`, else the lines of root/val.txt, else () (no evaluation).

  Raises:
    DataError: naming a listed scene that does not exist (and where it was listed).
  """
  if settings.val:
    listed, where = tuple(settings.val), "--video_val"
  else:
    path = os.path.join(root, VAL_FILE)
    if not os.path.exists(path):
      return ()
    with open(path, encoding="utf-8") as f:
      listed, where = tuple(line.strip() for line in f if line.strip()), path
  unknown = sorted(set(listed) - set(names))
  if unknown:
    raise DataError(f"{where} names scene(s) {unknown} that {root} does not hold; its scenes: {sorted(names)}.")
  if set(listed) == set(names):
    raise DataError(f"{where} names every scene of {root} as validation: keep at least one for training.")
  return listed


def read_intrinsics_file(path):
  """(fx, fy, cx, cy) from a text file holding those four numbers."""
  try:
    with open(path, encoding="utf-8") as f:
      values = tuple(float(v) for v in f.read().replace(",", " ").split())
  except (OSError, ValueError) as e:
    raise DataError(f"Cannot read {path}: {e}. Expected four numbers: fx fy cx cy (pixels, at the video's size).")
  if len(values) != 4 or min(values[:2]) <= 0:
    raise DataError(f"{path} holds {list(values)}: expected four numbers fx fy cx cy with fx, fy > 0 (pixels, at the "
                    "video's own size).")
  return values


def _matrix(fx, fy, cx, cy):
  return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], np.float32)


def resize_intrinsics(k, original_size, new_size):
  """`geometry.resize_intrinsics` for one NumPy [3, 3] K."""
  return geometry.resize_intrinsics(k, original_size, new_size).numpy().astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------------
# Import into the cache.


def _file_key(path):
  stat = os.stat(path)
  return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


def _source_key(source, settings):
  files = [source.path] if source.is_video else source.frame_paths
  content = {"version": _CACHE_VERSION, "files": [_file_key(p) for p in files], "size": list(settings.size),
             "fps": settings.fps if source.is_video else 0}
  return hashlib.sha1(json.dumps(content).encode("utf-8")).hexdigest()[:16]


def _decode_video(source, fps):
  """Yields (frame index, step, native rate, [H, W, 3] uint8 or None for a frame the subsampling drops) of every frame.

  Raises:
    DataError: naming the file when it is empty, not a video FFmpeg decodes, or has no video stream.
  """
  import av  # pylint: disable=import-outside-toplevel  (only video roots need FFmpeg)
  path = source.path
  if os.path.getsize(path) == 0:
    raise DataError(f"{path} is empty (0 bytes): expected a video file.")
  try:
    container = av.open(path)
  except (av.error.FFmpegError, OSError, ValueError) as e:
    raise DataError(f"{path} is not a video that FFmpeg can decode: {e}.") from None
  with container:
    if not container.streams.video:
      raise DataError(f"{path} has no video stream (streams: {[s.type for s in container.streams]}).")
    stream = container.streams.video[0]
    rate = float(stream.average_rate) if stream.average_rate else 0.0
    step = max(1, int(round(rate / fps))) if fps and rate else 1
    if fps and not rate:
      logging.warning("%s declares no frame rate: keeping every frame (--video_fps ignored).", path)
    decoded = 0
    try:
      for frame in container.decode(stream):
        yield decoded, step, rate, frame.to_ndarray(format="rgb24") if decoded % step == 0 else None
        decoded += 1
    except (av.error.FFmpegError, ValueError) as e:
      raise DataError(f"{path}: decoding failed after {decoded} frames: {e}.") from None


def _read_frames(source):
  """Yields (frame index, step 1, rate 0, [H, W, 3] uint8) of a folder of frames."""
  for index, path in enumerate(source.frame_paths):
    try:
      with Image.open(path) as image:
        yield index, 1, 0.0, np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as e:
      raise DataError(f"Cannot read the frame {path}: {e}.") from None


def _import_frames(source, settings, directory):
  """Writes the kept frames of `source`, resized, to `directory`/<index>.png; returns the scene record."""
  height, width = settings.size
  frames = _decode_video(source, settings.fps) if source.is_video else _read_frames(source)
  indices, native_size, step, rate, decoded = [], None, 1, 0.0, 0
  for index, step, rate, pixels in frames:
    decoded = index + 1
    if pixels is None:
      continue
    if native_size is None:
      native_size = tuple(pixels.shape[:2])
    elif tuple(pixels.shape[:2]) != native_size:
      where = source.path if source.is_video else source.frame_paths[index]
      raise DataError(f"{where}: frame {index} is {pixels.shape[0]}x{pixels.shape[1]}, the first "
                      f"{native_size[0]}x{native_size[1]}: every frame of a scene must have one size.")
    Image.fromarray(pixels).resize((width, height), Image.BILINEAR).save(os.path.join(directory, f"{index:06d}.png"))
    indices.append(index)
    if len(indices) % 200 == 0:
      logging.info("Importing %s: %d frames so far.", source.path, len(indices))
  if len(indices) < MIN_FRAMES:
    kept = f" with --video_fps={settings.fps:g} (1 frame in {step} kept)" if step > 1 else ""
    raise DataError(f"{source.path} has {len(indices)} frame(s){kept}: a scene needs at least {MIN_FRAMES} (a pair "
                    "of frames) to train on.")
  return {"source": os.path.abspath(source.path), "native_size": list(native_size), "native_fps": rate,
          "step": step, "decoded_frames": decoded, "frame_indices": indices, "size": list(settings.size)}


def import_scene(source, settings, cache_root):
  """The cache folder of `source` at `settings`, importing it first unless a complete import exists.

  The import is written to a temporary folder and renamed into place: an interrupted import leaves nothing that a
  later call would take as complete.

  Returns:
    (folder, record): the folder holding <index>.png and scene.json, and scene.json's content.
  """
  folder = os.path.join(cache_root, f"{source.name}-{_source_key(source, settings)}")
  record_path = os.path.join(folder, _SCENE_FILE)
  if os.path.exists(record_path):
    with open(record_path, encoding="utf-8") as f:
      return folder, json.load(f)
  os.makedirs(cache_root, exist_ok=True)
  logging.info("Importing %s into %s (once; later runs read the cache).", source.path, folder)
  temporary = tempfile.mkdtemp(prefix=f".{source.name}-", dir=cache_root)
  try:
    record = _import_frames(source, settings, temporary)
    with open(os.path.join(temporary, _SCENE_FILE), "w", encoding="utf-8") as f:
      json.dump(record, f, indent=2)
    try:
      os.rename(temporary, folder)
    except OSError:  # another process finished the same import first
      if not os.path.exists(record_path):
        raise
  finally:
    shutil.rmtree(temporary, ignore_errors=True)
  logging.info("Imported %s: %d frames of %d at %dx%d.", source.path, len(record["frame_indices"]),
               record["decoded_frames"], *settings.size)
  return folder, record


def _check_label(path, source, record, num_classes, classes_path):
  """The frame index of label file `path`, after checking it against the scene's frames and the classes."""
  match = _LABEL_NAME.match(os.path.basename(path))
  if not match:
    raise DataError(f"Label {path}: expected a name <frame index>.png (e.g. 000120.png or 120.png).")
  index = int(match.group(1))
  if index >= record["decoded_frames"]:
    raise DataError(f"Label {path} is for frame {index}, but {source.path} has {record['decoded_frames']} frames "
                    f"(0 .. {record['decoded_frames'] - 1}).")
  if index not in set(record["frame_indices"]):
    step = record["step"]
    raise DataError(f"Label {path} is for frame {index}, which the subsampling drops: 1 frame in {step} of "
                    f"{source.path} is kept (frames {step * (index // step)} and {step * (index // step + 1)} are "
                    "kept). Label a kept frame, or change --video_fps.")
  header = png.check_header(path, "label image (8-bit class ids)", 8, (png.GRAY, png.PALETTE))
  height, width = header.size
  native_height, native_width = record["native_size"]
  if abs(height * native_width - width * native_height) > max(native_width, native_height):
    raise DataError(f"Label {path} is {height}x{width}, the frames of {source.path} {native_height}x{native_width}: "
                    "expected the frame's size or one of the same aspect ratio.")
  with Image.open(path) as image:
    values = np.unique(np.asarray(image))
  bad = [int(v) for v in values if v >= num_classes and v != labels_lib.IGNORE_LABEL]
  if bad:
    raise DataError(f"Label {path} holds class id(s) {bad}, which {classes_path} does not define (it names "
                    f"{num_classes} classes: ids 0..{num_classes - 1}, and 255 = ignore).")
  return index


def import_labels(source, record, folder, root, num_classes):
  """{frame index: cached label path} of `source`'s labels (resized, nearest, into the cache); {} without labels."""
  label_dir = os.path.join(root, LABELS_DIR, source.name)
  if not os.path.isdir(label_dir):
    return {}
  classes_path = os.path.join(root, LABELS_DIR, CLASSES_FILE)
  paths = sorted(os.path.join(label_dir, n) for n in os.listdir(label_dir) if not n.startswith("."))
  indices = {}
  for path in paths:
    index = _check_label(path, source, record, num_classes, classes_path)
    if index in indices:
      raise DataError(f"Labels {indices[index]} and {path} are both for frame {index} of {source.path}: keep one.")
    indices[index] = path
  key = hashlib.sha1(json.dumps([_file_key(p) for p in paths] + [_CACHE_VERSION]).encode("utf-8")).hexdigest()[:16]
  target = os.path.join(folder, f"labels-{key}")
  if not os.path.isdir(target):
    temporary = tempfile.mkdtemp(prefix=".labels-", dir=folder)
    try:
      height, width = record["size"]
      for index, path in indices.items():
        with Image.open(path) as image:  # a palette PNG's indices are its class ids: saved as grey
          Image.fromarray(np.asarray(image, np.uint8)).resize((width, height), Image.NEAREST).save(
              os.path.join(temporary, f"{index:06d}.png"))
      try:
        os.rename(temporary, target)
      except OSError:
        if not os.path.isdir(target):
          raise
    finally:
      shutil.rmtree(temporary, ignore_errors=True)
  return {index: os.path.join(target, f"{index:06d}.png") for index in indices}


# ----------------------------------------------------------------------------------------------------------------------
# Scenes.


def scene_intrinsics(source, settings, native_size):
  """(K at the native size, known): from <name>.intrinsics.txt, else `settings.intrinsics`, else the stand-in."""
  path = os.path.splitext(source.path)[0] + INTRINSICS_SUFFIX if source.is_video else source.path + INTRINSICS_SUFFIX
  if os.path.exists(path):
    return _matrix(*read_intrinsics_file(path)), True
  if settings.intrinsics:
    return _matrix(*settings.intrinsics), True
  return scannet.stand_in_intrinsics(native_size), False


def read_scenes(root, split, settings, cache_root):
  """The `scannet.SceneIndex` list of one split ("train", "val") or every scene (None) of the videos under `root`.

  Without validation scenes (neither `settings.val` nor val.txt), "val" is empty and "train" is every scene.

  Raises:
    DataError: naming the file or folder at fault (see the module docstring).
  """
  root = os.fspath(root)
  sources = find_sources(root)
  names = [s.name for s in sources]
  classes = read_classes(root)
  if classes is not None:
    known = set(names) | {CLASSES_FILE}
    orphans = sorted(n for n in os.listdir(os.path.join(root, LABELS_DIR)) if n not in known and not n.startswith("."))
    if orphans:
      raise DataError(f"{os.path.join(root, LABELS_DIR)} holds {orphans}, which match no video or folder of frames "
                      f"in {root} (scenes: {names}); expected labels/<scene name>/<frame index>.png.")
  val = validation_names(root, settings, names)
  if split == "val":
    sources = [s for s in sources if s.name in val]
  elif split == "train":
    sources = [s for s in sources if s.name not in val]
  elif split is not None:
    raise ValueError(f"Unknown split {split!r}; expected 'train', 'val' or None (every scene).")
  scenes = []
  for source in sources:
    folder, record = import_scene(source, settings, cache_root)
    labels = import_labels(source, record, folder, root, len(classes[0])) if classes is not None else {}
    native_size = tuple(record["native_size"])
    k, known = scene_intrinsics(source, settings, native_size)
    k = resize_intrinsics(k, native_size, settings.size)
    k.setflags(write=False)
    indices = tuple(record["frame_indices"])
    scenes.append(scannet.SceneIndex(
        name=source.name,
        directory=folder,
        frame_ids=indices,
        color_paths=tuple(os.path.join(folder, f"{i:06d}.png") for i in indices),
        depth_paths=None,
        label_paths=tuple(labels.get(i, "") for i in indices) if labels else None,
        poses=None,
        intrinsics=k,
        depth_intrinsics=None,
        color_size=tuple(settings.size),
        depth_size=None,
        label_source=LABEL_SOURCE if labels else None,
        label_table=label_table(len(classes[0])) if labels else None,
        intrinsics_known=known,
        native_size=native_size,
    ))
  return scenes
