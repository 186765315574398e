"""Colour images of class maps, depth, optical flow and masks, as TensorFlow ops (for inspection and TensorBoard).

Every function takes one image ([H, W] or [H, W, 2]) or a batch with any leading dimensions ([..., H, W] or
[..., H, W, 2]), runs inside or outside `tf.function`, and returns a uint8 RGB image [..., H, W, 3] of the same height
and width: ready for `tf.summary.image` or a PNG. Black always means "nothing here" (ignored label, missing depth,
invalid flow).
"""

import numpy as np
import tensorflow as tf

from datasets import labels as labels_lib

# One colour per class 0..20; the 20 benchmark classes take ScanNet's own NYU40 palette (util.create_color_palette),
# so pictures match ScanNet's; background, which ScanNet draws black, is dark grey here to stay apart from "ignored".
PALETTE = np.array([
    (64, 64, 64),      # background
    (174, 199, 232),   # wall
    (152, 223, 138),   # floor
    (31, 119, 180),    # cabinet
    (255, 187, 120),   # bed
    (188, 189, 34),    # chair
    (140, 86, 75),     # sofa
    (255, 152, 150),   # table
    (214, 39, 40),     # door
    (197, 176, 213),   # window
    (148, 103, 189),   # bookshelf
    (196, 156, 148),   # picture
    (23, 190, 207),    # counter
    (247, 182, 210),   # desk
    (219, 219, 141),   # curtain
    (255, 127, 14),    # refrigerator
    (158, 218, 229),   # shower curtain
    (44, 160, 44),     # toilet
    (112, 128, 144),   # sink
    (227, 119, 194),   # bathtub
    (82, 84, 163),     # otherfurniture
], np.uint8)
PALETTE.setflags(write=False)
assert len(PALETTE) == labels_lib.NUM_CLASSES

# Cityscapes' own train-id colours (cityscapesScripts labels.py).
CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153), (250, 170, 30),
    (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142),
    (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
], np.uint8)
CITYSCAPES_PALETTE.setflags(write=False)

# SegNet's CamVid colours.
CAMVID_PALETTE = np.array([
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0), (192, 128, 128),
    (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
], np.uint8)
CAMVID_PALETTE.setflags(write=False)

_PALETTES = {"scannet": PALETTE, "synthetic": PALETTE, "cityscapes": CITYSCAPES_PALETTE, "camvid": CAMVID_PALETTE}
assert all(len(p) == labels_lib.num_classes(d) for d, p in _PALETTES.items())


def palette(dataset):
  """[num_classes, 3] uint8 colours of `dataset`'s classes."""
  if dataset not in _PALETTES:
    raise ValueError(f"No palette for dataset {dataset!r}; expected one of {sorted(_PALETTES)}.")
  return _PALETTES[dataset]

# Viridis at 0, 0.1, ..., 1 (matplotlib's values): dark blue = far, yellow = near; never black.
_VIRIDIS = np.array([
    (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140), (34, 168, 132),
    (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37),
], np.float32)


def _middlebury_color_wheel():
  """[55, 3] float32 colour wheel of the Middlebury flow benchmark (Baker et al. 2011), values in [0, 255]."""
  # (length, red, green, blue): a number stays constant along the segment, "up" / "down" ramp over 0..255.
  segments = [(15, 255, "up", 0), (6, "down", 255, 0), (4, 0, 255, "up"),
              (11, 0, "down", 255), (13, "up", 0, 255), (6, 255, 0, "down")]
  wheel = []
  for length, *channels in segments:
    ramp = np.floor(255.0 * np.arange(length) / length)
    columns = [ramp if c == "up" else 255.0 - ramp if c == "down" else np.full([length], c) for c in channels]
    wheel.append(np.stack(columns, axis=-1))
  return np.concatenate(wheel, axis=0).astype(np.float32)


_COLOR_WHEEL = _middlebury_color_wheel()


def _to_uint8(rgb):
  """[..., 3] float in [0, 1] -> uint8."""
  return tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0), tf.uint8)


def colorize_labels(labels, colors=None):
  """Class map -> palette colours; IGNORE_LABEL (and anything outside the palette) is black.

  Args:
    labels: [..., H, W] integer class ids.
    colors: [C, 3] uint8 palette (`palette(dataset)`); default: the 21 ScanNet classes' PALETTE.

  Returns:
    [..., H, W, 3] uint8.
  """
  colors = PALETTE if colors is None else np.asarray(colors, np.uint8)
  labels = tf.cast(labels, tf.int32)
  table = tf.constant(np.concatenate([colors, np.zeros([1, 3], np.uint8)], axis=0))
  known = (labels >= 0) & (labels < len(colors))
  return tf.gather(table, tf.where(known, labels, len(colors)))


