"""The flow-vs-peers benchmark's scoring: known answers on a pair whose true flow is a known shift."""

import numpy as np
import pytest
import tensorflow as tf

from consistency import flow_peers


def _shift_pair(height=24, width=32, shift=4.0, depth=2.0):
  """A fronto-parallel plane at `depth` m seen before and after the camera moves sideways: every pixel's true flow
  is (-shift, 0) pixels (fx = 40, so a translation of shift * depth / fx metres)."""
  fx = 40.0
  intrinsics = np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1]], np.float32)
  pose_b = np.eye(4, dtype=np.float32)
  pose_b[0, 3] = shift * depth / fx  # camera b moved right (camera-to-world): points move left in b
  images = np.random.default_rng(0).random([1, 2, height, width, 3]).astype(np.float32)
  return {"image": tf.constant(images), "depth": tf.fill([1, 2, height, width], depth),
          "pose": tf.constant(np.stack([np.eye(4, dtype=np.float32), pose_b])[np.newaxis]),
          "intrinsics": tf.constant(intrinsics[np.newaxis])}


def test_zero_flow_and_ground_truth_rows_are_exact_on_a_known_shift():
  results = flow_peers.score([_shift_pair()], rows=("zero flow", "ground truth"))
  # The true flow is (-4, 0) everywhere, so zero flow is 4 px off at every pixel, visible in frame b or not, and
  # every pixel is an outlier (4 px > 3 px and > 5 % of 4 px).
  zero, truth = results["zero flow"], results["ground truth"]
  np.testing.assert_allclose(zero["flow_epe_all"], 4.0, rtol=1e-5)
  np.testing.assert_allclose(zero["flow_epe_noc"], 4.0, rtol=1e-5)
  np.testing.assert_allclose(zero["zero_flow_epe_all"], 4.0, rtol=1e-5)
  assert zero["flow_fl_all"] == 1.0
  # The 4 columns leaving the image on the left are occluded in frame b.
  np.testing.assert_allclose(zero["gt_occlusion_fraction"], 4 / 32, atol=1e-6)
  assert truth["flow_epe_all"] == truth["flow_epe_noc"] == truth["flow_fl_all"] == 0.0
  # Occlusion by EFC's out-of-frame rule: zero flow never leaves the image (nothing predicted occluded: F1 0, no
  # precision); the true flow leaves it exactly at the 4 occluded columns (a plane hides nothing else): F1 1.
  assert zero["out_of_frame_f1"] == zero["out_of_frame_recall"] == 0.0 and "out_of_frame_precision" not in zero
  assert truth["out_of_frame_f1"] == truth["out_of_frame_precision"] == truth["out_of_frame_recall"] == 1.0
  markdown = flow_peers.table(results)
  assert "| zero flow | 4.000 | 4.000 | 100.00% | 0.000 |" in markdown
  assert "| ground truth | 0.000 | 0.000 | 0.00% | 1.000 |" in markdown


def test_classical_flow_follows_a_shift():
  pytest.importorskip("cv2", reason="OpenCV is a benchmark-only extra: pip install -e '.[bench]'")
  image = np.random.default_rng(1).random([48, 64, 3]).astype(np.float32)
  image = tf.nn.avg_pool2d(image[np.newaxis], 3, 1, "SAME")[0].numpy()  # smooth texture, trackable
  shifted = np.roll(image, 2, axis=1)  # content moves 2 px right
  for name in ("Farneback", "DIS"):
    flow = flow_peers.classical_flow(name, image, shifted)
    assert flow.shape == (48, 64, 2)
    np.testing.assert_allclose(np.median(flow[8:-8, 8:-8, 0]), 2.0, atol=0.3)
    np.testing.assert_allclose(np.median(flow[8:-8, 8:-8, 1]), 0.0, atol=0.3)
