"""The segmenter and its parts: backbone levels, head stages, shapes at many sizes, configs, save/load, a train step."""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets import labels
from segmentation import backbone
from segmentation import segmenter
from segmentation import semantic_head
from tests import tiny

# Tiny: a bottleneck ResNet with one block per stack and widths 8..16 (x4 expansion), NAS-FPN 16 x 1 repeat.
TINY = tiny.SEGMENTER_CONFIG


@pytest.fixture(scope="module")
def tiny_model():
  return segmenter.build_segmenter(TINY)


def _ceil(size, level):
  return tuple(-(-s // 2**level) for s in size)


# Backbone.

def test_named_backbones_have_the_published_parameter_counts():
  # keras-cv's preset metadata: ResNet-18 v1 11,186,112 and ResNet-50 v1 23,561,152 parameters.
  assert backbone.ResNetFeatures("resnet18").network.count_params() == 11_186_112
  assert backbone.ResNetFeatures("resnet50").network.count_params() == 23_561_152


@pytest.mark.parametrize("architecture, filters, channels", [
    ("resnet18", (64, 16, 16, 16), {2: 64, 3: 16, 4: 16, 5: 16}),
    ("resnet50", (8, 8, 16, 16), {2: 32, 3: 32, 4: 64, 5: 64}),
])
def test_backbone_levels(architecture, filters, channels):
  layer = backbone.ResNetFeatures(architecture, stackwise_num_filters=filters, stackwise_num_blocks=(1, 1, 1, 1))
  features = layer(tf.random.normal([2, 96, 160, 3]))
  assert layer.channels == channels
  assert {level: tuple(x.shape) for level, x in features.items()} == {
      level: (2, *_ceil((96, 160), level), c) for level, c in channels.items()}


def test_basic_block_backbone_needs_64_filters_in_stack_0():
  with pytest.raises(ValueError, match="64 filters in stack 0"):
    backbone.ResNetFeatures("resnet18", stackwise_num_filters=(8, 8, 16, 16))
  with pytest.raises(ValueError, match="architecture"):
    backbone.ResNetFeatures("resnet19")


def test_backbone_config_round_trip_with_non_default_arguments():
  # resnet34 is a basic-block network: bottleneck blocks are a non-default block type.
  layer = backbone.ResNetFeatures("resnet34", stackwise_num_filters=(8, 8, 8, 4), stackwise_num_blocks=(1, 2, 1, 1),
                                  stackwise_num_strides=(1, 2, 2, 1), block_type="bottleneck", name="enc")
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert type(restored) is backbone.ResNetFeatures
  assert restored.get_config() == layer.get_config()
  assert (restored.architecture, restored.stackwise_num_filters, restored.stackwise_num_blocks,
          restored.stackwise_num_strides, restored.block_type, restored.name) == (
              "resnet34", (8, 8, 8, 4), (1, 2, 1, 1), (1, 2, 2, 1), "bottleneck", "enc")
  assert restored.network.count_params() == layer.network.count_params()


# Semantic head.

def test_head_stage_rule_and_output_size():
  head = semantic_head.SemanticFpnHead(num_classes=5, filters=8, num_groups=2)
  size = (96, 160)
  features = {level: tf.random.normal([2, *_ceil(size, level), 16]) for level in range(3, 8)}
  # max(1, l - 2) stages: 1 + 2 + 3 + 4 + 5 = 15 convs (kernel) + GroupNorms (gamma, beta), plus the classifier.
  logits = head(features, output_size=size)
  assert [head.num_stages(level) for level in range(3, 8)] == [1, 2, 3, 4, 5]
  assert len(head.weights) == 15 * 3 + 2
  assert tuple(logits.shape) == (2, 96, 160, 5)
  # Without output_size: 4 x the level-2 size, i.e. 8 x P3.
  assert tuple(head(features).shape) == (2, 96, 160, 5)
  # A level-2 input gets one stage and no upsampling.
  head_p2 = semantic_head.SemanticFpnHead(num_classes=5, filters=8, num_groups=2)
  features[2] = tf.random.normal([2, 24, 40, 6])
  assert tuple(head_p2(features, output_size=size).shape) == (2, 96, 160, 5)
  assert len(head_p2.weights) == 16 * 3 + 2


def test_upsample_bilinear_is_an_integer_factor_resize_then_crop():
  x = tf.random.normal([1, 3, 5, 2])
  np.testing.assert_allclose(semantic_head.upsample_bilinear(x, 4), tf.image.resize(x, [12, 20], "bilinear"))
  np.testing.assert_allclose(semantic_head.upsample_bilinear(x, 4, (10, 17)),
                             tf.image.resize(x, [12, 20], "bilinear")[:, :10, :17])
  np.testing.assert_allclose(semantic_head.upsample_bilinear(tf.ones([1, 2, 2, 1]), 2), tf.ones([1, 4, 4, 1]))


def test_head_config_round_trip_with_non_default_arguments():
  head = semantic_head.SemanticFpnHead(num_classes=7, filters=24, num_groups=6, target_level=3, name="h")
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
  assert type(restored) is semantic_head.SemanticFpnHead
  assert restored.get_config() == head.get_config()
  assert (restored.num_classes, restored.filters, restored.num_groups, restored.target_level, restored.name) == (
      7, 24, 6, 3, "h")
  with pytest.raises(ValueError, match="num_groups must divide"):
    semantic_head.SemanticFpnHead(filters=24, num_groups=5)


# Segmenter.

def test_logits_at_many_sizes(tiny_model):
  graph = tf.function(lambda x: tiny_model(x, training=False)["logits"],
                      input_signature=[tf.TensorSpec([None, None, None, 3])])
  for size in [(64, 64), (96, 160), (128, 160), (256, 320), (100, 150)]:
    images = tf.random.uniform([1, *size, 3])
    logits = tiny_model(images, training=False)["logits"]
    assert tuple(logits.shape) == (1, *size, labels.NUM_CLASSES)
    np.testing.assert_allclose(graph(images), logits, atol=1e-4)


def test_features_are_exposed(tiny_model):
  images = tf.random.uniform([2, 96, 160, 3])
  outputs = tiny_model(images, training=False, return_features=True)
  assert sorted(outputs) == ["features", "logits", "pyramid"]
  assert {level: tuple(x.shape) for level, x in outputs["features"].items()} == {
      2: (2, 24, 40, 32), 3: (2, 12, 20, 32), 4: (2, 6, 10, 64), 5: (2, 3, 5, 64)}
  assert {level: tuple(x.shape) for level, x in outputs["pyramid"].items()} == {
      3: (2, 12, 20, 16), 4: (2, 6, 10, 16), 5: (2, 3, 5, 16), 6: (2, 2, 3, 16), 7: (2, 1, 2, 16)}
  encoded = tiny_model.backbone_features(images, training=False)
  for level, x in encoded.items():
    np.testing.assert_allclose(x, outputs["features"][level], atol=1e-5)
  assert list(tiny_model(images)) == ["logits"]


def test_normalisation_per_backbone():
  """ResNets: ImageNet mean and std; EfficientNet-Lite0: [0, 1] -> [-1, 1] as (255 x - 127) / 128."""
  images = tf.constant(np.broadcast_to(backbone.IMAGENET_MEAN, [1, 2, 2, 3]), tf.float32)
  np.testing.assert_allclose(backbone.normalize("resnet50", images), 0.0, atol=1e-6)
  ones = backbone.normalize("resnet18", tf.ones([1, 1, 1, 3]))[0, 0, 0]
  np.testing.assert_allclose(ones, (1 - np.array(backbone.IMAGENET_MEAN)) / backbone.IMAGENET_STD, rtol=1e-6)
  lite = backbone.normalize("efficientnet_lite0", tf.constant([[[[0.0, 127 / 255, 1.0]]]]))[0, 0, 0]
  np.testing.assert_allclose(lite, [-127 / 128, 0.0, 1.0], atol=1e-6)


_LITE0 = dataclasses.replace(TINY, backbone="efficientnet_lite0", backbone_filters=None, backbone_blocks=None)


@pytest.mark.parametrize("config", [TINY, _LITE0], ids=["resnet", "lite0"])
def test_first_step_cross_entropy_is_about_log_num_classes(config):
  """The classifier starts small (normal, stddev 0.01): the untrained loss is ln C, not 13-19 as with He init."""
  keras.utils.set_random_seed(0)
  model = segmenter.Segmenter(config)
  images = tf.random.stateless_uniform([2, 64, 64, 3], [0, 1])
  labels_ = tf.random.stateless_uniform([2, 64, 64], [0, 2], maxval=config.num_classes, dtype=tf.int32)
  logits = model(images, training=True)["logits"]
  loss = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels_, logits)))
  assert loss == pytest.approx(math.log(config.num_classes), rel=0.2)


