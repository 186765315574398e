"""The least-squares rigid motion from a flow field and depth: exact recovery, scale, weights, gradients."""

import numpy as np
import tensorflow as tf

from depth_motion import geometry

BATCH, HEIGHT, WIDTH = 2, 12, 16


def _scene(seed=0):
  """(flow, depth, K, R, t): the exact flow of a known motion of a random-depth scene."""
  rng = np.random.default_rng(seed)
  depth = tf.constant(rng.uniform(1.0, 4.0, (BATCH, HEIGHT, WIDTH)), tf.float32)
  intrinsics = geometry.make_intrinsics([14.0, 16.0], [15.0, 13.0], [7.5, 8.0], [5.5, 6.0])
  rotation = geometry.matrix_from_angles([[0.03, -0.05, 0.02], [0.1, 0.08, -0.06]])
  translation = tf.constant([[0.05, -0.02, 0.1], [-0.1, 0.03, -0.05]], tf.float32)
  pixels = tf.broadcast_to(geometry.pixel_grid(HEIGHT, WIDTH), [BATCH, HEIGHT, WIDTH, 2])
  moved = geometry.transform_points(rotation, translation, geometry.unproject(pixels, depth, intrinsics))
  return geometry.project(moved, intrinsics) - pixels, depth, intrinsics, rotation, translation


def test_recovers_a_known_motion_exactly_and_converges_quadratically():
  flow, depth, intrinsics, rotation, translation = _scene()
  errors = []
  for iterations in (1, 2, 3):
    found_rotation, found_translation = geometry.motion_from_flow(flow, depth, intrinsics, iterations=iterations)
    errors.append(np.abs(found_translation - translation).max())
  np.testing.assert_allclose(found_rotation, rotation, atol=1e-6)
  np.testing.assert_allclose(found_translation, translation, atol=1e-5)
  # The first iteration is the linear motion-field solution: close, not exact; each further one squares the error.
  assert 1e-3 < errors[0] < 0.05 and errors[1] < errors[0] / 10 and errors[2] < errors[1] / 10


def test_translation_scales_with_the_depth_and_the_rotation_does_not():
  flow, depth, intrinsics, rotation, translation = _scene(seed=1)
  found_rotation, found_translation = geometry.motion_from_flow(flow, depth * 3.0, intrinsics)
  np.testing.assert_allclose(found_rotation, rotation, atol=1e-6)
  np.testing.assert_allclose(found_translation, translation * 3.0, atol=3e-5)


def test_zero_weight_vectors_do_not_vote():
  flow, depth, intrinsics, rotation, translation = _scene(seed=2)
  outliers = tf.cast(tf.random.stateless_uniform([BATCH, HEIGHT, WIDTH], seed=[1, 2]) < 0.2, tf.float32)
  corrupted = flow + outliers[..., tf.newaxis] * 5.0
  found_rotation, found_translation = geometry.motion_from_flow(corrupted, depth, intrinsics, weights=1.0 - outliers)
  np.testing.assert_allclose(found_rotation, rotation, atol=1e-6)
  np.testing.assert_allclose(found_translation, translation, atol=1e-5)
  unweighted, _ = geometry.motion_from_flow(corrupted, depth, intrinsics)
  assert np.abs(unweighted - rotation).max() > 1e-3


def test_gradients_are_finite_and_match_finite_differences():
  flow, depth, intrinsics, _, _ = _scene(seed=3)
  direction = tf.random.stateless_normal(flow.shape, seed=[3, 4])

  def objective(epsilon):
    rotation, translation = geometry.motion_from_flow(flow + epsilon * direction, depth, intrinsics)
    return tf.reduce_sum(rotation * [[1.0, 2.0, 3.0]]) + tf.reduce_sum(translation * [1.0, -1.0, 0.5])

  epsilon = tf.constant(0.0)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([epsilon, depth])
    value = objective(epsilon)
  assert np.all(np.isfinite(tape.gradient(value, depth)))
  analytic = float(tape.gradient(value, epsilon))
  numeric = float(objective(1e-2) - objective(-1e-2)) / 2e-2
  np.testing.assert_allclose(analytic, numeric, rtol=2e-2)


def test_robust_weights_shed_unweighted_outliers():
  flow, depth, intrinsics, rotation, translation = _scene(seed=4)
  outliers = tf.cast(tf.random.stateless_uniform([BATCH, HEIGHT, WIDTH], seed=[5, 6]) < 0.2, tf.float32)
  corrupted = flow + outliers[..., tf.newaxis] * [5.0, -3.0]
  found_rotation, found_translation = geometry.motion_from_flow(corrupted, depth, intrinsics, iterations=6,
                                                                robust_scale=0.1)
  np.testing.assert_allclose(found_rotation, rotation, atol=2e-4)
  np.testing.assert_allclose(found_translation, translation, atol=2e-3)
