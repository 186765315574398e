"""Confusion matrix and mIoU against a hand-computed example: ignore label, absent classes, graph modes, replicas."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from segmentation import metrics

IGNORE = 255
# Rows: label, columns: prediction. Class 2 is labelled but never predicted, class 3 predicted but never labelled,
# class 4 absent from both.
MATRIX = np.array([
    [3, 1, 0, 0, 0],
    [0, 2, 0, 1, 0],
    [1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
])
# By hand: IoU = TP / (row sum + column sum - TP).
#   class 0: 3 / (4 + 4 - 3) = 0.6;  class 1: 2 / (3 + 3 - 2) = 0.5;  class 2: 0 / 1;  class 3: 0 / 1;  class 4: none.
EXPECTED_IOU = [0.6, 0.5, 0.0, 0.0, np.nan]
# mIoU averages the classes present in the labels (0, 1, 2): class 3, predicted but never labelled, is left out.
EXPECTED_MIOU = (0.6 + 0.5 + 0.0) / 3
EXPECTED_ACCURACY = 5 / 8
EXPECTED_FREQUENCY = [4 / 8, 3 / 8, 1 / 8, 0.0, 0.0]


def _pixels(seed=0):
  """Labels and predictions [2, 2, 3] whose confusion matrix is MATRIX, plus 4 ignored pixels predicted anything."""
  pairs = [(i, j) for i in range(5) for j in range(5) for _ in range(MATRIX[i, j])]
  pairs += [(IGNORE, 0), (IGNORE, 1), (IGNORE, 4), (IGNORE, 4)]
  pairs = np.random.default_rng(seed).permutation(np.array(pairs))
  return pairs[:, 0].reshape(2, 2, 3).astype(np.int32), pairs[:, 1].reshape(2, 2, 3).astype(np.int32)


def test_confusion_matrix_eager_graph_and_xla():
  label, prediction = _pixels()
  matrix = metrics.confusion_matrix(label, prediction, num_classes=5, ignore_label=IGNORE)
  assert matrix.dtype == tf.int64
  np.testing.assert_array_equal(matrix, MATRIX)
  graph = tf.function(lambda a, b: metrics.confusion_matrix(a, b, 5, IGNORE))
  xla = tf.function(lambda a, b: metrics.confusion_matrix(a, b, 5, IGNORE), jit_compile=True)
  np.testing.assert_array_equal(graph(label, prediction), MATRIX)
  np.testing.assert_array_equal(xla(label, prediction), MATRIX)


def test_confusion_matrix_from_logits_and_accumulation():
  label, prediction = _pixels()
  logits = tf.one_hot(prediction, 5) * 3.0 - 1.0
  np.testing.assert_array_equal(metrics.confusion_matrix(label, logits, 5, IGNORE), MATRIX)
  # Accumulating over batches (here: the two images) gives the matrix of all pixels.
  total = sum(metrics.confusion_matrix(label[i], prediction[i], 5, IGNORE) for i in range(2))
  np.testing.assert_array_equal(total, MATRIX)


def test_out_of_range_label_is_an_error():
  label, prediction = _pixels()
  label[0, 0, 0] = 7
  with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be in"):
    metrics.confusion_matrix(label, prediction, 5, IGNORE)


def test_metrics_against_the_hand_computed_matrix():
  np.testing.assert_allclose(metrics.per_class_iou(MATRIX), EXPECTED_IOU)
  assert metrics.mean_iou(MATRIX) == pytest.approx(EXPECTED_MIOU)
  assert metrics.pixel_accuracy(MATRIX) == pytest.approx(EXPECTED_ACCURACY)
  np.testing.assert_allclose(metrics.class_frequencies(MATRIX), EXPECTED_FREQUENCY)


def test_predicting_a_class_that_is_never_labelled_does_not_raise_miou_by_predicting_fewer():
  # Two segmenters of the same 4 pixels, 2 of class 0 and 2 of class 1. A gets pixel 1 wrong as class 2 (never
  # labelled), B gets it wrong as class 1: both have one error, and B's IoU of class 1 is the lower (2/3 against 1),
  # so B may not score higher because it predicts one class fewer.
  a = np.array([[1, 0, 1], [0, 2, 0], [0, 0, 0]])
  b = np.array([[1, 1, 0], [0, 2, 0], [0, 0, 0]])
  assert metrics.mean_iou(a) == pytest.approx((0.5 + 1.0) / 2)
  assert metrics.mean_iou(b) == pytest.approx((0.5 + 2 / 3) / 2)
  assert metrics.mean_iou(b) < metrics.mean_iou(a)
  np.testing.assert_array_equal(metrics.evaluated_classes(a), [True, True, False])


def test_metrics_dict_is_json_ready():
  result = metrics.metrics_dict(MATRIX, class_names=("a", "b", "c", "d", "e"))
  text = json.dumps(result, allow_nan=False)  # NaN would not be valid JSON
  assert json.loads(text) == result
  assert result["miou"] == pytest.approx(EXPECTED_MIOU)
  assert result["pixel_accuracy"] == pytest.approx(EXPECTED_ACCURACY)
  assert result["mean_class_accuracy"] == pytest.approx((3 / 4 + 2 / 3 + 0) / 3)
  assert result["num_pixels"] == 8 and result["num_classes_evaluated"] == 3
  assert result["per_class"]["a"] == {"iou": pytest.approx(0.6), "frequency": 0.5, "label_pixels": 4,
                                      "predicted_pixels": 4, "accuracy": 0.75}
  assert result["per_class"]["d"]["iou"] == 0.0 and result["per_class"]["d"]["accuracy"] is None
  assert result["per_class"]["e"]["iou"] is None
  assert result["confusion_matrix"] == MATRIX.tolist()
  with pytest.raises(ValueError, match="class_names"):
    metrics.metrics_dict(MATRIX)  # 21 default names for 5 classes


def test_empty_matrix_gives_no_scores():
  result = metrics.metrics_dict(np.zeros([3, 3], np.int64), class_names=("a", "b", "c"))
  assert result["miou"] is None and result["pixel_accuracy"] is None and result["num_classes_evaluated"] == 0


def mirrored_confusion_matrix(devices):
  """MATRIX counted by a MirroredStrategy over `devices`, each replica counting its share of the batch."""
  label, prediction = _pixels()
  strategy = tf.distribute.MirroredStrategy(devices)
  dataset = tf.data.Dataset.from_tensor_slices((label, prediction)).batch(2)

  @tf.function
  def step(batch):
    per_replica = strategy.run(lambda a, b: metrics.confusion_matrix(a, b, 5, IGNORE), args=batch)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

  return sum(step(batch) for batch in strategy.experimental_distribute_dataset(dataset))


def test_mirrored_strategy_sum_of_replica_matrices():
  """Two CPU replicas; the SUM reduction of their matrices is the matrix of the whole batch."""
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  if len(cpus) >= 2:
    np.testing.assert_array_equal(mirrored_confusion_matrix(cpus[:2]), MATRIX)
    return
  # TensorFlow is initialised with one CPU device: split it in a fresh process.
  code = """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
from tests.segmentation import test_metrics as t
np.testing.assert_array_equal(t.mirrored_confusion_matrix(["/cpu:0", "/cpu:1"]), t.MATRIX)
print("ok")
"""
  root = pathlib.Path(__file__).resolve().parents[2]
  result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
