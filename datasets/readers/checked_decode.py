"""Decoding of dataset images that checks every file as it is decoded, with TensorFlow ops only (inside tf.data).

The readers index a dataset from file names and the headers of its first images (cheap); every other file is checked
here, when the pipeline decodes it: its format (PNG signature and IHDR, or a JPEG start of image), its size against
the scene's (the size of the scene's first image, named in the message), a PNG's bit depth and colour type, and
whether it decodes at all. A file that fails a check fails the op with the message `labels.OP_ERROR_PREFIX` +
"<what> <path> ..." (`check`), which `labels.data_error_from` turns into the `DataError` a command reports.

TensorFlow's own decoders fail naming no file (`InvalidArgumentError: Invalid PNG data, size 66 [[{{node
decode_image}}]]`), and an error cannot be caught inside a graph: `_try` therefore decodes in a one-element dataset
whose errors are dropped (`Dataset.ignore_errors`) and falls back to an empty result, which the check then reports,
naming the file. Costs, per file inside tf.data: about 0.25 ms for `_try` and 0.1 ms for the header and the checks
(messages are only formatted for a file that fails); decoding a 128x160 PNG takes about 0.5 ms, a 1296x968 one 6 ms.
"""

import tensorflow as tf

from datasets import labels as labels_lib
from datasets.readers import png

_PNG_SIGNATURE = list(b"\x89PNG\r\n\x1a\n")
_IHDR = list(b"IHDR")
_HEADER_BYTES = 26  # signature (8), IHDR length and type (8), width, height (4 each), bit depth, colour type


def _part(part):
  if isinstance(part, str):
    return part
  part = tf.convert_to_tensor(part)
  return part if part.dtype in (tf.string, tf.int32) else tf.cast(part, tf.int32)


def check(condition, *parts):
  """An op that fails unless `condition`, with the message of `parts` that `labels.data_error_from` reads.

  The parts are the assertion's data, joined only when it fails: no string op runs for a file that passes, and with
  string and int32 data only, tf.debugging.Assert needs no tf.cond (which would cost 0.5 ms a check inside tf.data).

  Args:
    condition: scalar bool tensor.
    *parts: str, scalar string tensors or scalar integer tensors (cast to int32).

  Returns:
    The assertion op, to hold control dependencies on.
  """
  data = [labels_lib.OP_ERROR_START] + [_part(p) for p in parts] + [labels_lib.OP_ERROR_END]
  return tf.debugging.Assert(condition, data)


def size_parts(size):
  """The parts of 'HxW' of a [2] integer tensor."""
  return [size[0], "x", size[1]]


class Header:
  """The format fields of encoded image bytes (TensorFlow ops that never fail, whatever the bytes).

  Attributes:
    is_png: scalar bool: PNG signature and IHDR chunk.
    is_jpeg: scalar bool: a JPEG start of image (FF D8 FF).
    size: [2] int64 (height, width) from a PNG's IHDR (meaningless for other files).
    bit_depth, color_type: scalar int32 from a PNG's IHDR.
  """

  def __init__(self, encoded):
    padded = tf.strings.join([tf.strings.substr(encoded, 0, _HEADER_BYTES), "\0" * _HEADER_BYTES])
    raw = tf.io.decode_raw(tf.strings.substr(padded, 0, _HEADER_BYTES), tf.uint8)
    raw = tf.ensure_shape(raw, [_HEADER_BYTES])
    self.is_png = tf.reduce_all(tf.equal(raw[:16], _PNG_SIGNATURE + [0] * 4 + _IHDR) |
                                tf.constant([False] * 8 + [True] * 4 + [False] * 4))
    self.is_jpeg = tf.reduce_all(tf.equal(raw[:3], [0xFF, 0xD8, 0xFF]))
    fields = tf.reshape(tf.cast(raw[16:24], tf.int64), [2, 4])
    width_height = tf.reduce_sum(fields * tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64), axis=1)
    self.size = tf.reverse(width_height, [0])
    self.bit_depth = tf.cast(raw[24], tf.int32)
    self.color_type = tf.cast(raw[25], tf.int32)

  def describe(self):
    """The parts of 'a 8-bit grayscale PNG' for messages."""
    names = tf.constant([png.COLOR_TYPE_NAMES.get(i, "unknown color type") for i in range(7)])
    return ["a ", self.bit_depth, "-bit ", tf.gather(names, tf.clip_by_value(self.color_type, 0, 6)), " PNG"]


