"""Raw KITTI sequences as scenes: one scene per synchronized drive, left colour camera, no labels, depth or poses.

The layout of the raw data as cvlibs distributes it (<date>_drive_<NNNN>_sync.zip and <date>_calib.zip, unpacked
into one root; see shared/reference/datasets.md):

  <date>/calib_cam_to_cam.txt                                  P_rect_02 (3x4) gives the left colour camera's K
  <date>/<date>_drive_<NNNN>_sync/image_02/data/<10 digits>.png  8-bit RGB, rectified, about 1242x375
  <date>/<date>_drive_<NNNN>_sync/image_03/, image_00/, velodyne_points/, oxts/ ...   not read

with <date> like 2011_09_26. Each drive is one `scannet.SceneIndex` named after its folder
("2011_09_26_drive_0001_sync"): frames in file order (the ids are the file numbers), no depth (`depth_paths` None),
no poses, no labels (`label_paths` None, `has_labels` False). K is the left 3x3 of the date's P_rect_02, at the
images' own size; `load(index, size)` scales it with the resize, as every reader does. The raw drives have no
semantic labels: a stage that trains a segmenter on them uses Cityscapes' 19 classes as its label space
(`sources.num_classes`), as EFC does on KITTI, and learns from unlabeled pairs only.

Splits: "train" is every drive, unless the root holds `test_scenes.txt`: one drive per line (e.g. the drives of the
Eigen test split, or those that hold KITTI flow 2015's frames), as "2011_09_26_drive_0002_sync",
"2011_09_26_drive_0002" or "2011_09_26/2011_09_26_drive_0002_sync"; blank lines and "#" comments are skipped. Those
drives are then the "val" split (also called "test": the same drives) and are left out of "train". Every listed drive
must exist under the root, so that a typo cannot leak a test drive into training. `split=None` is every drive.

Only the first image of each drive is checked at index time (8-bit RGB PNG, like the other readers); a drive's
images share one size.
"""

import os
import re

import numpy as np

from datasets.labels import DataError
from datasets.readers import kitti_flow
from datasets.readers import png
from datasets.readers import scannet

SPLITS = ("train", "val", "test")
TEST_SCENES_FILE = "test_scenes.txt"
CALIBRATION_FILE = "calib_cam_to_cam.txt"
IMAGE_FOLDER = os.path.join("image_02", "data")
# The class set a segmenter trained on raw KITTI predicts (`labels.class_names`): raw KITTI has no labels.
CLASS_SET = "cityscapes"

_DATE = re.compile(r"^\d{4}_\d{2}_\d{2}$")
_DRIVE = re.compile(r"^(\d{4}_\d{2}_\d{2})_drive_(\d{4})_sync$")
_LISTED_DRIVE = re.compile(r"^(?:(\d{4}_\d{2}_\d{2})/)?(\d{4}_\d{2}_\d{2})_drive_(\d{4})(?:_sync)?/?$")
_FRAME = re.compile(r"^(\d{10})\.png$")


def list_drives(root):
  """[(date, drive name, drive folder)] of every `<date>/<date>_drive_<NNNN>_sync/` under `root`, sorted by name.

  Raises:
    DataError: naming the root when it is not a directory or holds no drive.
  """
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise DataError(f"Dataset root {root} is not a directory.")
  drives = []
  for date_entry in sorted(os.scandir(root), key=lambda e: e.name):
    if not (date_entry.is_dir() and _DATE.match(date_entry.name)):
      continue
    for entry in sorted(os.scandir(date_entry.path), key=lambda e: e.name):
      match = _DRIVE.match(entry.name)
      if entry.is_dir() and match and match.group(1) == date_entry.name:
        drives.append((date_entry.name, entry.name, entry.path))
  if not drives:
    raise DataError(f"No raw KITTI drive under {root}: expected <date>/<date>_drive_<NNNN>_sync/ folders (e.g. "
                    f"2011_09_26/2011_09_26_drive_0001_sync/image_02/data/), as raw KITTI's *_sync.zip files unpack.")
  return drives


def read_test_scenes(root):
  """The drive names ("<date>_drive_<NNNN>_sync") listed in `root/test_scenes.txt`, or None without that file.

  Raises:
    DataError: naming the file and line when a line is not a drive name.
  """
  path = os.path.join(root, TEST_SCENES_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"Cannot read the test scene list {path}: {getattr(e, 'strerror', None) or e}.") from None
  names = []
  for line_number, line in enumerate(lines, start=1):
    text = line.split("#", 1)[0].strip()
    if not text:
      continue
    match = _LISTED_DRIVE.match(text)
    if not match or (match.group(1) and match.group(1) != match.group(2)):
      raise DataError(f"{path}, line {line_number}: expected a raw KITTI drive name such as "
                      f"2011_09_26_drive_0002_sync (or 2011_09_26_drive_0002). Received: {line!r}.")
    names.append(f"{match.group(2)}_drive_{match.group(3)}_sync")
  if not names:
    raise DataError(f"The test scene list {path} names no drive; delete it to train on every drive.")
  return names


