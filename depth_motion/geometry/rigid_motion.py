"""Rigid camera motion: rotations from Euler angles, inverse and composition, motion between two posed frames.

A motion (R, t) carries camera-frame points of one frame into another: p' = R p + t. R is [B, 3, 3]. t is either a
single translation [B, 3] or a per-pixel translation field [B, H, W, 3] (background translation plus residual object
motion, defined on the source frame's pixel grid); every function here accepts both.
"""

import tensorflow as tf

from depth_motion.geometry.graphics import euler
from depth_motion.geometry.graphics import rotation_matrix_3d


def matrix_from_angles(angles):
  """Rotation matrices R = Rx(a) Ry(b) Rz(c) from [..., 3] angles (a, b, c) in radians.

  This is the convention of Depth from Videos in the Wild: the transpose of tensorflow-graphics'
  `from_euler(-angles)` (which builds Rz Ry Rx).
  """
  angles = tf.convert_to_tensor(angles, tf.float32)
  return tf.linalg.matrix_transpose(rotation_matrix_3d.from_euler(-angles))


def angles_from_matrix(rotation):
  """The inverse of `matrix_from_angles`: [..., 3] angles (a, b, c) with R = Rx(a) Ry(b) Rz(c).

  Unique for |b| < pi / 2 (away from gimbal lock).
  """
  rotation = tf.convert_to_tensor(rotation, tf.float32)
  return -euler.from_rotation_matrix(tf.linalg.matrix_transpose(rotation))


def _rotate(rotation, vectors):
  """R v for R [B, 3, 3] and v [B, 3] or [B, ..., 3] (a field on a pixel grid)."""
  vectors = tf.convert_to_tensor(vectors, tf.float32)
  if vectors.shape.rank == 2:
    return tf.einsum("bij,bj->bi", rotation, vectors)
  # A field as one batched matmul, [B, P, 3] @ R^T: ~5x faster forward + backward than einsum("bij,b...j->b...i").
  shape = tf.shape(vectors)
  rotated = tf.linalg.matmul(tf.reshape(vectors, [shape[0], -1, 3]), rotation, transpose_b=True)
  rotated = tf.reshape(rotated, shape)
  rotated.set_shape(vectors.shape)
  return rotated


def transform_points(rotation, translation, points):
  """R p + t for [B, H, W, 3] points; t is [B, 3] or a [B, H, W, 3] field."""
  translation = tf.convert_to_tensor(translation, tf.float32)
  if translation.shape.rank == 2:
    translation = translation[:, tf.newaxis, tf.newaxis, :]
  return _rotate(rotation, points) + translation


def invert_motion(rotation, translation):
  """(R^T, -R^T t): the motion that undoes (R, t). A translation field stays on the same pixel grid."""
  rotation_inv = tf.linalg.matrix_transpose(rotation)
  return rotation_inv, -_rotate(rotation_inv, translation)


def compose_motions(rotation1, translation1, rotation2, translation2):
  """(R1, t1) followed by (R2, t2): (R2 R1, R2 t1 + t2).

  A [B, 3] translation broadcasts against a [B, H, W, 3] field (both fields must live on the same pixel grid).
  """
  translation1 = tf.convert_to_tensor(translation1, tf.float32)
  translation2 = tf.convert_to_tensor(translation2, tf.float32)
  rotated = _rotate(rotation2, translation1)
  if rotated.shape.rank != translation2.shape.rank:
    rotated, translation2 = (_as_field(rotated), _as_field(translation2))
  return tf.matmul(rotation2, rotation1), rotated + translation2


def _as_field(translation):
  if translation.shape.rank == 2:
    return translation[:, tf.newaxis, tf.newaxis, :]
  return translation


def translation_field(translation, residual=None):
  """A per-pixel translation field: background translation [B, 3] plus an optional residual field [B, H, W, 3]."""
  field = _as_field(tf.convert_to_tensor(translation, tf.float32))
  if residual is None:
    return field
  return field + tf.convert_to_tensor(residual, tf.float32)


def motion_from_poses(source_pose, target_pose):
  """The motion carrying camera-frame points of the source frame into the target camera.

  Args:
    source_pose, target_pose: [B, 4, 4] camera-to-world poses (the ScanNet `pose/<i>.txt` convention).

  Returns:
    (R [B, 3, 3], t [B, 3]) with p_target = R p_source + t, i.e. inv(target_pose) @ source_pose.
  """
  source_pose = tf.convert_to_tensor(source_pose, tf.float32)
  target_pose = tf.convert_to_tensor(target_pose, tf.float32)
  target_rotation_inv, target_translation_inv = invert_motion(target_pose[:, :3, :3], target_pose[:, :3, 3])
  return compose_motions(source_pose[:, :3, :3], source_pose[:, :3, 3], target_rotation_inv, target_translation_inv)


def mirror_motion(rotation, translation):
  """The motion seen in horizontally flipped images (the scene mirrored by S = diag(-1, 1, 1)): (S R S, S t)."""
  sign = tf.constant([-1.0, 1.0, 1.0])
  rotation = tf.convert_to_tensor(rotation, tf.float32)
  return rotation * sign[:, tf.newaxis] * sign, tf.convert_to_tensor(translation, tf.float32) * sign
