"""The segmenter's encoders, exposing pyramid levels P2..P5 as a level-keyed dict: ResNets (keras-cv 0.9
`ResNetBackbone`, ResNet v1, randomly initialised) and EfficientNet-Lite0 (`efficientnet_lite`, ImageNet weights from
`pretrained`). `create` builds one by name, `normalize` maps [0, 1] images to the input range it expects.

The network is always built from architecture arguments and randomly initialised: presets (`from_preset`) download
weights, which is impossible here; a user's own keras.applications ResNet weights load with `applications_weights`.
keras-cv's ResNet has a fixed 64-channel stem (7x7 conv, stride 2, + 3x3 max-pool, stride 2), padded here as
keras.applications pads it (3 and 1 zeros on each side rather than "same" padding's uneven split), so that both compute
the same function; its first basic-block stack has an identity shortcut, so basic-block networks need 64 filters in
stack 0 (bottleneck networks take any widths).
"""

import keras
import keras_cv
import tensorflow as tf

from segmentation import efficientnet_lite
from segmentation import nasfpn

# name -> (block type, blocks per stack). Widths default to RESNET_FILTERS.
RESNET_ARCHITECTURES = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
RESNET_FILTERS = (64, 128, 256, 512)
RESNET_STRIDES = (1, 2, 2, 2)
BLOCK_TYPES = {"basic": "basic_block", "bottleneck": "block"}  # ours -> keras-cv's names
STEM_FILTERS = 64  # fixed by keras-cv
EFFICIENTNET_LITE0 = "efficientnet_lite0"
ARCHITECTURES = tuple(RESNET_ARCHITECTURES) + (EFFICIENTNET_LITE0,)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# --backbone_weights: "none", "imagenet" (EfficientNet-Lite0) or the path of a keras.applications ResNet weights file.
WEIGHTS = ("none", "imagenet")
# The stem layers that keras.applications pads explicitly, and by how much on each side.
_APPLICATIONS_STEM_PADDING = {"conv1_conv": 3, "pool1_pool": 1}


def create(architecture, filters=None, blocks=None, name="backbone"):
  """The encoder `architecture` (one of ARCHITECTURES), randomly initialised.

  Raises:
    ValueError: an unknown architecture. (`filters` and `blocks` shape ResNets; `SegmenterConfig` refuses them for
      EfficientNet-Lite0, whose architecture is fixed.)
  """
  if architecture == EFFICIENTNET_LITE0:
    return efficientnet_lite.EfficientNetLiteFeatures(name=name)
  if architecture not in RESNET_ARCHITECTURES:
    raise ValueError(f"backbone must be one of {list(ARCHITECTURES)}. Received: {architecture!r}")
  return ResNetFeatures(architecture=architecture, stackwise_num_filters=filters, stackwise_num_blocks=blocks,
                        name=name)


