"""The class sets of every dataset (ScanNet's 21, Cityscapes' 19, CamVid's 11) and the tables that map stored label ids
onto them.

ScanNet stores 2-D labels in one of two id spaces:
  label/<i>.png       NYU40 ids (8-bit), as ScanNet's 2d_helpers and the scannet_frames_25k subset write them;
  label-filt/<i>.png  raw ScanNet label ids (16-bit), mapped to NYU40 by `scannetv2-labels.combined.tsv`.
The benchmark keeps 20 NYU40 classes (class ids 1..20 in the order below); every other NYU40 id, and 0 (unannotated),
is class 0 "background". NYU40 ids stop at 40: a stored value above it is not a label, and loading it fails. `IGNORE_LABEL` marks pixels (or whole frames) without a label, project-wide.

Cityscapes stores label ids 0..33 (`gtFine/..._labelIds.png`); 19 of them are the train classes, every other id is
ignored. CamVid (SegNet's split) stores class ids 0..10 and 11 = void, which is ignored. A stored value that a dataset
never writes maps to `INVALID_LABEL` in its table: the frame loader fails on it, naming the file.

`class_names(dataset)` and `num_classes(dataset)` give the class set a dataset trains on.
"""

import ast
import codecs
import csv
import re

import numpy as np

NUM_CLASSES = 21

# Label value of unlabeled pixels and frames; losses and metrics skip it.
IGNORE_LABEL = 255

CLASS_NAMES = (
    "background", "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
    "otherfurniture",
)

# NYU40 id of classes 1..20 (class 0, background, gathers every other id).
BENCHMARK_NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

# Table entry of a stored label value that the dataset never writes: loading such a label image fails.
INVALID_LABEL = -1

# Name of ScanNet's label mapping file, found at the dataset root.
LABEL_TSV_NAME = "scannetv2-labels.combined.tsv"


# Largest NYU40 id.
MAX_NYU40_ID = 40


class DataError(ValueError):
  """A dataset file or folder is missing or malformed; the message names it.

  Commands catch this one type to report bad data in one line instead of a traceback.
  """


# The data of the assertion of a data check that runs as a TensorFlow op (inside tf.data, `checked_decode.check`):
# the message's parts between these two markers, which `data_error_from` finds in the op's error. Graph mode prints
# the parts as "[<DataError>] [part] [part] ... [</DataError>]" (C-escaped), eager mode one b'part' or number a line.
OP_ERROR_START = "<DataError>"
OP_ERROR_END = "</DataError>"

_GRAPH_MESSAGE = re.compile(r"\[" + re.escape(OP_ERROR_START) + r"\] \[(.*)\] \[" + re.escape(OP_ERROR_END) + r"\]")
_EAGER_PART = re.compile(r"^(b(['\"]).*\2|-?\d+)$")


def _eager_message(message):
  lines = message.split("\n")
  start = next((i for i, line in enumerate(lines) if line.endswith(f"b'{OP_ERROR_START}'")), None)
  if start is None or f"b'{OP_ERROR_END}'" not in lines[start + 1:]:
    return None
  parts = []
  for line in lines[start + 1:lines.index(f"b'{OP_ERROR_END}'", start + 1)]:
    if not _EAGER_PART.match(line):
      return None
    try:
      value = ast.literal_eval(line)
    except (ValueError, SyntaxError):
      return None
    parts.append(value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value))
  return "".join(parts)


def data_error_from(error):
  """The `DataError` that a failed TensorFlow op reports about a dataset file, or None for any other error.

  The readers' tf.data pipelines check every file as they decode it (`checked_decode`); a failed check, or a file
  that disappeared after indexing (NotFoundError), ends the iteration with a `tf.errors.OpError` whose message names
  the file. Commands that iterate such a pipeline turn it into a DataError with this, to report it in one line:

    try:
      ...  # iterate the dataset
    except tf.errors.OpError as e:
      raise labels.data_error_from(e) or e

  Args:
    error: an exception (a `tf.errors.OpError`, or any other: None).
  """
  message = getattr(error, "message", None)
  if not isinstance(message, str):
    return None
  for line in message.splitlines():
    graph = _GRAPH_MESSAGE.search(line)
    if graph:
      text = codecs.escape_decode("".join(graph.group(1).split("] [")).encode("utf-8", "backslashreplace"))[0]
      return DataError(text.decode("utf-8", "backslashreplace"))
  eager = _eager_message(message)
  if eager is not None:
    return DataError(eager)
  if type(error).__name__ == "NotFoundError":
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    first = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", first)
    return DataError(f"A dataset file is missing (deleted after the dataset was indexed?): {first}")
  return None


def _nyu40_to_class():
  table = np.full([256], INVALID_LABEL, np.int32)
  table[:MAX_NYU40_ID + 1] = 0
  for class_id, nyu40_id in enumerate(BENCHMARK_NYU40_IDS, start=1):
    table[nyu40_id] = class_id
  table.setflags(write=False)
  return table


# [256] int32: NYU40 id 0..40 -> benchmark class in 0..20; the 8-bit values above 40 -> INVALID_LABEL.
NYU40_TO_CLASS = _nyu40_to_class()

assert len(CLASS_NAMES) == NUM_CLASSES == len(BENCHMARK_NYU40_IDS) + 1


