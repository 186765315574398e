"""The EFC flow branch: output levels and units, config round trip, training step, flow resizing."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from consistency import flow_net

CHANNELS = {2: 8, 3: 16, 4: 16, 5: 32}


def _features(seed, batch=2, height=64, width=96):
  return {level: tf.random.stateless_normal([batch, -(-height // 2**level), -(-width // 2**level), c], [seed, level])
          for level, c in CHANNELS.items()}


@pytest.fixture(scope="module")
def net():
  """One built network for the tests that only call it (building costs more than calling)."""
  return flow_net.build_flow_net(flow_net.FlowNet(filters=8, max_displacement=3), CHANNELS)


def test_outputs_at_every_level_in_level_pixels(net):
  out = net({"features_a": _features(0), "features_b": _features(1)})
  for level in (2, 3, 4, 5):  # zero-initialised flow predictions: the flow starts at exactly 0
    assert float(tf.reduce_max(tf.abs(out["flow"][level]))) == 0.0
  assert set(out) == {"flow", "occlusion", "occlusion_logits"}
  for level in (2, 3, 4, 5):
    size = (-(-64 // 2**level), -(-96 // 2**level))
    assert out["flow"][level].shape == (2,) + size + (2,) and out["flow"][level].dtype == tf.float32
    assert out["occlusion"][level].shape == (2,) + size + (1,)
    occlusion = out["occlusion"][level].numpy()
    assert np.all((occlusion >= 0) & (occlusion <= 1))
    np.testing.assert_allclose(occlusion, tf.sigmoid(out["occlusion_logits"][level]), atol=1e-6)
  # Raw predictions are full-resolution pixels / flow_scale: level l holds them times flow_scale / 2^l.
  raw = net.predict_flow_3  # pylint: disable=no-member
  assert raw.filters == 2
  np.testing.assert_allclose(net.to_pixels(tf.ones([1, 1, 1, 2]), 3), 20.0 / 8.0)


def test_odd_sizes_follow_the_ceil_rule(net):
  out = net({"features_a": _features(0, 1, 72, 100), "features_b": _features(1, 1, 72, 100)})
  assert out["flow"][2].shape == (1, 18, 25, 2) and out["flow"][5].shape == (1, 3, 4, 2)


def test_config_round_trip_with_non_default_arguments():
  net = flow_net.FlowNet(levels=(3, 4, 5), correlation_level=4, max_displacement=6, displacement_stride=2,
                         filters=12, redirect_filters=10, flow_scale=10.0, name="flow")
  clone = flow_net.FlowNet.from_config(net.get_config())
  for key in ("levels", "correlation_level", "max_displacement", "displacement_stride", "filters",
              "redirect_filters", "flow_scale"):
    assert getattr(clone, key) == getattr(net, key), key
  assert clone.levels == (3, 4, 5) and clone.correlation.channels == 49


def test_bad_arguments(net):
  with pytest.raises(ValueError, match="consecutive"):
    flow_net.FlowNet(levels=(2, 4))
  with pytest.raises(ValueError, match="correlation_level"):
    flow_net.FlowNet(levels=(2, 3), correlation_level=5)
  with pytest.raises(ValueError, match="features_a"):
    net({"features_a": {2: tf.zeros([1, 4, 4, 8])}, "features_b": {}})


def test_one_training_step_changes_the_weights_and_keeps_them_finite():
  net = flow_net.build_flow_net(flow_net.FlowNet(filters=4), CHANNELS)
  inputs = {"features_a": _features(0), "features_b": _features(1)}
  before = [v.numpy().copy() for v in net.trainable_variables]
  optimizer = keras.optimizers.Adam(1e-2)
  with tf.GradientTape() as tape:
    out = net(inputs)
    loss = tf.reduce_mean(tf.square(out["flow"][2] - 1.0))
    loss += tf.add_n([tf.reduce_mean(occlusion) for occlusion in out["occlusion"].values()])
  grads = tape.gradient(loss, net.trainable_variables)
  optimizer.apply_gradients(zip(grads, net.trainable_variables))
  after = [v.numpy() for v in net.trainable_variables]
  assert all(np.all(np.isfinite(v)) for v in after)
  assert sum(not np.array_equal(a, b) for a, b in zip(before, after)) > len(after) // 2


def test_resize_flow_scales_the_displacements():
  flow = tf.concat([tf.fill([1, 4, 5, 1], 1.0), tf.fill([1, 4, 5, 1], -2.0)], axis=-1)
  up = flow_net.upsample_flow(flow, 4)
  assert up.shape == (1, 16, 20, 2)
  np.testing.assert_allclose(up[..., 0], 4.0, atol=1e-6)
  np.testing.assert_allclose(up[..., 1], -8.0, atol=1e-6)
  odd = flow_net.resize_flow(flow, (8, 15))
  np.testing.assert_allclose(odd[..., 0], 3.0, atol=1e-6)
  np.testing.assert_allclose(odd[..., 1], -4.0, atol=1e-6)


def test_mixed_precision_outputs_stay_float32():
  policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    net = flow_net.build_flow_net(flow_net.FlowNet(filters=4), CHANNELS)
    out = net({"features_a": _features(0, 1, 32, 32), "features_b": _features(1, 1, 32, 32)})
  finally:
    keras.mixed_precision.set_global_policy(policy)
  assert net.correlation.compute_dtype == "float16"
  for key in ("flow", "occlusion", "occlusion_logits"):
    assert all(v.dtype == tf.float32 and np.all(np.isfinite(v.numpy())) for v in out[key].values()), key