def normalize(architecture, images):
  """[B, H, W, 3] images in [0, 1] -> float32 in the range `architecture` expects (ResNets: ImageNet mean and
  standard deviation; EfficientNet-Lite0: [-1, 1], its weights' preprocessing)."""
  if architecture == EFFICIENTNET_LITE0:
    return efficientnet_lite.normalize(images)
  images = tf.cast(images, tf.float32)
  return (images - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


def _valid_stem_layer(layer):
  """clone_model's clone_function: the stem's convolution and pooling with "valid" padding, other layers as they are."""
  config = layer.get_config()
  if layer.name in _APPLICATIONS_STEM_PADDING:
    config["padding"] = "valid"
  return layer.__class__.from_config(config)


def _padded_stem_call(layer, inputs, *args, **kwargs):
  """clone_model's call_function: zero padding before the stem layers, as keras.applications' ResNets have it."""
  if layer.name in _APPLICATIONS_STEM_PADDING:
    inputs = keras.layers.ZeroPadding2D(_APPLICATIONS_STEM_PADDING[layer.name],
                                        name=layer.name.replace("_conv", "_pad").replace("_pool", "_pad"))(inputs)
  return layer(inputs, *args, **kwargs)


@keras.saving.register_keras_serializable(package="segmentation")
class ResNetFeatures(keras.layers.Layer):
  """A keras-cv ResNet v1 whose call returns {2: P2, 3: P3, 4: P4, 5: P5}.

  Level l has stride 2^l: [B, ceil(H / 2^l), ceil(W / 2^l), C_l] with C_l = filters (basic blocks) or 4 x filters
  (bottleneck blocks) of stack l - 2; `channels` lists them. Inputs are normalised images (the `Segmenter` does the
  normalisation), any size.
  """

  def __init__(self, architecture="resnet50", stackwise_num_filters=None, stackwise_num_blocks=None,
               stackwise_num_strides=RESNET_STRIDES, block_type=None, **kwargs):
    """Creates the backbone.

    Args:
      architecture: one of RESNET_ARCHITECTURES; gives the defaults of the arguments below.
      stackwise_num_filters: 4 ints, the width of each stack (RESNET_FILTERS when None).
      stackwise_num_blocks: 4 ints, residual blocks per stack (the architecture's when None).
      stackwise_num_strides: 4 ints, the stride of each stack's first block.
      block_type: "basic" or "bottleneck" (the architecture's when None).
      **kwargs: keras.layers.Layer arguments (name, dtype, ...).

    Raises:
      ValueError: naming the offending argument.
    """
    super().__init__(**kwargs)
    if architecture not in RESNET_ARCHITECTURES:
      raise ValueError(f"architecture must be one of {sorted(RESNET_ARCHITECTURES)}. Received: {architecture!r}")
    default_block_type, default_blocks = RESNET_ARCHITECTURES[architecture]
    self.architecture = architecture
    self.stackwise_num_filters = tuple(stackwise_num_filters or RESNET_FILTERS)
    self.stackwise_num_blocks = tuple(stackwise_num_blocks or default_blocks)
    self.stackwise_num_strides = tuple(stackwise_num_strides)
    self.block_type = block_type or default_block_type
    for arg in ("stackwise_num_filters", "stackwise_num_blocks", "stackwise_num_strides"):
      value = getattr(self, arg)
      if len(value) != 4 or min(value) < 1:
        raise ValueError(f"{arg} must be 4 positive ints (stacks P2..P5). Received: {value}")
    if self.block_type not in BLOCK_TYPES:
      raise ValueError(f"block_type must be one of {sorted(BLOCK_TYPES)}. Received: {self.block_type!r}")
    if self.block_type == "basic" and self.stackwise_num_filters[0] != STEM_FILTERS:
      raise ValueError(f"Basic-block ResNets need {STEM_FILTERS} filters in stack 0: keras-cv's stem has "
                       f"{STEM_FILTERS} channels and the first basic stack has an identity shortcut. Received: "
                       f"stackwise_num_filters={self.stackwise_num_filters}")
    resnet = keras_cv.models.ResNetBackbone(
        stackwise_filters=list(self.stackwise_num_filters), stackwise_blocks=list(self.stackwise_num_blocks),
        stackwise_strides=list(self.stackwise_num_strides), block_type=BLOCK_TYPES[self.block_type],
        include_rescaling=False, input_shape=(None, None, 3))
    level_outputs = [resnet.pyramid_level_inputs[f"P{level}"] for level in self.levels]
    resnet = keras.models.clone_model(resnet, clone_function=_valid_stem_layer, call_function=_padded_stem_call)
    outputs = [resnet.get_layer(name).output for name in level_outputs]
    self.network = keras.Model(resnet.inputs, outputs, name=f"{architecture}_features")

  @property
  def levels(self):
    return (2, 3, 4, 5)

  @property
  def channels(self):
    """{level: channels} of the outputs."""
    expansion = 4 if self.block_type == "bottleneck" else 1
    return {level: expansion * f for level, f in zip(self.levels, self.stackwise_num_filters)}

  def build(self, input_shape):
    del input_shape  # The keras-cv network is built at construction, for any image size.

  def call(self, images, training=None):
    return dict(zip(self.levels, self.network(images, training=training)))

  def compute_output_shape(self, input_shape):
    return nasfpn.level_shapes(input_shape, self.channels)

  def get_config(self):
    config = super().get_config()
    config.update({
        "architecture": self.architecture,
        "stackwise_num_filters": self.stackwise_num_filters,
        "stackwise_num_blocks": self.stackwise_num_blocks,
        "stackwise_num_strides": self.stackwise_num_strides,
        "block_type": self.block_type,
    })
    return config
