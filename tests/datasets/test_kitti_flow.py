"""KITTI flow 2015: PNG decoding and encoding against hand-made samples, pairs, devkit metrics, the scoring command."""

import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from datasets import flow_metrics
from datasets import kitti_score
from datasets import labels
from datasets.readers import kitti_flow
from tests.datasets import fixtures

SIZE = fixtures.KITTI_SIZE


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return fixtures.write_kitti_flow(str(tmp_path_factory.mktemp("kitti_flow")))


def _ground_truth(index):
  height, width = SIZE
  ys, xs = np.mgrid[0:height, 0:width]
  flow = np.stack([xs / 4.0 - index, -ys / 2.0], axis=-1).astype(np.float32)
  valid = np.ones(SIZE, bool)
  valid[0, :3] = False
  return np.where(valid[..., np.newaxis], flow, 0.0), valid


# ----------------------------------------------------------------------------------------------------------------------
# The PNG format.


def test_decode_hand_made_samples(tmp_path):
  samples = np.array([[[32768 + 96, 32768 - 144, 1], [0, 65535, 7], [40000, 40000, 0]]], np.uint16)
  path = fixtures.write_png(str(tmp_path / "flow.png"), samples)
  flow, valid = kitti_flow.read_flow(path)
  np.testing.assert_array_equal(valid, [[True, True, False]])
  np.testing.assert_array_equal(flow, [[[1.5, -2.25], [-512.0, 511.984375], [0.0, 0.0]]])


def test_encode_as_the_devkit():
  flow = np.array([[[1.5, -2.25], [0.01, -0.01], [600.0, -600.0], [np.nan, 0.0]]], np.float32)
  samples = kitti_flow.encode_flow(flow)
  np.testing.assert_array_equal(samples, [[[32864, 32624, 1], [32768, 32767, 1], [65535, 0, 1], [0, 0, 0]]])
  # An explicit mask writes invalid pixels as zeros.
  np.testing.assert_array_equal(kitti_flow.encode_flow(flow[:, :1], valid=[[False]]), [[[0, 0, 0]]])


def test_write_then_read_round_trip(tmp_path):
  flow = np.random.default_rng(0).uniform(-300, 300, size=(5, 7, 2)).astype(np.float32)
  path = str(tmp_path / "out" / "000000_10.png")
  kitti_flow.write_flow(path, flow)
  raw = tf.io.decode_png(tf.io.read_file(path), dtype=tf.uint16).numpy()
  np.testing.assert_array_equal(raw, kitti_flow.encode_flow(flow))  # a 16-bit RGB PNG of exactly those samples
  decoded, valid = kitti_flow.read_flow(path)
  assert valid.all() and np.abs(decoded - flow).max() <= 1.0 / 64.0


# ----------------------------------------------------------------------------------------------------------------------
# Pairs.


def test_pairs_and_ground_truth(root):
  pairs = kitti_flow.read_pairs(root)
  assert [p.name for p in pairs] == ["000000", "000001"]
  first, second = pairs
  assert first.color_size == SIZE and first.has_flow and first.image_paths[1].endswith("000000_11.png")
  np.testing.assert_allclose(first.intrinsics, [[72.0, 0.0, 31.0], [0.0, 73.0, 17.0], [0.0, 0.0, 1.0]])
  assert np.all(np.isnan(second.intrinsics))  # no calibration file
  truth = second.load_ground_truth()
  flow, valid = _ground_truth(1)
  np.testing.assert_array_equal(truth["valid_occ"], valid)
  np.testing.assert_array_equal(truth["flow_occ"], flow)
  noc_valid = valid.copy()
  noc_valid[:, -1] = False
  np.testing.assert_array_equal(truth["valid_noc"], noc_valid)
  frame = first.load(0, (3, 5))
  assert frame["image"].shape == (3, 5, 3) and frame["flow"].shape == (3, 5, 2) and not bool(frame["has_label"])
  assert "flow" not in first.load(1, (3, 5))


# ----------------------------------------------------------------------------------------------------------------------
# Metrics, against hand-computed values.


