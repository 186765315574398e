"""The least-squares rigid motion from a flow field and depth: exact recovery, scale, weights, gradients."""

import numpy as np
import tensorflow as tf
from tensorflow_graphics.geometry.transformation import rotation_matrix_3d
from tensorflow_graphics.rendering.camera import perspective

from depth_motion import geometry
from depth_motion.geometry import camera
from depth_motion.geometry import pose_from_flow

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


def _reference_jacobian(points):
  """[B, N, 2, 6]: the Jacobian of the solver before the batched-matmul rewrite (see `_reference_motion_from_flow`)."""
  x = points[..., 0] / points[..., 2]
  y = points[..., 1] / points[..., 2]
  inverse_z = 1.0 / points[..., 2]
  zero = tf.zeros_like(x)
  du = tf.stack([-x * y, 1.0 + x * x, -y, inverse_z, zero, -x * inverse_z], axis=-1)
  dv = tf.stack([-(1.0 + y * y), x * y, x, zero, inverse_z, -y * inverse_z], axis=-1)
  return tf.stack([du, dv], axis=-2)


def _reference_axis_angle(vector):
  angle = tf.norm(vector + 1e-12, axis=-1, keepdims=True)
  return vector / angle, angle


def _reference_motion_from_flow(flow, depth, intrinsics, weights=None, iterations=pose_from_flow.DEFAULT_ITERATIONS,
                                damping=pose_from_flow.DEFAULT_DAMPING, robust_scale=None, translation_prior=0.0,
                                dtype=tf.float32):
  """`geometry.motion_from_flow` as it was before the normal equations became batched matmuls (issue 27): per-pixel
  3-operand einsums over the [B, N, 2, 6] Jacobian. The reference the rewrite must reproduce (and be timed against
  by benchmarks/pose_solver.py). Unchanged but for `dtype` (float64: the float32 solvers' common truth), for which
  camera.unproject and intrinsics_lib.focal_and_principal_point (float32 only) are inlined."""
  flow, depth, intrinsics = (tf.cast(value, dtype) for value in (flow, depth, intrinsics))
  batch = tf.shape(flow)[0]
  height, width = tf.shape(flow)[1], tf.shape(flow)[2]
  if weights is None:
    weights = tf.ones_like(depth)
  weights = tf.reshape(tf.cast(weights, dtype), [batch, -1])
  total_weight = tf.reduce_sum(weights, axis=1)
  scale = tf.reduce_sum(weights * tf.reshape(1.0 / depth, [batch, -1]), axis=1) / tf.maximum(total_weight, 1e-12)
  pixels = tf.broadcast_to(tf.cast(camera.pixel_grid(height, width), dtype), tf.shape(flow))
  focal = tf.stack([intrinsics[:, 0, 0], intrinsics[:, 1, 1]], axis=-1)  # intrinsics_lib's, which is float32 only
  principal = tf.stack([intrinsics[:, 0, 2], intrinsics[:, 1, 2]], axis=-1)
  grid_shape = tf.shape(pixels)
  points = tf.reshape(perspective.unproject(
      pixels, (depth * scale[:, tf.newaxis, tf.newaxis])[..., tf.newaxis],
      tf.broadcast_to(focal[:, tf.newaxis, tf.newaxis, :], grid_shape),
      tf.broadcast_to(principal[:, tf.newaxis, tf.newaxis, :], grid_shape)), [batch, -1, 3])
  focal = focal[:, tf.newaxis, :]
  target = (tf.reshape(pixels + flow, [batch, -1, 2]) - principal[:, tf.newaxis, :]) / focal
  rotation = tf.eye(3, batch_shape=[batch], dtype=dtype)
  translation = tf.zeros([batch, 3], dtype)
  diagonal = tf.constant([damping] * 3 + [damping + translation_prior] * 3, dtype)
  regularizer = total_weight[:, tf.newaxis, tf.newaxis] * tf.linalg.diag(tf.broadcast_to(diagonal, [batch, 6]))
  prior = translation_prior * total_weight[:, tf.newaxis]
  for iteration in range(iterations):
    moved = tf.einsum("bij,bnj->bni", rotation, points) + translation[:, tf.newaxis, :]
    in_front = moved[..., 2] > camera.MIN_PROJECTION_DEPTH
    safe = tf.where(in_front[..., tf.newaxis], moved, tf.constant([0.0, 0.0, 1.0], dtype))
    residual = target - safe[..., :2] / safe[..., 2:]
    jacobian = _reference_jacobian(safe)
    weight = weights * tf.cast(in_front, dtype)
    if robust_scale is not None and iteration > 0:
      pixel_residual = tf.norm(residual * focal + 1e-12, axis=-1)
      weight *= tf.stop_gradient(1.0 / (1.0 + (pixel_residual / robust_scale) ** 2))
    normal = tf.einsum("bn,bnki,bnkj->bij", weight, jacobian, jacobian) + regularizer
    right = tf.einsum("bn,bnki,bnk->bi", weight, jacobian, residual)
    right -= tf.pad(prior * translation, [[0, 0], [3, 0]])
    update = tf.linalg.solve(normal, right[..., tf.newaxis])[..., 0]
    step = rotation_matrix_3d.from_axis_angle(*_reference_axis_angle(update[:, :3]))
    rotation = tf.matmul(step, rotation)
    translation = tf.einsum("bij,bj->bi", step, translation) + update[:, 3:]
  return rotation, translation / scale[:, tf.newaxis]


