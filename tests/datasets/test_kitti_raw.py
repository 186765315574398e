"""Raw KITTI reader: drives as scenes, frames and K from P_rect_02, the test_scenes.txt split, inspect, errors."""

import dataclasses
import io
import os

import numpy as np
from PIL import Image
import pytest

from datasets import clips
from datasets import inspect as inspect_lib
from datasets import labels
from datasets import sources
from datasets.readers import kitti_raw
from tests.datasets import fixtures

SIZE = (24, 40)
NUM_FRAMES = 4
# Two drives on two dates, each date with its own calibration (formatted as raw KITTI's calib_cam_to_cam.txt).
DRIVES = (("2011_09_26", "2011_09_26_drive_0001_sync"), ("2011_09_28", "2011_09_28_drive_0002_sync"))
P_RECT_02 = {
    "2011_09_26": "7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 "
                  "2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03",
    "2011_09_28": "7.070493e+02 0.000000e+00 6.040814e+02 4.575831e+01 0.000000e+00 7.070493e+02 1.805066e+02 "
                  "-3.454157e-01 0.000000e+00 0.000000e+00 1.000000e+00 4.981016e-03",
}
K = {"2011_09_26": [[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]],
     "2011_09_28": [[707.0493, 0.0, 604.0814], [0.0, 707.0493, 180.5066], [0.0, 0.0, 1.0]]}


def calibration_text(date, p_rect_02=True):
  """A calib_cam_to_cam.txt as raw KITTI writes it (K_02 is the unrectified camera: it must not be read)."""
  lines = [
      "calib_time: 09-Jan-2012 13:57:47",
      "corner_dist: 9.950000e-02",
      "S_02: 1.392000e+03 5.120000e+02",
      "K_02: 9.597910e+02 0.000000e+00 6.960217e+02 0.000000e+00 9.569251e+02 2.241806e+02 0.000000e+00 "
      "0.000000e+00 1.000000e+00",
      "S_rect_02: 1.242000e+03 3.750000e+02",
      "R_rect_02: 9.998817e-01 1.511453e-02 -2.841595e-03 -1.511724e-02 9.998853e-01 -9.338510e-04 2.827154e-03 "
      "9.766976e-04 9.999955e-01",
  ]
  if p_rect_02:
    lines.append(f"P_rect_02: {P_RECT_02[date]}")
  lines.append("S_03: 1.392000e+03 5.120000e+02")
  return "\n".join(lines) + "\n"


def frame_pixels(drive_index, frame):
  """[H, W, 3] uint8 content of frame `frame` of drive `drive_index`: ramps plus a per-frame blue shade."""
  return fixtures.ramp_image(SIZE, 40 * drive_index + 7 * frame)


def write_kitti_raw(root):
  """Two drives x NUM_FRAMES frames of 24x40 PNGs in raw KITTI's layout, with image_03/ (ignored) and calib files."""
  for drive_index, (date, drive) in enumerate(DRIVES):
    with open(os.path.join(_mkdir(root, date), kitti_raw.CALIBRATION_FILE), "w", encoding="utf-8") as f:
      f.write(calibration_text(date))
    for frame in range(NUM_FRAMES):
      for camera in ("image_02", "image_03"):
        Image.fromarray(frame_pixels(drive_index, frame)).save(
            os.path.join(_mkdir(root, date, drive, camera, "data"), f"{frame:010d}.png"))
    with open(os.path.join(root, date, drive, "image_02", "timestamps.txt"), "w", encoding="utf-8") as f:
      f.write("2011-09-26 13:02:25.964389445\n" * NUM_FRAMES)
  return root


def _mkdir(*parts):
  path = os.path.join(*parts)
  os.makedirs(path, exist_ok=True)
  return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return write_kitti_raw(str(tmp_path_factory.mktemp("kitti_raw")))


