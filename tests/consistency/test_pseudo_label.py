"""Weak-to-strong pseudo-labelling pieces (consistency/pseudo_label.py): known answers."""

import numpy as np
import pytest
import tensorflow as tf

from consistency import pseudo_label
from consistency.stages import consistency as consistency_stage
from consistency.stages import supervised
from segmentation import segmenter as segmenter_lib

from tests.consistency.test_consistency_stage import _config

SEED = tf.constant([3, 4], tf.int64)


def test_confidence_mask_drops_exactly_the_pixels_under_the_threshold():
  # Two classes; softmax probability of class 0 is sigmoid(a - b): 0.5, 0.88, 0.9526, 0.982 for a - b = 0, 2, 3, 4.
  margins = tf.constant([0.0, 2.0, 3.0, 4.0, -3.0])
  logits = tf.stack([margins, tf.zeros_like(margins)], axis=-1)[tf.newaxis, tf.newaxis]  # [1, 1, 5, 2]
  labels, confident = pseudo_label.confident_pseudo_labels(logits, threshold=0.95)
  np.testing.assert_array_equal(labels[0, 0], [0, 0, 0, 0, 1])
  np.testing.assert_array_equal(confident[0, 0], [0, 0, 1, 1, 1])
  _, everything = pseudo_label.confident_pseudo_labels(logits, threshold=0.0)
  assert float(tf.reduce_min(everything)) == 1.0


def test_the_weak_prediction_gets_no_gradient():
  weak = tf.Variable(tf.random.stateless_normal([2, 4, 4, 3], SEED))
  strong = tf.Variable(tf.random.stateless_normal([2, 4, 4, 3], SEED + 1))
  with tf.GradientTape() as tape:
    labels, confident = pseudo_label.confident_pseudo_labels(weak, threshold=0.0)
    loss = pseudo_label.masked_cross_entropy(strong, labels, confident)
  grad_weak, grad_strong = tape.gradient(loss, [weak, strong])
  assert grad_weak is None
  assert float(tf.reduce_sum(tf.abs(grad_strong))) > 0


def test_masked_cross_entropy_sums_confident_pixels_over_all_pixels():
  logits = tf.constant([[[[0.0, 0.0], [2.0, 0.0]]]])  # [1, 1, 2, 2]
  labels = tf.constant([[[0, 1]]])
  mask = tf.constant([[[1.0, 0.0]]])
  # Only the first pixel counts (CE log 2), divided by the 2 pixels.
  np.testing.assert_allclose(pseudo_label.masked_cross_entropy(logits, labels, mask), np.log(2.0) / 2, rtol=1e-6)


def test_cutmix_boxes_are_rectangles_of_the_published_sizes():
  boxes = pseudo_label.cutmix_boxes(64, 48, 80, SEED, probability=1.0).numpy()
  for box in boxes:
    rows, cols = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
    assert rows.size and cols.size
    # A solid rectangle: exactly the product of its row and column extents.
    assert box.sum() == rows.size * cols.size == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    # Area in [0.02, 0.4] of the image, less what flooring the sides and clipping to the image take off.
    assert box.sum() <= 0.4 * 48 * 80
    assert box.sum() >= 0.5 * 0.02 * 48 * 80
  assert not pseudo_label.cutmix_boxes(8, 48, 80, SEED, probability=0.0).numpy().any()
  some = pseudo_label.cutmix_boxes(400, 16, 16, SEED).numpy().any(axis=(1, 2))
  assert 0.4 < some.mean() < 0.6  # probability 0.5 by default


def test_cutmix_takes_the_pixels_inside_the_box_from_the_next_image():
  images = tf.reshape(tf.range(3 * 4 * 5 * 2, dtype=tf.float32), [3, 4, 5, 2])
  labels = tf.reshape(tf.range(3 * 4 * 5), [3, 4, 5])
  boxes = np.zeros([3, 4, 5], bool)
  boxes[0, 1:3, 2:4] = True
  boxes[2, 0, :] = True  # the last image takes from the first
  mixed_images = pseudo_label.cutmix(images, boxes).numpy()
  mixed_labels = pseudo_label.cutmix(labels, boxes).numpy()
  for b in range(3):
    partner = (b + 1) % 3
    np.testing.assert_array_equal(mixed_images[b][boxes[b]], images.numpy()[partner][boxes[b]])
    np.testing.assert_array_equal(mixed_images[b][~boxes[b]], images.numpy()[b][~boxes[b]])
    # The labels follow the same boxes.
    np.testing.assert_array_equal(mixed_labels[b][boxes[b]], labels.numpy()[partner][boxes[b]])
    np.testing.assert_array_equal(mixed_labels[b][~boxes[b]], labels.numpy()[b][~boxes[b]])


