"""PNG headers and bit-depth-aware decoding: what the readers check before trusting a PNG's sample values.

PIL hides what matters for data PNGs: it opens a 16-bit RGB PNG (KITTI flow) as 8-bit "RGB", and
`tf.io.decode_png(dtype=uint16)` silently rescales 8-bit samples (v -> 257 v). The readers therefore read the header
(`read_header`, plain Python, at index time) to fail early with the file's name, and decode single-channel values with
`decode_values` (TensorFlow ops, inside tf.data), which picks the decoder from the header's bit depth.
"""

import dataclasses
import struct

import tensorflow as tf

from datasets.labels import DataError

_SIGNATURE = b"\x89PNG\r\n\x1a\n"

GRAY, RGB, PALETTE, GRAY_ALPHA, RGBA = 0, 2, 3, 4, 6
COLOR_TYPE_NAMES = {GRAY: "grayscale", RGB: "RGB", PALETTE: "palette", GRAY_ALPHA: "grayscale+alpha", RGBA: "RGBA"}


@dataclasses.dataclass(frozen=True)
class PngHeader:
  """The IHDR fields of a PNG file.

  Attributes:
    width, height: in pixels.
    bit_depth: bits per sample (1, 2, 4, 8 or 16).
    color_type: GRAY, RGB, PALETTE, GRAY_ALPHA or RGBA.
  """
  width: int
  height: int
  bit_depth: int
  color_type: int

  @property
  def size(self):
    """(height, width)."""
    return (self.height, self.width)

  def describe(self):
    return f"{self.bit_depth}-bit {COLOR_TYPE_NAMES.get(self.color_type, f'color type {self.color_type}')}"


def read_header(path, what="image"):
  """The `PngHeader` of the PNG at `path`.

  Raises:
    DataError: naming the file when it cannot be read or is not a PNG.
  """
  try:
    with open(path, "rb") as f:
      head = f.read(33)
  except OSError as e:
    raise DataError(f"Cannot read {what} {path}: {e.strerror or e}.") from None
  if len(head) < 33 or not head.startswith(_SIGNATURE) or head[12:16] != b"IHDR":
    raise DataError(f"{what.capitalize()} {path} is not a PNG file (no PNG signature and IHDR header).")
  width, height, bit_depth, color_type = struct.unpack(">IIBB", head[16:26])
  return PngHeader(width=width, height=height, bit_depth=bit_depth, color_type=color_type)


def check_header(path, what, bit_depth, color_types):
  """`read_header`, failing unless the PNG has `bit_depth` and one of `color_types`; returns the header.

  Raises:
    DataError: naming the file, what was expected and what it holds.
  """
  header = read_header(path, what)
  if header.bit_depth != bit_depth or header.color_type not in color_types:
    expected = " or ".join(f"{bit_depth}-bit {COLOR_TYPE_NAMES[c]}" for c in color_types)
    raise DataError(f"{what.capitalize()} {path} is not a {expected} PNG. Received: a {header.describe()} PNG.")
  return header


def decode_values(encoded):
  """[H, W] int32 sample values of a single-channel PNG, 8- or 16-bit, as stored (TensorFlow ops).

  Args:
    encoded: scalar string tensor, the file's bytes.
  """
  # Padded, so that a truncated file reaches decode_png and fails there with a decoding error.
  header = tf.strings.join([tf.strings.substr(encoded, 0, 25), "\0" * 25])
  bit_depth = tf.io.decode_raw(header, tf.uint8)[24]

  def decode(dtype):
    return lambda: tf.cast(tf.io.decode_png(encoded, channels=1, dtype=dtype)[..., 0], tf.int32)

  return tf.cond(bit_depth == 16, decode(tf.uint16), decode(tf.uint8))
