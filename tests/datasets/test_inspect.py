"""The inspect command on fixture roots, and the visualisations it draws (known colours on tiny inputs)."""

import io
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from datasets import inspect as inspect_lib
from datasets import labels
from datasets import visualize
from tests.datasets import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WHITE, BLACK, RED = [255, 255, 255], [0, 0, 0], [255, 0, 0]


# ----------------------------------------------------------------------------------------------------------------------
# Visualisations.


def test_colorize_labels_uses_the_palette_and_blacks_out_ignored():
  class_map = np.array([[0, 1, 2], [20, labels.IGNORE_LABEL, -1]])
  rgb = visualize.colorize_labels(class_map)
  assert rgb.dtype == tf.uint8 and rgb.shape == (2, 3, 3)
  np.testing.assert_array_equal(rgb[0], visualize.PALETTE[[0, 1, 2]])
  np.testing.assert_array_equal(rgb[1], [visualize.PALETTE[20], BLACK, BLACK])
  assert len({tuple(c) for c in visualize.PALETTE}) == labels.NUM_CLASSES  # distinct colours
  assert BLACK not in visualize.PALETTE.tolist()
  # Batched input gives the batch of single results.
  batch = visualize.colorize_labels(np.stack([class_map, class_map[::-1]]))
  np.testing.assert_array_equal(batch[1], visualize.colorize_labels(class_map[::-1]))


def test_colorize_flow_colour_wheel():
  flow = np.array([[[0.0, 0.0], [2.0, 0.0], [1.0, 0.0]],
                   [[-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]]], np.float32)
  rgb = visualize.colorize_flow(flow).numpy()
  assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
  np.testing.assert_array_equal(rgb[0, 0], WHITE)  # no motion: white
  np.testing.assert_array_equal(rgb[0, 1], RED)  # rightwards at full magnitude: red (the wheel's start)
  np.testing.assert_array_equal(rgb[0, 2], [255, 128, 128])  # half the magnitude: half saturated
  left, down, up = rgb[1]
  assert left[0] == 0 and left[2] == 255 and left[1] > 150  # cyan-blue, opposite red
  assert down[0] == 255 and down[1] > 200 and down[2] == 0  # yellow
  assert up[2] > 200 and up[1] == 0  # blue-magenta
  # Invalid pixels are black and do not set the normaliser; a fixed normaliser darkens larger flow.
  masked = visualize.colorize_flow(flow[:1], valid=[[True, False, True]]).numpy()
  np.testing.assert_array_equal(masked[0], [WHITE, BLACK, RED])
  np.testing.assert_array_equal(visualize.colorize_flow(flow[:1], max_magnitude=1.0)[0, 1], [191, 0, 0])
  # Zero flow everywhere is white, not NaN.
  np.testing.assert_array_equal(visualize.colorize_flow(np.zeros([1, 2, 2, 2])), np.full([1, 2, 2, 3], 255))


def test_colorize_depth_inverse_depth_per_image():
  depth = np.array([[[0.0, 1.0], [2.0, 4.0]], [[0.0, 10.0], [20.0, 40.0]]], np.float32)
  rgb = visualize.colorize_depth(depth).numpy()
  assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 2, 3)
  np.testing.assert_array_equal(rgb[:, 0, 0], [BLACK, BLACK])  # missing
  np.testing.assert_array_equal(rgb[:, 0, 1], [[253, 231, 37]] * 2)  # nearest: top of viridis
  np.testing.assert_array_equal(rgb[:, 1, 1], [[68, 1, 84]] * 2)  # farthest: bottom of viridis
  np.testing.assert_array_equal(rgb[0], rgb[1])  # normalised per image: scale does not matter
  # Inverse depth: 2 m between 1 m and 4 m lies (1 - 1/2) / (1 - 1/4) = 2/3 of the way down from the near end,
  # viridis at 1/3: between its 4th and 5th entries.
  np.testing.assert_array_equal(rgb[0, 1, 0], [49, 103, 141])
  np.testing.assert_array_equal(rgb[0], visualize.colorize_depth(depth[0]))


def test_colorize_mask_grey():
  np.testing.assert_array_equal(visualize.colorize_mask([[True, False]]), [[WHITE, BLACK]])
  np.testing.assert_array_equal(visualize.colorize_mask([[0.5]]), [[[128, 128, 128]]])


