"""Randomized layer normalization: the depth network's substitute for batch normalization (Gordon et al. 2019).

Every sample and channel is normalized with its own mean and variance over height and width (instance-norm-like), so
a prediction never depends on the rest of the batch. In training only, the mean and the variance are multiplied by
(1 + noise), with truncated-normal noise drawn per sample and channel; its standard deviation ramps up
parabolically with the training step: s = max_noise_stddev * min(step / noise_ramp_steps, 1)^2.
"""

import keras
import tensorflow as tf


def noise_stddev(step, max_noise_stddev=0.5, noise_ramp_steps=10000):
  """The noise standard deviation at a training step: max_noise_stddev * min(step / noise_ramp_steps, 1)^2.

  Args:
    step: scalar (Python number or tensor), the global training step; None means the ramp is complete.
    max_noise_stddev: the value reached at the end of the ramp. 0.5 is the largest for which the multiplicative
      factor 1 + noise (noise truncated at two standard deviations) stays non-negative.
    noise_ramp_steps: steps until the ramp reaches `max_noise_stddev`; 0 means no ramp.

  Returns:
    float32 scalar tensor.
  """
  if step is None or noise_ramp_steps <= 0:
    return tf.constant(max_noise_stddev, tf.float32)
  progress = tf.minimum(tf.cast(step, tf.float32) / float(noise_ramp_steps), 1.0)
  return max_noise_stddev * tf.square(tf.maximum(progress, 0.0))


@keras.saving.register_keras_serializable(package="depth_motion")
class RandomizedLayerNorm(keras.layers.Layer):
  """Per-sample, per-channel normalization over H and W with multiplicative noise on the moments in training.

  out = gamma * (x - mean') / sqrt(variance' + epsilon) + beta, where in training mean' = mean (1 + n1) and
  variance' = variance (1 + n2), n1 and n2 truncated normal with standard deviation `noise_stddev(step)`, drawn per
  [B, 1, 1, C]; at inference mean' = mean and variance' = variance.

  Call arguments:
    inputs: [B, H, W, C].
    training: Python bool; noise only when True.
    step: scalar global training step (pass a tensor inside `tf.function` to avoid retracing). It drives the noise
      ramp; None means the ramp is complete (full `max_noise_stddev`). Ignored at inference.

  Returns:
    [B, H, W, C].
  """

  def __init__(self, epsilon=1e-3, max_noise_stddev=0.5, noise_ramp_steps=10000, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon
    self.max_noise_stddev = max_noise_stddev
    self.noise_ramp_steps = noise_ramp_steps

  def build(self, input_shape):
    if len(input_shape) != 4 or input_shape[-1] is None:
      raise ValueError(f"RandomizedLayerNorm expects [B, H, W, C] inputs with a known C. Received: input_shape="
                       f"{input_shape}")
    channels = input_shape[-1]
    self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
    self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

  def call(self, inputs, training=None, step=None):
    mean, variance = tf.nn.moments(inputs, axes=[1, 2], keepdims=True)
    if training and self.max_noise_stddev > 0:
      stddev = tf.cast(noise_stddev(step, self.max_noise_stddev, self.noise_ramp_steps), inputs.dtype)
      shape = tf.shape(mean)
      mean = mean * (1.0 + stddev * tf.random.truncated_normal(shape, dtype=inputs.dtype))
      variance = variance * (1.0 + stddev * tf.random.truncated_normal(shape, dtype=inputs.dtype))
    return tf.nn.batch_normalization(inputs, mean, variance, offset=tf.cast(self.beta, inputs.dtype),
                                     scale=tf.cast(self.gamma, inputs.dtype), variance_epsilon=self.epsilon)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update({"epsilon": self.epsilon, "max_noise_stddev": self.max_noise_stddev,
                   "noise_ramp_steps": self.noise_ramp_steps})
    return config
