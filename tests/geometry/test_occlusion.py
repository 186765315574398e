"""Occlusion masks with known answers."""

import numpy as np
import tensorflow as tf

from depth_motion import geometry


def test_consistent_forward_backward_flows_give_no_occlusion():
  forward = tf.broadcast_to(tf.constant([1.5, -0.5]), [1, 6, 8, 2])
  assert not np.any(geometry.forward_backward_occlusion(forward, -forward))
  # A rigid flow from the depth warp and the inverse motion's warp: consistent wherever both frames see the scene.
  # The plane z = 3 of camera j is the plane z = 3.1 of camera i under this pure translation.
  k = geometry.make_intrinsics([20.0], [20.0], [15.5], [11.5])
  rotation, translation = tf.eye(3, batch_shape=[1]), tf.constant([[0.2, -0.1, 0.1]])
  warp = geometry.depth_warp(tf.fill([1, 24, 32], 3.0), rotation, translation, k)
  backward = geometry.depth_warp(tf.fill([1, 24, 32], 3.1), *geometry.invert_motion(rotation, translation), k)
  occluded = geometry.forward_backward_occlusion(
      geometry.flow_from_coords(warp.coords), geometry.flow_from_coords(backward.coords)).numpy()
  assert warp.valid.numpy().mean() > 0.5
  assert not np.any(occluded[warp.valid.numpy()])


def test_inconsistent_flow_is_occluded():
  forward = np.zeros([1, 6, 8, 2], np.float32)
  forward[0, 2:4, 2:4] = [3.0, 0.0]  # a patch that moves while the backward flow says everything stays
  occluded = geometry.forward_backward_occlusion(forward, np.zeros_like(forward)).numpy()
  np.testing.assert_array_equal(occluded[0], np.abs(forward[0, ..., 0]) > 0)


def test_flow_leaving_the_image_marks_occlusion():
  flow = tf.broadcast_to(tf.constant([2.0, 0.0]), [1, 3, 5, 2])
  expected = np.zeros([1, 3, 5], bool)
  expected[..., 3:] = True
  np.testing.assert_array_equal(geometry.leaves_image(flow), expected)
  assert not np.any(geometry.leaves_image(tf.zeros([1, 3, 5, 2])))


def test_closer_to_camera_finds_the_hidden_pixels():
  """Identity motion; frame i has an object in front of the wall that frame j sees: those pixels are hidden."""
  k = geometry.make_intrinsics([10.0], [10.0], [4.5], [3.5])
  depth_j = tf.fill([1, 8, 10], 4.0)
  depth_i = np.full([1, 8, 10], 4.0, np.float32)
  depth_i[0, 2:5, 3:7] = 1.5
  warp = geometry.depth_warp(depth_j, tf.eye(3, batch_shape=[1]), tf.zeros([1, 3]), k)
  resampled = geometry.resample(depth_i[..., np.newaxis], warp.coords)[..., 0]
  visible = geometry.closer_to_camera(warp, resampled, relative_tolerance=0.02).numpy()
  np.testing.assert_array_equal(~visible, depth_i < 4.0)
  # The original code's strict test counts equal depths as hidden: here every pixel.
  assert not np.any(geometry.closer_to_camera(warp, resampled))
