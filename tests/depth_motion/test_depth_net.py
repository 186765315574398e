"""The ResNet-18 U-Net depth network: shapes, positivity, configs, saving, a training step, the flip trick."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from depth_motion import depth_net
from depth_motion import losses
from depth_motion import motion_net
from depth_motion import randomized_layer_norm

HEIGHT, WIDTH = 64, 64
# Non-default arguments everywhere, so that a config key that does not come back shows up.
CONFIG = dict(input_normalization="symmetric", max_noise_stddev=0.3, noise_ramp_steps=500)

# torchvision's ResNet-18 has 11,689,512 parameters: minus the classifier (513,000) and the batch-norm scales and
# offsets (9,600), its convolutions hold 11,166,912. Ours adds gamma and beta of the 20 normalizations in the blocks
# and after conv1 (the 1x1 shortcuts are not normalized): 2 x 3,904.
RESNET18_CONV_PARAMS = 11_166_912
ENCODER_NORM_PARAMS = 2 * 3_904


@pytest.fixture(scope="module")
def net():
  model = depth_net.DepthNet(**CONFIG)
  model(tf.zeros([1, HEIGHT, WIDTH, 3]))
  return model


def _images(batch=2, seed=0):
  return tf.random.stateless_uniform([batch, HEIGHT, WIDTH, 3], seed=[seed, 1])


def test_call_shapes_and_positive_depth(net):
  depth = net(_images())["depth"]
  assert depth.shape == (2, HEIGHT, WIDTH)
  assert depth.dtype == tf.float32
  assert np.all(np.isfinite(depth)) and np.all(depth > 0)
  assert net.encoder.count_params() == RESNET18_CONV_PARAMS + ENCODER_NORM_PARAMS


def test_encoder_levels_and_no_conv_bias(net):
  features = net.encoder(net.normalize_images(_images()))
  assert sorted(features) == [1, 2, 3, 4, 5]
  for level, channels in zip(range(1, 6), (64, 64, 128, 256, 512)):
    assert features[level].shape == (2, HEIGHT >> level, WIDTH >> level, channels)
  convs = [layer for layer in net.encoder._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
  assert len(convs) == 20 and not any(conv.use_bias for conv in convs)
  norms = [layer for layer in net.encoder._flatten_layers()
           if isinstance(layer, randomized_layer_norm.RandomizedLayerNorm)]
  assert len(norms) == 17


def test_inference_is_deterministic_and_batch_independent(net):
  images = _images(3)
  depth = net(images, training=False)["depth"]
  np.testing.assert_allclose(net(images, training=False)["depth"], depth)
  np.testing.assert_allclose(net(images[1:2], training=False)["depth"], depth[1:2], rtol=1e-5, atol=1e-6)
  noisy = net(images, training=True, step=tf.constant(10**6))["depth"]
  assert np.abs(noisy - depth).max() > 0


def test_flip_min_depth(net):
  images = _images()
  direct = net(images)["depth"]
  flipped = tf.reverse(net(tf.reverse(images, [2]))["depth"], [2])
  result = depth_net.flip_min_depth(net, images)
  np.testing.assert_allclose(result, np.minimum(direct, flipped), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 60, 64, 3), (1, 64, 48, 3)])
def test_size_not_divisible_by_32_is_a_clear_error(net, shape):
  with pytest.raises(ValueError, match=r"divisible by 32.*" + str(shape).replace("(", r"\(").replace(")", r"\)")):
    net(tf.zeros(shape))


def test_unknown_input_normalization_is_an_error():
  with pytest.raises(ValueError, match="input_normalization"):
    depth_net.DepthNet(input_normalization="caffe")


def test_config_round_trip():
  arguments = dict(reflect_padding=False, **CONFIG)
  defaults = {name: p.default for name, p in inspect.signature(depth_net.DepthNet).parameters.items()}
  assert all(defaults[name] != value for name, value in arguments.items())
  model = depth_net.DepthNet(**arguments)
  clone = depth_net.DepthNet.from_config(model.get_config())
  assert clone.get_config() == model.get_config()
  for name, value in arguments.items():
    assert getattr(clone, name) == value


def test_keras_save_and_load_round_trip(net, tmp_path):
  images = _images()
  path = tmp_path / "depth.keras"
  net.save(path)
  restored = keras.models.load_model(path)
  assert isinstance(restored, depth_net.DepthNet)
  assert restored.get_config() == net.get_config()
  np.testing.assert_array_equal(restored(images)["depth"], net(images)["depth"])


def test_one_training_step_changes_weights_and_keeps_them_finite(net):
  images = _images()
  before = [w.numpy() for w in net.trainable_weights]
  try:
    with tf.GradientTape() as tape:
      depth = net(images, training=True, step=tf.constant(100))["depth"]
      loss = tf.reduce_mean(tf.square(tf.math.log(depth) - 1.0))
    gradients = tape.gradient(loss, net.trainable_weights)
    assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)
    keras.optimizers.Adam(1e-3).apply_gradients(zip(gradients, net.trainable_weights))
    after = [w.numpy() for w in net.trainable_weights]
    assert all(np.all(np.isfinite(w)) for w in after)
    changed = [not np.array_equal(b, a) for b, a in zip(before, after)]
    assert all(changed), f"{changed.count(False)} of {len(changed)} weights did not change"
  finally:
    for weight, value in zip(net.trainable_weights, before):
      weight.assign(value)  # the module's other tests share this network


def test_end_to_end_gradients_reach_every_weight(net):
  """DepthNet + MotionNet + losses.clip_losses + losses.weighted_total: every trainable weight gets a finite
  gradient (learned intrinsics, averaged over the two directions)."""
  motion_model = motion_net.MotionNet()
  images = tf.reshape(_images(2), [1, 2, HEIGHT, WIDTH, 3])
  with tf.GradientTape() as tape:
    depths = net(tf.reshape(images, [2, HEIGHT, WIDTH, 3]), training=True, step=tf.constant(100))["depth"]
    depths = tf.reshape(depths, [1, 2, HEIGHT, WIDTH])
    motions = {(i, j): motion_model({"image_i": images[:, i], "image_j": images[:, j]}, training=True)
               for i, j in losses.directed_pairs(2)}
    values, _ = losses.clip_losses(images, depths, motions)
    total, _ = losses.weighted_total(values, losses.loss_weights())
  variables = net.trainable_weights + motion_model.trainable_weights
  gradients = tape.gradient(total, variables)
  assert np.isfinite(total.numpy())
  assert not [v.path for v, g in zip(variables, gradients) if g is None]
  assert all(np.all(np.isfinite(g)) for g in gradients)


def test_efficientnet_lite0_encoder_starts_from_imagenet_with_frozen_statistics():
  """The ImageNet encoder under the same decoder: weights loaded at build, five skip levels, batch norms frozen (a
  sample's depth does not depend on the batch, in training mode too), and the config round trip."""
  from segmentation import pretrained  # pylint: disable=import-outside-toplevel

  model = depth_net.DepthNet(encoder="efficientnet_lite0")
  images = _images(batch=3)
  depth = model(images, training=True)["depth"]
  assert depth.shape == (3, HEIGHT, WIDTH) and bool(tf.reduce_all(depth > 0))
  weights = pretrained.converted_weights()
  np.testing.assert_array_equal(model.encoder.stem_conv.get_weights()[0], weights["stem_conv"][0])
  np.testing.assert_array_equal(model.encoder.blocks[0].depthwise_bn.get_weights()[2],
                                weights["block0/depthwise_bn"][2])
  assert model.encoder.channels == {1: 16, 2: 24, 3: 40, 4: 112, 5: 320}
  np.testing.assert_allclose(model(images[:1], training=True)["depth"], depth[:1], rtol=1e-5)
  moving_mean = model.encoder.stem_bn.moving_mean.numpy()
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model(images, training=True)["depth"])
  gradients = tape.gradient(loss, model.trainable_weights)
  assert all(g is not None for g in gradients)
  np.testing.assert_array_equal(model.encoder.stem_bn.moving_mean.numpy(), moving_mean)
  restored = depth_net.DepthNet.from_config(model.get_config())
  assert restored.encoder_name == "efficientnet_lite0"
  with pytest.raises(ValueError, match="encoder must be one of"):
    depth_net.DepthNet(encoder="resnet50")
