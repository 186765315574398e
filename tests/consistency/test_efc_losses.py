"""EFC's unsupervised losses on cases with known answers; every term finite with gradients to both branches."""

import math

import numpy as np
import pytest
import tensorflow as tf

from consistency import efc_losses
from consistency import flow_net
from segmentation import segmenter

H, W = 32, 48


def _image(seed, batch=2, height=H, width=W):
  """A smooth random image (a bilinearly upsampled coarse noise), so warps by a few pixels stay informative."""
  coarse = tf.random.stateless_uniform([batch, height // 4, width // 4, 3], [seed, 1])
  return tf.image.resize(coarse, [height, width], method="bilinear")


def _constant_flows(dx, dy, batch=2, levels=(2, 3)):
  """{level: [B, h, w, 2]} of a uniform full-resolution flow (dx, dy), in pixels of each level."""
  return {level: tf.tile(tf.constant([[[[dx / 2**level, dy / 2**level]]]], tf.float32),
                         [batch, H // 2**level, W // 2**level, 1]) for level in levels}


def test_identical_frames_with_zero_flow_give_zero_photometric_and_smoothness_loss():
  image = _image(0)
  config = efc_losses.EfcLossConfig(loss_levels=(0, 2, 3), occlusion_mask=False, error_mask=False)
  terms, masks = efc_losses.unsupervised_losses(image, image, _constant_flows(0.0, 0.0), config=config)
  assert float(terms["photometric"]) == pytest.approx(0.0, abs=1e-6)
  assert float(terms["smoothness"]) == pytest.approx(0.0, abs=1e-7)
  assert float(tf.reduce_sum(masks["occlusion_target"])) == 0.0


def test_photometric_error_of_a_shift_is_zero_for_the_right_flow_and_large_for_the_wrong_one():
  image = _image(1, height=H, width=W + 4)
  source, target = image[:, :, :W], image[:, :, 4:W + 4]  # target(x) = source(x + 4): flow source -> target -4 px
  right = tf.fill([2, H, W, 2], 0.0) + tf.constant([-4.0, 0.0])
  reconstruction = efc_losses.geometry.warp_with_flow(target, right)
  assert float(tf.reduce_max(efc_losses.photometric_error(source, reconstruction)[:, :, 4:])) < 1e-5
  config = efc_losses.EfcLossConfig(loss_levels=(0,), occlusion_mask=False, error_mask=False)
  correct, masks = efc_losses.unsupervised_losses(source, target, _constant_flows(-4.0, 0.0), config=config)
  wrong, _ = efc_losses.unsupervised_losses(source, target, _constant_flows(4.0, 0.0), config=config)
  assert float(correct["photometric"]) < 0.25 * float(wrong["photometric"])
  np.testing.assert_array_equal(masks["occlusion_target"][0, 0], [1.0] * 4 + [0.0] * (W - 4))


def test_photometric_error_is_the_beta_mix_of_ssim_and_l1():
  a = tf.fill([1, 5, 5, 3], 0.2)
  b = tf.fill([1, 5, 5, 3], 0.6)  # flat images: SSIM's structure term is 1, the luminance term is not
  mu_x, mu_y = 0.2, 0.6
  ssim = (2 * mu_x * mu_y + 1e-4) / (mu_x**2 + mu_y**2 + 1e-4)
  expected = 0.85 * (1 - ssim) / 2 + 0.15 * 0.4
  np.testing.assert_allclose(efc_losses.photometric_error(a, b), np.full([1, 3, 3], expected), rtol=1e-4)


def test_occlusion_target_on_known_flows():
  flow = np.zeros([1, 4, 5, 2], np.float32)
  flow[0, :, :, 0] = 2.0  # everything moves 2 px right: the last two columns leave the image
  flow[0, 0, 0] = [-0.5, 0.0]  # half a pixel outside the first column
  flow[0, 3, 0] = [0.0, -3.0]  # x stays, y = 0 exactly: inside
  target = efc_losses.occlusion_target(tf.constant(flow)).numpy()
  expected = np.zeros([1, 4, 5])
  expected[0, :, 3:] = 1.0
  expected[0, 0, 0] = 1.0
  np.testing.assert_array_equal(target, expected)


def test_occlusion_loss_known_values():
  logits = tf.constant([[[0.0, 0.0]]])
  target = tf.constant([[[0.0, 1.0]]])
  # Both pixels: -log 0.5 - alpha exp(-0.5).
  expected = math.log(2.0) - 0.2 * math.exp(-0.5)
  assert float(efc_losses.occlusion_loss(logits, target, alpha=0.2)) == pytest.approx(expected, rel=1e-6)
  # The penalty lowers the loss of predicting "not occluded" more than of predicting "occluded".
  confident_visible = efc_losses.occlusion_loss(tf.constant([[[-20.0]]]), tf.constant([[[0.0]]]), alpha=0.2)
  assert float(confident_visible) == pytest.approx(-0.2, abs=1e-6)


def test_segmentation_disagreement_and_error_mask():
  probabilities = tf.one_hot(tf.constant([[[0, 1, 2, 3]]]), 4)  # [1, 1, 4, 4]
  shifted = tf.one_hot(tf.constant([[[1, 2, 3, 3]]]), 4)  # the other frame, moved one pixel left
  zero = tf.zeros([1, 1, 4, 2])
  flow_left = tf.constant([[[[-1.0, 0.0]] * 4]])
  np.testing.assert_array_equal(efc_losses.segmentation_disagreement(probabilities, shifted, zero), [[[1, 1, 1, 0]]])
  # Following the flow x - 1: pixel 0 leaves the image (counts as disagreeing), the rest agree.
  np.testing.assert_array_equal(efc_losses.segmentation_disagreement(probabilities, shifted, flow_left),
                                [[[1, 0, 0, 0]]])
  np.testing.assert_allclose(efc_losses.error_mask(tf.constant([1.0, 1.0, 0.0]), tf.constant([0.3, 1.0, 0.5])),
                             [0.7, 0.0, 0.0])


def test_smoothness_is_zero_for_constant_flow_and_weaker_across_image_edges():
  image = tf.concat([tf.zeros([1, 8, 4, 3]), tf.ones([1, 8, 4, 3])], axis=2)  # a vertical edge at x = 4
  step = tf.concat([tf.zeros([1, 8, 4, 2]), tf.ones([1, 8, 4, 2])], axis=2)
  assert float(efc_losses.smoothness_loss(tf.ones([1, 8, 8, 2]), image)) == 0.0
  at_edge = efc_losses.smoothness_loss(step, image)
  on_flat = efc_losses.smoothness_loss(step, tf.zeros_like(image))
  assert float(at_edge) == pytest.approx(float(on_flat) * math.exp(-1.0), rel=1e-5)


def test_feature_consistency_zero_for_matching_features_and_masked_by_occlusion():
  features = tf.random.stateless_normal([1, 6, 8, 4], [7, 8])
  zero = tf.zeros([1, 6, 8, 2])
  ones = tf.ones([1, 6, 8])
  assert float(efc_losses.feature_consistency_loss(features, features, zero, ones)) == pytest.approx(0.0, abs=1e-3)
  other = features + 1.0  # distance 2 (sqrt of 4 channels x 1) everywhere
  assert float(efc_losses.feature_consistency_loss(features, other, zero, ones)) == pytest.approx(2.0, rel=1e-4)
  assert float(efc_losses.feature_consistency_loss(features, other, zero, 0.0 * ones)) == 0.0


def test_weights_reject_unknown_terms_and_drop_zero_weights():
  weights = efc_losses.loss_weights({"consistency": 0.0})
  assert weights == {"segmentation": 1.0, "consistency": 0.0, "occlusion": 0.4, "smoothness": 0.5,
                     "photometric": 1.0}
  with pytest.raises(ValueError, match="Unknown EFC loss terms"):
    efc_losses.loss_weights({"consistancy": 1.0})
  weighted = efc_losses.weighted({"consistency": tf.constant(2.0), "occlusion": tf.constant(1.0)}, weights)
  assert set(weighted) == {"occlusion"} and float(weighted["occlusion"]) == pytest.approx(0.4)


def test_every_term_is_finite_and_gradients_reach_both_branches():
  """A tiny segmenter and flow net, both directions stacked: every term finite; each term's gradient reaches the
  segmenter (shared encoder) and the flow branch where it should."""
  seg = segmenter.build_segmenter(segmenter.SegmenterConfig(
      backbone="resnet50", backbone_filters=(8, 8, 16, 16), backbone_blocks=(1, 1, 1, 1), nasfpn_filters=16,
      nasfpn_repeats=1, head_filters=16, head_groups=4))
  net = flow_net.build_flow_net(flow_net.FlowNet(filters=4), seg.backbone.channels)
  # The flow predictions start at exactly 0 (zero kernels), where |d F| has zero gradient and no gradient flows back
  # through the prediction convs: give them small random kernels, as after some training.
  for level in net.levels:
    kernel = getattr(net, f"predict_flow_{level}").kernel
    kernel.assign(tf.random.stateless_normal(kernel.shape, [9, level], stddev=0.01))
  a, b = _image(3, 1, 64, 64), _image(4, 1, 64, 64)
  frames = tf.concat([a, b], axis=0)

  def swap(x):
    return tf.concat([x[1:], x[:1]], axis=0)

  config = efc_losses.EfcLossConfig(loss_levels=(0, 2, 3, 4), consistency_levels=(2, 3, 4))
  with tf.GradientTape(persistent=True) as tape:
    out = seg(frames, training=True, return_features=True)
    features = out["features"]
    flow = net({"features_a": features, "features_b": {k: swap(v) for k, v in features.items()}})
    probabilities = tf.nn.softmax(out["logits"])
    terms, masks = efc_losses.unsupervised_losses(
        frames, swap(frames), flow["flow"], flow["occlusion_logits"], features,
        {k: swap(v) for k, v in features.items()}, probabilities, swap(probabilities), config)
  assert set(terms) == {"photometric", "smoothness", "occlusion", "consistency"}
  assert set(masks) == {"occlusion_target", "occlusion", "segmentation_error"}
  for name, value in terms.items():
    assert np.isfinite(float(value)), name
    flow_grads = tape.gradient(value, net.trainable_variables)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in flow_grads), f"{name}: flow branch"
    assert all(g is None or np.all(np.isfinite(g.numpy())) for g in flow_grads), name
  for name in ("photometric", "smoothness", "consistency"):  # through the features the flow branch reads
    encoder_grads = tape.gradient(terms[name], seg.backbone.trainable_variables)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in encoder_grads), f"{name}: encoder"
  # The occlusion heads learn from L_occ alone by default: the photometric term does not reach them.
  head = net.occlusion_2.trainable_variables  # pylint: disable=no-member
  assert all(g is None for g in tape.gradient(terms["photometric"], head))


def test_area_downsampling_by_an_integer_factor_is_an_average_pool_without_resize_area():
  """Equal to tf.image.resize(area) and, inside a graph with static shapes, no ResizeArea op (XLA has no kernel)."""
  images = tf.random.stateless_uniform([2, 16, 24, 3], [0, 1])
  expected = tf.image.resize(images, [4, 6], method="area")
  np.testing.assert_allclose(efc_losses._resize_images(images, [4, 6]), expected, atol=1e-6)

  @tf.function(autograph=False)
  def downsample(x):
    return efc_losses._resize_images(x, [4, 6])

  np.testing.assert_allclose(downsample(images), expected, atol=1e-6)
  ops = {op.type for op in downsample.get_concrete_function(images).graph.get_operations()}
  assert "ResizeArea" not in ops and "AvgPool" in ops
  # Not a multiple: the area resize itself.
  np.testing.assert_allclose(efc_losses._resize_images(images[:, :15], [4, 6]),
                             tf.image.resize(images[:, :15], [4, 6], method="area"), atol=1e-6)
