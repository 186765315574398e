"""The segmenter's supervised loss."""

import tensorflow as tf

from datasets import labels as labels_lib


def cross_entropy(logits, labels, class_weights=None):
  """Mean pixel-wise cross-entropy over labelled pixels.

  Args:
    logits: [B, H, W, C] float32.
    labels: [B, H, W] int32, labels.IGNORE_LABEL where unlabeled.
    class_weights: optional [C] weights; the mean is weighted by the true class's weight.

  Returns:
    Scalar float32; 0 when no pixel is labelled.
  """
  valid = labels != labels_lib.IGNORE_LABEL
  safe_labels = tf.where(valid, labels, 0)
  per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels, logits=logits)
  weights = tf.cast(valid, tf.float32)
  if class_weights is not None:
    weights *= tf.gather(tf.constant(class_weights, tf.float32), safe_labels)
  return tf.math.divide_no_nan(tf.reduce_sum(per_pixel * weights), tf.reduce_sum(weights))