def read_label_tsv(path):
  """The raw ScanNet label id -> NYU40 id table from `scannetv2-labels.combined.tsv`.

  Args:
    path: the tab-separated file with a header row holding (at least) the columns `id` and `nyu40id`.

  Returns:
    [max_id + 1] int32 array; raw ids that the file does not list map to NYU40 id 0 (unannotated).

  Raises:
    DataError: naming the file, when it is missing, lacks a column, or holds a value that is not a valid id.
  """
  path = str(path)
  try:
    with open(path, newline="", encoding="utf-8") as f:
      rows = list(csv.reader(f, delimiter="\t"))
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"Cannot read the label mapping file {path}: {getattr(e, 'strerror', None) or e}.") from e
  if not rows:
    raise DataError(f"The label mapping file {path} is empty; expected a header with columns 'id' and 'nyu40id'.")
  header = [name.strip() for name in rows[0]]
  missing = [name for name in ("id", "nyu40id") if name not in header]
  if missing:
    raise DataError(f"The label mapping file {path} has no column {', '.join(repr(m) for m in missing)}; "
                    f"expected tab-separated columns 'id' and 'nyu40id'. Received header: {header}.")
  id_column, nyu40_column = header.index("id"), header.index("nyu40id")
  mapping = {}
  for line_number, row in enumerate(rows[1:], start=2):
    if not any(cell.strip() for cell in row):
      continue
    try:
      raw_id, nyu40_id = int(row[id_column]), int(row[nyu40_column])
    except (IndexError, ValueError):
      raise DataError(f"{path}, line {line_number}: expected integer 'id' and 'nyu40id' values. "
                      f"Received: {row[:max(id_column, nyu40_column) + 1]}.") from None
    if raw_id < 0 or not 0 <= nyu40_id <= 40:
      raise DataError(f"{path}, line {line_number}: expected id >= 0 and nyu40id in 0..40. "
                      f"Received: id {raw_id}, nyu40id {nyu40_id}.")
    mapping[raw_id] = nyu40_id
  if not mapping:
    raise DataError(f"The label mapping file {path} lists no label ids.")
  table = np.zeros([max(mapping) + 1], np.int32)
  table[list(mapping)] = list(mapping.values())
  return table


def raw_to_class_table(raw_to_nyu40):
  """[max_id + 1] int32 raw ScanNet id -> benchmark class, composing a `read_label_tsv` table with NYU40_TO_CLASS."""
  return NYU40_TO_CLASS[np.asarray(raw_to_nyu40, np.int64)].astype(np.int32)


# ----------------------------------------------------------------------------------------------------------------------
# Cityscapes and CamVid.

CITYSCAPES_CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "terrain",
    "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
# Cityscapes label id of train ids 0..18 (cityscapesScripts' labels.py); ids 0..33 exist, the others are ignored.
CITYSCAPES_TRAIN_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
CITYSCAPES_MAX_LABEL_ID = 33

CAMVID_CLASS_NAMES = (
    "sky", "building", "pole", "road", "sidewalk", "tree", "sign symbol", "fence", "car", "pedestrian", "bicyclist",
)
# SegNet's CamVid annotations: class ids 0..10, and 11 = void (ignored).
CAMVID_VOID_ID = 11


def _cityscapes_table():
  table = np.full([256], INVALID_LABEL, np.int32)
  table[:CITYSCAPES_MAX_LABEL_ID + 1] = IGNORE_LABEL
  table[list(CITYSCAPES_TRAIN_LABEL_IDS)] = np.arange(len(CITYSCAPES_TRAIN_LABEL_IDS))
  table.setflags(write=False)
  return table


def _camvid_table():
  table = np.full([256], INVALID_LABEL, np.int32)
  table[:CAMVID_VOID_ID] = np.arange(CAMVID_VOID_ID)
  table[CAMVID_VOID_ID] = IGNORE_LABEL
  table.setflags(write=False)
  return table


# [256] int32: 8-bit stored value -> train class, IGNORE_LABEL, or INVALID_LABEL (a value the dataset never writes).
CITYSCAPES_LABEL_ID_TO_CLASS = _cityscapes_table()
CAMVID_TO_CLASS = _camvid_table()

assert len(CITYSCAPES_CLASS_NAMES) == len(CITYSCAPES_TRAIN_LABEL_IDS) == 19 and len(CAMVID_CLASS_NAMES) == 11

# Class names of each dataset's training labels (synthetic data is written in ScanNet's layout and classes).
_CLASS_NAMES = {
    "scannet": CLASS_NAMES,
    "synthetic": CLASS_NAMES,
    "cityscapes": CITYSCAPES_CLASS_NAMES,
    "camvid": CAMVID_CLASS_NAMES,
}


def class_names(dataset):
  """The class names of `dataset` ("scannet", "synthetic", "cityscapes" or "camvid"), in class id order."""
  if dataset not in _CLASS_NAMES:
    raise ValueError(f"No class set for dataset {dataset!r}; expected one of {sorted(_CLASS_NAMES)}.")
  return _CLASS_NAMES[dataset]


def num_classes(dataset):
  """The number of classes `dataset` trains on (21 ScanNet / synthetic, 19 Cityscapes, 11 CamVid)."""
  return len(class_names(dataset))


def defined_ids(table):
  """Sorted stored values that a label table defines (entries other than INVALID_LABEL)."""
  return [int(i) for i in np.flatnonzero(np.asarray(table) != INVALID_LABEL)]