def test_imagenet_weights_only_for_efficientnet_lite0():
  with pytest.raises(ValueError, match="efficientnet_lite0 only"):
    segmenter.SegmenterConfig(backbone="resnet50", backbone_weights="imagenet")
  with pytest.raises(ValueError, match="backbone_weights must be one of"):
    segmenter.SegmenterConfig(backbone="efficientnet_lite0", backbone_weights="coco")
  with pytest.raises(ValueError, match="efficientnet_lite0 is fixed"):
    segmenter.SegmenterConfig(backbone="efficientnet_lite0", backbone_filters=(8, 8, 16, 16))


def test_efficientnet_lite0_backbone_starts_from_imagenet():
  """The segmenter's encoder holds the ImageNet weights after building (the classifier-free part of the network)."""
  from segmentation import pretrained  # pylint: disable=import-outside-toplevel

  config = dataclasses.replace(TINY, backbone="efficientnet_lite0", backbone_filters=None, backbone_blocks=None,
                               backbone_weights="imagenet")
  model = segmenter.Segmenter(config)
  model.build((None, 64, 64, 3))
  weights = pretrained.converted_weights()
  np.testing.assert_array_equal(model.backbone.stem_conv.get_weights()[0], weights["stem_conv"][0])
  np.testing.assert_array_equal(model.backbone.blocks[-1].project_bn.get_weights()[3], weights["block15/project_bn"][3])
  assert model.backbone.channels == {2: 24, 3: 40, 4: 112, 5: 320}
  levels = model.backbone_features(tf.zeros([1, 64, 96, 3]))
  assert {level: tuple(x.shape) for level, x in levels.items()} == {
      2: (1, 16, 24, 24), 3: (1, 8, 12, 40), 4: (1, 4, 6, 112), 5: (1, 2, 3, 320)}


