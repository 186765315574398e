"""The motion + intrinsics network: outputs, learned scales, residual field, configs, saving, a training step."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from depth_motion import motion_net

BATCH, HEIGHT, WIDTH = 2, 32, 64


def _inputs(seed=0):
  images = tf.random.stateless_uniform([2, BATCH, HEIGHT, WIDTH, 3], seed=[seed, 2])
  depths = tf.random.stateless_uniform([2, BATCH, HEIGHT, WIDTH], seed=[seed, 3], minval=1.0, maxval=5.0)
  intrinsics = geometry.make_intrinsics([50.0, 55.0], [52.0, 57.0], [31.0, 32.5], [15.5, 16.0])
  return {"image_i": images[0], "image_j": images[1], "depth_i": depths[0], "depth_j": depths[1],
          "intrinsics": intrinsics}


@pytest.fixture(scope="module")
def net():
  model = motion_net.MotionNet()
  model(_inputs())
  return model


def test_default_outputs(net):
  outputs = net(_inputs())
  assert sorted(outputs) == ["intrinsics", "rotation", "translation"]
  assert outputs["rotation"].shape == (BATCH, 3)
  assert outputs["translation"].shape == (BATCH, 3)
  assert outputs["intrinsics"].shape == (BATCH, 3, 3)
  for value in outputs.values():
    assert np.all(np.isfinite(value))
  fx, fy, _, _ = geometry.intrinsics_params(outputs["intrinsics"])
  assert np.all(fx > 0) and np.all(fy > 0)
  np.testing.assert_array_equal(outputs["intrinsics"][:, 2], [[0, 0, 1]] * BATCH)
  # The trunk: seven stride-2 convs 16 .. 1024 with bias.
  assert [conv.filters for conv in net.trunk] == [16, 32, 64, 128, 256, 512, 1024]
  assert all(conv.strides == (2, 2) and conv.use_bias for conv in net.trunk)


def test_intrinsics_head_formula(net):
  """fx, fy = softplus(.) * (W, H); (cx, cy) = (x + 0.5) * (W, H) - 0.5, the image centre at x = 0."""
  inputs = _inputs()
  x = tf.concat([inputs["image_i"], inputs["image_j"]], axis=-1)
  for conv in net.trunk:
    x = conv(x)
  bottleneck = tf.reduce_mean(x, axis=[1, 2])
  focal = tf.nn.softplus(bottleneck @ net.focal_head.kernel + net.focal_head.bias) * [WIDTH, HEIGHT]
  offset = bottleneck @ net.offset_head.kernel
  fx, fy, cx, cy = geometry.intrinsics_params(net(inputs)["intrinsics"])
  np.testing.assert_allclose(np.stack([fx, fy], -1), focal, rtol=1e-5)
  np.testing.assert_allclose(np.stack([cx, cy], -1), (offset + 0.5) * [WIDTH, HEIGHT] - 0.5, rtol=1e-5, atol=1e-4)
  clone = motion_net.MotionNet()
  clone(inputs)
  clone.set_weights(net.get_weights())
  clone.offset_head.kernel.assign(tf.zeros_like(clone.offset_head.kernel))
  _, _, cx, cy = geometry.intrinsics_params(clone(inputs)["intrinsics"])
  np.testing.assert_allclose(cx, [(WIDTH - 1) / 2] * BATCH, rtol=1e-6)
  np.testing.assert_allclose(cy, [(HEIGHT - 1) / 2] * BATCH, rtol=1e-6)


def test_learned_scales_start_at_0_01_and_stay_above_0_001(net):
  assert float(net.rotation_scale) == pytest.approx(0.01)
  assert float(net.translation_scale) == pytest.approx(0.01)
  clone = motion_net.MotionNet()
  inputs = _inputs()
  clone(inputs)
  clone.set_weights(net.get_weights())
  reference = net(inputs)
  clone.rotation_scale_var.assign(-1.0)
  clone.translation_scale_var.assign(0.0)
  assert float(clone.rotation_scale) == pytest.approx(0.001)
  assert float(clone.translation_scale) == pytest.approx(0.001)
  outputs = clone(inputs)
  np.testing.assert_allclose(outputs["rotation"], reference["rotation"] / 10, rtol=1e-5)
  np.testing.assert_allclose(outputs["translation"], reference["translation"] / 10, rtol=1e-5)
  # The variables carry the constraint too, which Keras optimizers apply after each update.
  optimizer = keras.optimizers.SGD(100.0)
  clone.rotation_scale_var.assign(0.01)
  optimizer.apply_gradients([(tf.constant(1.0), clone.rotation_scale_var)])
  assert float(clone.rotation_scale_var) == pytest.approx(0.001)


@pytest.fixture(scope="module")
def residual_net():
  """The heavy variant (~38 M refinement parameters), built once."""
  model = motion_net.MotionNet(residual_translation=True, learn_intrinsics=False, use_depth=True)
  model(_inputs())
  return model


def test_given_intrinsics_residual_field_and_depth_inputs(residual_net):
  inputs = _inputs()
  outputs = residual_net(inputs)
  assert sorted(outputs) == ["intrinsics", "residual_translation", "rotation", "translation"]
  assert outputs["residual_translation"].shape == (BATCH, HEIGHT, WIDTH, 3)
  assert np.all(np.isfinite(outputs["residual_translation"]))
  np.testing.assert_array_equal(outputs["intrinsics"], inputs["intrinsics"])
  assert residual_net.trunk[0].kernel.shape[2] == 8
  # Eight refinement levels: conv7 .. conv1, then the 8-channel input (max(4, C) filters).
  assert [r.filters for r in residual_net.refinements] == [1024, 512, 256, 128, 64, 32, 16, 8]
  with pytest.raises(ValueError, match="intrinsics"):
    residual_net({k: v for k, v in inputs.items() if k != "intrinsics"})
  with pytest.raises(ValueError, match="depth_j"):
    residual_net({k: v for k, v in inputs.items() if k != "depth_j"})


def test_auto_mask_keeps_the_residual_above_its_mean(residual_net):
  inputs = _inputs()
  residual = residual_net(inputs)["residual_translation"].numpy()
  kept = np.linalg.norm(residual, axis=-1) > 0
  assert 0 < kept.mean() < 1
  residual_net.auto_mask = False  # read at call time; restored below
  try:
    full = residual_net(inputs)["residual_translation"].numpy()
  finally:
    residual_net.auto_mask = True
  norm = np.linalg.norm(full, axis=-1)
  for b in range(BATCH):
    threshold = norm[b].mean()  # per sample: the mask does not depend on the rest of the batch
    np.testing.assert_array_equal(kept[b], norm[b] > threshold)
    np.testing.assert_allclose(residual[b][kept[b]], full[b][kept[b]])


def test_residual_translation_ramp():
  ramp = [float(motion_net.residual_translation_ramp(s)) for s in (0, 10000, 15000, 20000, 50000)]
  assert ramp == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_config_round_trip_with_non_default_arguments():
  arguments = dict(residual_translation=True, auto_mask=False, learn_intrinsics=False, use_depth=True,
                   kernel_initializer="glorot_uniform", scale_init=0.02, min_scale=0.002)
  defaults = {name: p.default for name, p in inspect.signature(motion_net.MotionNet).parameters.items()}
  assert all(defaults[name] != value for name, value in arguments.items())
  model = motion_net.MotionNet(**arguments)
  clone = motion_net.MotionNet.from_config(model.get_config())
  assert clone.get_config() == model.get_config()
  for name, value in arguments.items():
    assert getattr(clone, name) == value


def test_he_initialization_keeps_the_bottleneck_activations_alive():
  # Seven stride-2 ReLU convolutions: with the original's Glorot uniform kernels the activations shrink ~2.5x per
  # layer (measured: mean |bottleneck| ~1e-3 for inputs in [-1, 1]), so the motion outputs start ~1e-5 rad and
  # gradient steps barely move them; He normal keeps them at ~0.08.
  images = tf.random.stateless_uniform([4, 64, 96, 3], seed=[1, 2])
  inputs = {"image_i": images, "image_j": tf.roll(images, 2, axis=2)}

  def bottleneck_scale(initializer):
    keras.utils.set_random_seed(0)
    model = motion_net.MotionNet(kernel_initializer=initializer)
    model(inputs)
    images, depths = model._frames(inputs)
    x = tf.concat(images + depths, axis=-1)
    for conv in model.trunk:
      x = conv(x)
    return float(tf.reduce_mean(tf.abs(x)))

  assert bottleneck_scale("glorot_uniform") < 0.01
  assert bottleneck_scale("he_normal") > 0.03


@pytest.fixture(scope="module")
def correlation_net():
  model = motion_net.MotionNet(trunk_type="correlation", use_depth=True)
  model(_inputs())
  return model


def test_correlation_trunk_outputs_and_errors(correlation_net):
  inputs = _inputs()
  outputs = correlation_net(inputs)
  assert sorted(outputs) == ["intrinsics", "rotation", "translation"]
  assert outputs["rotation"].shape == (BATCH, 3) and outputs["intrinsics"].shape == (BATCH, 3, 3)
  assert all(np.all(np.isfinite(value)) for value in outputs.values())
  trunk = correlation_net.correlation_trunk
  assert trunk.encoder[0].kernel.shape[2] == 4  # RGB + depth of one frame: the encoder is shared by the two
  assert not hasattr(correlation_net, "trunk")
  features = trunk(*(tf.concat([inputs[f"image_{k}"], inputs[f"depth_{k}"][..., None]], -1) for k in "ij"))
  assert features.shape == (BATCH, HEIGHT // 32, WIDTH // 32, motion_net.CORRELATION_TRUNK_FILTERS[-1])
  with pytest.raises(ValueError, match="residual"):
    motion_net.MotionNet(trunk_type="correlation", residual_translation=True)
  with pytest.raises(ValueError, match="trunk_type"):
    motion_net.MotionNet(trunk_type="resnet")
  with pytest.raises(ValueError, match="radius"):
    motion_net.CorrelationTrunk(radius=0)


def test_correlation_trunk_matches_a_known_shift():
  """Frame j is frame i moved 4 px right and 8 px down (1 and 2 pixels at 1/4 resolution): away from the borders,
  the expected displacement is (1, 2) once the temperature makes the softmax pick the best match."""
  keras.utils.set_random_seed(0)
  trunk = motion_net.CorrelationTrunk(radius=3, temperature_init=1000.0)
  image = tf.random.stateless_uniform([1, 64, 96, 3], seed=[4, 5])
  shifted = tf.roll(image, shift=[8, 4], axis=[1, 2])
  trunk(image, shifted)
  flow, probabilities = trunk.match(image, shifted)
  assert flow.shape == (1, 16, 24, 2) and probabilities.shape == (1, 16, 24, 49)
  np.testing.assert_allclose(tf.reduce_sum(probabilities, -1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(flow[0, 2:-4, 2:-4], np.broadcast_to([1.0, 2.0], (10, 18, 2)), atol=1e-3)
  # Identical frames: no displacement.
  still, _ = trunk.match(image, image)
  np.testing.assert_allclose(still[0, 2:-2, 2:-2], 0.0, atol=1e-3)


def test_correlation_trunk_config_round_trip(tmp_path):
  model = motion_net.MotionNet(trunk_type="correlation", correlation_radius=2, learn_intrinsics=False)
  inputs = _inputs()
  expected = model(inputs)
  clone = motion_net.MotionNet.from_config(model.get_config())
  assert clone.trunk_type == "correlation" and clone.correlation_radius == 2
  path = tmp_path / "motion.keras"
  model.save(path)
  restored = keras.models.load_model(path)
  assert restored.get_config() == model.get_config()
  assert restored.correlation_trunk.correlation.radius == 2
  for key in expected:
    np.testing.assert_array_equal(restored(inputs)[key], expected[key])


def test_correlation_trunk_restores_from_a_tf_train_checkpoint(correlation_net, tmp_path):
  """The teachers are restored with tf.train.Checkpoint: every weight of the trunk (encoder list included) is in it."""
  path = tf.train.Checkpoint(motion=correlation_net).write(str(tmp_path / "ckpt"))
  fresh = motion_net.MotionNet(trunk_type="correlation", use_depth=True)
  inputs = _inputs()
  fresh(inputs)
  assert not np.allclose(fresh(inputs)["rotation"], correlation_net(inputs)["rotation"])
  tf.train.Checkpoint(motion=fresh).read(path).assert_consumed()
  for key in ("rotation", "translation", "intrinsics"):
    np.testing.assert_array_equal(fresh(inputs)[key], correlation_net(inputs)[key])


def test_keras_save_and_load_round_trip(tmp_path):
  model = motion_net.MotionNet(use_depth=True, scale_init=0.02, min_scale=0.002)
  inputs = _inputs()
  expected = model(inputs)
  path = tmp_path / "motion.keras"
  model.save(path)
  restored = keras.models.load_model(path)
  assert isinstance(restored, motion_net.MotionNet)
  assert restored.get_config() == model.get_config()
  assert float(restored.rotation_scale) == pytest.approx(0.02)
  outputs = restored(inputs)
  for key in expected:
    np.testing.assert_array_equal(outputs[key], expected[key])


def test_one_training_step_changes_weights_and_keeps_them_finite(net):
  inputs = _inputs()
  before = [w.numpy() for w in net.trainable_weights]
  try:
    with tf.GradientTape() as tape:
      outputs = net(inputs, training=True)
      loss = (tf.reduce_sum(tf.square(outputs["rotation"] - 0.1)) +
              tf.reduce_sum(tf.square(outputs["translation"] - 1.0)) +
              tf.reduce_mean(tf.square(outputs["intrinsics"] / 100.0 - 0.3)))
    gradients = tape.gradient(loss, net.trainable_weights)
    assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)
    keras.optimizers.Adam(1e-3).apply_gradients(zip(gradients, net.trainable_weights))
    after = [w.numpy() for w in net.trainable_weights]
    assert all(np.all(np.isfinite(w)) for w in after)
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))
  finally:
    for weight, value in zip(net.trainable_weights, before):
      weight.assign(value)  # the module's other tests share this network


@pytest.mark.parametrize("pose_solver", ["least_squares", "direct"])
def test_solved_pose_explains_a_known_motion(pose_solver):
  """Frame j is frame i seen after a known motion (a 2-degree turn and a step of 1 % of the depth, a plane 3 m away):
  the solved motion of frame j's points (from a patch match, or by direct photometric alignment), warped with frame
  j's depth, moves its pixels where the true motion does (the pixels that left the view do not pull it off), and
  twice the depth gives the same rotation, twice the translation."""
  model = motion_net.MotionNet(pose_solver=pose_solver, learn_intrinsics=False)
  image_i = tf.image.resize(tf.random.stateless_uniform([1, 32, 48, 3], seed=[4, 5]), [64, 96], method="bicubic")
  depth = tf.fill([1, 64, 96], 3.0)
  intrinsics = geometry.make_intrinsics([80.0], [80.0], [47.5], [31.5])
  true_warp = geometry.depth_warp(depth, geometry.matrix_from_angles([[0.01, -0.03, 0.005]]), [[0.02, 0.01, 0.01]],
                                  intrinsics)
  image_j = geometry.resample(image_i, true_warp.coords)
  inputs = {"image_i": image_i, "image_j": image_j, "depth_i": depth, "depth_j": depth, "intrinsics": intrinsics}
  outputs = model(inputs)
  assert sorted(outputs) == ["intrinsics", "rotation", "translation"]
  assert not model.trainable_variables  # with K given, nothing of the network is used
  warp = geometry.depth_warp(depth, geometry.matrix_from_angles(outputs["rotation"]), outputs["translation"],
                             intrinsics)
  # The true flow is 1.7-2.6 px; away from the borders the solved one matches it to the match's sub-pixel accuracy.
  error = tf.norm(warp.coords - true_warp.coords, axis=-1)[0, 6:-6, 6:-6].numpy()
  assert np.median(error) < 0.05 and np.max(error) < 0.15, (np.median(error), np.max(error))
  far = model({**inputs, "depth_i": depth * 2.0, "depth_j": depth * 2.0})
  np.testing.assert_allclose(far["rotation"], outputs["rotation"], atol=1e-5)
  np.testing.assert_allclose(far["translation"], outputs["translation"] * 2.0, rtol=1e-3, atol=1e-6)


def test_least_squares_pose_configuration_and_errors(tmp_path):
  model = motion_net.MotionNet(trunk_type="correlation", pose_solver="least_squares", match_radius=4)
  assert model.takes_depth and not motion_net.MotionNet(trunk_type="correlation").takes_depth
  inputs = _inputs()
  expected = model(inputs)
  assert expected["intrinsics"].shape == (BATCH, 3, 3) and not hasattr(model, "background_motion")
  depth_j = tf.Variable(inputs["depth_j"])
  with tf.GradientTape() as tape:
    outputs = model({**inputs, "depth_j": depth_j})
    loss = tf.reduce_sum(outputs["translation"]) + tf.reduce_sum(outputs["rotation"] ** 2)
  gradients = tape.gradient(loss, model.trainable_variables + [depth_j])
  # The learned K reaches the pose: every weight of the trunk and the heads gets a gradient, and so does the depth.
  assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)
  assert np.abs(gradients[-1]).max() > 0 and np.abs(gradients[0]).max() > 0
  path = tmp_path / "motion.keras"
  model.save(path)
  restored = keras.models.load_model(path)
  assert restored.get_config() == model.get_config() and restored.match_radius == 4
  for key in expected:
    np.testing.assert_array_equal(restored(inputs)[key], expected[key])
  with pytest.raises(ValueError, match="depth_j"):
    model({key: value for key, value in inputs.items() if key != "depth_j"})
  with pytest.raises(ValueError, match="residual"):
    motion_net.MotionNet(pose_solver="least_squares", residual_translation=True)
  with pytest.raises(ValueError, match="pose_solver"):
    motion_net.MotionNet(pose_solver="svd")
  with pytest.raises(ValueError, match="match_radius"):
    motion_net.MotionNet(pose_solver="least_squares", match_radius=0)
