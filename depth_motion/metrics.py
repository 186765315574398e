"""Errors of predicted depth, egomotion and intrinsics against ground truth (what the original code never measured).

Every function returns per-sample values (float32 [B] tensors), so a caller sums them over batches and replicas and
divides by the count of samples it reports in `valid`:

  depth_errors(predicted, truth, median_scaling)   AbsRel, SqRel, RMSE, delta < 1.25 (Eigen et al.'s definitions,
                                                   per image, over pixels with ground truth)
  motion_errors(rotation, translation, ...)        rotation error in degrees, translation direction angle in degrees
  intrinsics_errors(predicted, truth)              |predicted - true| / true for fx, fy, cx, cy

Monocular depth is known only up to scale: with `median_scaling`, each predicted depth map is first multiplied by
median(truth) / median(prediction) over the pixels with ground truth (the standard protocol of unsupervised depth).
"""

import math

import tensorflow as tf

from depth_motion import geometry

# Depth evaluation range in metres: ground truth outside it is not scored; predictions are clipped to it.
MIN_DEPTH = 1e-3
MAX_DEPTH = 10.0
# Ground-truth translations shorter than this (metres) have no direction to compare with.
MIN_TRANSLATION = 1e-4


def _masked_median(values, mask):
  """Per-sample median of `values` [B, N] over `mask` [B, N] (lower median; 0 where the mask is empty)."""
  count = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
  ordered = tf.sort(tf.where(mask, values, tf.constant(float("inf"))), axis=1)
  index = tf.maximum(count - 1, 0) // 2
  median = tf.gather(ordered, index, batch_dims=1)
  return tf.where(count > 0, median, 0.0)


def depth_errors(predicted, truth, median_scaling=True, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH):
  """Per-image depth errors over the pixels with ground truth in [min_depth, max_depth].

  Args:
    predicted: [B, H, W] predicted depth (> 0).
    truth: [B, H, W] ground-truth depth in metres; 0 (or anything outside the range) = missing.
    median_scaling: scale each prediction by median(truth) / median(predicted) first.
    min_depth, max_depth: evaluation range; predictions are clipped to it (after scaling).

  Returns:
    dict of [B] float32: "abs_rel" mean |d - d*| / d*, "sq_rel" mean (d - d*)^2 / d*, "rmse" sqrt(mean (d - d*)^2),
    "delta1" fraction with max(d / d*, d* / d) < 1.25, "scale" the factor applied (1 without scaling),
    "relative_spread" and "true_relative_spread" the standard deviation over the mean of the (scaled) prediction and
    of the truth (0 for a constant map: a depth network that collapsed shows here), and "valid" 1 for images with at
    least one ground-truth pixel (the others' errors are 0 and must not be counted).
  """
  predicted = tf.convert_to_tensor(predicted, tf.float32)
  truth = tf.convert_to_tensor(truth, tf.float32)
  batch = tf.shape(truth)[0]
  predicted = tf.reshape(predicted, [batch, -1])
  truth = tf.reshape(truth, [batch, -1])
  mask = (truth >= min_depth) & (truth <= max_depth)
  count = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)
  if median_scaling:
    scale = tf.math.divide_no_nan(_masked_median(truth, mask), _masked_median(predicted, mask))
  else:
    scale = tf.ones([batch])
  predicted = tf.clip_by_value(predicted * scale[:, tf.newaxis], min_depth, max_depth)
  safe_truth = tf.where(mask, truth, 1.0)
  maskf = tf.cast(mask, tf.float32)

  def mean(x):
    return tf.math.divide_no_nan(tf.reduce_sum(x * maskf, axis=1), count)

  def relative_spread(x):
    average = mean(x)
    variance = tf.maximum(mean(tf.square(x - average[:, tf.newaxis])), 0.0)
    return tf.math.divide_no_nan(tf.sqrt(variance), average)

  difference = predicted - safe_truth
  ratio = tf.maximum(predicted / safe_truth, safe_truth / predicted)
  return {"abs_rel": mean(tf.abs(difference) / safe_truth), "sq_rel": mean(tf.square(difference) / safe_truth),
          "rmse": tf.sqrt(mean(tf.square(difference))), "delta1": mean(tf.cast(ratio < 1.25, tf.float32)),
          "scale": scale, "relative_spread": relative_spread(predicted), "true_relative_spread":
          relative_spread(safe_truth), "valid": tf.cast(count > 0, tf.float32)}


def rotation_angle(rotation):
  """The angle in degrees of rotation matrices [B, 3, 3] (from the trace, clipped to [-1, 1])."""
  trace = tf.linalg.trace(tf.convert_to_tensor(rotation, tf.float32))
  return tf.acos(tf.clip_by_value((trace - 1.0) / 2.0, -1.0, 1.0)) * (180.0 / math.pi)


