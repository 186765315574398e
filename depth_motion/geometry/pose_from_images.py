"""The rigid motion that best aligns two images, given one frame's depth: direct (photometric) Gauss-Newton alignment.

Frame j's pixel p with depth z is the point X = z K^-1 p; the motion (R, t) carries it to X' = R X + t, seen in
frame i at project(X'). Direct alignment minimises the robust photometric error sum_p w(p) |I_i(project(X')) -
I_j(p)|^2 over (R, t): each Gauss-Newton step linearises I_i around the current warp (its image gradient times the
instantaneous motion field of `pose_from_flow`, the same 6 columns) and applies the solved update exactly. It runs
coarse to fine over an image pyramid, so motions of several pixels converge, and unlike a patch match it models the
scale change of forward motion (the warp is the full perspective one).

Pixels that leave frame i or land behind the camera get no vote; every iteration after the first at each level
weights the rest by the Cauchy weight of their photometric residual (occlusions, moving objects, specularities). The
problem is invariant to the depth's scale, so the depth is divided by its harmonic mean first (as in
`pose_from_flow`) and the translation multiplied back at the end.

The result is a solution, not a prediction: no gradient flows through it (at the minimum the loss's derivative with
respect to the motion is zero, so a depth network trained on the same photometric error loses nothing by it).
"""

import tensorflow as tf

from depth_motion.geometry import camera
from depth_motion.geometry import intrinsics as intrinsics_lib
from depth_motion.geometry import pose_from_flow
from depth_motion.geometry import resampler

# 4 levels: 8 x 12 pixels at the top for 64 x 96 frames. Measured with the true depth on the synthetic video
# (diagnostics.depth_motion_signal --direct): at least as accurate as 3 levels at every gap, and at gap 4 of the dolly
# camera (up to ~15 px of motion) the median rotation error drops from 4.3 to 0.6 deg.
DEFAULT_LEVELS = 4
DEFAULT_ITERATIONS = 4
# Cauchy scale of the photometric residual (images in [0, 1], summed over channels in quadrature).
DEFAULT_ROBUST_SCALE = 0.1


def _gradients(image):
  """(d/dx, d/dy) [B, H, W, C] each: central differences, one-sided at the border."""
  padded_x = tf.pad(image, [[0, 0], [0, 0], [1, 1], [0, 0]], mode="SYMMETRIC")
  padded_y = tf.pad(image, [[0, 0], [1, 1], [0, 0], [0, 0]], mode="SYMMETRIC")
  return (padded_x[:, :, 2:] - padded_x[:, :, :-2]) / 2.0, (padded_y[:, 2:] - padded_y[:, :-2]) / 2.0


def _half(image):
  return tf.nn.avg_pool2d(image, 2, 2, "SAME")


def _align_level(image_i, image_j, depth_j, intrinsics, rotation, translation, iterations, damping, robust_scale,
                 translation_prior):
  """Gauss-Newton iterations on one pyramid level; returns the refined (rotation, translation)."""
  batch = tf.shape(image_j)[0]
  height, width = tf.shape(image_j)[1], tf.shape(image_j)[2]
  pixels = tf.broadcast_to(camera.pixel_grid(height, width), tf.stack([batch, height, width, 2]))
  points = tf.transpose(tf.reshape(camera.unproject(pixels, depth_j, intrinsics), [batch, -1, 3]), [0, 2, 1])
  focal, principal = intrinsics_lib.focal_and_principal_point(intrinsics)
  gradient_x, gradient_y = _gradients(image_i)
  stacked = tf.concat([image_i, gradient_x, gradient_y], axis=-1)
  channels = image_i.shape[-1]
  target = tf.reshape(image_j, [batch, -1, channels])
  num_pixels = tf.fill([batch], tf.cast(height * width, tf.float32))
  regularizer, prior = pose_from_flow.regularization(damping, translation_prior, num_pixels)
  for iteration in range(iterations):
    x, y, inverse_z, in_front = pose_from_flow.moved_points(rotation, translation, points)
    coords = tf.stack([x, y], axis=-1) * focal[:, tf.newaxis] + principal[:, tf.newaxis]
    inside = camera.inside_image(coords, height, width)
    sampled = resampler.resample(stacked, coords[:, :, tf.newaxis, :], boundary="border")[:, :, 0]
    warped, warped_dx, warped_dy = tf.split(sampled, 3, axis=-1)
    residual = target - warped  # [B, N, C]
    weight = tf.cast(in_front & inside, tf.float32)
    if iteration > 0:
      weight *= 1.0 / (1.0 + tf.reduce_sum(tf.square(residual), axis=-1) / robust_scale ** 2)
    rows_u, rows_v = pose_from_flow.motion_field_rows(x, y, inverse_z)  # [B, 6, N] each, normalized coordinates
    # d(image) / d(update) per channel: the image gradient (per pixel) times d(pixel) / d(update).
    focal_x, focal_y = tf.unstack(tf.reshape(focal, [batch, 2, 1, 1, 1]), axis=1)
    jacobian = (warped_dx[:, tf.newaxis] * focal_x * rows_u[..., tf.newaxis] +
                warped_dy[:, tf.newaxis] * focal_y * rows_v[..., tf.newaxis])
    jacobian = tf.reshape(jacobian, [batch, 6, -1])  # [B, 6, N C]
    weights = tf.reshape(tf.repeat(weight[..., tf.newaxis], channels, axis=-1), [batch, 1, -1])
    normal = tf.matmul(jacobian * weights, jacobian, transpose_b=True) + regularizer
    right = tf.reduce_sum(jacobian * weights * tf.reshape(residual, [batch, 1, -1]), axis=-1)
    right -= tf.pad(prior * translation, [[0, 0], [3, 0]])
    update = tf.linalg.solve(normal, right[..., tf.newaxis])[..., 0]
    rotation, translation = pose_from_flow.apply_update(rotation, translation, update)
  return rotation, translation