def test_drives_are_unlabeled_scenes_with_k_from_p_rect_02(root):
  scenes = kitti_raw.read_scenes(root)
  assert [s.name for s in scenes] == [drive for _, drive in DRIVES]
  for scene, (date, drive) in zip(scenes, DRIVES):
    assert scene.frame_ids == tuple(range(NUM_FRAMES)) and scene.num_frames == NUM_FRAMES
    assert scene.color_size == SIZE and scene.directory == os.path.join(root, date, drive)
    assert scene.color_paths[1] == os.path.join(root, date, drive, "image_02", "data", "0000000001.png")
    assert not scene.has_labels and not scene.has_depth and not scene.has_poses and scene.label_source is None
    np.testing.assert_allclose(scene.intrinsics, K[date], rtol=1e-6)
  assert [s.name for s in kitti_raw.read_scenes(root, "train")] == [drive for _, drive in DRIVES]


def test_frames_decode_to_the_written_pixels(root):
  scene = kitti_raw.read_scenes(root)[1]
  for index in range(NUM_FRAMES):
    frame = scene.load(index, SIZE)
    np.testing.assert_allclose(frame["image"].numpy() * 255.0, frame_pixels(1, index), atol=1e-3)
    assert frame["frame_id"] == index and not bool(frame["has_label"])
    assert "depth" not in frame and "pose" not in frame and np.all(frame["label"].numpy() == labels.IGNORE_LABEL)
    np.testing.assert_allclose(frame["intrinsics"], K["2011_09_28"], rtol=1e-6)


def test_intrinsics_scale_with_the_resize(root):
  scene = kitti_raw.read_scenes(root)[0]
  (fx, _, cx), (_, fy, cy), _ = K["2011_09_26"]
  frame = scene.load(0, (12, 10))  # height halved, width quartered
  assert frame["image"].shape == (12, 10, 3)
  np.testing.assert_allclose(frame["intrinsics"], [[fx / 4, 0, (cx + 0.5) / 4 - 0.5], [0, fy / 2, (cy + 0.5) / 2 - 0.5],
                                                   [0, 0, 1]], rtol=1e-6)


def test_test_scenes_file_holds_out_drives(tmp_path):
  root = write_kitti_raw(str(tmp_path))
  with pytest.raises(labels.DataError, match="no val split without .*test_scenes.txt"):
    kitti_raw.read_scenes(root, "val")
  with open(os.path.join(root, kitti_raw.TEST_SCENES_FILE), "w", encoding="utf-8") as f:
    f.write("# Eigen test drives present here\n\n2011_09_28_drive_0002\n")  # without _sync, as SfMLearner's lists
  assert [s.name for s in kitti_raw.read_scenes(root, "train")] == ["2011_09_26_drive_0001_sync"]
  assert [s.name for s in kitti_raw.read_scenes(root, "val")] == ["2011_09_28_drive_0002_sync"]
  assert [s.name for s in kitti_raw.read_scenes(root, "test")] == ["2011_09_28_drive_0002_sync"]
  assert len(kitti_raw.read_scenes(root)) == 2
  with open(os.path.join(root, kitti_raw.TEST_SCENES_FILE), "w", encoding="utf-8") as f:
    f.write("2011_09_26/2011_09_26_drive_0001_sync\n2011_09_28_drive_0002_sync\n")
  with pytest.raises(labels.DataError, match="no drive is left for training"):
    kitti_raw.read_scenes(root, "train")
  with pytest.raises(ValueError, match="Unknown raw KITTI split"):
    kitti_raw.read_scenes(root, "validation")


def test_sources_and_the_clip_pipeline(root):
  spec = sources.SourceSpec(dataset="kitti_raw", root=root)
  assert sources.num_classes(spec) == 19 and sources.class_names(spec) == labels.CITYSCAPES_CLASS_NAMES
  scenes = sources.load_scenes(spec, "train")
  assert len(scenes) == 2
  config = clips.ClipConfig(height=SIZE[0], width=SIZE[1], clip_length=2, batch_size=2, augment=None)
  batch = next(iter(clips.ClipSource(scenes, config).dataset(training=False, starts=[0, 5])))
  np.testing.assert_array_equal(batch["frame_id"], [[0, 1], [1, 2]])
  np.testing.assert_array_equal(batch["scene_index"], [0, 1])
  assert not batch["has_label"].numpy().any() and np.all(batch["depth"].numpy() == 0.0)
  assert np.all(np.isnan(batch["pose"].numpy()))
  np.testing.assert_allclose(batch["image"][1, 0].numpy() * 255.0, frame_pixels(1, 1), atol=1e-3)


