"""Dense correspondences: the depth warp (depth + rigid motion + intrinsics) and backward warping by optical flow.

Both produce, for every pixel of a *target* frame, coordinates in a *source* frame; resampling the source there
brings its content (image, depth, logits, features) onto the target's pixel grid.
"""

import collections

import tensorflow as tf

from depth_motion.geometry import camera
from depth_motion.geometry import resampler
from depth_motion.geometry import rigid_motion

# Float32 unprojection followed by projection moves a pixel by ~1e-5 px; an identity warp must still keep the edge
# pixels valid. (The resampler treats such coordinates exactly, so no clamping is needed.)
VALIDITY_TOLERANCE = 1e-3

DepthWarp = collections.namedtuple("DepthWarp", ["coords", "depth", "valid"])
DepthWarp.__doc__ = """Result of `depth_warp`.

coords: [B, H, W, 2] (x, y) where each pixel of frame j lands in frame i.
depth:  [B, H, W] its z-depth in camera i.
valid:  [B, H, W] bool: lands inside frame i (0 <= x <= W-1, 0 <= y <= H-1, up to VALIDITY_TOLERANCE px), in front
        of camera i, all finite.
"""


def depth_warp(depth, rotation, translation, intrinsics):
  """Where the pixels of frame j land in frame i, given frame j's depth and the motion from camera j to camera i.

  For pixel p = (u, v, 1) of frame j with depth d: p' = K (R K^-1 p d + t), coords = p'[:2] / p'[2], depth = p'[2].
  Motion predicted from the input order (i, j) carries points of frame j into camera i, so resampling frame i at
  `coords` brings frame i onto frame j's grid.

  Args:
    depth: [B, H, W] depth of frame j (z, positive).
    rotation: [B, 3, 3] rotation from camera j to camera i.
    translation: [B, 3] translation, or a [B, H, W, 3] per-pixel translation field on frame j's grid.
    intrinsics: [B, 3, 3] shared by both frames.

  Returns:
    A `DepthWarp` (coords, depth, valid).
  """
  depth = tf.convert_to_tensor(depth, tf.float32)
  shape = tf.shape(depth)
  height, width = shape[1], shape[2]
  grid = tf.broadcast_to(camera.pixel_grid(height, width), tf.concat([shape, [2]], axis=0))
  points = camera.unproject(grid, depth, intrinsics)
  points = rigid_motion.transform_points(rotation, translation, points)
  coords = camera.project(points, intrinsics)
  z = points[..., 2]
  valid = (camera.inside_image(coords, height, width, VALIDITY_TOLERANCE) & (z > camera.MIN_PROJECTION_DEPTH) &
           tf.reduce_all(tf.math.is_finite(coords), axis=-1) & tf.math.is_finite(z))
  return DepthWarp(coords=coords, depth=z, valid=valid)


def coords_from_flow(flow):
  """[B, H, W, 2] coordinates x + flow(x): where each pixel's correspondence lies in the other frame."""
  flow = tf.convert_to_tensor(flow, tf.float32)
  shape = tf.shape(flow)
  return camera.pixel_grid(shape[1], shape[2]) + flow


def flow_from_coords(coords):
  """[B, H, W, 2] optical flow coords(x) - x: the inverse of `coords_from_flow` (e.g. flow from a depth warp)."""
  coords = tf.convert_to_tensor(coords, tf.float32)
  shape = tf.shape(coords)
  return coords - camera.pixel_grid(shape[1], shape[2])


def warp_with_flow(image, flow, boundary="zeros"):
  """Backward warping: out(x) = image(x + flow(x)), bilinear.

  Args:
    image: [B, H, W, C] the frame the flow points into.
    flow: [B, H', W', 2] (dx, dy) flow of the frame being reconstructed.
    boundary: out-of-bounds policy of `resampler.resample`.

  Returns:
    [B, H', W', C].
  """
  return resampler.resample(image, coords_from_flow(flow), boundary=boundary)
