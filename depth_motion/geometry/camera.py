"""Pixel grids and the pinhole camera: projection and unprojection through tensorflow-graphics.

Points are camera-frame [..., 3] (x right, y down, z forward); pixels are [..., 2] as (x, y) with integer values at
pixel centres (see `intrinsics`).
"""

import tensorflow as tf

from depth_motion.geometry import intrinsics as intrinsics_lib
from depth_motion.geometry.graphics import perspective

# Smallest depth that is projected as is. Points at z <= MIN_PROJECTION_DEPTH (behind or on the camera plane) get a
# finite, meaningless pixel and are reported invalid by the callers: this keeps NaN and Inf out of forward values and
# gradients, which would otherwise leak through masks (0 * Inf = NaN in the backward pass).
MIN_PROJECTION_DEPTH = 1e-3


def pixel_grid(height, width):
  """[height, width, 2] float32 pixel-centre coordinates: grid[y, x] = (x, y)."""
  xs = tf.range(width, dtype=tf.float32)
  ys = tf.range(height, dtype=tf.float32)
  x, y = tf.meshgrid(xs, ys)
  return tf.stack([x, y], axis=-1)


def _camera_params(intrinsics, ndims):
  """Focal and principal point shaped [B, 1, ..., 1, 2] to broadcast against [B, <ndims spatial dims>, 2]."""
  focal, principal = intrinsics_lib.focal_and_principal_point(intrinsics)
  new_shape = tf.concat([tf.shape(focal)[:1], tf.ones([ndims], tf.int32), [2]], axis=0)
  return tf.reshape(focal, new_shape), tf.reshape(principal, new_shape)


def unproject(pixels, depth, intrinsics):
  """Camera-frame 3-D points from pixels and their depth (z).

  Args:
    pixels: [B, H, W, 2] (x, y) pixel coordinates.
    depth: [B, H, W] z-depth of each pixel.
    intrinsics: [B, 3, 3].

  Returns:
    [B, H, W, 3] points (x, y, z) with z == depth.
  """
  pixels = tf.convert_to_tensor(pixels, tf.float32)
  depth = tf.convert_to_tensor(depth, tf.float32)
  focal, principal = _camera_params(intrinsics, 2)
  # tensorflow-graphics' unproject wants equal (not broadcast) batch shapes.
  shape = tf.shape(pixels)
  return perspective.unproject(pixels, depth[..., tf.newaxis], tf.broadcast_to(focal, shape),
                               tf.broadcast_to(principal, shape))


def project(points, intrinsics):
  """Pixels of camera-frame points: (fx x / z + cx, fy y / z + cy).

  Args:
    points: [B, H, W, 3] camera-frame points.
    intrinsics: [B, 3, 3].

  Returns:
    [B, H, W, 2] pixel coordinates. Points with z <= MIN_PROJECTION_DEPTH are projected as if z were
    MIN_PROJECTION_DEPTH: finite, but meaningless; check `points[..., 2] > MIN_PROJECTION_DEPTH` for validity.
  """
  points = tf.convert_to_tensor(points, tf.float32)
  xy, z = points[..., :2], points[..., 2:]
  # tf.where, not tf.maximum: the discarded branch must get no gradient at all.
  safe_z = tf.where(z > MIN_PROJECTION_DEPTH, z, MIN_PROJECTION_DEPTH)
  focal, principal = _camera_params(intrinsics, 2)
  return perspective.project(tf.concat([xy, safe_z], axis=-1), focal, principal)


def inside_image(pixels, height, width, tolerance=0.0):
  """[...] bool: pixel coordinates where bilinear sampling needs no padding, 0 <= x <= W-1 and 0 <= y <= H-1.

  `tolerance` (pixels) widens the range on every side, e.g. to forgive float32 rounding of a computed coordinate.
  """
  x, y = pixels[..., 0], pixels[..., 1]
  return ((x >= -tolerance) & (x <= tf.cast(width, tf.float32) - 1.0 + tolerance) &
          (y >= -tolerance) & (y <= tf.cast(height, tf.float32) - 1.0 + tolerance))
