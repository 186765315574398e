"""Ground-truth correspondences between posed RGB-D frames, on cases with known answers."""

import numpy as np
import tensorflow as tf

from datasets import ground_truth

H, W, F = 12, 16, 20.0
K = tf.constant([[[F, 0.0, 7.5], [0.0, F, 5.5], [0.0, 0.0, 1.0]]])


def _pose(x):
  pose = np.eye(4, dtype=np.float32)
  pose[0, 3] = x
  return pose[np.newaxis]


def test_sideways_camera_motion_gives_the_stereo_flow():
  """The target camera sits 0.5 m to the right: a point at depth z moves f * 0.5 / z pixels left."""
  depth = np.full([1, H, W], 2.0, np.float32)
  depth[0, :, :4] = 4.0
  result = ground_truth.correspondence(depth, _pose(0.0), _pose(0.5), K)
  np.testing.assert_allclose(result.flow[..., 0], -F * 0.5 / depth, atol=1e-4)
  np.testing.assert_allclose(result.flow[..., 1], 0.0, atol=1e-4)
  x = np.arange(W)[np.newaxis, np.newaxis, :] + result.flow[..., 0].numpy()
  np.testing.assert_array_equal(result.valid, x >= -1e-3)
  np.testing.assert_array_equal(result.visible, result.valid)  # no target depth: nothing can hide


def test_occluder_in_the_target_hides_pixels_and_missing_depth_is_invalid():
  depth = np.full([1, H, W], 3.0, np.float32)
  depth[0, 0, 0] = 0.0  # missing
  target = np.full([1, H, W], 3.0, np.float32)
  target[0, 4:8, 6:10] = 1.0  # something in front, seen only by the target camera
  target[0, 10:, :] = 0.0     # missing target depth hides nothing
  result = ground_truth.correspondence(depth, _pose(0.0), _pose(0.0), K, target_depth=target)
  assert not result.valid[0, 0, 0]
  expected = np.ones([H, W], bool)
  expected[0, 0] = False
  expected[4:8, 6:10] = False
  np.testing.assert_array_equal(result.visible[0], expected)


def test_pair_motions_carry_camera_j_points_into_camera_i():
  # Camera 0 at the origin, camera 1 one metre to the right (x), both looking along z: a point 1 m in front of
  # camera 1 is at x = 1 in camera 0, and a point 1 m in front of camera 0 is at x = -1 in camera 1.
  poses = np.tile(np.eye(4, dtype=np.float32), [1, 2, 1, 1])
  poses[0, 1, 0, 3] = 1.0
  motions = ground_truth.pair_motions(poses, [(0, 1), (1, 0)])
  point = tf.constant([[0.0, 0.0, 1.0]])
  for (i, j), expected in (((0, 1), [1.0, 0.0, 1.0]), ((1, 0), [-1.0, 0.0, 1.0])):
    rotation, translation = motions[(i, j)]
    np.testing.assert_allclose((tf.linalg.matvec(rotation, point) + translation).numpy(), [expected], atol=1e-6)