def motion_errors(rotation, translation, true_rotation, true_translation):
  """Relative pose errors of predicted camera motions.

  Args:
    rotation: [B, 3] Euler angles (MotionNet's output) or [B, 3, 3] matrices.
    translation: [B, 3] predicted translation (any scale: only its direction is scored).
    true_rotation: [B, 3, 3] true rotation of the same motion.
    true_translation: [B, 3] true translation.

  Returns:
    dict of [B] float32: "rotation_error" the angle of R_true^T R (degrees), "true_rotation" the angle of the true
    rotation (degrees; rotation errors are small only relative to it), "translation_angle" the angle between the
    predicted and true translation directions (degrees), "translation_valid" 1 where the true translation is long
    enough to have a direction (the angle is 0 elsewhere and must not be counted).
  """
  rotation = tf.convert_to_tensor(rotation, tf.float32)
  if rotation.shape.rank == 2:
    rotation = geometry.matrix_from_angles(rotation)
  true_rotation = tf.convert_to_tensor(true_rotation, tf.float32)
  translation = tf.convert_to_tensor(translation, tf.float32)
  true_translation = tf.convert_to_tensor(true_translation, tf.float32)
  error = tf.matmul(true_rotation, rotation, transpose_a=True)
  true_norm = tf.norm(true_translation, axis=-1)
  cosine = tf.math.divide_no_nan(tf.reduce_sum(translation * true_translation, axis=-1),
                                 tf.norm(translation, axis=-1) * true_norm)
  translation_valid = tf.cast(true_norm > MIN_TRANSLATION, tf.float32)
  angle = tf.acos(tf.clip_by_value(cosine, -1.0, 1.0)) * (180.0 / math.pi) * translation_valid
  return {"rotation_error": rotation_angle(error), "true_rotation": rotation_angle(true_rotation),
          "translation_angle": angle, "translation_valid": translation_valid}


def warp_errors(depth, rotation, translation, intrinsics, true_depth, true_rotation, true_translation,
                true_intrinsics):
  """End-point errors of a predicted depth warp (frame j's pixels into frame i) against the true one.

  This is what the later stages use of the teachers: the correspondence, not the depth or the pose alone. A wrong
  depth and a wrong pose that cancel give a right warp (and a small error here).

  Args:
    depth: [B, H, W] predicted depth of frame j (any scale, the one `translation` is in).
    rotation: [B, 3] Euler angles or [B, 3, 3], predicted motion of camera j's points into camera i.
    translation: [B, 3] predicted translation.
    intrinsics: [B, 3, 3] the K the prediction warps with.
    true_depth: [B, H, W] true depth of frame j (0 = missing).
    true_rotation, true_translation, true_intrinsics: the true motion [B, 3, 3], [B, 3] and K [B, 3, 3].

  Returns:
    dict of [B] float32 over the pixels with a true depth whose true warp lands inside frame i: "warp_epe" the mean
    distance (pixels) between the predicted and the true warp, "zero_flow_epe" that of the identity warp (no motion:
    the reference a teacher must beat), "warp_valid" 1 where the image has such pixels (both errors are 0
    elsewhere and must not be counted).
  """
  rotation = tf.convert_to_tensor(rotation, tf.float32)
  if rotation.shape.rank == 2:
    rotation = geometry.matrix_from_angles(rotation)
  true_depth = tf.convert_to_tensor(true_depth, tf.float32)
  true = geometry.depth_warp(true_depth, true_rotation, true_translation, true_intrinsics)
  predicted = geometry.depth_warp(depth, rotation, translation, intrinsics)
  valid = tf.cast(true.valid & (true_depth > 0), tf.float32)
  count = tf.reduce_sum(valid, axis=[1, 2])
  shape = tf.shape(true_depth)

  def mean_distance(coords):
    distance = tf.norm(coords - true.coords, axis=-1)
    return tf.math.divide_no_nan(tf.reduce_sum(tf.where(valid > 0, distance, 0.0), axis=[1, 2]), count)

  return {"warp_epe": mean_distance(predicted.coords),
          "zero_flow_epe": mean_distance(geometry.pixel_grid(shape[1], shape[2])),
          "warp_valid": tf.cast(count > 0, tf.float32)}


def intrinsics_errors(predicted, truth):
  """Relative errors |predicted - true| / true of fx, fy, cx, cy: dict of [B] float32 per parameter."""
  predicted = geometry.intrinsics_params(tf.convert_to_tensor(predicted, tf.float32))
  truth = geometry.intrinsics_params(tf.convert_to_tensor(truth, tf.float32))
  return {f"{name}_relative_error": tf.abs(p - t) / tf.abs(t)
          for name, p, t in zip(("fx", "fy", "cx", "cy"), predicted, truth)}
