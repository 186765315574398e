"""Direct photometric alignment: a known motion recovered from an exactly warped image pair, scale, outliers, no
gradient."""

import numpy as np
import tensorflow as tf

from depth_motion import geometry
from depth_motion import metrics

BATCH, HEIGHT, WIDTH = 2, 48, 64


def _texture(seed):
  """[BATCH, HEIGHT, WIDTH, 3] smooth random texture in [0, 1] (noise at 1/4 resolution, bicubically upsampled)."""
  noise = tf.random.stateless_uniform([BATCH, HEIGHT // 4, WIDTH // 4, 3], seed=[seed, 0])
  return tf.clip_by_value(tf.image.resize(noise, [HEIGHT, WIDTH], method="bicubic"), 0.0, 1.0)


def _pair(seed=0, rotation_angles=((0.01, -0.02, 0.005), (-0.015, 0.01, 0.01)),
          translation=((0.05, -0.02, 0.1), (-0.08, 0.03, -0.06))):
  """(image_i, image_j, depth_j, K, R, t): image_j is image_i seen through the motion of frame j's points into i."""
  image_i = _texture(seed)
  xs = tf.linspace(0.0, 1.0, WIDTH)[tf.newaxis, tf.newaxis, :]
  ys = tf.linspace(0.0, 1.0, HEIGHT)[tf.newaxis, :, tf.newaxis]
  depth_j = tf.broadcast_to(2.0 + 1.5 * xs - 0.8 * ys, [BATCH, HEIGHT, WIDTH])  # a slanted plane, 1.2 - 3.5 m
  intrinsics = geometry.make_intrinsics([50.0, 55.0], [52.0, 50.0], [31.5, 32.0], [23.5, 24.0])
  rotation = geometry.matrix_from_angles(tf.constant(rotation_angles, tf.float32))
  translation = tf.constant(translation, tf.float32)
  warp = geometry.depth_warp(depth_j, rotation, translation, intrinsics)
  image_j = geometry.resample(image_i, warp.coords, boundary="border")
  return image_i, image_j, depth_j, intrinsics, rotation, translation


def _errors(found, rotation, translation):
  errors = metrics.motion_errors(geometry.angles_from_matrix(found[0]), found[1], rotation, translation)
  return errors["rotation_error"].numpy(), errors["translation_angle"].numpy()


def test_recovers_a_known_motion_of_several_pixels_from_the_identity():
  image_i, image_j, depth_j, intrinsics, rotation, translation = _pair()
  found = geometry.motion_from_images(image_i, image_j, depth_j, intrinsics)
  rotation_error, translation_angle = _errors(found, rotation, translation)
  assert np.all(rotation_error < 0.05), rotation_error  # degrees, of true rotations of 1.3 - 1.1 deg
  assert np.all(translation_angle < 2.0), translation_angle
  np.testing.assert_allclose(tf.norm(found[1], axis=-1), tf.norm(translation, axis=-1), rtol=0.05)


def test_the_truth_is_a_fixed_point():
  image_i, image_j, depth_j, intrinsics, rotation, translation = _pair(seed=1)
  found = geometry.motion_from_images(image_i, image_j, depth_j, intrinsics, initial=(rotation, translation))
  rotation_error, translation_angle = _errors(found, rotation, translation)
  assert np.all(rotation_error < 0.02) and np.all(translation_angle < 1.0), (rotation_error, translation_angle)


def test_translation_scales_with_the_depth_and_the_rotation_does_not():
  image_i, image_j, depth_j, intrinsics, _, _ = _pair(seed=2)
  rotation, translation = geometry.motion_from_images(image_i, image_j, depth_j, intrinsics)
  scaled_rotation, scaled_translation = geometry.motion_from_images(image_i, image_j, depth_j * 4.0, intrinsics)
  np.testing.assert_allclose(scaled_rotation, rotation, atol=1e-4)
  np.testing.assert_allclose(scaled_translation, translation * 4.0, rtol=1e-3, atol=1e-4)


def test_a_corrupted_region_does_not_pull_the_solution():
  image_i, image_j, depth_j, intrinsics, rotation, translation = _pair(seed=3)
  # A moving object: a block of frame j replaced by unrelated content.
  block = tf.pad(tf.ones([BATCH, 16, 20, 3]), [[0, 0], [8, HEIGHT - 24], [30, WIDTH - 50], [0, 0]])
  corrupted = image_j * (1.0 - block) + _texture(seed=9) * block
  found = geometry.motion_from_images(image_i, corrupted, depth_j, intrinsics)
  rotation_error, translation_angle = _errors(found, rotation, translation)
  assert np.all(rotation_error < 0.15) and np.all(translation_angle < 6.0), (rotation_error, translation_angle)


def test_no_gradient_flows_through_the_solution():
  image_i, image_j, depth_j, intrinsics, _, _ = _pair(seed=4)
  with tf.GradientTape() as tape:
    tape.watch([image_i, depth_j])
    rotation, translation = geometry.motion_from_images(image_i, image_j, depth_j, intrinsics)
    total = tf.reduce_sum(rotation) + tf.reduce_sum(translation)
  assert all(gradient is None for gradient in tape.gradient(total, [image_i, depth_j]))
