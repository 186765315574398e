"""The correlation layer against a float64 NumPy reference, and its config round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from depth_motion import correlation


def _reference(a, b, max_displacement, displacement_stride, stride):
  """FlowNet's correlation (kernel 1) written with loops: channel k = i_y * n + i_x, zeros outside b."""
  batch, height, width, channels = a.shape
  radius = max_displacement // displacement_stride
  offsets = [d * displacement_stride for d in range(-radius, radius + 1)]
  out_h, out_w = -(-height // stride), -(-width // stride)
  out = np.zeros([batch, out_h, out_w, len(offsets) ** 2])
  for n in range(batch):
    for i in range(out_h):
      for j in range(out_w):
        y, x = i * stride, j * stride
        for iy, dy in enumerate(offsets):
          for ix, dx in enumerate(offsets):
            if 0 <= y + dy < height and 0 <= x + dx < width:
              out[n, i, j, iy * len(offsets) + ix] = np.dot(a[n, y, x], b[n, y + dy, x + dx]) / channels
  return out


@pytest.mark.parametrize("max_displacement, displacement_stride, stride", [(2, 1, 1), (4, 2, 1), (3, 1, 2)])
def test_matches_numpy_reference(max_displacement, displacement_stride, stride):
  rng = np.random.default_rng(0)
  a = rng.normal(size=[2, 7, 9, 5])
  b = rng.normal(size=[2, 7, 9, 5])
  layer = correlation.Correlation(max_displacement, displacement_stride, stride)
  result = layer([tf.constant(a, tf.float32), tf.constant(b, tf.float32)]).numpy()
  expected = _reference(a, b, max_displacement, displacement_stride, stride)
  assert result.shape == expected.shape == tuple(layer.compute_output_shape([a.shape, b.shape]))
  np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


def test_shifted_features_peak_at_the_shift():
  """b = a moved 2 px right and 1 px down: the channel of displacement (dx, dy) = (2, 1) is the largest."""
  a = tf.random.stateless_normal([1, 12, 12, 16], [1, 2])
  b = tf.roll(a, shift=[1, 2], axis=[1, 2])
  volume = correlation.Correlation(max_displacement=3)([a, b])[0, 4:8, 4:8]
  n = 7
  assert np.all(np.argmax(volume.numpy(), axis=-1) == (1 + 3) * n + (2 + 3))


def test_gradients_reach_both_inputs():
  a = tf.random.stateless_normal([1, 5, 6, 3], [3, 4])
  b = tf.random.stateless_normal([1, 5, 6, 3], [5, 6])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([a, b])
    loss = tf.reduce_sum(tf.square(correlation.Correlation(2)([a, b])))
  assert np.all(np.isfinite(tape.gradient(loss, a))) and np.any(tape.gradient(loss, b).numpy() != 0)


def test_config_round_trip_and_bad_arguments():
  layer = correlation.Correlation(max_displacement=6, displacement_stride=2, stride=2, name="corr")
  clone = correlation.Correlation.from_config(layer.get_config())
  assert (clone.max_displacement, clone.displacement_stride, clone.stride, clone.channels) == (6, 2, 2, 49)
  assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).channels == 49
  with pytest.raises(ValueError, match="max_displacement"):
    correlation.Correlation(max_displacement=-1)
  with pytest.raises(ValueError, match="stride"):
    correlation.Correlation(stride=0)