def test_interpolate_background_as_the_devkit():
  u = np.array([[9, 1, 9, 9, 3], [9, 9, 9, 9, 9], [5, 9, 9, 9, 9]], np.float32)
  v = np.array([[9, 2, 9, 9, -1], [9, 9, 9, 9, 9], [7, 9, 9, 9, 9]], np.float32)
  valid = np.array([[0, 1, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
  flow, filled = flow_metrics.interpolate_background(np.stack([u, v], -1), valid)
  # Row 0: the interior gap takes min(1, 3) and min(2, -1) per component, the left edge the first valid flow.
  np.testing.assert_array_equal(flow[0], [[1, 2], [1, 2], [1, -1], [1, -1], [3, -1]])
  # Row 2: extended to the right. Row 1 lies between valid rows: the devkit leaves it invalid (zero flow).
  np.testing.assert_array_equal(flow[2], [[5, 7]] * 5)
  np.testing.assert_array_equal(flow[1], np.zeros([5, 2]))
  np.testing.assert_array_equal(filled, [[1] * 5, [0] * 5, [1] * 5])


def test_errors_and_summary_hand_computed():
  # Image A: errors 0, 4 (gt magnitude 10: outlier), 4 (magnitude 100: 4 % < 5 %, not an outlier); p3 has no gt.
  gt_a = np.array([[[3, 4], [0, 10], [100, 0], [0, 0]]], np.float32)
  est_a = np.array([[[3, 4], [4, 10], [104, 0], [50, 50]]], np.float32)
  occ_a = flow_metrics.image_errors(gt_a, [[True, True, True, False]], est_a)
  noc_a = flow_metrics.image_errors(gt_a, [[True, True, False, False]], est_a)
  assert occ_a.epe == pytest.approx(8.0 / 3.0) and (occ_a.outliers, occ_a.pixels) == (1, 3)
  assert noc_a.epe == pytest.approx(2.0) and (noc_a.outliers, noc_a.pixels) == (1, 2)
  # Image B: zero true flow, errors 1 and 5 (5 > 3 px and > 5 % of 0: an outlier).
  gt_b = np.zeros([1, 2, 2], np.float32)
  occ_b = flow_metrics.image_errors(gt_b, [[True, True]], np.array([[[1, 0], [0, 5]]], np.float32))
  assert occ_b.epe == pytest.approx(3.0) and (occ_b.outliers, occ_b.pixels) == (1, 2)
  metrics = flow_metrics.summarize([occ_a, occ_b], [noc_a, occ_b])
  assert metrics["epe_all"] == pytest.approx((8.0 / 3.0 + 3.0) / 2.0)  # mean of per-image EPEs
  assert metrics["epe_noc"] == pytest.approx(2.5)
  assert metrics["fl_all"] == pytest.approx(100.0 * 2 / 5)  # outliers and pixels summed over images
  assert metrics["fl_noc"] == pytest.approx(100.0 * 2 / 4)
  assert metrics["density"] == 1.0 and metrics["num_images"] == 2


def test_invalid_estimates_are_filled_before_scoring():
  gt = np.array([[[1, 0], [1, 0], [1, 0]]], np.float32)
  est = np.array([[[1, 0], [-7, 0], [1, 0]]], np.float32)  # the middle estimate is invalid: filled with min(1, 1)
  errors = flow_metrics.image_errors(gt, np.ones([1, 3], bool), est, [[True, False, True]])
  assert errors.epe == 0.0 and errors.covered == 2


# ----------------------------------------------------------------------------------------------------------------------
# The scoring command.


def _write_predictions(root, directory, offset=(4.0, 0.0)):
  for i in range(2):
    flow, _ = _ground_truth(i)
    kitti_flow.write_flow(os.path.join(directory, f"{i:06d}_10.png"), flow + np.float32(offset) * i)


def test_score_predictions(root, tmp_path):
  predictions = str(tmp_path / "pred")
  _write_predictions(root, predictions)
  out = io.StringIO()
  metrics = kitti_score.score(predictions, root, out=out)
  # Pair 0 exact; pair 1 off by 4 px everywhere, which is > 5 % of every true flow there (|flow| < 3 px).
  assert metrics["epe_all"] == pytest.approx(2.0) and metrics["epe_noc"] == pytest.approx(2.0)
  assert metrics["fl_all"] == pytest.approx(50.0) and metrics["fl_noc"] == pytest.approx(50.0)
  assert "2 pairs: EPE all 2.000 px, EPE noc 2.000 px, Fl-all 50.00 %" in out.getvalue()


def test_score_errors_name_the_prediction(root, tmp_path):
  predictions = str(tmp_path / "pred")
  _write_predictions(root, predictions)
  path = os.path.join(predictions, "000001_10.png")
  Image.fromarray(np.zeros(SIZE + (3,), np.uint8)).save(path)
  with pytest.raises(labels.DataError, match="not a 16-bit RGB PNG. Received: a 8-bit RGB") as error:
    kitti_score.score(predictions, root)
  assert path in str(error.value)
  kitti_flow.write_flow(path, np.zeros((4, 4, 2), np.float32))
  with pytest.raises(labels.DataError, match="is 4x4; its pair's images are 6x10"):
    kitti_score.score(predictions, root)
  os.remove(path)
  with pytest.raises(labels.DataError, match=f"Missing prediction {path}"):
    kitti_score.score(predictions, root)


# ----------------------------------------------------------------------------------------------------------------------
# Bad input.


def _training(root, *parts):
  return os.path.join(root, "training", *parts)


_CORRUPTIONS = {
    "eight-bit flow": (lambda r: Image.fromarray(np.zeros(SIZE + (3,), np.uint8)).save(
        _training(r, "flow_occ", "000001_10.png")), ("flow_occ", "000001_10.png"), "not a 16-bit RGB PNG"),
    "grayscale flow": (lambda r: fixtures.write_png(_training(r, "flow_noc", "000000_10.png"),
                                                    np.zeros(SIZE, np.uint16)),
                       ("flow_noc", "000000_10.png"), "16-bit grayscale"),
    "missing second frame": (lambda r: os.remove(_training(r, "image_2", "000001_11.png")),
                             ("image_2", "000001_11.png"), "Missing image"),
    "missing flow file": (lambda r: os.remove(_training(r, "flow_noc", "000001_10.png")),
                          ("flow_noc", "000001_10.png"), "Missing ground-truth flow"),
    "missing flow folder": (lambda r: os.rename(_training(r, "flow_occ"), _training(r, "flow")), ("flow_occ",),
                            "Missing folder"),
    "calibration without P_rect_02": (lambda r: open(_training(r, "calib_cam_to_cam", "000000.txt"), "w").close(),
                                      ("calib_cam_to_cam", "000000.txt"), "no P_rect_02"),
    "flow of another size": (lambda r: fixtures.write_png(_training(r, "flow_occ", "000000_10.png"),
                                                          np.ones([3, 4, 3], np.uint16)),
                             ("flow_occ", "000000_10.png"), "is 3x4, but its image"),
    "calibration with inf": (lambda r: _replace(_training(r, "calib_cam_to_cam", "000000.txt"), "7.2e+01", "inf"),
                             ("calib_cam_to_cam", "000000.txt"), "12 finite numbers"),
    "calibration past float32": (lambda r: _replace(_training(r, "calib_cam_to_cam", "000000.txt"), "3.1e+01",
                                                    "3.1e+39"), ("calib_cam_to_cam", "000000.txt"),
                                 "12 finite numbers"),
    "calibration with zero fy": (lambda r: _replace(_training(r, "calib_cam_to_cam", "000000.txt"), "7.3e+01", "0"),
                                 ("calib_cam_to_cam", "000000.txt"), "fy > 0"),
}


def _replace(path, old, new):
  with open(path, encoding="utf-8") as f:
    text = f.read()
  with open(path, "w", encoding="utf-8") as f:
    f.write(text.replace(old, new))


@pytest.mark.parametrize("corruption", sorted(_CORRUPTIONS))
def test_malformed_files_are_named(tmp_path, corruption):
  root = fixtures.write_kitti_flow(str(tmp_path))
  corrupt, named, message = _CORRUPTIONS[corruption]
  corrupt(root)
  with pytest.raises(labels.DataError, match=message) as error:
    kitti_flow.read_pairs(root)
  assert _training(root, *named) in str(error.value)


def test_missing_root_layout(tmp_path):
  with pytest.raises(labels.DataError, match=os.path.join("training", "image_2")):
    kitti_flow.read_pairs(tmp_path)
  with pytest.raises(ValueError, match="Unknown KITTI flow split"):
    kitti_flow.read_pairs(tmp_path, "val")


def test_a_second_frame_or_flow_of_another_size_fails_on_load_naming_it(tmp_path):
  """Only frame 10's header is read at index time: frame 11 and the flow are checked when a pair loads."""
  root = fixtures.write_kitti_flow(str(tmp_path))
  second = _training(root, "image_2", "000001_11.png")
  Image.fromarray(np.zeros((SIZE[0] + 2, SIZE[1], 3), np.uint8)).save(second)
  pair = kitti_flow.read_pairs(root)[1]
  pair.load(0, SIZE)
  with pytest.raises(labels.DataError, match=r"is 8x10, but the pair's first image .*000001_10.png is 6x10") as error:
    pair.load(1, SIZE)
  assert second in str(error.value)
  # A flow file whose header was right at index time, replaced since by one of another size.
  flow = _training(root, "flow_occ", "000000_10.png")
  pair = kitti_flow.read_pairs(root)[0]
  fixtures.write_png(flow, np.ones([3, 4, 3], np.uint16))
  with pytest.raises(labels.DataError, match="is 3x4, but its image") as error:
    pair.load(0, SIZE)
  assert flow in str(error.value)
