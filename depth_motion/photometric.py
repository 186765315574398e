"""Photometric terms of the depth/motion loss: occlusion-masked RGB L1, the depth-weighted SSIM, and the box blur
that compares images at coarser scales.

Pure functions on tensors; every shape is in the docstring. `losses.directed_pair_losses` combines them with the warp.
"""

import tensorflow as tf

# The original's constants: no luminance term (c1 = infinity) and a small contrast constant.
SSIM_C1 = float("inf")
SSIM_C2 = 9e-6
SSIM_WEIGHT_EPSILON = 0.01


def box_blur(images, size):
  """Box filter of `size` x `size` (stride 1; at the border, the mean of the pixels inside the image).

  Args:
    images: [B, H, W, C].
    size: positive int; 1 returns `images` unchanged.

  Returns:
    [B, H, W, C] float32.
  """
  if size < 1:
    raise ValueError(f"box_blur: size must be a positive integer. Received: {size}")
  images = tf.cast(images, tf.float32)
  return images if size == 1 else tf.nn.avg_pool2d(images, size, 1, "SAME")


def masked_l1(image, reconstruction, mask):
  """mean(|reconstruction - image| * mask) over every pixel and channel (masked pixels count as zeros).

  Args:
    image: [B, H, W, C].
    reconstruction: [B, H, W, C], e.g. frame i resampled onto frame j's grid.
    mask: [B, H, W] float or bool, 1 where the comparison is valid (not occluded, inside the frame).

  Returns:
    float32 scalar.
  """
  mask = tf.cast(mask, tf.float32)[..., tf.newaxis]
  difference = tf.abs(tf.cast(reconstruction, tf.float32) - tf.cast(image, tf.float32))
  # tf.where, not a product: a non-finite value under the mask must not leak (0 * Inf = NaN).
  return tf.reduce_mean(tf.where(mask > 0, difference * mask, 0.0))


def _window_means(values):
  """[B, H-2, W-2, K]: the mean of every 3x3 window (VALID) of [B, H, W, K], all channels in one op."""
  return tf.nn.avg_pool2d(values, 3, 1, "VALID")


def weighted_ssim(x, y, weight, c1=SSIM_C1, c2=SSIM_C2, weight_epsilon=SSIM_WEIGHT_EPSILON):
  """Structural dissimilarity clip((1 - SSIM) / 2, 0, 1) with moments weighted per pixel (3x3 windows, VALID).

  In each 3x3 window the means, variances and covariance are averages weighted by w + eps (the original's
  avgpool(z (w + eps)) / (avgpool(w) + eps)). c1 = infinity drops the luminance term:
  SSIM = (2 s_xy + c2) / (s_x + s_y + c2); c2 = infinity keeps only the luminance term.

  Every window mean (of w, z (w + eps) and z z' (w + eps)) comes from one 3x3 average pooling, in float64. The
  variances are then E[z^2] - E[z]^2: in float32 that form's cancellation makes SSIM noisy by ~1e-3 on flat regions
  with c2 = 9e-6 (and, when a variance comes out negative, lets the denominator reach 0: the original's NaN at
  borders, where warped images are flat); in float64 it agrees with the two-pass variances (weighted means of
  (z - mean)^2) to float32 precision. The sum of the variances is clamped at 0, so the denominator is at least c2.

  Args:
    x, y: [B, H, W, C] images (H, W >= 3).
    weight: [B, H, W] non-negative per-pixel weight.
    c1, c2: SSIM constants (not both infinite).
    weight_epsilon: added to the weight, so a window with zero weight falls back to plain averages.

  Returns:
    (dissimilarity [B, H-2, W-2, C] in [0, 1], pooled weight avgpool3x3(w) [B, H-2, W-2, 1]). Weigh the first by
    the second before averaging: where the weight is small, the dissimilarity is computed but means little.
  """
  if c1 == float("inf") and c2 == float("inf"):
    raise ValueError("weighted_ssim: c1 and c2 are both infinite, so SSIM is 1 everywhere and the loss is zero. "
                     f"Received: c1={c1}, c2={c2}")
  x = tf.cast(tf.cast(x, tf.float32), tf.float64)
  y = tf.cast(tf.cast(y, tf.float32), tf.float64)
  # The weight as wide as the images, so that every product and quotient below is elementwise (no broadcasting).
  weight = tf.broadcast_to(tf.cast(tf.cast(weight, tf.float32), tf.float64)[..., tf.newaxis], tf.shape(x))
  shifted_weight = weight + weight_epsilon
  x_weight = x * shifted_weight
  y_weight = y * shifted_weight
  fields = [weight, x_weight, y_weight]
  if c2 != float("inf"):
    fields += [x * x_weight, y * y_weight, x * y_weight]
  # All fields pooled in one op, interleaved along the channels: [B, H, W, C * F] (faster than F * B images of C, or
  # than pooling the weight's single channel on its own).
  stacked = tf.stack(fields, axis=-1)
  shape = tf.shape(stacked)
  pooled = _window_means(tf.reshape(stacked, tf.concat([shape[:3], [-1]], axis=0)))
  pooled = tf.reshape(pooled, tf.concat([tf.shape(pooled)[:3], shape[3:]], axis=0))
  pooled_weight, *sums = tf.unstack(pooled, num=len(fields), axis=-1)
  total_weight = pooled_weight + weight_epsilon
  inverse_weight = 1.0 / total_weight
  mu_x = sums[0] * inverse_weight
  mu_y = sums[1] * inverse_weight
  if c2 != float("inf"):
    sigma_x = sums[2] * inverse_weight - tf.square(mu_x)
    sigma_y = sums[3] * inverse_weight - tf.square(mu_y)
    sigma_xy = sums[4] * inverse_weight - mu_x * mu_y
    variances = tf.maximum(sigma_x + sigma_y, 0.0)  # >= 0 up to float64 rounding; clamped, the denominator >= c2
  if c1 == float("inf"):
    numerator = 2.0 * sigma_xy + c2
    denominator = variances + c2
  elif c2 == float("inf"):
    numerator = 2.0 * mu_x * mu_y + c1
    denominator = tf.square(mu_x) + tf.square(mu_y) + c1
  else:
    numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * sigma_xy + c2)
    denominator = (tf.square(mu_x) + tf.square(mu_y) + c1) * (variances + c2)
  ssim = tf.cast(numerator / denominator, tf.float32)
  return tf.clip_by_value((1.0 - ssim) / 2.0, 0.0, 1.0), tf.cast(pooled_weight[..., :1], tf.float32)


def weighted_ssim_loss(x, y, weight):
  """mean(dissimilarity * pooled weight) of `weighted_ssim` with the original's constants (c1 = inf, c2 = 9e-6).

  Args:
    x, y: [B, H, W, C] images (H, W >= 3).
    weight: [B, H, W] per-pixel weight (e.g. the depth-proximity weight).

  Returns:
    float32 scalar.
  """
  dissimilarity, pooled_weight = weighted_ssim(x, y, weight)
  return tf.reduce_mean(dissimilarity * pooled_weight)