def test_gaussian_blur_of_an_impulse_is_the_normalised_gaussian():
  image = np.zeros([1, 21, 21, 1], np.float32)
  image[0, 10, 10, 0] = 1.0
  blurred = pseudo_label.gaussian_blur(tf.constant(image), tf.constant([1.5]))[0, ..., 0].numpy()
  taps = np.exp(-np.arange(-6, 7) ** 2 / (2 * 1.5 ** 2))
  taps /= taps.sum()
  expected = np.zeros([21, 21])
  expected[4:17, 4:17] = np.outer(taps, taps)
  np.testing.assert_allclose(blurred, expected, atol=1e-6)
  constant = pseudo_label.gaussian_blur(tf.fill([2, 9, 9, 3], 0.3), tf.constant([0.1, 2.0]))
  np.testing.assert_allclose(constant, 0.3, atol=1e-6)


def test_strong_view_keeps_every_pixel_in_place():
  # Photometric only: the weak view's pixels stay where they are (the pseudo-labels of the weak view apply to the
  # strong view pixel by pixel). Left half dark, right half bright, for 32 draws of the perturbation.
  image = np.zeros([32, 16, 16, 3], np.float32)
  image[:, :, :8] = 0.2
  image[:, :, 8:] = [0.9, 0.6, 0.7]
  strong = pseudo_label.strong_photometric(tf.constant(image), SEED).numpy()
  assert strong.shape == image.shape and strong.min() >= 0.0 and strong.max() <= 1.0
  left = strong[:, :, :6].mean(axis=(1, 2, 3))
  right = strong[:, :, 10:].mean(axis=(1, 2, 3))
  assert np.all(left < right)
  assert not np.allclose(strong, image, atol=0.05)  # it does perturb
  np.testing.assert_array_equal(strong, pseudo_label.strong_photometric(tf.constant(image), SEED).numpy())


def test_feature_dropout_drops_whole_channels_and_scales_the_rest():
  features = {3: tf.ones([4, 5, 6, 64]), 4: tf.ones([4, 3, 3, 32])}
  dropped = pseudo_label.feature_dropout(features, SEED)
  for level, value in dropped.items():
    value = value.numpy()
    assert value.shape == features[level].shape
    per_channel = value.reshape(4, -1, value.shape[-1])
    # Each channel of each image is all 0 or all 2 (kept and scaled by 1 / (1 - 0.5)).
    assert np.all((per_channel.min(axis=1) == per_channel.max(axis=1)))
    assert set(np.unique(value)) == {0.0, 2.0}
    assert 0.3 < (per_channel[:, 0] == 0).mean() < 0.7


@pytest.mark.parametrize("threshold", [0.0, 0.999999])
def test_stage_pseudo_label_loss_is_zero_only_without_confident_pixels(tmp_path, synthetic_root, monkeypatch,
                                                                       threshold):
  monkeypatch.setattr(pseudo_label, "THRESHOLD", threshold)
  config = _config(tmp_path / "run", synthetic_root(), stages=("consistency",), consistency_weight=0.0,
                   pseudo_label_weight=1.0)
  stage = consistency_stage.ConsistencyStage(config)
  segmenter = segmenter_lib.build_segmenter(supervised.segmenter_config(config))
  frames = tf.random.stateless_uniform([4, 64, 64, 3], SEED)
  outputs = segmenter(frames, training=True, return_features=True)
  loss = float(stage.pseudo_label_loss(segmenter, frames, outputs, tf.constant(7)))
  if threshold == 0.0:
    assert loss > 0.0  # every pixel is a pseudo-label
  else:
    assert loss == 0.0  # an untrained segmenter is never that sure


def test_stage_pseudo_label_loss_in_inference_mode_leaves_batch_norm_statistics_alone(tmp_path, synthetic_root):
  # Image summaries compute the losses with training=False: the strong and feature views must not move the
  # segmenter's batch-norm statistics then (they do in training).
  config = _config(tmp_path / "run", synthetic_root(), stages=("consistency",), pseudo_label_weight=1.0)
  stage = consistency_stage.ConsistencyStage(config)
  segmenter = segmenter_lib.build_segmenter(supervised.segmenter_config(config))
  frames = tf.random.stateless_uniform([4, 64, 64, 3], SEED)

  def statistics():
    return [w.numpy().copy() for w in segmenter.weights if "moving" in w.path]

  before = statistics()
  outputs = segmenter(frames, training=False, return_features=True)
  stage.pseudo_label_loss(segmenter, frames, outputs, tf.constant(7), training=False)
  assert before and all(np.array_equal(a, b) for a, b in zip(before, statistics()))
  stage.pseudo_label_loss(segmenter, frames, outputs, tf.constant(7), training=True)
  assert not all(np.array_equal(a, b) for a, b in zip(before, statistics()))
