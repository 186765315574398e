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


def _regularized_objective(flow, depth, intrinsics, rotation, translation, prior):
  """[B] what the solver minimises with `translation_prior=prior`: sum |residual|^2 (normalized coordinates) plus
  prior * N * |t / harmonic-mean depth|^2, at the motion (rotation, translation)."""
  pixels = tf.broadcast_to(geometry.pixel_grid(HEIGHT, WIDTH), flow.shape)
  moved = geometry.transform_points(rotation, translation, geometry.unproject(pixels, depth, intrinsics))
  focal = tf.stack([intrinsics[:, 0, 0], intrinsics[:, 1, 1]], axis=-1)[:, tf.newaxis, tf.newaxis, :]
  residual = (pixels + flow - geometry.project(moved, intrinsics)) / focal
  harmonic = 1.0 / tf.reduce_mean(1.0 / depth, axis=[1, 2])
  return (tf.reduce_sum(tf.square(residual), axis=[1, 2, 3]) +
          prior * HEIGHT * WIDTH * tf.reduce_sum(tf.square(translation / harmonic[:, tf.newaxis]), axis=-1))


def test_translation_prior_leaves_a_rotation_alone_and_minimises_the_regularized_objective():
  _, depth, intrinsics, rotation, _ = _scene(seed=5)
  pixels = tf.broadcast_to(geometry.pixel_grid(HEIGHT, WIDTH), [BATCH, HEIGHT, WIDTH, 2])
  rotation_flow = geometry.project(geometry.transform_points(rotation, tf.zeros([BATCH, 3]), geometry.unproject(
      pixels, depth, intrinsics)), intrinsics) - pixels
  found_rotation, found_translation = geometry.motion_from_flow(rotation_flow, depth, intrinsics,
                                                                translation_prior=0.1)
  np.testing.assert_allclose(found_rotation, rotation, atol=1e-6)
  np.testing.assert_allclose(found_translation, 0.0, atol=1e-6)

  flow, depth, intrinsics, rotation, translation = _scene(seed=6)
  sizes = []
  for prior in (1e-7, 0.01, 0.1):
    found_rotation, found_translation = geometry.motion_from_flow(flow, depth, intrinsics, iterations=6,
                                                                  translation_prior=prior)
    sizes.append(np.linalg.norm(found_translation, axis=-1))
    best = _regularized_objective(flow, depth, intrinsics, found_rotation, found_translation, prior)
    for seed in range(4):  # a local minimum: small moves of the solution only raise the objective
      noise = tf.random.stateless_normal([BATCH, 6], seed=[seed, 7]) * 1e-3
      moved = _regularized_objective(flow, depth, intrinsics,
                                     tf.matmul(geometry.matrix_from_angles(noise[:, :3]), found_rotation),
                                     found_translation + noise[:, 3:], prior)
      assert np.all(moved.numpy() > best.numpy())
  np.testing.assert_allclose(sizes[0], np.linalg.norm(translation, axis=-1), rtol=1e-3)  # no prior: the truth
  assert np.all(sizes[1] < sizes[0]) and np.all(sizes[2] < sizes[1])  # a stronger prior, a shorter translation
