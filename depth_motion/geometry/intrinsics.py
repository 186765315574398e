"""Pinhole intrinsics: build K, read it back, invert it, and keep it right through resize, crop and flip.

Pixel convention (used by the whole geometry package): integer coordinates are pixel *centres*; pixel (x, y) covers
[x - 0.5, x + 0.5] x [y - 0.5, y + 0.5], so an image of width W spans x in [-0.5, W - 0.5]. This is the convention of
`tf.image.resize` (half-pixel centres), of the resampler and of `tf.raw_ops.ImageProjectiveTransformV3`, and it is
why resize and flip below carry +-0.5 / W - 1 terms that the original code (pixel corners) writes without.

All intrinsics are float32 tensors of shape [..., 3, 3] with zero skew:
    K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]].
"""

import tensorflow as tf


def make_intrinsics(fx, fy, cx, cy):
  """K from focal lengths and principal point.

  Args:
    fx, fy, cx, cy: broadcast-compatible tensors (or floats) of shape [...].

  Returns:
    [..., 3, 3] float32 intrinsics.
  """
  fx, fy, cx, cy = (tf.cast(v, tf.float32) for v in (fx, fy, cx, cy))
  fx, fy, cx, cy = _broadcast(fx, fy, cx, cy)
  zeros = tf.zeros_like(fx)
  ones = tf.ones_like(fx)
  rows = [tf.stack([fx, zeros, cx], axis=-1),
          tf.stack([zeros, fy, cy], axis=-1),
          tf.stack([zeros, zeros, ones], axis=-1)]
  return tf.stack(rows, axis=-2)


def _broadcast(*tensors):
  shape = tf.shape(tensors[0])
  for t in tensors[1:]:
    shape = tf.broadcast_dynamic_shape(shape, tf.shape(t))
  return [tf.broadcast_to(t, shape) for t in tensors]


def intrinsics_params(intrinsics):
  """(fx, fy, cx, cy), each of shape [...], from [..., 3, 3] intrinsics."""
  intrinsics = tf.convert_to_tensor(intrinsics, tf.float32)
  return (intrinsics[..., 0, 0], intrinsics[..., 1, 1], intrinsics[..., 0, 2], intrinsics[..., 1, 2])


def focal_and_principal_point(intrinsics):
  """([..., 2] focal (fx, fy), [..., 2] principal point (cx, cy)): the form tensorflow-graphics' camera takes."""
  fx, fy, cx, cy = intrinsics_params(intrinsics)
  return tf.stack([fx, fy], axis=-1), tf.stack([cx, cy], axis=-1)


def invert_intrinsics(intrinsics):
  """Closed-form K^-1 of zero-skew intrinsics: [[1/fx, 0, -cx/fx], [0, 1/fy, -cy/fy], [0, 0, 1]]."""
  fx, fy, cx, cy = intrinsics_params(intrinsics)
  zeros = tf.zeros_like(fx)
  ones = tf.ones_like(fx)
  rows = [tf.stack([1.0 / fx, zeros, -cx / fx], axis=-1),
          tf.stack([zeros, 1.0 / fy, -cy / fy], axis=-1),
          tf.stack([zeros, zeros, ones], axis=-1)]
  return tf.stack(rows, axis=-2)


def resize_intrinsics(intrinsics, original_size, new_size):
  """K of an image resized from `original_size` to `new_size` ((height, width) each), as `tf.image.resize` does.

  With half-pixel centres, old pixel coordinate x maps to (x + 0.5) * s - 0.5 with s = new_width / old_width, so
  fx' = s fx and cx' = (cx + 0.5) s - 0.5 (the same in y).
  """
  fx, fy, cx, cy = intrinsics_params(intrinsics)
  sy, sx = _scales(original_size, new_size)
  return make_intrinsics(fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5)


def _scales(original_size, new_size):
  original = tf.cast(tf.convert_to_tensor(original_size), tf.float32)
  new = tf.cast(tf.convert_to_tensor(new_size), tf.float32)
  return new[..., 0] / original[..., 0], new[..., 1] / original[..., 1]


def crop_intrinsics(intrinsics, offset_y, offset_x):
  """K of the crop whose top-left pixel is (offset_y, offset_x) of the original: the principal point shifts."""
  fx, fy, cx, cy = intrinsics_params(intrinsics)
  return make_intrinsics(fx, fy, cx - tf.cast(offset_x, tf.float32), cy - tf.cast(offset_y, tf.float32))


def flip_intrinsics(intrinsics, width):
  """K of the horizontally flipped image (x -> width - 1 - x).

  The flipped image is a true pinhole image of the mirrored scene (X -> -X) with cx' = width - 1 - cx; depth is
  unchanged, and camera motion mirrors too (see `rigid_motion.mirror_motion`).
  """
  fx, fy, cx, cy = intrinsics_params(intrinsics)
  return make_intrinsics(fx, fy, tf.cast(width, tf.float32) - 1.0 - cx, cy)