def motion_from_images(image_i, image_j, depth_j, intrinsics, levels=DEFAULT_LEVELS, iterations=DEFAULT_ITERATIONS,
                       damping=pose_from_flow.DEFAULT_DAMPING, robust_scale=DEFAULT_ROBUST_SCALE,
                       translation_prior=0.0, initial=None):
  """The rigid motion (R, t) carrying frame-j points into camera i that best aligns I_i onto I_j.

  Args:
    image_i: [B, H, W, C] the frame sampled (the motion's destination).
    image_j: [B, H, W, C] the frame whose pixels are moved (given its depth).
    depth_j: [B, H, W] frame j's z-depth (positive).
    intrinsics: [B, 3, 3] K of both frames at H x W.
    levels: pyramid levels (each halves the size), aligned coarsest first.
    iterations: Gauss-Newton iterations per level.
    damping: Tikhonov damping of the normal equations, relative to the number of pixels.
    robust_scale: Cauchy scale of the photometric residual.
    translation_prior: weight, relative to the number of pixels, of a zero-mean prior on the translation in units of
      the depth's harmonic mean (see `pose_from_flow.motion_from_flow`).
    initial: optional (rotation [B, 3, 3], translation [B, 3]) to start from (identity if None).

  Returns:
    (rotation [B, 3, 3], translation [B, 3]) in the depth's units, without gradient.
  """
  image_i = tf.stop_gradient(tf.cast(image_i, tf.float32))
  image_j = tf.stop_gradient(tf.cast(image_j, tf.float32))
  depth_j = tf.stop_gradient(tf.cast(depth_j, tf.float32))
  intrinsics = tf.stop_gradient(tf.cast(intrinsics, tf.float32))
  batch = tf.shape(image_j)[0]
  scale = tf.reduce_mean(tf.reshape(1.0 / depth_j, [batch, -1]), axis=1)
  if initial is None:
    rotation, translation = tf.eye(3, batch_shape=[batch]), tf.zeros([batch, 3])
  else:
    rotation = tf.stop_gradient(tf.cast(initial[0], tf.float32))
    translation = tf.stop_gradient(tf.cast(initial[1], tf.float32)) * scale[:, tf.newaxis]
  pyramid = [(image_i, image_j, depth_j * scale[:, tf.newaxis, tf.newaxis])]
  for _ in range(levels - 1):
    coarse_i, coarse_j, coarse_depth = pyramid[-1]
    # Inverse depth is averaged (a pixel straddling an edge gets the harmonic mean, as a blurred image would show).
    coarse_depth = 1.0 / _half(1.0 / coarse_depth[..., tf.newaxis])[..., 0]
    pyramid.append((_half(coarse_i), _half(coarse_j), coarse_depth))
  size = tf.shape(image_j)[1:3]
  for coarse_i, coarse_j, coarse_depth in reversed(pyramid):
    level_intrinsics = intrinsics_lib.resize_intrinsics(intrinsics, size, tf.shape(coarse_j)[1:3])
    rotation, translation = _align_level(coarse_i, coarse_j, coarse_depth, level_intrinsics, rotation, translation,
                                         iterations, damping, robust_scale, translation_prior)
  return tf.stop_gradient(rotation), tf.stop_gradient(translation / scale[:, tf.newaxis])
