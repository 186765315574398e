"""Depth, motion and intrinsics errors against hand-computed answers."""

import math

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from depth_motion import metrics


def _depth_pair():
  truth = np.array([[[1.0, 2.0], [4.0, 0.0]]], np.float32)  # one missing pixel (0)
  return 2.0 * truth + np.array([[[0.0, 0.0], [0.0, 7.0]]], np.float32), truth


def test_depth_errors_without_scaling_known_answers():
  predicted, truth = _depth_pair()
  errors = {k: float(v[0]) for k, v in metrics.depth_errors(predicted, truth, median_scaling=False).items()}
  # Over the three pixels with ground truth, |d - d*| = d*: AbsRel 1, SqRel mean(d*) = 7/3, RMSE sqrt(21/3).
  assert errors["abs_rel"] == pytest.approx(1.0)
  assert errors["sq_rel"] == pytest.approx(7.0 / 3.0)
  assert errors["rmse"] == pytest.approx(math.sqrt(7.0))
  assert errors["delta1"] == 0.0 and errors["scale"] == 1.0 and errors["valid"] == 1.0


def test_median_scaling_removes_a_global_scale():
  predicted, truth = _depth_pair()
  errors = {k: float(v[0]) for k, v in metrics.depth_errors(predicted, truth, median_scaling=True).items()}
  assert errors["scale"] == pytest.approx(0.5)
  for name in ("abs_rel", "sq_rel", "rmse"):
    assert errors[name] == pytest.approx(0.0, abs=1e-6)
  assert errors["delta1"] == 1.0


def test_relative_spread_of_prediction_and_truth():
  predicted, truth = _depth_pair()
  errors = metrics.depth_errors(predicted, truth, median_scaling=True)
  # Valid truth (1, 2, 4): mean 7/3, population std sqrt(14/9); the prediction is the truth scaled (spread is
  # scale-free), a constant map has none.
  expected = math.sqrt(14.0 / 9.0) / (7.0 / 3.0)
  assert float(errors["true_relative_spread"][0]) == pytest.approx(expected, rel=1e-5)
  assert float(errors["relative_spread"][0]) == pytest.approx(expected, rel=1e-5)
  constant = metrics.depth_errors(np.ones_like(truth), truth, median_scaling=True)
  assert float(constant["relative_spread"][0]) == pytest.approx(0.0, abs=1e-6)


def test_median_is_taken_over_valid_pixels_only_and_images_without_truth_are_flagged():
  truth = np.array([[[1.0, 3.0, 9.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]], np.float32)
  predicted = np.array([[[1.0, 1.0, 1.0, 100.0]], [[1.0, 1.0, 1.0, 1.0]]], np.float32)
  errors = metrics.depth_errors(predicted, truth, median_scaling=True)
  # Median of the valid truth (1, 3, 9) is 3; of the prediction at those pixels 1 (the 100 is not valid).
  np.testing.assert_allclose(errors["scale"].numpy(), [3.0, 0.0])
  np.testing.assert_array_equal(errors["valid"].numpy(), [1.0, 0.0])
  assert np.all(np.isfinite(errors["abs_rel"].numpy()))


def test_motion_errors_known_angles():
  true_rotation = geometry.matrix_from_angles(tf.constant([[0.0, 0.0, math.radians(10.0)]] * 2))
  predicted = tf.constant([[0.0, 0.0, 0.0], [0.0, 0.0, math.radians(10.0)]])
  errors = metrics.motion_errors(predicted, tf.constant([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]]), true_rotation,
                                 tf.constant([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]))
  np.testing.assert_allclose(errors["rotation_error"].numpy(), [10.0, 0.0], atol=1e-3)
  np.testing.assert_allclose(errors["true_rotation"].numpy(), [10.0, 10.0], atol=1e-3)
  # Orthogonal directions: 90 degrees; a zero true translation has no direction and is flagged invalid.
  np.testing.assert_allclose(errors["translation_angle"].numpy(), [90.0, 0.0], atol=1e-3)
  np.testing.assert_array_equal(errors["translation_valid"].numpy(), [1.0, 0.0])


