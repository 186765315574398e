"""Randomized layer normalization: instance norm at inference, ramped multiplicative noise in training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from depth_motion import randomized_layer_norm
from depth_motion.randomized_layer_norm import RandomizedLayerNorm

CHANNELS = 64


def _built_layer(**kwargs):
  layer = RandomizedLayerNorm(**kwargs)
  layer.build((None, 8, 8, CHANNELS))
  rng = np.random.default_rng(1)
  layer.gamma.assign(rng.uniform(0.5, 2.0, CHANNELS).astype(np.float32))
  layer.beta.assign(rng.uniform(-1.0, 1.0, CHANNELS).astype(np.float32))
  return layer


def _inputs(rng, batch=8, mean=3.0, std=10.0):
  return (mean + std * rng.standard_normal((batch, 8, 8, CHANNELS))).astype(np.float32)


def test_inference_is_instance_norm_with_gamma_and_beta():
  layer = _built_layer()
  x = _inputs(np.random.default_rng(0))
  mean = x.mean(axis=(1, 2), keepdims=True)
  variance = x.var(axis=(1, 2), keepdims=True)
  expected = layer.gamma.numpy() * (x - mean) / np.sqrt(variance + 1e-3) + layer.beta.numpy()
  np.testing.assert_allclose(layer(x, training=False), expected, atol=2e-5)
  np.testing.assert_allclose(layer(x, training=False, step=10**6), expected, atol=2e-5)
  # Per-sample statistics: a sample's output does not depend on the rest of the batch.
  np.testing.assert_allclose(layer(x[:1], training=False), expected[:1], atol=2e-5)


def test_noise_only_in_training():
  layer = _built_layer()
  x = _inputs(np.random.default_rng(0))
  inference = layer(x, training=False)
  np.testing.assert_allclose(layer(x, training=False), inference)
  np.testing.assert_allclose(layer(x, training=True, step=0), inference, atol=1e-6)  # the ramp starts at 0
  assert np.abs(layer(x, training=True, step=20000) - inference).max() > 0.1
  assert np.abs(layer(x, training=True) - inference).max() > 0.1  # no step: the ramp is complete


def test_ramp_values():
  for step, expected in [(0, 0.0), (2500, 0.5 / 16), (5000, 0.125), (10000, 0.5), (50000, 0.5)]:
    assert float(randomized_layer_norm.noise_stddev(step)) == pytest.approx(expected, rel=1e-6)
  assert float(randomized_layer_norm.noise_stddev(tf.constant(5, tf.int64), 0.3, 10)) == pytest.approx(0.075)
  assert float(randomized_layer_norm.noise_stddev(None, 0.3, 10)) == pytest.approx(0.3)


def _measured_noise(layer, x, step):
  """Recovers n1, n2 per [B, C] from the output: with gamma 1, beta 0 and variance >> epsilon, the output has
  standard deviation 1 / sqrt(1 + n2) and mean -m n1 / sqrt(v (1 + n2))."""
  y = layer(x, training=True, step=step).numpy()
  m = x.mean(axis=(1, 2))
  v = x.var(axis=(1, 2))
  n2 = 1.0 / y.std(axis=(1, 2)) ** 2 - 1.0
  n1 = -y.mean(axis=(1, 2)) * np.sqrt(v * (1.0 + n2)) / m
  return n1, n2


@pytest.mark.parametrize("step", [5000, 10000])
def test_noise_scale_follows_the_ramp(step):
  layer = RandomizedLayerNorm()
  x = _inputs(np.random.default_rng(2), batch=16, mean=50.0, std=10.0)
  s = float(randomized_layer_norm.noise_stddev(step))
  n1, n2 = _measured_noise(layer, x, step)
  truncated_std = 0.8796 * s  # standard deviation of a normal truncated at 2 sigma
  for noise in (n1, n2):
    assert noise.std() == pytest.approx(truncated_std, rel=0.15)
    assert np.abs(noise).max() <= 2.0 * s + 1e-3
  # Drawn per sample and channel: not the same factor across the batch.
  assert np.std(n1[:, 0]) > 0.3 * truncated_std


def test_step_as_tensor_does_not_retrace():
  layer = _built_layer()
  x = _inputs(np.random.default_rng(0), batch=2)
  traces = []

  @tf.function
  def run(step):
    traces.append(1)
    return layer(x, training=True, step=step)

  for step in range(3):
    run(tf.constant(step, tf.int64))
  assert len(traces) == 1


def test_config_round_trip_with_non_default_arguments():
  layer = RandomizedLayerNorm(epsilon=1e-4, max_noise_stddev=0.3, noise_ramp_steps=500, name="rln")
  clone = RandomizedLayerNorm.from_config(layer.get_config())
  for name in ("epsilon", "max_noise_stddev", "noise_ramp_steps", "name"):
    assert getattr(clone, name) == getattr(layer, name)
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert isinstance(restored, RandomizedLayerNorm)
  assert restored.get_config() == layer.get_config()
