"""Pixel grid, projection and unprojection."""

import numpy as np
import tensorflow as tf

from depth_motion import geometry


def test_pixel_grid():
  grid = geometry.pixel_grid(2, 3).numpy()
  assert grid.shape == (2, 3, 2)
  np.testing.assert_array_equal(grid[1, 2], [2.0, 1.0])
  np.testing.assert_array_equal(grid[..., 0], [[0, 1, 2], [0, 1, 2]])


def test_project_known_point():
  k = geometry.make_intrinsics([100.0], [80.0], [32.0], [24.0])
  pixel = geometry.project(tf.constant([[[[0.5, -0.25, 2.0]]]]), k)
  np.testing.assert_allclose(pixel[0, 0, 0], [100 * 0.25 + 32, 80 * -0.125 + 24])


def test_unproject_then_project_returns_the_pixel():
  rng = np.random.default_rng(0)
  k = geometry.make_intrinsics(rng.uniform(20, 60, 3), rng.uniform(20, 60, 3), rng.uniform(5, 10, 3),
                               rng.uniform(4, 8, 3))
  grid = tf.broadcast_to(geometry.pixel_grid(8, 10), [3, 8, 10, 2])
  depth = tf.constant(rng.uniform(0.5, 10.0, (3, 8, 10)), tf.float32)
  points = geometry.unproject(grid, depth, k)
  np.testing.assert_allclose(points[..., 2], depth, rtol=1e-6)
  np.testing.assert_allclose(geometry.project(points, k), grid, atol=1e-4)


def test_points_behind_the_camera_project_finite_with_finite_gradients():
  k = geometry.make_intrinsics([50.0], [50.0], [8.0], [8.0])
  points = tf.constant([[[[0.1, 0.2, 0.0], [0.1, 0.2, -1.0], [0.3, 0.1, 1.0]]]])
  with tf.GradientTape() as tape:
    tape.watch(points)
    pixels = geometry.project(points, k)
  grad = tape.gradient(pixels, points)
  assert np.all(np.isfinite(pixels)) and np.all(np.isfinite(grad))


def test_inside_image():
  pixels = tf.constant([[0.0, 0.0], [9.0, 7.0], [9.01, 3.0], [-0.01, 3.0], [4.0, 7.5]])
  np.testing.assert_array_equal(geometry.inside_image(pixels, 8, 10), [True, True, False, False, False])
