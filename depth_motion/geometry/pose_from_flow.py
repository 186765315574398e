"""The rigid motion that best explains an optical flow field, given the depth: weighted Gauss-Newton least squares.

A pixel p of frame i with depth z is the point X = z K^-1 p; the motion (R, t) carries it to X' = R X + t, seen in
frame j at project(X'). For a small left update X' + w x X' + d (w: rotation vector, d: translation) the image motion
of X' = (x z', y z', z') changes, in normalized coordinates, by (the instantaneous motion field of Longuet-Higgins
and Prazdny):

  du = (d_x - x d_z) / z' - x y w_x + (1 + x^2) w_y - y w_z
  dv = (d_y - y d_z) / z' - (1 + y^2) w_x + x y w_y + x w_z

linear in (w, d). Each iteration builds these 6 columns at the current X', solves the weighted, slightly damped
normal equations for the update, and applies it exactly (R <- exp(w) R, t <- exp(w) t + d), so the solution is the
least-squares motion of the full perspective model, not of its linearisation.

The problem is invariant to the depth's scale (doubling the depth doubles t), so the depth is first divided by its
harmonic mean and t multiplied back at the end: the damping and the conditioning do not depend on the depth units.
"""

import tensorflow as tf

from depth_motion.geometry import camera
from depth_motion.geometry import intrinsics as intrinsics_lib
from depth_motion.geometry.graphics import rotation_matrix_3d

# Tikhonov damping of the normal equations, relative to the total weight (the columns are O(1) in normalized
# coordinates): keeps the 6 x 6 solve finite for flat or textureless weights without biasing a well-posed solution.
DEFAULT_DAMPING = 1e-4
DEFAULT_ITERATIONS = 3


def motion_field_rows(x, y, inverse_z):
  """([B, 6, N], [B, 6, N]): d(normalized u) / d(w, d) and d(normalized v) / d(w, d) at points (x z, y z, z) [B, N].

  The instantaneous motion field of the module docstring, one row per unknown (w_x, w_y, w_z, d_x, d_y, d_z).
  """
  xy = x * y
  zero = tf.zeros_like(x)
  rows_u = tf.stack([-xy, 1.0 + x * x, -y, inverse_z, zero, -x * inverse_z], axis=1)
  rows_v = tf.stack([-(1.0 + y * y), xy, x, zero, inverse_z, -y * inverse_z], axis=1)
  return rows_u, rows_v


def _augmented_jacobian_rows(x, y, inverse_z, residual_x, residual_y):
  """([B, 7, N], [B, 7, N]): [J | r]^T of the u and of the v image motion at points (x z, y z, z) [B, N] each.

  Rows 0-5 are `motion_field_rows` (the columns of J), row 6 the residual r: one matmul of the concatenation
  [B, 7, 2N] with itself, weighted, gives both J^T W J and J^T W r.
  """
  rows_u, rows_v = motion_field_rows(x, y, inverse_z)
  return (tf.concat([rows_u, residual_x[:, tf.newaxis]], axis=1),
          tf.concat([rows_v, residual_y[:, tf.newaxis]], axis=1))


