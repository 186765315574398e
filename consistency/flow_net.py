"""EFC's flow branch: a FlowNet-like decoder on a shared encoder's features of two frames, with occlusion heads.

    flow_net = FlowNet(levels=(2, 3, 4, 5), correlation_level=3, max_displacement=4)
    out = flow_net({"features_a": encoder(image_a), "features_b": encoder(image_b)})
    out["flow"][2]        # [B, H/4, W/4, 2] flow a -> b in pixels of level 2 (dx, dy)
    out["occlusion"][2]   # [B, H/4, W/4, 1] probability that the pixel of a has no correspondence in b

The encoder is not part of this model: EFC shares the segmenter's (layers 1-3 of a ResNet there; here
`Segmenter.backbone_features`, levels {2: 1/4, ..., 5: 1/32}). Backward flow is the same network on (b, a).

Architecture (FlowNetC's correlation and FlowNetS's refinement, Dosovitskiy et al. 2015; EFC's occlusion heads):
  level c = correlation_level:  cost volume Correlation(a_c, b_c) (normalised by the channels, leaky ReLU) and a
                                1x1 "redirect" conv of a_c, concatenated -> 3x3 conv
  levels c+1 .. L (encoder):    3x3 stride-2 conv of the level below, concatenated with a 1x1 redirect of a_l
                                -> 3x3 conv
  level L (coarsest):           flow_L = 3x3 conv -> 2; occlusion head
  levels L-1 .. min (decoder):  x_l = concat(skip_l, deconv4x4/2(x_{l+1}), upsampled flow_{l+1}) where skip_l is the
                                encoder output at levels >= c and the 1x1 redirect of a_l below c;
                                flow_l = 3x3 conv(x_l) -> 2; occlusion head(x_l)
  occlusion head (EFC):         3x3 conv 32 (leaky ReLU) -> 3x3 conv 1 -> sigmoid
Every other conv is followed by a leaky ReLU (slope 0.1), as in FlowNet; there is no normalisation. Level l has
width `filters * 2^(l - min level)`, at most 8 x filters. The flow predictions start at exactly 0 (zero kernels):
trained without supervision, a random initial flow that points outside the image is never pulled back (EFC's
occlusion target follows the flow and masks those pixels out of the photometric loss).

Units: the flow convs predict flow / `flow_scale` in full-resolution pixels (FlowNet's div_flow = 20), so the raw
predictions are O(1) at every level; the outputs are converted to pixels of their own level (divided by 2^l), the
unit in which they warp that level's images and features. Pixel centres sit at integer coordinates, so a
displacement scales exactly by the resize factor (`upsample_flow`). Outputs are float32.
"""

import keras
import tensorflow as tf

from depth_motion import correlation as correlation_lib

LEAKY_SLOPE = 0.1
OCCLUSION_HEAD_FILTERS = 32
MAX_WIDTH_MULTIPLIER = 8


def _levels(features, name):
  """{int level: tensor} from a dict whose keys may be ints or their strings (JSON round trips)."""
  if not isinstance(features, dict):
    raise ValueError(f"{name} must be a dict {{level: [B, H_l, W_l, C_l]}}. Received: {type(features).__name__}")
  return {int(level): value for level, value in features.items()}


def _leaky(x):
  return tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)


def resize_flow(flow, size):
  """Bilinear resize of a flow field to `size` (h, w), rescaling each component by the size ratio.

  Args:
    flow: [B, H, W, 2] (dx, dy) in pixels of its own grid.
    size: (h, w) target size (ints or scalar tensors).

  Returns:
    [B, h, w, 2] float32 in pixels of the target grid.
  """
  flow = tf.cast(flow, tf.float32)
  shape = tf.shape(flow)
  height, width = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
  ratio = tf.stack([width / tf.cast(shape[2], tf.float32), height / tf.cast(shape[1], tf.float32)])
  return tf.image.resize(flow, tf.cast(tf.stack([size[0], size[1]]), tf.int32), method="bilinear") * ratio


def upsample_flow(flow, factor):
  """`resize_flow` by an integer factor: [B, H, W, 2] -> [B, H * factor, W * factor, 2]."""
  shape = tf.shape(flow)
  return resize_flow(flow, (shape[1] * factor, shape[2] * factor))


