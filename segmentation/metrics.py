"""Segmentation metrics from a confusion matrix accumulated over all evaluation pixels.

`confusion_matrix` is TensorFlow ops with static shapes: eager, tf.function (also jit_compile) and tf.distribute
(sum the per-replica matrices with `strategy.reduce(SUM, ...)`, or add them into an int64 variable). The rest are
pure NumPy functions of the accumulated [C, C] matrix (rows: label, columns: prediction):

  IoU_c          = TP_c / (TP_c + FP_c + FN_c), undefined (NaN) when the union TP_c + FP_c + FN_c is 0;
  mIoU           = mean of IoU_c over the classes whose union is > 0, i.e. classes that occur in the labels or in
                   the predictions (a class predicted but never labelled counts with IoU 0); classes absent from both
                   are left out. This is the standard rule (Cityscapes, Model Garden, PASCAL VOC) and is computed from
                   the matrix of the whole evaluation set, not averaged over images;
  pixel accuracy = trace / total labelled pixels;
  frequency_c    = labelled pixels of class c / total labelled pixels.

Pixels labelled `IGNORE_LABEL` are excluded from everything.
"""

import numpy as np
import tensorflow as tf

from datasets import labels as labels_lib


def confusion_matrix(labels, predictions, num_classes=labels_lib.NUM_CLASSES, ignore_label=labels_lib.IGNORE_LABEL):
  """The [C, C] int64 confusion matrix of one batch; entry (i, j) counts pixels labelled i and predicted j.

  Args:
    labels: [...] integer labels in [0, num_classes) or `ignore_label` (e.g. [B, H, W] or [B, T, H, W]).
    predictions: integer class ids with the shape of `labels`, or float logits/probabilities with one more
      (class) axis, which are arg-maxed.
    num_classes: C.
    ignore_label: label value of pixels to leave out.

  Returns:
    [num_classes, num_classes] int64 tensor.

  Raises:
    InvalidArgumentError (at run time): a label other than `ignore_label`, or a prediction, outside [0, C).
  """
  labels = tf.convert_to_tensor(labels)
  predictions = tf.convert_to_tensor(predictions)
  if predictions.dtype.is_floating:
    predictions = tf.argmax(predictions, axis=-1, output_type=tf.int32)
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
  predictions = tf.reshape(tf.cast(predictions, tf.int32), [-1])
  valid = tf.not_equal(labels, ignore_label)
  checked_labels = tf.where(valid, labels, 0)
  checks = [
      tf.debugging.assert_non_negative(checked_labels, message="labels must be in [0, num_classes) or ignore_label"),
      tf.debugging.assert_less(checked_labels, num_classes,
                               message="labels must be in [0, num_classes) or ignore_label"),
      tf.debugging.assert_non_negative(predictions, message="predictions must be in [0, num_classes)"),
      tf.debugging.assert_less(predictions, num_classes, message="predictions must be in [0, num_classes)"),
  ]
  # Ignored pixels go to one extra bin that is dropped (no boolean mask: static shapes).
  size = num_classes * num_classes
  with tf.control_dependencies(checks):
    index = tf.where(valid, labels * num_classes + predictions, size)
  counts = tf.math.bincount(index, minlength=size + 1, maxlength=size + 1, dtype=tf.int64)[:size]
  return tf.reshape(counts, [num_classes, num_classes])


def _matrix(confusion):
  confusion = np.asarray(confusion, dtype=np.int64)
  if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
    raise ValueError(f"confusion must be a square [C, C] matrix. Received: confusion of shape {confusion.shape}")
  return confusion


def per_class_iou(confusion):
  """[C] float64 IoU of each class; NaN where the class is absent from labels and predictions (union 0)."""
  confusion = _matrix(confusion)
  true_positive = np.diag(confusion).astype(np.float64)
  union = confusion.sum(axis=0) + confusion.sum(axis=1) - np.diag(confusion)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(union > 0, true_positive / union, np.nan)


def evaluated_classes(confusion):
  """[C] bool: the classes mIoU averages over, those present in the labels.

  A class that is predicted but never labelled has IoU 0 however little of it is predicted; counting it would make
  the mean depend on how many classes a model predicts and reward one that predicts fewer (until commit 97b9237
  mean_iou did, and the consistency loss's drift to few classes showed as gains). Its false positives still lower
  the IoU of the classes labelled at those pixels.
  """
  return _matrix(confusion).sum(axis=1) > 0


def mean_iou(confusion):
  """Mean IoU over the classes present in the labels (`evaluated_classes`); NaN for an empty matrix."""
  evaluated = evaluated_classes(confusion)
  return float(np.mean(per_class_iou(confusion)[evaluated])) if np.any(evaluated) else float("nan")


def pixel_accuracy(confusion):
  """Correct / labelled pixels; NaN for an empty matrix."""
  confusion = _matrix(confusion)
  total = confusion.sum()
  return float(np.trace(confusion) / total) if total else float("nan")


def class_frequencies(confusion):
  """[C] float64 fraction of labelled pixels in each class (sums to 1; zeros for an empty matrix)."""
  confusion = _matrix(confusion)
  label_pixels = confusion.sum(axis=1)
  total = label_pixels.sum()
  return label_pixels / total if total else np.zeros(len(label_pixels))


def _finite_or_none(value):
  return None if np.isnan(value) else float(value)


def metrics_dict(confusion, class_names=labels_lib.CLASS_NAMES):
  """All metrics of an accumulated confusion matrix as a JSON-ready dict (NaN becomes None, i.e. null).

  Args:
    confusion: [C, C] integer matrix (NumPy or tensor), rows labels, columns predictions.
    class_names: C names, keys of "per_class".

  Returns:
    {"miou", "pixel_accuracy", "mean_class_accuracy", "num_pixels", "num_classes_evaluated",
     "per_class": {name: {"iou", "frequency", "label_pixels", "predicted_pixels", "accuracy"}},
     "confusion_matrix": C lists of C ints}. "num_classes_evaluated" counts the classes in the mIoU mean;
    "mean_class_accuracy" averages the recall of classes present in the labels.
  """
  confusion = _matrix(confusion)
  if len(class_names) != len(confusion):
    raise ValueError(f"class_names must name the {len(confusion)} classes of the matrix. "
                     f"Received: {len(class_names)} names")
  iou = per_class_iou(confusion)
  frequency = class_frequencies(confusion)
  label_pixels = confusion.sum(axis=1)
  predicted_pixels = confusion.sum(axis=0)
  evaluated = evaluated_classes(confusion)
  with np.errstate(invalid="ignore", divide="ignore"):
    recall = np.where(evaluated, np.diag(confusion) / np.maximum(label_pixels, 1), np.nan)
  per_class = {
      name: {
          "iou": _finite_or_none(iou[c]),
          "frequency": float(frequency[c]),
          "label_pixels": int(label_pixels[c]),
          "predicted_pixels": int(predicted_pixels[c]),
          "accuracy": _finite_or_none(recall[c]),
      } for c, name in enumerate(class_names)
  }
  return {
      "miou": _finite_or_none(mean_iou(confusion)),
      "pixel_accuracy": _finite_or_none(pixel_accuracy(confusion)),
      "mean_class_accuracy": _finite_or_none(np.nanmean(recall)) if np.any(evaluated) else None,
      "num_pixels": int(confusion.sum()),
      "num_classes_evaluated": int(np.sum(evaluated)),
      "per_class": per_class,
      "confusion_matrix": confusion.tolist(),
  }