def read_calibration(date_dir):
  """[3, 3] float32 K of the left colour camera: the left 3x3 of P_rect_02 in `date_dir/calib_cam_to_cam.txt`.

  Raises:
    DataError: naming the file when it is missing, has no P_rect_02 line, or a malformed one.
  """
  path = os.path.join(date_dir, CALIBRATION_FILE)
  if not os.path.isfile(path):
    raise DataError(f"Missing calibration file {path}: expected raw KITTI's {CALIBRATION_FILE} of the date "
                    f"{os.path.basename(date_dir)} (from {os.path.basename(date_dir)}_calib.zip), whose P_rect_02 "
                    f"gives the intrinsics of image_02.")
  k = kitti_flow.read_calibration(path)
  if not (k[1, 1] > 0 and np.isfinite(k).all()):
    raise DataError(f"The calibration file {path}: P_rect_02 must have fx, fy > 0 and finite values. "
                    f"Received K = {k.tolist()}.")
  return k


def read_drive(date_dir, drive_dir, intrinsics=None):
  """The `scannet.SceneIndex` of one drive folder (file names and the first image's header; no pixels decoded).

  Args:
    date_dir: the date folder holding calib_cam_to_cam.txt.
    drive_dir: `<date_dir>/<date>_drive_<NNNN>_sync`.
    intrinsics: the date's K (`read_calibration`), to read it once per date; read from `date_dir` when None.

  Raises:
    DataError: naming the folder or file that is missing or malformed.
  """
  name = os.path.basename(os.path.normpath(drive_dir))
  image_dir = os.path.join(drive_dir, IMAGE_FOLDER)
  if not os.path.isdir(image_dir):
    raise DataError(f"Drive {name} has no folder {image_dir}: expected the left colour camera's frames "
                    f"image_02/data/<10 digits>.png (raw KITTI's {name}.zip).")
  frames = sorted((int(m.group(1)), os.path.join(image_dir, m.group(0)))
                  for m in map(_FRAME.match, os.listdir(image_dir)) if m)
  if not frames:
    raise DataError(f"Drive {name}: no frames <10 digits>.png in {image_dir}.")
  header = png.check_header(frames[0][1], "KITTI image", 8, (png.RGB,))
  k = np.array(read_calibration(date_dir) if intrinsics is None else intrinsics, np.float32)
  k.setflags(write=False)
  return scannet.SceneIndex(
      name=name,
      directory=drive_dir,
      frame_ids=tuple(f[0] for f in frames),
      color_paths=tuple(f[1] for f in frames),
      depth_paths=None,
      label_paths=None,
      poses=None,
      intrinsics=k,
      depth_intrinsics=None,
      color_size=header.size,
      depth_size=None,
      label_source=None,
      label_table=None,
  )


def iter_scenes(root, split=None):
  """Yields the drives (`scannet.SceneIndex`) of one split of a raw KITTI root, or every drive.

  Args:
    root: the folder holding the <date>/ folders (and optionally test_scenes.txt).
    split: "train" (every drive not listed in test_scenes.txt), "val" or "test" (the listed drives), or None (every
      drive).

  Raises:
    ValueError: for an unknown split.
    DataError: naming the folder or file that is missing or malformed.
  """
  root = os.fspath(root)
  if split is not None and split not in SPLITS:
    raise ValueError(f"Unknown raw KITTI split {split!r}; expected one of {SPLITS} or None (every drive).")
  drives = list_drives(root)
  test_scenes = read_test_scenes(root)
  held_out = set(test_scenes or ())
  if test_scenes is not None:
    present = {name for _, name, _ in drives}
    missing = [name for name in test_scenes if name not in present]
    if missing:
      raise DataError(f"{os.path.join(root, TEST_SCENES_FILE)} lists drive(s) with no folder under {root}: "
                      f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (expected "
                      f"<date>/<date>_drive_<NNNN>_sync/ for every listed drive).")
  if split in ("val", "test"):
    if test_scenes is None:
      raise DataError(f"Raw KITTI has no {split} split without {os.path.join(root, TEST_SCENES_FILE)}: list the "
                      f"held-out drives there, one per line (e.g. 2011_09_26_drive_0002_sync).")
    drives = [d for d in drives if d[1] in held_out]
  elif split == "train" and test_scenes is not None:
    drives = [d for d in drives if d[1] not in held_out]
    if not drives:
      raise DataError(f"Every drive under {root} is listed in {os.path.join(root, TEST_SCENES_FILE)}: no drive is "
                      f"left for training.")
  calibrations = {}
  for date, _, drive_dir in drives:
    date_dir = os.path.join(root, date)
    if date not in calibrations:
      calibrations[date] = read_calibration(date_dir)
    yield read_drive(date_dir, drive_dir, calibrations[date])


def read_scenes(root, split=None):
  """`list(iter_scenes(...))`: the drives a pipeline trains or evaluates on."""
  return list(iter_scenes(root, split))
