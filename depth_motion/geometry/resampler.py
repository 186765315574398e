"""Bilinear resampling of [B, H, W, C] tensors at arbitrary pixel coordinates (replaces tensorflow-addons' resampler).

Coordinates are (x, y) with integer values at pixel centres (see `intrinsics`). The result is differentiable with
respect to the image and the coordinates. Bilinear interpolation is piecewise linear: at an exact integer coordinate
the derivative with respect to that coordinate is taken from the cell to the right (below), the same one-sided
derivative everywhere, so gradients are finite, non-zero where the image varies, and never NaN.

Two policies for coordinates outside the image:
  "zeros":  the image is surrounded by zeros; a sample fades linearly to 0 over the half-open pixel band outside the
            border and is exactly 0 (with zero gradient) one pixel or more outside (tensorflow-addons' behaviour).
  "border": coordinates are clamped to the image (edge pixels repeat); gradient with respect to a clamped coordinate
            is zero.
"""

import tensorflow as tf

BOUNDARY_POLICIES = ("zeros", "border")


def resample(image, coords, boundary="zeros"):
  """Samples `image` bilinearly at `coords`.

  Args:
    image: [B, H, W, C] float tensor.
    coords: [B, H', W', 2] (x, y) pixel coordinates into `image` (any other [B, ..., 2] shape works too).
    boundary: "zeros" or "border", the out-of-bounds policy (see the module docstring).

  Returns:
    [B, H', W', C] tensor of image's dtype.
  """
  if boundary not in BOUNDARY_POLICIES:
    raise ValueError(f"boundary must be one of {BOUNDARY_POLICIES}. Received: boundary={boundary!r}")
  image = tf.convert_to_tensor(image)
  coords = tf.cast(coords, image.dtype)
  if image.shape.rank != 4:
    raise ValueError(f"image must be [B, H, W, C]. Received: image of shape {image.shape}")
  if coords.shape[-1] is not None and coords.shape[-1] != 2:
    raise ValueError(f"coords must end in 2 (x, y). Received: coords of shape {coords.shape}")

  shape = tf.shape(image)
  batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
  out_shape = tf.concat([tf.shape(coords)[:-1], [channels]], axis=0)
  coords = tf.reshape(coords, [batch, -1, 2])
  x, y = coords[..., 0], coords[..., 1]
  width_f = tf.cast(width, image.dtype)
  height_f = tf.cast(height, image.dtype)

  if boundary == "border":
    x = tf.clip_by_value(x, 0.0, width_f - 1.0)
    y = tf.clip_by_value(y, 0.0, height_f - 1.0)
    # The left/top corner never passes the second-to-last pixel, so the last pixel is reached with weight 1.
    x0 = tf.minimum(tf.floor(x), tf.maximum(width_f - 2.0, 0.0))
    y0 = tf.minimum(tf.floor(y), tf.maximum(height_f - 2.0, 0.0))
  else:
    # Beyond one pixel outside, every corner weight is zero; clipping there keeps int32 casts in range.
    x = tf.clip_by_value(x, -2.0, width_f + 1.0)
    y = tf.clip_by_value(y, -2.0, height_f + 1.0)
    x0 = tf.floor(x)
    y0 = tf.floor(y)
  # x0, y0 come from floor, which has no gradient: the coordinate gradient flows through the weights only.
  wx1 = x - x0
  wy1 = y - y0
  wx0 = 1.0 - wx1
  wy0 = 1.0 - wy1

  x0i = tf.cast(x0, tf.int32)
  y0i = tf.cast(y0, tf.int32)
  x1i = x0i + 1
  y1i = y0i + 1
  if boundary == "zeros":
    zero = tf.zeros([], image.dtype)
    wx0 = tf.where((x0i >= 0) & (x0i < width), wx0, zero)
    wx1 = tf.where((x1i >= 0) & (x1i < width), wx1, zero)
    wy0 = tf.where((y0i >= 0) & (y0i < height), wy0, zero)
    wy1 = tf.where((y1i >= 0) & (y1i < height), wy1, zero)
  x0i = tf.clip_by_value(x0i, 0, width - 1)
  x1i = tf.clip_by_value(x1i, 0, width - 1)
  y0i = tf.clip_by_value(y0i, 0, height - 1)
  y1i = tf.clip_by_value(y1i, 0, height - 1)

  flat = tf.reshape(image, [batch, height * width, channels])
  row0 = y0i * width
  row1 = y1i * width

  def corner(row, col, weight):
    return tf.gather(flat, row + col, batch_dims=1) * weight[..., tf.newaxis]

  out = (corner(row0, x0i, wy0 * wx0) + corner(row0, x1i, wy0 * wx1) +
         corner(row1, x0i, wy1 * wx0) + corner(row1, x1i, wy1 * wx1))
  return tf.reshape(out, out_shape)