# ----------------------------------------------------------------------------------------------------------------------
# The command.


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("inspect"))
  return root, fixtures.write_dataset(root)


def _config(root, output, **overrides):
  values = dict(dataset="scannet", root=root, split=None, output=output, size=(24, 32), num_samples=16,
                clip_length=3, scene=None, max_scenes=0, max_listed=30)
  values.update(overrides)
  return inspect_lib.InspectConfig(**values)


def test_inspect_prints_the_summary_and_writes_a_sheet(fixture_root, tmp_path):
  root, written = fixture_root
  output = str(tmp_path / "sheets" / "sheet.png")
  out = io.StringIO()
  inspect_lib.inspect(_config(root, output), out=out)
  text = out.getvalue()
  assert "scenes: 2\n" in text
  assert "frames: 7 (1 more skipped: non-finite pose)" in text
  assert "scene0000_00: 4 frames (ids 0-1, 3-4), 1 skipped (non-finite pose: 2), color 24x32, depth 24x32" in text
  assert "scene0001_00: 3 frames (ids 10-12), color 24x32, depth 12x16, labels label-filt/" in text
  assert "depth resolution(s): 24x32 (1 scene), 12x16 (1 scene)" in text
  assert "fx 30.00 .. 30.00, fy 28.00 .. 28.00, cx 15.20 .. 15.20, cy 11.70 .. 11.70" in text
  # Class frequencies over all 7 frames (16 samples asked), sorted, from the labels the fixture wrote.
  classes = np.concatenate([written[name].classes.ravel() for name in sorted(written)])
  fractions = np.bincount(classes, minlength=labels.NUM_CLASSES) / classes.size
  rows = [re.match(r"^ +(\d+) (.+?) +([0-9.]+)$", line) for line in text.splitlines()]
  printed = {row[2]: float(row[3]) for row in rows if row}
  assert list(printed) == ["wall", "floor", "chair", "desk", "background"]
  for name, fraction in printed.items():
    assert fraction == pytest.approx(fractions[labels.CLASS_NAMES.index(name)], abs=1e-4)
  assert f"contact sheet: {output} (scene0000_00, frames 0..3" in text
  # RGB, depth, labels, flow, visibility rows; 3 frame columns.
  sheet = np.asarray(Image.open(output))
  assert sheet.ndim == 3 and sheet.shape[2] == 3
  assert sheet.shape[0] > 5 * 120 and sheet.shape[1] > 3 * 160


def test_inspect_split_and_options(fixture_root, capsys):
  root, _ = fixture_root
  assert inspect_lib.run(_config(root, "", dataset="synthetic", split="val", size=(12, 16), num_samples=2)) == 0
  text = capsys.readouterr().out
  assert "split val" in text and "scenes: 1\n" in text and "frames: 3\n" in text
  assert "over 2 sampled frames (2 labelled) at 12x16" in text
  assert "contact sheet" not in text


def test_inspect_malformed_root_exits_with_one_message(tmp_path, capsys):
  bad_root = str(tmp_path / "bad")
  scene = fixtures.write_scene(bad_root, "scene0000_00", num_frames=2)
  with open(os.path.join(scene.directory, "pose", "1.txt"), "w") as f:
    f.write("1 0 0\n")
  assert inspect_lib.run(_config(bad_root, "")) == 1
  error = capsys.readouterr().err
  assert error.startswith("datasets.inspect: error: Malformed pose file ")
  assert os.path.join(scene.directory, "pose", "1.txt") in error


def test_check_all_decodes_every_frame_and_fails_on_a_damaged_one(tmp_path, capsys):
  """The summary samples frames and exited 0 on a damaged dataset; --check_all finds every bad file (issue
  [reliability] 11)."""
  root = str(tmp_path / "data")
  scene = fixtures.write_scene(root, "scene0000_00", num_frames=6)
  assert inspect_lib.run(_config(root, "", num_samples=1, check_all=True)) == 0
  assert "checked 6 frames: all load" in capsys.readouterr().out
  damaged = [os.path.join(scene.directory, "color", "3.png"), os.path.join(scene.directory, "depth", "5.png")]
  for path in damaged:
    with open(path, "r+b") as f:
      f.truncate(60)
  assert inspect_lib.run(_config(root, "", num_samples=1)) == 0  # the sample alone does not see them
  capsys.readouterr()
  assert inspect_lib.run(_config(root, "", num_samples=1, check_all=True)) == 1
  captured = capsys.readouterr()
  assert "checked 6 frames: 2 bad" in captured.out
  for path in damaged:
    assert path in captured.out
  assert "2 of the frames" in captured.err