def random_solver_inputs(batch, height, width, seed=0, behind=0.0):
  """(flow, depth, K, confidence) like MotionNet's least-squares pose gets them: a small motion's flow of a random
  scene plus match noise and gross mismatches, and random confidences. A fraction `behind` of the pixels get a depth
  of 0.005 to 0.02, a random flow and no confidence, and the motion t_z < -0.02 (mostly): the true motion and the
  solution put them behind the camera."""
  rng = np.random.default_rng(seed)
  size = (batch, height, width)
  near = rng.uniform(size=size) < behind
  depth = tf.constant(np.where(near, rng.uniform(0.005, 0.02, size), rng.uniform(1.0, 5.0, size)), tf.float32)
  focal = rng.uniform(0.8, 1.2, (batch, 2)) * width
  centre = rng.uniform(-2.0, 2.0, (batch, 2)) + [(width - 1) / 2, (height - 1) / 2]
  intrinsics = geometry.make_intrinsics(focal[:, 0], focal[:, 1], centre[:, 0], centre[:, 1])
  rotation = geometry.matrix_from_angles(rng.normal(0.0, 0.03, (batch, 3)).astype(np.float32))
  translation = tf.constant(rng.normal(0.0, 0.05, (batch, 3)) - [0.0, 0.0, 0.1 if behind else 0.0], tf.float32)
  pixels = tf.broadcast_to(geometry.pixel_grid(height, width), size + (2,))
  moved = geometry.transform_points(rotation, translation, geometry.unproject(pixels, depth, intrinsics))
  noise = rng.normal(0.0, 0.3, size + (2,))
  mismatched = rng.uniform(size=size + (1,)) < 0.1
  noise += mismatched * rng.uniform(-6.0, 6.0, size + (2,))
  flow = np.where(near[..., np.newaxis], rng.uniform(-5.0, 5.0, size + (2,)),
                  geometry.project(moved, intrinsics) - pixels + noise)
  confidence = tf.constant(np.where(near, 0.0, rng.uniform(0.0, 1.0, size)), tf.float32)
  return tf.constant(flow, tf.float32), depth, intrinsics, confidence


