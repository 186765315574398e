"""The correlation layer of FlowNetC (Dosovitskiy et al. 2015; Ilg et al. 2017): a cost volume of two feature maps.

    volume = Correlation(max_displacement=4, displacement_stride=1)([features_a, features_b])

For every position x of `features_a` and every displacement d = (dx, dy) on the grid
{-max_displacement, ..., max_displacement} (step `displacement_stride`) in both axes:

    volume[b, y, x, k(d)] = sum_c features_a[b, y, x, c] * features_b[b, y + dy, x + dx, c] / C

with zeros outside `features_b`, and k(d) = row-major over (dy, dx): k = i_y * n + i_x, n = 2 r + 1 displacements per
axis, r = max_displacement // displacement_stride (FlowNet's channel order). Dividing by the channel count is
FlowNet's normalisation (kernel size 1). `stride` subsamples the output positions (FlowNet's stride1): output pixel
(i, j) is input position (i * stride, j * stride).

Displacements are in pixels of the feature map (e.g. 4 at 1/8 resolution is 32 image pixels).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="depth_motion")
class Correlation(keras.layers.Layer):
  """[features_a [B, H, W, C], features_b [B, H, W, C]] -> [B, ceil(H / stride), ceil(W / stride), n^2]."""

  def __init__(self, max_displacement=4, displacement_stride=1, stride=1, **kwargs):
    """Creates the layer (it has no weights).

    Args:
      max_displacement: largest displacement per axis, in feature pixels (>= 0).
      displacement_stride: step between displacements (>= 1); r = max_displacement // displacement_stride.
      stride: output sampling stride (>= 1).
      **kwargs: keras.layers.Layer arguments (name, dtype, ...).

    Raises:
      ValueError: naming the offending argument.
    """
    super().__init__(**kwargs)
    if max_displacement < 0:
      raise ValueError(f"max_displacement must be >= 0. Received: max_displacement={max_displacement}")
    if displacement_stride < 1 or stride < 1:
      raise ValueError(f"displacement_stride and stride must be >= 1. Received: displacement_stride="
                       f"{displacement_stride}, stride={stride}")
    self.max_displacement = int(max_displacement)
    self.displacement_stride = int(displacement_stride)
    self.stride = int(stride)

  @property
  def radius(self):
    """Displacements per side and axis (r): the grid is (2 r + 1)^2."""
    return self.max_displacement // self.displacement_stride

  @property
  def channels(self):
    """Output channels: (2 r + 1)^2."""
    return (2 * self.radius + 1) ** 2

  def call(self, inputs):
    features_a, features_b = inputs
    if features_a.shape.rank != 4 or features_b.shape.rank != 4:
      raise ValueError(f"Correlation takes two [B, H, W, C] tensors. Received shapes {features_a.shape} and "
                       f"{features_b.shape}")
    reach = self.radius * self.displacement_stride
    height, width = tf.shape(features_a)[1], tf.shape(features_a)[2]
    padded = tf.pad(features_b, [[0, 0], [reach, reach], [reach, reach], [0, 0]])
    if self.stride > 1:
      features_a = features_a[:, ::self.stride, ::self.stride, :]
    channels = tf.cast(tf.shape(features_a)[-1], features_a.dtype)
    slices = []
    for dy in range(-reach, reach + 1, self.displacement_stride):
      for dx in range(-reach, reach + 1, self.displacement_stride):
        shifted = padded[:, reach + dy:reach + dy + height, reach + dx:reach + dx + width, :]
        if self.stride > 1:
          shifted = shifted[:, ::self.stride, ::self.stride, :]
        slices.append(tf.reduce_sum(features_a * shifted, axis=-1))
    return tf.stack(slices, axis=-1) / channels

  def compute_output_shape(self, input_shape):
    shape_a = input_shape[0]

    def sampled(size):
      return None if size is None else -(-size // self.stride)

    return (shape_a[0], sampled(shape_a[1]), sampled(shape_a[2]), self.channels)

  def get_config(self):
    config = super().get_config()
    config.update({"max_displacement": self.max_displacement, "displacement_stride": self.displacement_stride,
                   "stride": self.stride})
    return config