def test_inspect_prints_the_summary_and_draws_a_sheet(root, tmp_path, capsys):
  output = str(tmp_path / "sheet.png")
  out = io.StringIO()
  config = inspect_lib.InspectConfig(dataset="kitti_raw", root=root, split=None, output=output, size=SIZE,
                                     num_samples=4, clip_length=3, scene=None, max_scenes=0, max_listed=30)
  inspect_lib.inspect(config, out=out)
  text = out.getvalue()
  assert "scenes: 2\n" in text and "frames: 8\n" in text
  assert "2011_09_26_drive_0001_sync: 4 frames (ids 0-3), color 24x40, no labels" in text
  assert "fx 707.05 .. 721.54" in text and "class pixel" not in text
  assert f"contact sheet: {output} (2011_09_26_drive_0001_sync, frames 0..2" in text
  assert np.asarray(Image.open(output)).shape[0] >= 120  # the RGB row only
  # No test_scenes.txt: no val split, one message naming the file.
  assert inspect_lib.run(dataclasses.replace(config, split="val", output="")) == 1
  assert "test_scenes.txt" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------------
# Bad input.


def _rewrite(path, text):
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


_DRIVE_1 = os.path.join(*DRIVES[0])
_CORRUPTIONS = {
    "missing calibration file": (lambda r: os.remove(f"{r}/2011_09_26/calib_cam_to_cam.txt"),
                                 "2011_09_26/calib_cam_to_cam.txt", "Missing calibration file .*P_rect_02"),
    "calibration without P_rect_02": (lambda r: _rewrite(f"{r}/2011_09_28/calib_cam_to_cam.txt",
                                                         calibration_text("2011_09_28", p_rect_02=False)),
                                      "2011_09_28/calib_cam_to_cam.txt", "has no P_rect_02 line"),
    "malformed P_rect_02": (lambda r: _rewrite(f"{r}/2011_09_26/calib_cam_to_cam.txt",
                                               "P_rect_02: 7.2e+02 0.0 6.0e+02\n"),
                            "2011_09_26/calib_cam_to_cam.txt", "P_rect_02 must hold 12 finite numbers"),
    "drive without image_02/data": (lambda r: os.rename(f"{r}/{_DRIVE_1}/image_02", f"{r}/{_DRIVE_1}/image_02_x"),
                                    f"{_DRIVE_1}/image_02/data", "has no folder .*left colour camera"),
    "empty image_02/data": (lambda r: [os.remove(f"{r}/{_DRIVE_1}/image_02/data/{i:010d}.png")
                                       for i in range(NUM_FRAMES)],
                            f"{_DRIVE_1}/image_02/data", "no frames <10 digits>.png"),
    "sixteen-bit image": (lambda r: fixtures.write_png(f"{r}/{_DRIVE_1}/image_02/data/0000000000.png",
                                                       np.zeros(SIZE + (3,), np.uint16)),
                          f"{_DRIVE_1}/image_02/data/0000000000.png", "not a 8-bit RGB PNG. Received: a 16-bit RGB"),
    "test scene absent": (lambda r: _rewrite(f"{r}/test_scenes.txt", "2011_09_26_drive_0009_sync\n"),
                          "test_scenes.txt", "lists drive.* with no folder .*2011_09_26_drive_0009_sync"),
    "test scene malformed": (lambda r: _rewrite(f"{r}/test_scenes.txt", "2011_09_26_drive_0001_sync\ndrive 5\n"),
                             "test_scenes.txt", "line 2: expected a raw KITTI drive name"),
}


@pytest.mark.parametrize("corruption", sorted(_CORRUPTIONS))
def test_malformed_files_are_named(tmp_path, corruption):
  root = write_kitti_raw(str(tmp_path))
  corrupt, named, message = _CORRUPTIONS[corruption]
  corrupt(root)
  with pytest.raises(labels.DataError, match=message) as error:
    kitti_raw.read_scenes(root, "train")
  assert os.path.join(root, named) in str(error.value)


def test_a_root_without_drives_is_named(tmp_path):
  os.makedirs(tmp_path / "2011_09_26")
  with pytest.raises(labels.DataError, match="No raw KITTI drive under") as error:
    kitti_raw.read_scenes(str(tmp_path))
  assert str(tmp_path) in str(error.value)