def test_config_round_trip_with_non_default_fields():
  config = segmenter.SegmenterConfig(
      backbone="resnet18", backbone_filters=(64, 8, 8, 16), backbone_blocks=(1, 1, 2, 1), nasfpn_filters=24,
      nasfpn_repeats=2, head_filters=12, head_groups=3, head_backbone_p2=True, num_classes=9, input_size=(96, 160),
      sync_batch_norm=True)
  # backbone_weights="imagenet" needs efficientnet_lite0, which has no filters or blocks: round-tripped below.
  assert all(getattr(config, f.name) != f.default for f in dataclasses.fields(config) if f.name != "backbone_weights")
  assert segmenter.SegmenterConfig.from_dict(config.to_dict()) == config
  lite = segmenter.SegmenterConfig(backbone="efficientnet_lite0", backbone_weights="imagenet")
  assert segmenter.SegmenterConfig.from_dict(lite.to_dict()) == lite
  # JSON turns tuples into lists; they come back as tuples.
  as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}
  assert segmenter.SegmenterConfig.from_dict(as_json) == config
  model = segmenter.Segmenter(config, name="seg")
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
  assert type(restored) is segmenter.Segmenter and restored.config == config and restored.name == "seg"
  with pytest.raises(ValueError, match="head_fliters"):
    segmenter.SegmenterConfig.from_dict({"head_fliters": 3})


def test_save_and_load_give_identical_outputs(tmp_path):
  config = dataclasses.replace(TINY, head_backbone_p2=True, num_classes=5)
  model = segmenter.build_segmenter(config)
  images = tf.random.uniform([2, 64, 96, 3])
  expected = model(images, training=False)["logits"]
  model.save(tmp_path / "m.keras")
  restored = keras.models.load_model(tmp_path / "m.keras")
  assert type(restored) is segmenter.Segmenter and restored.config == config
  assert len(restored.weights) == len(model.weights)
  np.testing.assert_array_equal(restored(images, training=False)["logits"], expected)


def test_one_training_step_changes_weights_and_keeps_them_finite():
  model = segmenter.build_segmenter(TINY)
  images = tf.random.uniform([2, 64, 64, 3])
  label = tf.random.uniform([2, 64, 64], 0, labels.NUM_CLASSES, tf.int32)
  label = tf.where(tf.random.uniform([2, 64, 64]) < 0.2, labels.IGNORE_LABEL, label)
  optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
  before = [v.numpy() for v in model.weights]
  with tf.GradientTape() as tape:
    logits = model(images, training=True)["logits"]
    assert tuple(logits.shape) == (2, 64, 64, labels.NUM_CLASSES)
    valid = label != labels.IGNORE_LABEL
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.boolean_mask(label, valid), tf.boolean_mask(logits, valid)))
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None and np.all(np.isfinite(g)) for g in grads)
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  assert np.isfinite(loss.numpy())
  changed = {v.path: not np.array_equal(v.numpy(), b) for v, b in zip(model.weights, before)}
  trainable = {v.path for v in model.trainable_variables}
  assert all(changed[path] for path in trainable), [p for p in trainable if not changed[p]]
  # BN moving statistics moved too (training mode).
  assert any(changed[v.path] for v in model.non_trainable_variables)
  assert all(np.all(np.isfinite(v.numpy())) for v in model.weights)


def test_bad_image_shape_is_named(tiny_model):
  with pytest.raises(ValueError, match=r"images must be \[B, H, W, 3\]. Received: images of shape \(64, 64, 3\)"):
    tiny_model(tf.zeros([64, 64, 3]))
