"""Rotation convention, inverse and composition of rigid motions, motion from camera poses, mirroring."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from depth_motion.geometry import rigid_motion
from tests.geometry import reference

ANGLES = np.array([[0.1, -0.2, 0.3], [-0.5, 0.4, 1.2], [0.0, 0.0, 0.0]], np.float32)


def _random_motion(rng, batch):
  rotation = geometry.matrix_from_angles(rng.uniform(-0.6, 0.6, (batch, 3)).astype(np.float32))
  return rotation, tf.constant(rng.normal(size=(batch, 3)), tf.float32)


def _homogeneous(rotation, translation):
  out = np.tile(np.eye(4), (len(rotation), 1, 1))
  out[:, :3, :3] = rotation
  out[:, :3, 3] = translation
  return out


def test_euler_convention_is_rx_ry_rz():
  expected = np.stack([reference.rotation_xyz(*a) for a in ANGLES.astype(np.float64)])
  np.testing.assert_allclose(geometry.matrix_from_angles(ANGLES), expected, atol=1e-6)


def test_angles_round_trip():
  np.testing.assert_allclose(geometry.angles_from_matrix(geometry.matrix_from_angles(ANGLES)), ANGLES, atol=1e-5)


def test_inverse_and_compose_identities():
  rotation, translation = _random_motion(np.random.default_rng(0), 4)
  rotation_inv, translation_inv = geometry.invert_motion(rotation, translation)
  for r, t in (geometry.compose_motions(rotation, translation, rotation_inv, translation_inv),
               geometry.compose_motions(rotation_inv, translation_inv, rotation, translation)):
    np.testing.assert_allclose(r, np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-6)
    np.testing.assert_allclose(t, np.zeros((4, 3)), atol=1e-6)


def test_compose_matches_matrix_product():
  rng = np.random.default_rng(1)
  (r1, t1), (r2, t2) = _random_motion(rng, 3), _random_motion(rng, 3)
  rotation, translation = geometry.compose_motions(r1, t1, r2, t2)
  expected = _homogeneous(r2.numpy(), t2.numpy()) @ _homogeneous(r1.numpy(), t1.numpy())
  np.testing.assert_allclose(_homogeneous(rotation.numpy(), translation.numpy()), expected, atol=1e-5)


def test_translation_fields_compose_per_pixel():
  rng = np.random.default_rng(2)
  (r1, t1), (r2, t2) = _random_motion(rng, 2), _random_motion(rng, 2)
  residual = tf.constant(rng.normal(size=(2, 3, 4, 3)), tf.float32)
  field = geometry.translation_field(t1, residual)
  rotation, translation = geometry.compose_motions(r1, field, r2, t2)
  assert translation.shape == (2, 3, 4, 3)
  for y, x in [(0, 0), (2, 3), (1, 2)]:
    _, expected = geometry.compose_motions(r1, field[:, y, x], r2, t2)
    np.testing.assert_allclose(translation[:, y, x], expected, atol=1e-6)
  _, back = geometry.invert_motion(*geometry.invert_motion(rotation, translation))
  np.testing.assert_allclose(back, translation, atol=1e-5)


def test_motion_from_poses():
  rng = np.random.default_rng(3)
  source = _homogeneous(*[m.numpy() for m in _random_motion(rng, 2)])
  target = _homogeneous(*[m.numpy() for m in _random_motion(rng, 2)])
  rotation, translation = geometry.motion_from_poses(source, target)
  expected = np.linalg.inv(target) @ source
  np.testing.assert_allclose(_homogeneous(rotation.numpy(), translation.numpy()), expected, atol=1e-5)


@pytest.mark.parametrize("seed", [4, 5])
def test_mirrored_motion_moves_mirrored_points(seed):
  rng = np.random.default_rng(seed)
  rotation, translation = _random_motion(rng, 2)
  points = tf.constant(rng.normal(size=(2, 1, 5, 3)), tf.float32)
  mirror = tf.constant([-1.0, 1.0, 1.0])
  moved_then_mirrored = geometry.transform_points(rotation, translation, points) * mirror
  mirrored_rotation, mirrored_translation = geometry.mirror_motion(rotation, translation)
  np.testing.assert_allclose(geometry.transform_points(mirrored_rotation, mirrored_translation, points * mirror),
                             moved_then_mirrored, atol=1e-5)


def _reference_rotate(rotation, vectors):
  """The einsum `rigid_motion._rotate` this replaced (its reference for the equivalence tests and the benchmark)."""
  vectors = tf.convert_to_tensor(vectors, tf.float32)
  if vectors.shape.rank == 2:
    return tf.einsum("bij,bj->bi", rotation, vectors)
  return tf.einsum("bij,b...j->b...i", rotation, vectors)


def random_rotate_inputs(batch, field_shape, seed=0):
  """(R [batch, 3, 3], v [batch, *field_shape, 3]) float32: rotations of up to ~0.6 rad, normal vectors."""
  rng = np.random.default_rng(seed)
  rotation, _ = _random_motion(rng, batch)
  return rotation, tf.constant(rng.normal(size=(batch, *field_shape, 3)), tf.float32)


def _relative_deviation(new, old):
  new, old = np.asarray(new, np.float64), np.asarray(old, np.float64)
  return np.abs(new - old).max() / np.abs(old).max()


@pytest.mark.parametrize("field_shape", [(), (7,), (5, 6), (2, 3, 4)])
def test_rotate_matches_the_einsum_reference_with_gradients(field_shape):
  rotation, vectors = random_rotate_inputs(3, field_shape, seed=len(field_shape))
  upstream = tf.random.stateless_normal(vectors.shape, seed=[1, len(field_shape)])
  results = []
  for rotate in (rigid_motion._rotate, _reference_rotate):  # pylint: disable=protected-access
    with tf.GradientTape() as tape:
      tape.watch([rotation, vectors])
      rotated = rotate(rotation, vectors)
    results.append([rotated] + tape.gradient(rotated, [rotation, vectors], output_gradients=upstream))
  (new, *new_gradients), (old, *old_gradients) = results
  assert new.shape == old.shape == vectors.shape
  assert _relative_deviation(new, old) < 1e-6
  for new_gradient, old_gradient in zip(new_gradients, old_gradients):
    assert _relative_deviation(new_gradient, old_gradient) < 1e-5


def test_rotate_in_a_tf_function_with_unknown_field_shape_keeps_the_static_shape():
  rotation, vectors = random_rotate_inputs(2, (4, 5), seed=3)
  rotate = tf.function(rigid_motion._rotate,  # pylint: disable=protected-access
                       input_signature=[tf.TensorSpec([None, 3, 3]), tf.TensorSpec([None, None, None, 3])])
  np.testing.assert_allclose(rotate(rotation, vectors), _reference_rotate(rotation, vectors), rtol=1e-6, atol=1e-6)
  traced = tf.function(rigid_motion._rotate).get_concrete_function(  # pylint: disable=protected-access
      tf.TensorSpec([2, 3, 3]), tf.TensorSpec([2, 4, 5, 3]))
  assert traced.output_shapes == tf.TensorShape([2, 4, 5, 3])
