"""`photometric.weighted_ssim` (one float64 pooling of every weighted window sum) against the nine-window two-pass
implementation it replaced: values and gradients on random inputs, weights with zeros, every constant branch."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import photometric

SHIPPED_SHAPE = (8, 64, 96)  # the depth_motion train step: 4 pairs in both directions at 64 x 96
CONSTANTS = {"default": (photometric.SSIM_C1, photometric.SSIM_C2), "both_finite": (1e-4, 9e-4),
             "luminance_only": (1e-4, float("inf"))}


def _reference_windows3x3(x):
  """The 9 shifted [B, H-2, W-2, C] views whose pixel (y, x) is the window of 3x3 VALID pooling at (y, x)."""
  height, width = tf.shape(x)[1], tf.shape(x)[2]
  return [x[:, dy:height - 2 + dy, dx:width - 2 + dx, :] for dy in range(3) for dx in range(3)]


def _reference_weighted_ssim(x, y, weight, c1=photometric.SSIM_C1, c2=photometric.SSIM_C2,
                             weight_epsilon=photometric.SSIM_WEIGHT_EPSILON):
  """The replaced `photometric.weighted_ssim`: nine strided windows, two-pass float32 variances (same contract)."""
  if c1 == float("inf") and c2 == float("inf"):
    raise ValueError("both infinite")
  x = tf.cast(x, tf.float32)
  y = tf.cast(y, tf.float32)
  weight = tf.cast(weight, tf.float32)[..., tf.newaxis]
  weights = _reference_windows3x3(weight + weight_epsilon)
  total_weight = tf.add_n(weights)
  pooled_weight = tf.nn.avg_pool2d(weight, 3, 1, "VALID")
  xs = _reference_windows3x3(x)
  ys = _reference_windows3x3(y)

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


def random_ssim_inputs(batch, height, width, seed=0):
  """(x, y [B, H, W, 3] in [0, 1], weight [B, H, W]) float32: independent uniform images (so the dissimilarity stays
  inside (0, 1), away from the clip), a weight uniform in [0, 1] with ~30 % zeros and an all-zero block."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=(batch, height, width, 3))
  y = 0.5 * x + 0.5 * rng.uniform(size=(batch, height, width, 3))
  weight = rng.uniform(size=(batch, height, width))
  weight[weight < 0.3] = 0.0
  weight[:, height // 4:height // 2, width // 4:width // 2] = 0.0  # whole windows of zero weight
  return tuple(tf.constant(v, tf.float32) for v in (x, y, weight))


def values_and_gradients(ssim, x, y, weight, upstream, **constants):
  """[dissimilarity, pooled weight, d/dx, d/dy, d/dweight] of sum(dissimilarity * upstream)."""
  with tf.GradientTape() as tape:
    tape.watch([x, y, weight])
    dissimilarity, pooled_weight = ssim(x, y, weight, **constants)
    objective = tf.reduce_sum(dissimilarity * upstream)
  return [dissimilarity, pooled_weight] + tape.gradient(objective, [x, y, weight])


def _relative_deviation(new, old):
  new, old = np.asarray(new, np.float64), np.asarray(old, np.float64)
  return np.abs(new - old).max() / np.abs(old).max()


@pytest.mark.parametrize("constants", sorted(CONSTANTS))
def test_matches_the_nine_window_reference_with_gradients(constants):
  c1, c2 = CONSTANTS[constants]
  x, y, weight = random_ssim_inputs(2, 24, 40, seed=1)
  upstream = tf.random.stateless_uniform([2, 22, 38, 3], seed=[2, 3])
  new = values_and_gradients(photometric.weighted_ssim, x, y, weight, upstream, c1=c1, c2=c2)
  old = values_and_gradients(_reference_weighted_ssim, x, y, weight, upstream, c1=c1, c2=c2)
  assert [v.shape for v in new] == [v.shape for v in old]
  # Away from the clip at 1 (the luminance term alone does reach 0 where the two window means round equal).
  assert float(tf.reduce_max(old[0])) < 1.0
  np.testing.assert_allclose(new[1], old[1], rtol=1e-6, atol=0.0)  # pooled in float64, rounded: zeros stay zeros
  np.testing.assert_allclose(new[0], old[0], rtol=1e-5, atol=1e-6 * float(tf.reduce_max(old[0])))
  assert _relative_deviation(new[0], old[0]) < 1e-6
  for name, new_gradient, old_gradient in zip(("x", "y", "weight"), new[2:], old[2:]):
    assert _relative_deviation(new_gradient, old_gradient) < 1e-5, name


def test_matches_the_reference_at_the_shipped_size():
  x, y, weight = random_ssim_inputs(*SHIPPED_SHAPE, seed=4)
  upstream = tf.random.stateless_uniform([SHIPPED_SHAPE[0], SHIPPED_SHAPE[1] - 2, SHIPPED_SHAPE[2] - 2, 3],
                                         seed=[5, 6])
  new = values_and_gradients(tf.function(photometric.weighted_ssim), x, y, weight, upstream)
  old = values_and_gradients(_reference_weighted_ssim, x, y, weight, upstream)
  assert _relative_deviation(new[0], old[0]) < 1e-6
  for new_gradient, old_gradient in zip(new[2:], old[2:]):
    assert _relative_deviation(new_gradient, old_gradient) < 1e-5


def _float64_two_pass_ssim(x, y, weight, c2=photometric.SSIM_C2, eps=photometric.SSIM_WEIGHT_EPSILON):
  """The default (c1 = inf) dissimilarity, two-pass, in float64 NumPy: the exact value both implementations round."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  w = np.asarray(weight, np.float64)[..., None] + eps
  height, width = x.shape[1] - 2, x.shape[2] - 2

  def windows(z):
    return [z[:, dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)]

  ws, xs, ys = windows(w), windows(x), windows(y)
  total = sum(ws)
  mu_x = sum(a * b for a, b in zip(ws, xs)) / total
  mu_y = sum(a * b for a, b in zip(ws, ys)) / total
  sigma_x = sum(a * (b - mu_x) ** 2 for a, b in zip(ws, xs)) / total
  sigma_y = sum(a * (b - mu_y) ** 2 for a, b in zip(ws, ys)) / total
  sigma_xy = sum(a * (b - mu_x) * (c - mu_y) for a, b, c in zip(ws, xs, ys)) / total
  return np.clip((1 - (2 * sigma_xy + c2) / (sigma_x + sigma_y + c2)) / 2, 0, 1)


def test_flat_regions_are_as_precise_as_the_two_pass_reference():
  # Nearly flat images at a bright level: variances ~1e-7, where float32 E[z^2] - E[z]^2 is off by ~1e-3 of SSIM.
  rng = np.random.default_rng(7)
  rows, columns = np.mgrid[0:20, 0:30]
  base = 0.8 + 3e-4 * np.sin(0.4 * columns + 0.3 * rows)[None, :, :, None]
  x = tf.constant(base + 1e-4 * rng.normal(size=(2, 20, 30, 3)), tf.float32)
  y = tf.constant(base + 1e-4 * rng.normal(size=(2, 20, 30, 3)), tf.float32)
  weight = tf.constant(rng.uniform(size=(2, 20, 30)) * (rng.uniform(size=(2, 20, 30)) > 0.3), tf.float32)
  exact = _float64_two_pass_ssim(x, y, weight)
  new_error = np.abs(np.asarray(photometric.weighted_ssim(x, y, weight)[0]) - exact).max()
  old_error = np.abs(np.asarray(_reference_weighted_ssim(x, y, weight)[0]) - exact).max()
  assert new_error < 1e-6
  assert new_error <= old_error + 1e-7


def test_flat_images_give_zero_dissimilarity_and_finite_gradients():
  x = tf.fill([2, 8, 9, 3], 0.7)
  weight = tf.constant(np.random.default_rng(8).uniform(size=(2, 8, 9)) > 0.5, tf.float32)
  new = values_and_gradients(photometric.weighted_ssim, x, x, weight, tf.ones([2, 6, 7, 3]))
  for value in new:
    assert np.all(np.isfinite(value))
  np.testing.assert_array_equal(new[0], 0.0)  # variances are clamped at 0: SSIM = c2 / c2 = 1


def test_unknown_channel_count_in_a_tf_function():
  x, y, weight = random_ssim_inputs(1, 10, 12, seed=9)
  ssim = tf.function(photometric.weighted_ssim, input_signature=[tf.TensorSpec([None, None, None, None])] * 2 +
                     [tf.TensorSpec([None, None, None])])
  dissimilarity, pooled = ssim(x, y, weight)
  reference, reference_pooled = _reference_weighted_ssim(x, y, weight)
  np.testing.assert_allclose(dissimilarity, reference, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(pooled, reference_pooled, rtol=1e-6, atol=0.0)
