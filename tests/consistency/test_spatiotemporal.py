"""The 4D consistency loss: known answers for the warp, its masks and each weighting."""

import numpy as np
import pytest
import tensorflow as tf

from consistency import spatiotemporal

H, W, C = 8, 12, 4
FX = 10.0


def _intrinsics():
  return tf.constant([[[FX, 0.0, (W - 1) / 2], [0.0, FX, (H - 1) / 2], [0.0, 0.0, 1.0]]])


def _plane_shift(shift_px, depth=2.0):
  """A fronto-parallel plane and a sideways camera motion that moves every pixel by exactly `shift_px` in x."""
  depth_map = tf.fill([1, H, W], depth)
  translation = tf.constant([[shift_px * depth / FX, 0.0, 0.0]])
  return spatiotemporal.rigid_correspondence(depth_map, depth_map, tf.zeros([1, 3]), translation, _intrinsics())


def _smooth_logits(seed):
  return tf.random.stateless_normal([1, H, W, C], [seed, 0])


def test_zero_loss_when_the_logits_agree_under_the_warp():
  correspondence = _plane_shift(2.0)
  logits_i = _smooth_logits(1)
  # Frame j's pixel x lands at x + 2 in frame i: frame j's logits are frame i's shifted by 2 px.
  logits_j = tf.concat([logits_i[:, :, 2:], tf.zeros([1, H, 2, C])], axis=2)
  image = tf.random.stateless_uniform([1, H, W, 3], [3, 0])
  # The L1 terms vanish (the pseudo-label cross-entropy is the entropy of the prediction, not 0).
  terms = spatiotemporal.consistency_terms(logits_i, logits_j, correspondence, image,
                                           terms=("uniform", "label_prior", "edge_prior"))
  for name, value in terms.items():
    assert float(value) == pytest.approx(0.0, abs=1e-5), name
  # ... and not zero when they do not agree.
  wrong = spatiotemporal.consistency_terms(logits_i, logits_i, correspondence, image, terms=("uniform",))
  assert float(wrong["uniform"]) > 0.1


def test_out_of_view_pixels_are_masked():
  mask = _plane_shift(2.0).mask.numpy()[0]
  # Pixels at x >= W - 2 land outside frame i.
  assert np.all(mask[:, : W - 2] == 1) and np.all(mask[:, W - 2:] == 0)


def test_occluded_pixels_are_masked():
  depth_j = tf.fill([1, H, W], 2.0)
  # Frame i sees a closer surface (1 m) over columns 0..3: frame j's points landing there are hidden.
  depth_i = tf.concat([tf.fill([1, H, 4], 1.0), tf.fill([1, H, W - 4], 2.0)], axis=2)
  correspondence = spatiotemporal.rigid_correspondence(depth_j, depth_i, tf.zeros([1, 3]), tf.zeros([1, 3]),
                                                       _intrinsics())
  mask = correspondence.mask.numpy()[0]
  assert np.all(mask[:, :3] == 0) and np.all(mask[:, 5:] == 1)
  # Missing ground-truth depth (0) is masked too.
  missing = spatiotemporal.rigid_correspondence(tf.zeros([1, H, W]), depth_i, tf.zeros([1, 3]), tf.zeros([1, 3]),
                                                _intrinsics())
  assert float(tf.reduce_sum(missing.mask)) == 0.0


def _identity():
  return spatiotemporal.Correspondence(
      coords=tf.stack(tf.meshgrid(tf.range(W, dtype=tf.float32), tf.range(H, dtype=tf.float32)), -1)[tf.newaxis],
      mask=tf.ones([1, H, W]))


def test_label_prior_penalizes_only_the_predicted_class():
  logits_j = tf.one_hot(tf.zeros([1, H, W], tf.int32), C) * 5.0  # class 0 predicted everywhere
  other = logits_j + tf.one_hot(tf.fill([1, H, W], 2), C)  # differs in class 2 only
  terms = spatiotemporal.consistency_terms(other, logits_j, _identity(), terms=("uniform", "label_prior"))
  assert float(terms["label_prior"]) == 0.0
  assert float(terms["uniform"]) == pytest.approx(1.0 / C)
  predicted = logits_j + tf.one_hot(tf.zeros([1, H, W], tf.int32), C) * 0.5  # differs in the predicted class
  terms = spatiotemporal.consistency_terms(predicted, logits_j, _identity(), terms=("label_prior",))
  assert float(terms["label_prior"]) == pytest.approx(0.5)


def test_edge_prior_weights_only_edge_pixels():
  image = tf.concat([tf.zeros([1, H, W // 2, 3]), tf.ones([1, H, W // 2, 3])], axis=2)  # one vertical edge
  edges = spatiotemporal.edge_map(image).numpy()[0]
  assert edges[:, W // 2 - 1:W // 2 + 1].all() and edges[:, : W // 2 - 2].sum() == 0
  assert edges[:, W // 2 + 2:].sum() == 0
  logits_j = tf.zeros([1, H, W, C])
  column = tf.range(W)[tf.newaxis, tf.newaxis, :, tf.newaxis]
  far_from_edge = tf.where(column < 2, 1.0, 0.0) * tf.ones([1, H, W, C])
  on_edge = tf.where(tf.abs(column - W // 2) < 1, 1.0, 0.0) * tf.ones([1, H, W, C])
  identity = _identity()
  assert float(spatiotemporal.consistency_terms(far_from_edge, logits_j, identity, image,
                                                terms=("edge_prior",))["edge_prior"]) == 0.0
  assert float(spatiotemporal.consistency_terms(on_edge, logits_j, identity, image,
                                                terms=("edge_prior",))["edge_prior"]) > 0.0


def test_cross_entropy_term_uses_the_pseudo_label_of_frame_j():
  logits_j = tf.one_hot(tf.fill([1, H, W], 1), C) * 20.0
  terms = spatiotemporal.consistency_terms(logits_j, logits_j, _identity(), terms=("cross_entropy",))
  assert float(terms["cross_entropy"]) == pytest.approx(0.0, abs=1e-6)
  uniform = spatiotemporal.consistency_terms(tf.zeros([1, H, W, C]), logits_j, _identity(), terms=("cross_entropy",))
  assert float(uniform["cross_entropy"]) == pytest.approx(np.log(C), rel=1e-5)


def test_weighted_sum_and_unknown_term():
  terms = {"uniform": tf.constant(1.0), "label_prior": tf.constant(2.0)}
  assert float(spatiotemporal.weighted_consistency(terms, {"uniform": 0.2, "label_prior": 0.4})) == pytest.approx(1.0)
  with pytest.raises(ValueError, match="Unknown consistency term"):
    spatiotemporal.consistency_terms(tf.zeros([1, H, W, C]), tf.zeros([1, H, W, C]), _identity(), terms=("l2",))