def _plain_options():
  options = tf.data.Options()
  options.experimental_optimization.apply_default_optimizations = False  # nothing to optimise in one element
  options.autotune.enabled = False
  return options


def _try(encoded, function, fallback):
  """`function(encoded)`, or `fallback` (same structure) when it fails: never an error, whatever the bytes.

  `function` should hold no control flow, and the call should not sit in a tf.cond branch: either costs about 0.5 ms
  more a file (the dataset's function is instantiated on every call).
  """
  attempt = tf.data.Dataset.from_tensors(encoded).map(function).ignore_errors()
  attempt = attempt.concatenate(tf.data.Dataset.from_tensors(fallback)).take(1).with_options(_plain_options())
  return attempt.get_single_element()


def _size_matches(size, expected):
  return tf.reduce_all(tf.equal(tf.cast(size, tf.int64), tf.cast(expected, tf.int64)))


def _corrupt(what, path):
  return ("cannot decode the ", what, " ", path, ": it is corrupt or truncated.")


def _read(path, present):
  """The bytes of `path`, or "" when `present` (scalar bool tensor, or True) is false."""
  if present is True:
    return tf.io.read_file(path)
  return tf.cond(present, lambda: tf.io.read_file(path), lambda: tf.constant(""))


def _unless_absent(present, condition):
  return condition if present is True else tf.logical_not(present) | condition


def decode_color(path, expected_size=None, reference=None, what="color image"):
  """[h, w, 3] uint8 of the PNG or JPEG at `path`, checked (see the module docstring).

  Args:
    path: scalar string tensor.
    expected_size: [2] (height, width) that the image must have, or None.
    reference: scalar string: the file whose size `expected_size` is, named in the message (or None).
    what: the file's kind in messages.
  """
  encoded = tf.io.read_file(path)
  header = Header(encoded)
  checks = [check(header.is_png | header.is_jpeg, "cannot decode the ", what, " ", path,
                  ": it is not a PNG or JPEG file.")]
  with tf.control_dependencies(checks):
    # A PNG's size is in its header; a JPEG's needs a parse that may fail (tried on every file: no tf.cond; a PNG
    # is parsed as empty bytes, for which libjpeg prints nothing, where it would print "Not a JPEG file" per frame).
    jpeg_size = _try(tf.where(header.is_jpeg, encoded, ""),
                     lambda data: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64),
                     tf.constant([-1, -1], tf.int64))
    size = tf.where(header.is_png, header.size, jpeg_size)
  checks = [check(size[0] >= 0, *_corrupt(what, path))]
  if expected_size is not None:
    reference = tf.constant("") if reference is None else reference
    # Checked before decoding: a damaged header may claim a size too large to allocate.
    with tf.control_dependencies(checks):
      checks = [check(_size_matches(size, expected_size), what, " ", path, " is ", *size_parts(size),
                      ", but the scene's ", what, "s are ", *size_parts(expected_size), " (the size of ", reference,
                      ").")]
  with tf.control_dependencies(checks):
    image = _try(encoded, lambda data: tf.io.decode_image(data, channels=3, expand_animations=False),
                 tf.zeros([0, 0, 3], tf.uint8))
  with tf.control_dependencies([check(tf.size(image) > 0, *_corrupt(what, path))]):
    return tf.ensure_shape(tf.identity(image), [None, None, 3])


