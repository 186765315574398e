"""Semantic FPN head (Kirillov et al. 2019, Panoptic FPN) as a Keras 3 layer.

Each pyramid level l goes through max(1, l - target_level) stages of 3x3 conv (`filters`) + GroupNorm + ReLU, each
stage followed by a 2x bilinear upsample while the map is above the target level; the levels are summed at the target
level (2: 1/4 resolution), a 1x1 conv gives the class logits, and a bilinear x 2^target_level upsample brings them to
the input resolution.

Reaching 1/4 resolution from NAS-FPN's P3..P7: the stage rule itself does it. P3 gets one stage followed by a 2x
upsample (the "extra stage"), P4 two, ..., P7 five. Feeding a backbone P2 as well is optional (`Segmenter` does it with
`head_backbone_p2=True`): level 2 then gets one stage without upsampling, whose 3x3 conv doubles as the lateral
projection of the backbone channels.

Spatial sizes follow the ceil rule of the decoder (size(l) = ceil(size(l - 1) / 2)): upsampled maps can be larger
than the target, and are cropped to its top-left part, which keeps coarse pixels aligned with the fine ones they were
pooled from (bilinear resizing with half-pixel centres by an integer factor puts coarse pixel j's centre at
(j + 0.5) s - 0.5, the centre of the fine pixels [j s, (j + 1) s)).
"""

import keras
import tensorflow as tf

from segmentation import nasfpn


def upsample_bilinear(x, factor, size=None):
  """Bilinear (half-pixel centres) upsampling of [B, H, W, C] by an integer factor, cropped to `size` if given."""
  shape = tf.shape(x)
  x = tf.image.resize(x, [shape[1] * factor, shape[2] * factor], method="bilinear")
  if size is not None:
    x = x[:, :size[0], :size[1], :]
  return x


@keras.saving.register_keras_serializable(package="segmentation")
class SemanticFpnHead(keras.layers.Layer):
  """Pyramid levels -> per-pixel class logits at 2^target_level times the target level's resolution.

  Call arguments:
    features: {level: [B, H_l, W_l, C_l]} for levels >= target_level, with H_l = ceil(H_{l-1} / 2).
    output_size: optional (height, width) of the logits (the image size), at most 2^target_level times the target
      level's size; without it the logits are exactly 2^target_level times the target level's size.
    training: unused (GroupNorm behaves the same in training and inference); accepted for a uniform interface.

  Returns:
    [B, height, width, num_classes] float logits.
  """

  def __init__(self, num_classes=21, filters=128, num_groups=32, target_level=2, **kwargs):
    """Creates the head.

    Args:
      num_classes: output channels (classes).
      filters: channels of every stage.
      num_groups: GroupNorm groups; must divide `filters`.
      target_level: the level at which the levels are summed (2: 1/4 of the input resolution).
      **kwargs: keras.layers.Layer arguments (name, dtype, ...).
    """
    super().__init__(**kwargs)
    if filters % num_groups:
      raise ValueError(f"num_groups must divide filters. Received: filters={filters}, num_groups={num_groups}")
    self.num_classes = num_classes
    self.filters = filters
    self.num_groups = num_groups
    self.target_level = target_level

  def num_stages(self, level):
    """Conv + GroupNorm + ReLU stages applied to `level` (the last `level - target_level` of them upsample)."""
    return max(1, level - self.target_level)

  def build(self, input_shape):
    shapes = nasfpn.level_dict(input_shape, "input_shape")
    if not shapes or min(shapes) < self.target_level:
      raise ValueError(f"SemanticFpnHead needs levels >= target_level={self.target_level}. "
                       f"Received levels: {sorted(shapes)}")
    self._levels = tuple(sorted(shapes))
    self._convs, self._norms = [], []
    for level in self._levels:
      channels = shapes[level][-1]
      for stage in range(self.num_stages(level)):
        conv = keras.layers.Conv2D(self.filters, 3, padding="same", use_bias=False,
                                   kernel_initializer=nasfpn.conv_initializer(), name=f"p{level}_stage{stage}_conv")
        norm = keras.layers.GroupNormalization(self.num_groups, name=f"p{level}_stage{stage}_gn")
        conv.build((None, None, None, channels))
        norm.build((None, None, None, self.filters))
        self._convs.append(conv)
        self._norms.append(norm)
        # Keras 3 lists are invisible to tf.train.Checkpoint; as attributes too, the layers are saved in checkpoints.
        setattr(self, conv.name, conv)
        setattr(self, norm.name, norm)
        channels = self.filters
    # Small weights (as Model Garden's segmentation heads): the untrained logits are near 0 and the first loss near
    # ln(num_classes); He init made them large (first cross-entropy 13-19 for 19-21 classes).
    self._classifier = keras.layers.Conv2D(self.num_classes, 1,
                                           kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                           name="classifier")
    self._classifier.build((None, None, None, self.filters))

  def call(self, features, output_size=None, training=None):
    del training  # GroupNorm has no training mode.
    features = nasfpn.level_dict(features)
    if tuple(sorted(features)) != self._levels:
      raise ValueError(f"SemanticFpnHead was built for levels {self._levels}. Received levels: {sorted(features)}")
    finest = self._levels[0]
    target_size = tf.shape(features[finest])[1:3] * 2**(finest - self.target_level)
    total = None
    k = 0
    for level in self._levels:
      x = features[level]
      for _ in range(self.num_stages(level)):
        x = tf.nn.relu(self._norms[k](self._convs[k](x)))
        k += 1
        if level > self.target_level:
          x = upsample_bilinear(x, 2)
      x = x[:, :target_size[0], :target_size[1], :]
      total = x if total is None else total + x
    logits = self._classifier(total)
    return upsample_bilinear(logits, 2**self.target_level, output_size)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_classes": self.num_classes,
        "filters": self.filters,
        "num_groups": self.num_groups,
        "target_level": self.target_level,
    })
    return config