@pytest.mark.slow  # a fresh process imports TensorFlow again: 10-30 s on a busy 2-core machine
def test_inspect_command_line(tmp_path):
  """The real command in a fresh process: a missing depth frame gives exit status 1 and one message, no traceback."""
  bad_root = str(tmp_path / "bad")
  scene = fixtures.write_scene(bad_root, "scene0000_00", num_frames=3)
  os.remove(os.path.join(scene.directory, "depth", "1.png"))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-m", "datasets.inspect", "--dataset=scannet", f"--root={bad_root}",
                           f"--output={tmp_path / 'sheet.png'}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1, result.stderr
  assert "Traceback" not in result.stderr
  assert "datasets.inspect: error: Scene scene0000_00: 3 color frames but 2 depth frames; depth/ lacks frame ids 1" \
      in result.stderr
  assert not os.path.exists(tmp_path / "sheet.png")


# ----------------------------------------------------------------------------------------------------------------------
# Cityscapes, CamVid and KITTI flow.


def test_inspect_cityscapes(tmp_path):
  root = fixtures.write_cityscapes(str(tmp_path / "cityscapes"))
  output = str(tmp_path / "sheet.png")
  out = io.StringIO()
  inspect_lib.inspect(_config(root, output, dataset="cityscapes", split="train", size=(16, 32), num_samples=4),
                      out=out)
  text = out.getvalue()
  assert "scenes: 2\n" in text and "frames: 60\n" in text
  assert "aachen_000000_000019: 30 frames (ids 0-29), color 16x32, labels gtFine on 1 frame" in text
  assert "depth resolution" not in text and "fx 20.00 .. 20.00" in text
  assert "over 2 sampled frames (2 labelled) at 16x32" in text
  rows = [re.match(r"^ +(\d+) (.+?) +([0-9.]+)$", line) for line in text.splitlines()]
  assert {row[2] for row in rows if row} == {"road", "building", "sky", "car", "bicycle"}
  assert "ignored pixels:" in text
  assert f"contact sheet: {output} (aachen_000000_000019, frames 18..20" in text  # centred on the labelled frame
  assert np.asarray(Image.open(output)).shape[0] > 2 * 120  # RGB and labels rows


def test_inspect_camvid_and_kitti_flow(tmp_path, capsys):
  camvid_root = fixtures.write_camvid(str(tmp_path / "CamVid"))
  assert inspect_lib.run(_config(camvid_root, "", dataset="camvid", size=(8, 12))) == 0
  text = capsys.readouterr().out
  assert "scenes: 3\n" in text and "train_0001TP: 3 frames (ids 6690, 6720, 6750)" in text
  assert " road " in text
  kitti_root = fixtures.write_kitti_flow(str(tmp_path / "kitti"))
  output = str(tmp_path / "kitti.png")
  assert inspect_lib.run(_config(kitti_root, output, dataset="kitti_flow", size=(6, 10))) == 0
  text = capsys.readouterr().out
  assert "000000: 2 frames (ids 10-11), color 6x10, ground-truth flow, no labels" in text
  assert "(1 scenes without calibration)" in text and "class pixel" not in text
  assert os.path.exists(output)


@pytest.mark.parametrize("dataset", ["cityscapes", "camvid", "kitti_flow"])
def test_inspect_malformed_roots_exit_with_one_message(tmp_path, capsys, dataset):
  assert inspect_lib.run(_config(str(tmp_path), "", dataset=dataset)) == 1
  error = capsys.readouterr().err
  assert error.startswith("datasets.inspect: error: ") and str(tmp_path) in error and len(error.splitlines()) == 1


def test_inspect_rejects_a_split_the_dataset_lacks(fixture_root, capsys):
  root, _ = fixture_root
  assert inspect_lib.run(_config(root, "", split="test")) == 1
  assert "--split=test: scannet has the splits train, val" in capsys.readouterr().err