def _solve_with_gradients(solver, inputs, **kwargs):
  """[rotation, translation] and the gradients of a fixed functional of them w.r.t. each input."""
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    rotation, translation = solver(*inputs, **kwargs)
    objective = (tf.reduce_sum(rotation * tf.constant([[0.3, -1.0, 2.0]], rotation.dtype)) +
                 tf.reduce_sum(translation * tf.constant([1.0, -0.5, 3.0], rotation.dtype)))
  return [rotation, translation] + tape.gradient(objective, inputs)


_PARTS = ("rotation", "translation", "d/dflow", "d/ddepth", "d/dintrinsics", "d/dweights")


def _relative_errors(actual, expected):
  """Max |actual - expected| of each tensor relative to its largest |expected| (entries near 0, such as a small
  rotation's, have no relative accuracy of their own)."""
  return [np.abs(np.asarray(a, np.float64) - np.asarray(e, np.float64)).max() / np.abs(np.asarray(e)).max()
          for a, e in zip(actual, expected)]


def _check_against_the_reference(inputs, kwargs, name, gradient_rtol):
  """The rewrite equals the einsum reference (outputs to 3e-6, gradients to `gradient_rtol`, float32 rounding of
  differently ordered sums) and is as close as the reference to the float64 solution."""
  new = _solve_with_gradients(geometry.motion_from_flow, inputs, **kwargs)
  old = _solve_with_gradients(_reference_motion_from_flow, inputs, **kwargs)
  truth = _solve_with_gradients(_reference_motion_from_flow, [tf.cast(x, tf.float64) for x in inputs],
                                dtype=tf.float64, **kwargs)
  assert all(np.all(np.isfinite(value)) for value in new), name
  for part, error, new_error, old_error, rtol in zip(_PARTS, _relative_errors(new, old), _relative_errors(new, truth),
                                                     _relative_errors(old, truth), [3e-6] * 2 + [gradient_rtol] * 4):
    assert error < rtol, f"{name}, {part}: new vs old {error:.1e}"
    assert new_error < 3.0 * old_error + 1e-7, f"{name}, {part}: vs float64, new {new_error:.1e}, old {old_error:.1e}"


def test_matches_the_einsum_reference_in_value_and_gradient():
  inputs = list(random_solver_inputs(3, 16, 24, seed=8))
  near = list(random_solver_inputs(3, 16, 24, seed=10, behind=0.03))
  pixels = tf.broadcast_to(geometry.pixel_grid(16, 24), [3, 16, 24, 2])
  moved = geometry.transform_points(*geometry.motion_from_flow(*near), geometry.unproject(pixels, *near[1:3]))
  assert np.all(np.sum(moved[..., 2] <= camera.MIN_PROJECTION_DEPTH, axis=(1, 2)) > 5)  # the masked path is taken
  cases = {"defaults, no weights": (inputs[:3], dict()),
           "motion_net settings": (inputs, dict(iterations=5, robust_scale=0.5, translation_prior=0.003)),
           "strong prior": (inputs, dict(iterations=2, translation_prior=0.1, damping=1e-3)),
           # Not differentiated w.r.t. the weights: at the near pixels (1 / z ~ 100 in the first iteration, before
           # they fall behind) that gradient cancels catastrophically, 0.4 off the float64 one in either solver.
           "points behind the camera": (near[:3], dict(weights=near[3], iterations=4, robust_scale=0.5))}
  for name, (case_inputs, kwargs) in cases.items():
    _check_against_the_reference(case_inputs, kwargs, name, gradient_rtol=3e-5)


def test_matches_the_einsum_reference_at_the_shipped_size():
  """MotionNet's call: 4 pairs in both directions at 64 x 96, 5 robust iterations with the translation prior (inside
  tf.function too: benchmarks/pose_solver.py)."""
  _check_against_the_reference(list(random_solver_inputs(8, 64, 96, seed=9)),
                               dict(iterations=5, robust_scale=0.5, translation_prior=0.003), "shipped size",
                               gradient_rtol=1e-4)
