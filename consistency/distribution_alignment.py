"""Class-distribution alignment: keeps the segmenter's predictions on unlabeled frames as varied as the labels.

The L1 consistency loss (consistency/spatiotemporal.py) is minimised exactly by logits that are the same on every
pixel: they agree under any warp. With few labelled frames nothing in the cross-entropy stops the unlabeled frames
from drifting there; on the synthetic video every 600-step oracle continuation at 0.5 % labels ended predicting wall
and floor on 96-100 % of the validation pixels (docs/results.md). ReMixMatch (Berthelot et al. 2020) keeps the
predictions on unlabeled data near the labelled data's class distribution; here as a loss:

  alignment = KL(p || q),  p = class histogram of the labelled batch's labels,
                           q = mean softmax of the unlabeled batch's logits over its images and pixels,

0 when the unlabeled frames are predicted in the labels' proportions, large when a class the labels have is
(almost) never predicted.
"""

import tensorflow as tf

from datasets import labels as labels_lib

# q is clipped here from below, so that a class never predicted costs a finite amount.
EPSILON = 1e-6


def label_distribution(labels, num_classes):
  """[num_classes] float32 class histogram of `labels` ([B, H, W] int32, labels.IGNORE_LABEL ignored), summing to 1;
  all zeros when no pixel is labelled."""
  labels = tf.reshape(tf.convert_to_tensor(labels, tf.int32), [-1])
  labels = tf.boolean_mask(labels, labels != labels_lib.IGNORE_LABEL)
  counts = tf.cast(tf.math.bincount(labels, minlength=num_classes, maxlength=num_classes), tf.float32)
  return tf.math.divide_no_nan(counts, tf.reduce_sum(counts))


def alignment_loss(logits, target):
  """KL(target || mean softmax of `logits`): float32 scalar, 0 where `target` is all zeros.

  Args:
    logits: [B, H, W, C] logits of the unlabeled frames.
    target: [C] class distribution (`label_distribution` of the labelled frames); no gradient flows into it.
  """
  probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
  predicted = tf.maximum(tf.reduce_mean(probabilities, axis=[0, 1, 2]), EPSILON)
  target = tf.stop_gradient(tf.cast(target, tf.float32))
  return tf.reduce_sum(tf.math.xlogy(target, target) - tf.math.xlogy(target, predicted))