def motion_from_flow(flow, depth, intrinsics, weights=None, iterations=DEFAULT_ITERATIONS, damping=DEFAULT_DAMPING,
                     robust_scale=None, translation_prior=0.0):
  """The rigid motion (R, t) carrying frame-i points into frame j that best explains flow i -> j.

  Args:
    flow: [B, H, W, 2] (dx, dy) pixels from frame i's pixel centres to their match in frame j.
    depth: [B, H, W] frame i's z-depth (positive), on the same grid.
    intrinsics: [B, 3, 3] K of that grid.
    weights: optional [B, H, W] non-negative confidence of each flow vector (1 everywhere if None).
    iterations: Gauss-Newton iterations (the first is the linear motion-field solution from the identity).
    damping: Tikhonov damping relative to the total weight.
    robust_scale: if given (pixels), every iteration after the first also weights each vector by the Cauchy weight
      1 / (1 + (r / robust_scale)^2) of its residual r under the previous estimate (iteratively reweighted least
      squares; no gradient through these weights): mismatches (occlusions, pixels leaving the view, moving
      objects) stop pulling the solution once a first estimate exists.
    translation_prior: weight, relative to the total weight, of a zero-mean prior on the translation in units of
      the depth's harmonic mean (added to the damping of the 3 translation unknowns and pulling the total translation,
      not just each update, towards 0). With a wrong depth (a constant map, where a depth network starts) a large
      translation and a rotation can cancel into a good fit of a bad pose; a prior of 0.01 costs a true indoor
      translation (~1 % of the depth) about nothing and such a solution (~30 %) as much as a 2-pixel residual.

  Returns:
    (rotation [B, 3, 3], translation [B, 3]) in the depth's units, differentiable in flow, depth, intrinsics and
    weights.
  """
  flow = tf.convert_to_tensor(flow, tf.float32)
  depth = tf.convert_to_tensor(depth, tf.float32)
  intrinsics = tf.convert_to_tensor(intrinsics, tf.float32)
  batch = tf.shape(flow)[0]
  height, width = tf.shape(flow)[1], tf.shape(flow)[2]
  if weights is None:
    weights = tf.ones_like(depth)
  weights = tf.reshape(tf.convert_to_tensor(weights, tf.float32), [batch, -1])
  total_weight = tf.reduce_sum(weights, axis=1)

  # Scale the depth to unit harmonic mean (the translation columns are then O(1)); undone on t at the end.
  scale = tf.reduce_sum(weights * tf.reshape(1.0 / depth, [batch, -1]), axis=1) / tf.maximum(total_weight, 1e-12)
  pixels = tf.broadcast_to(camera.pixel_grid(height, width), tf.shape(flow))
  points = tf.reshape(camera.unproject(pixels, depth * scale[:, tf.newaxis, tf.newaxis], intrinsics), [batch, -1, 3])
  focal, principal = intrinsics_lib.focal_and_principal_point(intrinsics)
  focal = focal[:, tf.newaxis, :]
  # The observed match, in normalized coordinates of frame j.
  target = (tf.reshape(pixels + flow, [batch, -1, 2]) - principal[:, tf.newaxis, :]) / focal

  # Per-pixel quantities are [B, N] and the points [B, 3, N], so that every slice below is contiguous, and the
  # normal equations are batched matmuls over the [B, 2N] rows (no per-pixel 6 x 6 products).
  target_x, target_y = tf.unstack(target, axis=-1)
  focal_x, focal_y = tf.unstack(focal, axis=-1)
  points = tf.transpose(points, [0, 2, 1])
  rotation = tf.eye(3, batch_shape=[batch])
  translation = tf.zeros([batch, 3])
  regularizer, prior = regularization(damping, translation_prior, total_weight)
  for iteration in range(iterations):
    x, y, inverse_z, in_front = moved_points(rotation, translation, points)
    residual_x, residual_y = target_x - x, target_y - y
    weight = weights * tf.cast(in_front, tf.float32)
    if robust_scale is not None and iteration > 0:
      pixel_residual = tf.sqrt(tf.square(residual_x * focal_x + 1e-12) + tf.square(residual_y * focal_y + 1e-12))
      weight *= tf.stop_gradient(1.0 / (1.0 + (pixel_residual / robust_scale) ** 2))
    # [J | r]^T W [J | r] in one batched matmul over the 2N rows (each point's weight on its u and its v row): its
    # top-left 6 x 6 block is J^T W J, and the first 6 entries of its last column are J^T W r.
    rows_u, rows_v = _augmented_jacobian_rows(x, y, inverse_z, residual_x, residual_y)
    augmented = tf.concat([rows_u, rows_v], axis=2)
    weighted = tf.concat([rows_u * weight[:, tf.newaxis], rows_v * weight[:, tf.newaxis]], axis=2)
    product = tf.matmul(weighted, augmented, transpose_b=True)
    normal = product[:, :6, :6] + regularizer
    right = product[:, :6, 6]
    right -= tf.pad(prior * translation, [[0, 0], [3, 0]])  # the prior's gradient at the current translation
    update = tf.linalg.solve(normal, right[..., tf.newaxis])[..., 0]
    rotation, translation = apply_update(rotation, translation, update)
  return rotation, translation / scale[:, tf.newaxis]


def regularization(damping, translation_prior, total_weight):
  """(regularizer [B, 6, 6], prior [B, 1]) of the normal equations, both relative to the total weight [B].

  The regularizer adds `damping` to every unknown's diagonal and `translation_prior` to the translation's; the prior
  times the current translation is the prior's gradient, subtracted from the right-hand side.
  """
  diagonal = tf.constant([damping] * 3 + [damping + translation_prior] * 3)
  batch = tf.shape(total_weight)[0]
  regularizer = total_weight[:, tf.newaxis, tf.newaxis] * tf.linalg.diag(tf.broadcast_to(diagonal, [batch, 6]))
  return regularizer, translation_prior * total_weight[:, tf.newaxis]


def moved_points(rotation, translation, points):
  """(x, y, inverse_z, in_front), [B, N] each: the normalized image coordinates of points [B, 3, N] moved by (R, t).

  Points pushed behind the camera by a bad estimate get no vote (and no Inf): their z is floored and `in_front` is
  False there.
  """
  moved = tf.matmul(rotation, points) + translation[:, :, tf.newaxis]
  in_front = moved[:, 2] > camera.MIN_PROJECTION_DEPTH
  safe_x, safe_y, safe_z = tf.unstack(tf.where(in_front[:, tf.newaxis], moved, tf.constant([[0.0], [0.0], [1.0]])),
                                      axis=1)
  inverse_z = 1.0 / safe_z
  return safe_x * inverse_z, safe_y * inverse_z, inverse_z, in_front


def apply_update(rotation, translation, update):
  """The motion after the left update [B, 6] (w, d), applied exactly: R <- exp(w) R, t <- exp(w) t + d."""
  step = rotation_matrix_3d.from_axis_angle(*_axis_angle(update[:, :3]))
  return tf.matmul(step, rotation), tf.einsum("bij,bj->bi", step, translation) + update[:, 3:]


def _axis_angle(vector):
  """(axis [B, 3], angle [B, 1]) of rotation vectors [B, 3]; a zero vector gets the x axis and angle 0."""
  angle = tf.norm(vector + 1e-12, axis=-1, keepdims=True)
  return vector / angle, angle