def colorize_depth(depth):
  """Depth -> viridis colours of inverse depth, normalised per image (nearest = yellow); missing (<= 0) is black.

  Inverse depth spreads the colours over the near range, where indoor structure is, and stays finite far away.

  Args:
    depth: [..., H, W] depth (any unit); 0 or less marks missing depth.

  Returns:
    [..., H, W, 3] uint8.
  """
  depth = tf.convert_to_tensor(depth, tf.float32)
  valid = depth > 0.0
  inverse = tf.where(valid, 1.0 / tf.where(valid, depth, 1.0), 0.0)
  big = tf.float32.max
  low = tf.reduce_min(tf.where(valid, inverse, big), axis=[-2, -1], keepdims=True)
  high = tf.reduce_max(tf.where(valid, inverse, -big), axis=[-2, -1], keepdims=True)
  span = high - low
  # A constant image (span 0) maps to the near end of the colormap.
  t = tf.where(span > 0.0, (inverse - low) / tf.where(span > 0.0, span, 1.0), 1.0)
  t = tf.clip_by_value(t, 0.0, 1.0) * (len(_VIRIDIS) - 1)
  rgb = _interpolate(tf.constant(_VIRIDIS / 255.0), t)
  return _to_uint8(tf.where(valid[..., tf.newaxis], rgb, 0.0))


def _interpolate(table, position):
  """Linear interpolation in a [N, 3] colour table at fractional [...] positions in [0, N-1]."""
  lower = tf.minimum(tf.floor(position), float(table.shape[0] - 2))
  weight = (position - lower)[..., tf.newaxis]
  lower = tf.cast(lower, tf.int32)
  return (1.0 - weight) * tf.gather(table, lower) + weight * tf.gather(table, lower + 1)


def colorize_flow(flow, valid=None, max_magnitude=None):
  """Optical flow -> Middlebury colour wheel: hue = direction, saturation = magnitude; zero flow is white.

  Magnitudes are divided by `max_magnitude`, or by each image's largest valid magnitude; a magnitude beyond the
  normaliser is drawn darkened (x 0.75), as in the Middlebury code.

  Args:
    flow: [..., H, W, 2] flow (dx, dy) in pixels.
    valid: optional [..., H, W] bool; invalid pixels are black and do not set the normaliser.
    max_magnitude: optional float: a fixed normaliser, to compare images.

  Returns:
    [..., H, W, 3] uint8.
  """
  flow = tf.convert_to_tensor(flow, tf.float32)
  u, v = flow[..., 0], flow[..., 1]
  magnitude = tf.sqrt(u * u + v * v)
  if valid is None:
    valid = tf.ones_like(magnitude, tf.bool)
  valid = tf.convert_to_tensor(valid, tf.bool) & tf.math.is_finite(magnitude)
  magnitude = tf.where(valid, magnitude, 0.0)
  if max_magnitude is None:
    scale = tf.reduce_max(magnitude, axis=[-2, -1], keepdims=True)
  else:
    scale = tf.constant(float(max_magnitude))
  radius = magnitude / tf.maximum(scale, 1e-6)

  # The wheel starts at red for flow pointing right and turns through yellow, green, cyan, blue and magenta.
  num_colors = _COLOR_WHEEL.shape[0]
  angle = tf.atan2(-tf.where(valid, v, 0.0), -tf.where(valid, u, 0.0)) / np.pi  # in [-1, 1]
  position = (angle + 1.0) / 2.0 * (num_colors - 1)
  lower = tf.cast(tf.floor(position), tf.int32)
  upper = tf.math.floormod(lower + 1, num_colors)
  weight = (position - tf.floor(position))[..., tf.newaxis]
  wheel = tf.constant(_COLOR_WHEEL / 255.0)
  color = (1.0 - weight) * tf.gather(wheel, lower) + weight * tf.gather(wheel, upper)
  radius = radius[..., tf.newaxis]
  color = tf.where(radius <= 1.0, 1.0 - radius * (1.0 - color), color * 0.75)
  return _to_uint8(tf.where(valid[..., tf.newaxis], color, 0.0))


def colorize_mask(mask):
  """Mask -> grey levels: True (or 1) is white, False (or 0) black; float masks in [0, 1] give greys.

  Args:
    mask: [..., H, W] bool or float in [0, 1].

  Returns:
    [..., H, W, 3] uint8.
  """
  mask = tf.convert_to_tensor(mask)
  grey = tf.cast(mask, tf.float32)
  return _to_uint8(tf.repeat(grey[..., tf.newaxis], 3, axis=-1))
