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


def _windows3x3(x):
  """The 9 shifted [B, H-2, W-2, C] views whose pixel (y, x) is the window of 3x3 VALID pooling at (y, x)."""
  height, width = tf.shape(x)[1], tf.shape(x)[2]
  return [x[:, dy:height - 2 + dy, dx:width - 2 + dx, :] for dy in range(3) for dx in range(3)]


def weighted_ssim(x, y, weight, c1=SSIM_C1, c2=SSIM_C2, weight_epsilon=SSIM_WEIGHT_EPSILON):
  """Structural dissimilarity clip((1 - SSIM) / 2, 0, 1) with moments weighted per pixel (3x3 windows, VALID).

  In each 3x3 window the means, variances and covariance are averages weighted by w + eps (the original's
  avgpool(z (w + eps)) / (avgpool(w) + eps)). c1 = infinity drops the luminance term:
  SSIM = (2 s_xy + c2) / (s_x + s_y + c2); c2 = infinity keeps only the luminance term.

  The variances are computed in two passes, as weighted means of (z - mean)^2, not as E[z^2] - E[z]^2: with
  c2 = 9e-6, float32 cancellation in the one-pass form makes SSIM noisy by ~1e-3 on flat regions (and, when a
  variance comes out negative, the denominator can reach 0: the original's NaN at borders, where warped images are
  flat). Two-pass variances are sums of squares, so the denominator is at least c2.

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
  x = tf.cast(x, tf.float32)
  y = tf.cast(y, tf.float32)
  weight = tf.cast(weight, tf.float32)[..., tf.newaxis]
  weights = _windows3x3(weight + weight_epsilon)
  total_weight = tf.add_n(weights)
  pooled_weight = tf.nn.avg_pool2d(weight, 3, 1, "VALID")
  xs = _windows3x3(x)
  ys = _windows3x3(y)

  def weighted_mean(values):
    return tf.add_n([w * v for w, v in zip(weights, values)]) / total_weight

  mu_x = weighted_mean(xs)
  mu_y = weighted_mean(ys)
  dxs = [v - mu_x for v in xs]
  dys = [v - mu_y for v in ys]
  sigma_x = weighted_mean([tf.square(d) for d in dxs])
  sigma_y = weighted_mean([tf.square(d) for d in dys])
  sigma_xy = weighted_mean([dx * dy for dx, dy in zip(dxs, dys)])
  if c1 == float("inf"):
    numerator = 2.0 * sigma_xy + c2
    denominator = sigma_x + sigma_y + c2
  elif c2 == float("inf"):
    numerator = 2.0 * mu_x * mu_y + c1
    denominator = tf.square(mu_x) + tf.square(mu_y) + c1
  else:
    numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * sigma_xy + c2)
    denominator = (tf.square(mu_x) + tf.square(mu_y) + c1) * (sigma_x + sigma_y + c2)
  ssim = numerator / denominator
  return tf.clip_by_value((1.0 - ssim) / 2.0, 0.0, 1.0), pooled_weight


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