def test_translation_angle_ignores_scale_and_sees_reversal():
  rotation = tf.eye(3, batch_shape=[2])
  errors = metrics.motion_errors(rotation, tf.constant([[0.0, 0.0, 5.0], [0.0, 0.0, -1.0]]), rotation,
                                 tf.constant([[0.0, 0.0, 0.1], [0.0, 0.0, 0.1]]))
  np.testing.assert_allclose(errors["translation_angle"].numpy(), [0.0, 180.0], atol=1e-2)


def test_intrinsics_relative_errors():
  truth = geometry.make_intrinsics([100.0], [200.0], [50.0], [40.0])
  predicted = geometry.make_intrinsics([110.0], [190.0], [50.0], [44.0])
  errors = {k: float(v[0]) for k, v in metrics.intrinsics_errors(predicted, truth).items()}
  assert errors == pytest.approx({"fx_relative_error": 0.1, "fy_relative_error": 0.05, "cx_relative_error": 0.0,
                                  "cy_relative_error": 0.1})


def test_warp_errors_known_answers():
  """The true warp scores 0 at any depth scale (the translation in the same units); no motion scores the zero-flow
  reference; a depth twice the truth halves the flow of a sideways step; pixels without a true depth are not counted."""
  rng = np.random.default_rng(0)
  true_depth = tf.constant(rng.uniform(1.0, 4.0, (2, 12, 16)), tf.float32)
  intrinsics = geometry.make_intrinsics([14.0, 14.0], [14.0, 14.0], [7.5, 7.5], [5.5, 5.5])
  rotation = geometry.matrix_from_angles([[0.02, -0.03, 0.01], [0.0, 0.05, 0.0]])
  translation = tf.constant([[0.1, 0.0, 0.05], [-0.05, 0.02, 0.0]], tf.float32)
  truth = (true_depth, rotation, translation, intrinsics)
  exact = metrics.warp_errors(true_depth * 3.0, rotation, translation * 3.0, intrinsics, *truth)
  np.testing.assert_allclose(exact["warp_epe"], 0.0, atol=1e-4)
  np.testing.assert_array_equal(exact["warp_valid"], [1.0, 1.0])
  still = metrics.warp_errors(true_depth, tf.zeros([2, 3]), tf.zeros([2, 3]), intrinsics, *truth)
  np.testing.assert_allclose(still["warp_epe"], still["zero_flow_epe"], rtol=1e-5)
  assert np.all(still["zero_flow_epe"] > 0.3)
  # A sideways step in front of a wall 2 m away moves every pixel by fx t / z = 0.7 px; twice the depth, half that.
  wall = tf.fill([2, 12, 16], 2.0)
  step = tf.constant([[0.1, 0.0, 0.0]] * 2)
  identity = tf.eye(3, batch_shape=[2])
  halved = metrics.warp_errors(wall * 2.0, identity, step, intrinsics, wall, identity, step, intrinsics)
  np.testing.assert_allclose(halved["warp_epe"], 0.35, rtol=1e-4)
  np.testing.assert_allclose(halved["zero_flow_epe"], 0.7, rtol=1e-4)
  # Missing true depth: an image with none is flagged, and a wrong depth where the truth is missing costs nothing.
  missing = tf.concat([true_depth[:1] * tf.cast(tf.range(16) < 8, tf.float32), tf.zeros_like(true_depth[:1])], axis=0)
  wrong_where_missing = tf.where(missing > 0, true_depth, 10.0)
  errors = metrics.warp_errors(wrong_where_missing, rotation, translation, intrinsics, missing, rotation, translation,
                               intrinsics)
  np.testing.assert_array_equal(errors["warp_valid"], [1.0, 0.0])
  np.testing.assert_allclose(errors["warp_epe"], 0.0, atol=1e-4)
