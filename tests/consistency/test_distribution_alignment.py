"""Class-distribution alignment (consistency/distribution_alignment.py): known answers and its place in the stage."""

import math

import numpy as np
import tensorflow as tf

from consistency import distribution_alignment
from consistency.stages import consistency as consistency_stage

from tests.consistency.test_consistency_stage import _config


def _logits_with_distribution(probabilities, height=2, width=3):
  """[1, height, width, C] logits whose softmax is `probabilities` on every pixel."""
  logits = np.log(np.asarray(probabilities, np.float32))
  return tf.constant(np.broadcast_to(logits, (1, height, width, len(probabilities))).copy())


def test_label_distribution_counts_labelled_pixels_only():
  labels = tf.constant([[[0, 0, 2], [2, 2, 255]], [[255, 255, 255], [255, 1, 255]]])  # two [2, 3] frames
  np.testing.assert_allclose(distribution_alignment.label_distribution(labels, 4), [2 / 6, 1 / 6, 3 / 6, 0])
  unlabelled = tf.fill([1, 2, 2], 255)
  np.testing.assert_array_equal(distribution_alignment.label_distribution(unlabelled, 3), [0, 0, 0])


def test_alignment_loss_is_the_kl_divergence_to_the_mean_prediction():
  target = tf.constant([0.5, 0.5, 0.0])
  # Predicted in the labels' proportions: 0.
  same = distribution_alignment.alignment_loss(_logits_with_distribution([0.5, 0.5, 1e-12]), target)
  assert abs(float(same)) < 1e-5
  # q = (0.25, 0.25, 0.5): KL = 0.5 ln 2 + 0.5 ln 2.
  half = distribution_alignment.alignment_loss(_logits_with_distribution([0.25, 0.25, 0.5]), target)
  np.testing.assert_allclose(float(half), math.log(2.0), rtol=1e-5)
  # The mean is over pixels, not of per-pixel divergences: half the pixels class 0, half class 1 is aligned.
  mixed = tf.concat([_logits_with_distribution([1.0, 1e-12, 1e-12]), _logits_with_distribution([1e-12, 1.0, 1e-12])],
                    axis=0)
  assert abs(float(distribution_alignment.alignment_loss(mixed, target))) < 1e-5
  # One class of the labels never predicted: large but finite (q clipped at EPSILON).
  collapsed = distribution_alignment.alignment_loss(_logits_with_distribution([1.0, 1e-12, 1e-12]), target)
  np.testing.assert_allclose(float(collapsed), 0.5 * math.log(0.5 / 1.0) + 0.5 * math.log(0.5 / 1e-6), rtol=1e-3)
  # No labelled pixel: no target, no loss.
  assert float(distribution_alignment.alignment_loss(_logits_with_distribution([0.2, 0.3, 0.5]), tf.zeros(3))) == 0


def test_alignment_gradient_raises_the_under_predicted_class_and_leaves_the_target_alone():
  logits = tf.Variable(tf.random.stateless_normal([2, 4, 4, 3], [1, 2]) + tf.constant([3.0, 0.0, 0.0]))
  target = tf.Variable([0.2, 0.6, 0.2])
  with tf.GradientTape() as tape:
    loss = distribution_alignment.alignment_loss(logits, target)
  grad_logits, grad_target = tape.gradient(loss, [logits, target])
  assert grad_target is None
  mean_grad = tf.reduce_mean(grad_logits, axis=[0, 1, 2]).numpy()
  assert mean_grad[0] > 0 > mean_grad[1]  # descent lowers the over-predicted class 0, raises class 1
  stepped = distribution_alignment.alignment_loss(logits - 0.5 * grad_logits * tf.cast(tf.size(logits), tf.float32)
                                                  / 3.0, target)
  assert float(stepped) < float(loss)


def test_the_stage_adds_the_alignment_loss_only_when_weighted(tmp_path, synthetic_root):
  for weight, expected in ((0.0, {"cross_entropy"}), (0.5, {"cross_entropy", "alignment"})):
    config = _config(tmp_path / "run", synthetic_root(), stages=("consistency",), batch_size=2,
                     consistency_init_dir="none", consistency_weight=0.0, consistency_alignment=weight)
    stage = consistency_stage.ConsistencyStage(config)
    models = stage.build_models()
    batch = next(iter(stage.train_dataset(0)))
    losses, _ = stage.compute_losses(models, batch, step=0, training=False)
    assert set(losses) == expected
    if weight:
      pair_logits = stage._forward(models, batch["labelled_image"], tf.cast(batch["image"], tf.float32),
                                   training=False)[2]["logits"]
      target = distribution_alignment.label_distribution(batch["labelled_label"], pair_logits.shape[-1])
      np.testing.assert_allclose(float(losses["alignment"]),
                                 weight * float(distribution_alignment.alignment_loss(pair_logits, target)), rtol=1e-5)
