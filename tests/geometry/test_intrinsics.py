"""Intrinsics: round trips, inverse, and K kept right through resize, crop and flip of real images."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry

HEIGHT, WIDTH = 24, 32
K = geometry.make_intrinsics([30.0], [28.0], [15.2], [11.7])  # [1, 3, 3]
POINTS = np.array([[0.3, -0.2, 2.0], [-0.5, 0.4, 3.5], [0.05, 0.1, 1.2]], np.float32)


def _ramp_image(height, width):
  """[1, H, W, 2] image whose value at pixel (x, y) is (x, y): bilinear transforms of it are exact in the interior."""
  return geometry.pixel_grid(height, width)[tf.newaxis]


def _project(points, intrinsics):
  return geometry.project(tf.constant(points)[tf.newaxis, tf.newaxis], intrinsics)[0, 0]


def _original_pixel_seen_at(transformed_image, pixel):
  """Which original pixel the transformed ramp image shows at `pixel` (bilinear, so sub-pixel exact)."""
  return geometry.resample(transformed_image, pixel[tf.newaxis, tf.newaxis], boundary="border")[0, 0]


def test_params_round_trip_and_inverse():
  k = geometry.make_intrinsics([100.0, 50.0], [90.0, 55.0], [64.0, 30.5], [48.0, 20.0])
  np.testing.assert_allclose(np.stack(geometry.intrinsics_params(k), -1),
                             [[100, 90, 64, 48], [50, 55, 30.5, 20]])
  np.testing.assert_allclose(k @ geometry.invert_intrinsics(k), np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-5)
  np.testing.assert_allclose(geometry.invert_intrinsics(k), np.linalg.inv(k.numpy()), atol=1e-7)


@pytest.mark.parametrize("new_size", [(12, 16), (40, 56), (24, 20)])
def test_resize(new_size):
  image = _ramp_image(HEIGHT, WIDTH)
  resized = tf.image.resize(image, new_size, method="bilinear")
  k_new = geometry.resize_intrinsics(K, (HEIGHT, WIDTH), new_size)
  original = _project(POINTS, K)
  seen = _original_pixel_seen_at(resized, _project(POINTS, k_new))
  np.testing.assert_allclose(seen, original, atol=1e-4)


def test_crop():
  image = _ramp_image(HEIGHT, WIDTH)
  cropped = tf.image.crop_to_bounding_box(image, 3, 5, 16, 20)
  k_new = geometry.crop_intrinsics(K, 3, 5)
  seen = _original_pixel_seen_at(cropped, _project(POINTS, k_new))
  np.testing.assert_allclose(seen, _project(POINTS, K), atol=1e-5)


def test_flip_images_the_mirrored_scene():
  image = _ramp_image(HEIGHT, WIDTH)
  flipped = tf.image.flip_left_right(image)
  k_new = geometry.flip_intrinsics(K, WIDTH)
  mirrored = POINTS * np.array([-1.0, 1.0, 1.0], np.float32)
  seen = _original_pixel_seen_at(flipped, _project(mirrored, k_new))
  np.testing.assert_allclose(seen, _project(POINTS, K), atol=1e-5)


def test_resize_crop_flip_chain():
  image = _ramp_image(HEIGHT, WIDTH)
  k_new = geometry.resize_intrinsics(K, (HEIGHT, WIDTH), (48, 64))
  image = tf.image.resize(image, (48, 64))
  k_new = geometry.crop_intrinsics(k_new, 8, 10)
  image = tf.image.crop_to_bounding_box(image, 8, 10, 32, 40)
  k_new = geometry.flip_intrinsics(k_new, 40)
  image = tf.image.flip_left_right(image)
  mirrored = POINTS * np.array([-1.0, 1.0, 1.0], np.float32)
  seen = _original_pixel_seen_at(image, _project(mirrored, k_new))
  np.testing.assert_allclose(seen, _project(POINTS, K), atol=1e-4)