@keras.saving.register_keras_serializable(package="consistency")
class OcclusionHead(keras.layers.Layer):
  """EFC's occlusion head: 3x3 conv 32 (leaky ReLU) -> 3x3 conv 1. Call: [B, H, W, C] -> logits [B, H, W, 1]."""

  def __init__(self, filters=OCCLUSION_HEAD_FILTERS, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.hidden = keras.layers.Conv2D(filters, 3, padding="same", name="hidden")
    self.logits = keras.layers.Conv2D(1, 3, padding="same", name="logits")

  def build(self, input_shape):
    self.hidden.build(input_shape)
    self.logits.build(tuple(input_shape[:-1]) + (self.filters,))

  def call(self, x):
    return self.logits(_leaky(self.hidden(x)))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (1,)

  def get_config(self):
    config = super().get_config()
    config["filters"] = self.filters
    return config


@keras.saving.register_keras_serializable(package="consistency")
class FlowNet(keras.Model):
  """Two frames' encoder levels -> flow a -> b and occlusion of a at several levels (see the module docstring).

  Call arguments:
    inputs: {"features_a": {level: [B, H_l, W_l, C_l]}, "features_b": {...}}, holding every level of `levels`
      (more are ignored); H_l = ceil(H_{l-1} / 2), as the segmenter's backbone gives them.
    training: unused (no dropout or normalisation), accepted for a uniform interface.

  Returns:
    {"flow": {level: [B, H_l, W_l, 2]} in pixels of that level, "occlusion": {level: [B, H_l, W_l, 1]} in [0, 1],
     "occlusion_logits": {level: [B, H_l, W_l, 1]}}, all float32, for every level of `levels`.
  """

  def __init__(self, levels=(2, 3, 4, 5), correlation_level=3, max_displacement=4, displacement_stride=1,
               filters=32, redirect_filters=32, flow_scale=20.0, **kwargs):
    """Creates the layers (built by the first call).

    Args:
      levels: consecutive encoder levels to predict at (the finest is the output level).
      correlation_level: level of the cost volume; one of `levels`.
      max_displacement: correlation radius in pixels of that level.
      displacement_stride: step between correlation displacements.
      filters: width at the finest level (doubling per level, at most 8 x).
      redirect_filters: channels of the 1x1 convs that bring frame a's features into the decoder.
      flow_scale: full-resolution pixels per unit of the raw flow predictions.
      **kwargs: keras.Model arguments (name, ...).

    Raises:
      ValueError: naming the offending argument.
    """
    super().__init__(**kwargs)
    levels = tuple(int(level) for level in levels)
    if not levels or list(levels) != list(range(levels[0], levels[0] + len(levels))):
      raise ValueError(f"levels must be consecutive and increasing. Received: levels={levels}")
    if correlation_level not in levels:
      raise ValueError(f"correlation_level must be one of levels {levels}. Received: {correlation_level}")
    if filters < 1 or redirect_filters < 1 or flow_scale <= 0:
      raise ValueError(f"filters, redirect_filters and flow_scale must be positive. Received: filters={filters}, "
                       f"redirect_filters={redirect_filters}, flow_scale={flow_scale}")
    self.levels = levels
    self.correlation_level = int(correlation_level)
    self.max_displacement = int(max_displacement)
    self.displacement_stride = int(displacement_stride)
    self.filters = int(filters)
    self.redirect_filters = int(redirect_filters)
    self.flow_scale = float(flow_scale)
    self.correlation = correlation_lib.Correlation(max_displacement, displacement_stride, name="correlation")
    # Keras 3 does not track layers held in Python containers for tf.train.Checkpoint: every layer is an attribute,
    # looked up by name.
    for level in levels:
      width = self.width(level)
      self._add(keras.layers.Conv2D(self.redirect_filters, 1, name=f"redirect_{level}"))
      if level >= self.correlation_level:
        if level > self.correlation_level:
          self._add(keras.layers.Conv2D(width, 3, strides=2, padding="same", name=f"down_{level}"))
        self._add(keras.layers.Conv2D(width, 3, padding="same", name=f"encode_{level}"))
      if level < levels[-1]:
        self._add(keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", name=f"up_{level}"))
      # Zero-initialised: the flow starts at 0 everywhere. A random start puts correspondences outside the image,
      # where the occlusion target (which follows the flow) then masks them out of the photometric loss for good.
      self._add(keras.layers.Conv2D(2, 3, padding="same", kernel_initializer="zeros", name=f"predict_flow_{level}"))
      self._add(OcclusionHead(name=f"occlusion_{level}"))

  def _add(self, layer):
    setattr(self, layer.name, layer)

  def _layer(self, kind, level):
    return getattr(self, f"{kind}_{level}")

  def width(self, level):
    """Channels of the decoder at `level`."""
    return self.filters * min(2 ** (level - self.levels[0]), MAX_WIDTH_MULTIPLIER)

  def to_pixels(self, raw, level):
    """Raw prediction -> flow in pixels of `level` (float32)."""
    return tf.cast(raw, tf.float32) * (self.flow_scale / 2.0 ** level)

  def call(self, inputs, training=None):
    del training
    if not isinstance(inputs, dict) or not {"features_a", "features_b"} <= set(inputs):
      raise ValueError("FlowNet takes {'features_a': {level: tensor}, 'features_b': {level: tensor}}. Received: "
                       f"{sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__}")
    features_a = _levels(inputs["features_a"], "features_a")
    features_b = _levels(inputs["features_b"], "features_b")
    missing = [level for level in self.levels if level not in features_a]
    if missing or self.correlation_level not in features_b:
      raise ValueError(f"FlowNet needs levels {self.levels} of features_a and level {self.correlation_level} of "
                       f"features_b. Received: {sorted(features_a)} and {sorted(features_b)}")
    dtype = self.compute_dtype
    features_a = {level: tf.cast(features_a[level], dtype) for level in self.levels}
    level_c = self.correlation_level

    skips = {}
    cost = _leaky(self.correlation([features_a[level_c], tf.cast(features_b[level_c], dtype)]))
    x = tf.concat([cost, _leaky(self._layer("redirect", level_c)(features_a[level_c]))], axis=-1)
    skips[level_c] = _leaky(self._layer("encode", level_c)(x))
    for level in self.levels:
      if level > level_c:
        down = _leaky(self._layer("down", level)(skips[level - 1]))
        redirect = _leaky(self._layer("redirect", level)(features_a[level]))
        shape = tf.shape(redirect)
        down = down[:, :shape[1], :shape[2], :]
        skips[level] = _leaky(self._layer("encode", level)(tf.concat([down, redirect], axis=-1)))
      elif level < level_c:
        skips[level] = _leaky(self._layer("redirect", level)(features_a[level]))

    raw_flow, flow, logits = {}, {}, {}
    x = None
    for level in reversed(self.levels):
      if x is None:
        x = skips[level]
      else:
        size = tf.shape(skips[level])[1:3]
        up = _leaky(self._layer("up", level)(x))[:, :size[0], :size[1], :]
        # Raw units are full-resolution pixels, so the coarser prediction needs no rescaling, only resampling.
        coarse = tf.image.resize(tf.cast(raw_flow[level + 1], tf.float32), size, method="bilinear")
        x = tf.concat([skips[level], up, tf.cast(coarse, dtype)], axis=-1)
      raw_flow[level] = self._layer("predict_flow", level)(x)
      flow[level] = self.to_pixels(raw_flow[level], level)
      logits[level] = tf.cast(self._layer("occlusion", level)(x), tf.float32)
    return {"flow": flow, "occlusion": {level: tf.sigmoid(v) for level, v in logits.items()},
            "occlusion_logits": logits}

  def architecture(self):
    """The constructor arguments that rebuild this network (JSON types): `FlowNet(**architecture)`."""
    return {"levels": list(self.levels), "correlation_level": self.correlation_level,
            "max_displacement": self.max_displacement, "displacement_stride": self.displacement_stride,
            "filters": self.filters, "redirect_filters": self.redirect_filters, "flow_scale": self.flow_scale}

  def get_config(self):
    config = super().get_config()
    config.update(self.architecture())
    return config


def build_flow_net(flow_net, channels, batch_size=1, image_size=(64, 64)):
  """Creates `flow_net`'s weights by one call on zeros shaped like an encoder's levels; returns `flow_net`.

  Args:
    flow_net: a `FlowNet`.
    channels: {level: C_l} of the encoder (e.g. `ResNetFeatures.channels`).
    batch_size, image_size: shape of the dummy input (any size divisible by 2^max level).
  """
  height, width = image_size
  features = {level: tf.zeros([batch_size, -(-height // 2**level), -(-width // 2**level), channels[level]])
              for level in flow_net.levels}
  flow_net({"features_a": features, "features_b": features})
  return flow_net