def decode_single_channel(path, what, bit_depths, expected_sizes=(), references=(), size_description="",
                          note="", present=True):
  """[h, w] int32 sample values of the single-channel PNG at `path`, checked (see the module docstring).

  Args:
    path: scalar string tensor.
    what: the file's kind in messages ("depth image").
    bit_depths: the allowed bit depths (8 and/or 16); the values are as stored (16-bit values are not rescaled).
    expected_sizes: [2] (height, width) tensors: the image must have one of them (none: unchecked); a (0, 0) entry
      stands for none.
    references: scalar strings, the files whose sizes `expected_sizes` are, named in the message.
    size_description: what the sizes are, in the message ("the scene's depth images").
    note: appended to the expected format in the message (" (millimetres)").
    present: True, or a scalar bool tensor: false means there is no file (nothing is read or checked, and the
      result is empty). Callers choose with it rather than with a tf.cond around this function, where the decoding
      dataset would cost 0.5 ms more.
  """
  encoded = _read(path, present)
  header = Header(encoded)
  allowed = tf.reduce_any(tf.equal(header.bit_depth, list(bit_depths)))
  checks = [check(_unless_absent(present, header.is_png), "cannot decode the ", what, " ", path,
                  ": it is not a PNG file (no PNG signature and IHDR header).")]
  with tf.control_dependencies(checks):
    expected_format = " or ".join(f"{b}-bit" for b in bit_depths)
    checks = [check(_unless_absent(present, allowed & tf.equal(header.color_type, png.GRAY)), what, " ", path,
                    " is not a ", expected_format, " grayscale PNG", note, ". Received: ", *header.describe(), ".")]
  if expected_sizes:
    shown = []
    for i, (size, reference) in enumerate(zip(expected_sizes, references)):
      # A (0, 0) size stands for none: its parts are empty.
      given = tf.reduce_any(tf.cast(size, tf.int64) > 0)
      shown += [tf.where(given, " or " if i else "", ""), tf.where(given, tf.strings.as_string(size[0]), ""),
                tf.where(given, "x", ""), tf.where(given, tf.strings.as_string(size[1]), ""),
                tf.where(given, " (", ""), tf.where(given, reference, ""), tf.where(given, ")", "")]
    matches = tf.reduce_any(tf.stack([_size_matches(header.size, s) for s in expected_sizes]))
    with tf.control_dependencies(checks):
      # Checked before decoding: a damaged header may claim a size too large to allocate.
      checks = [check(_unless_absent(present, matches), what, " ", path, " is ", *size_parts(header.size), ", but ",
                      size_description, " are ", *shown, ".")]
  with tf.control_dependencies(checks):
    # One decoder for 8 and 16 bits (no tf.cond around the dataset): 16-bit decoding gives 257 v for an 8-bit v.
    samples = _try(encoded, lambda data: tf.io.decode_png(data, channels=1, dtype=tf.uint16)[..., 0],
                   tf.zeros([0, 0], tf.uint16))
  decoded = tf.size(samples) > 0
  with tf.control_dependencies([check(_unless_absent(present, decoded), *_corrupt(what, path))]):
    values = tf.cast(samples, tf.int32)
    return tf.cond(tf.equal(header.bit_depth, 16), lambda: values, lambda: tf.bitwise.right_shift(values, 8))


def map_labels(values, label_table, default=labels_lib.INVALID_LABEL):
  """Stored label values -> classes through `label_table`; values outside it map to `default`."""
  table = tf.cast(label_table, tf.int32)
  size = tf.shape(table)[0]
  mapped = tf.gather(table, tf.clip_by_value(values, 0, size - 1))
  return tf.where((values >= 0) & (values < size), mapped, tf.cast(default, tf.int32))


def check_labels(path, values, label_table, default=labels_lib.INVALID_LABEL):
  """`values` once every one maps to a class (`map_labels`); otherwise an error naming `path` and the bad ids.

  Every value is checked, at full resolution, yet cheaply (resize the values, then map them): when no table entry up
  to the largest value is INVALID_LABEL (the label tables mark only the values past their ids so), the largest value
  decides (about 1 ms for 1296x968); otherwise a histogram of the values does (5 ms; mapping every pixel, 14 ms).
  """
  table = tf.cast(label_table, tf.int32)
  size = tf.shape(table)[0]
  classes = tf.concat([table, [tf.cast(default, tf.int32)]], axis=0)
  largest = tf.minimum(tf.reduce_max(values), size)

  def invalid_ids():
    """The sorted values that map to INVALID_LABEL (empty when none), from a histogram."""
    flat = tf.reshape(values, [-1])
    present = tf.math.bincount(tf.minimum(flat, size), minlength=size + 1, maxlength=size + 1) > 0
    any_invalid = tf.reduce_any(present & tf.equal(classes, labels_lib.INVALID_LABEL))

    def exact():
      invalid = tf.equal(map_labels(flat, table, default), labels_lib.INVALID_LABEL)
      return tf.sort(tf.unique(tf.boolean_mask(flat, invalid)).y)

    return tf.cond(any_invalid, exact, lambda: tf.zeros([0], tf.int32))

  holes = tf.reduce_any(tf.equal(classes[:largest + 1], labels_lib.INVALID_LABEL))
  ids = tf.cond(holes, invalid_ids, lambda: tf.zeros([0], tf.int32))
  text = tf.strings.reduce_join(tf.strings.as_string(ids[:10]), separator=", ")
  more = tf.where(tf.size(ids) > 10, ", ...", "")
  with tf.control_dependencies([check(tf.equal(tf.size(ids), 0), "label image ", path, " holds label id(s) ", text,
                                      more, " that the dataset does not define.")]):
    return tf.identity(values)
