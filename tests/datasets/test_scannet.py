"""ScanNet-layout reader and label tables: round trips of fixture scenes written in ScanNet's exact layout."""

import dataclasses
import os

from absl import logging as absl_logging
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from datasets import labels
from datasets.readers import scannet
from depth_motion import geometry
from tests.datasets import fixtures

SIZE = (24, 32)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("scannet"))
  return root, fixtures.write_dataset(root)


# ----------------------------------------------------------------------------------------------------------------------
# Labels.


def test_nyu40_to_class_table():
  table = labels.NYU40_TO_CLASS
  assert table.shape == (256,) and labels.NUM_CLASSES == len(labels.CLASS_NAMES) == 21
  expected = {1: "wall", 2: "floor", 14: "desk", 24: "refrigerator", 28: "shower curtain", 36: "bathtub",
              39: "otherfurniture"}
  for nyu40_id, name in expected.items():
    assert labels.CLASS_NAMES[table[nyu40_id]] == name
  for other in (0, 13, 15, 40):
    assert table[other] == 0
  # NYU40 ids stop at 40: a larger stored value is not a label (the load fails on it).
  for not_an_id in (41, 254, 255):
    assert table[not_an_id] == labels.INVALID_LABEL
  assert sorted(table[list(labels.BENCHMARK_NYU40_IDS)]) == list(range(1, 21))
  assert labels.IGNORE_LABEL == 255


def test_read_label_tsv(tmp_path):
  table = labels.read_label_tsv(fixtures.write_label_tsv(str(tmp_path)))
  assert table.shape == (1164,)  # sized by the largest raw id (1163), past 255
  for raw_id, nyu40_id in fixtures.RAW_TO_NYU40.items():
    assert table[raw_id] == nyu40_id
  assert table[4] == 0  # not listed
  classes = labels.raw_to_class_table(table)
  assert [classes[raw] for raw in (1, 2, 3, 7, 300, 1163)] == [1, 5, 2, 13, 12, 0]


@pytest.mark.parametrize("content, message", [
    ("id\tcategory\tnyu40class\n1\twall\twall\n", "no column 'nyu40id'"),
    ("nyu40id\tcategory\n1\twall\n", "no column 'id'"),
    ("id\tnyu40id\n1\t1\n2\tchair\n", "line 3"),
    ("id\tnyu40id\n1\t41\n", "nyu40id in 0..40"),
    ("", "is empty"),
])
def test_read_label_tsv_errors_name_the_file(tmp_path, content, message):
  path = tmp_path / labels.LABEL_TSV_NAME
  path.write_text(content)
  with pytest.raises(labels.DataError, match=message) as error:
    labels.read_label_tsv(path)
  assert str(path) in str(error.value)


def test_read_label_tsv_missing_file(tmp_path):
  with pytest.raises(labels.DataError, match="missing.tsv"):
    labels.read_label_tsv(tmp_path / "missing.tsv")


# ----------------------------------------------------------------------------------------------------------------------
# Scene index and frame loading.


def test_index_round_trip(dataset_root):
  root, written = dataset_root
  scene = scannet.read_scene(os.path.join(root, "scene0000_00"))
  expected = written["scene0000_00"]
  assert scene.name == "scene0000_00" and scene.num_frames == len(scene) == 4
  assert scene.frame_ids == (0, 1, 3, 4) and scene.skipped_frame_ids == (2,)
  assert scene.color_paths[2].endswith(os.path.join("color", "3.png"))
  assert scene.color_size == SIZE and scene.depth_size == SIZE
  assert scene.label_source == scannet.LABEL_NYU40 and scene.has_labels
  np.testing.assert_allclose(scene.poses, expected.poses, atol=1e-6)
  np.testing.assert_allclose(scene.intrinsics, fixtures.DEFAULT_INTRINSICS)
  np.testing.assert_allclose(scene.depth_intrinsics, expected.depth_intrinsics, rtol=1e-6)
  with pytest.raises(dataclasses.FrozenInstanceError):
    scene.name = "other"
  with pytest.raises(ValueError):
    scene.poses[0, 0, 0] = 2.0


def test_frames_round_trip_png(dataset_root):
  root, written = dataset_root
  scene = scannet.read_scene(os.path.join(root, "scene0000_00"))
  expected = written["scene0000_00"]
  for k in range(scene.num_frames):
    frame = scene.load(k, SIZE)
    assert frame["image"].dtype == tf.float32 and frame["image"].shape == SIZE + (3,)
    np.testing.assert_allclose(frame["image"].numpy() * 255.0, expected.colors[k], atol=1e-3)
    np.testing.assert_allclose(frame["depth"], expected.depths_mm[k] / 1000.0, rtol=1e-6)
    assert frame["label"].dtype == tf.int32
    np.testing.assert_array_equal(frame["label"], expected.classes[k])
    assert bool(frame["has_label"])
    np.testing.assert_allclose(frame["intrinsics"], fixtures.DEFAULT_INTRINSICS, rtol=1e-6)
    np.testing.assert_allclose(frame["pose"], expected.poses[k], atol=1e-6)
    assert frame["frame_id"] == scene.frame_ids[k]
  assert float(tf.reduce_min(scene.load(0, SIZE)["depth"])) == 0.0  # missing depth stays 0


def test_jpeg_color_raw_labels_and_low_resolution_depth(dataset_root):
  root, written = dataset_root
  scene = scannet.read_scene(os.path.join(root, "scene0001_00"))
  expected = written["scene0001_00"]
  assert scene.frame_ids == (10, 11, 12) and scene.label_source == scannet.LABEL_RAW
  assert scene.depth_size == (12, 16) and scene.color_size == SIZE
  frame = scene.load(1, SIZE)
  # JPEG is lossy: the image is about what another JPEG decoder (PIL's; chroma upsampling differs) makes of the file.
  image = frame["image"].numpy() * 255.0
  decoded = np.asarray(Image.open(scene.color_paths[1]), np.float32)
  assert np.abs(image - decoded).max() <= 10.0 and np.abs(image - decoded).mean() < 1.5
  # Raw ids -> NYU40 -> classes, including a raw id above 255 (1163 -> otherprop -> background) and one the tsv lacks.
  np.testing.assert_array_equal(frame["label"], expected.classes[1])
  assert frame["label"][0, -1] == 0 and set(np.unique(frame["label"])) == {0, 1, 2, 5, 13}
  # Depth 12x16 -> 24x32, nearest with half-pixel centres: every depth pixel becomes a 2x2 block.
  upsampled = np.repeat(np.repeat(expected.depths_mm[1], 2, axis=0), 2, axis=1) / 1000.0
  np.testing.assert_allclose(frame["depth"], upsampled, rtol=1e-6)


def test_resize_scales_intrinsics_to_match_the_resized_image(dataset_root):
  root, written = dataset_root
  scene = scannet.read_scene(os.path.join(root, "scene0000_00"))
  expected = written["scene0000_00"]
  size = (12, 16)
  frame = scene.load(0, size)
  k = fixtures.DEFAULT_INTRINSICS
  np.testing.assert_allclose(frame["intrinsics"], geometry.resize_intrinsics(k, SIZE, size), rtol=1e-6)
  # Reprojection: a 3-D point lands, in the resized image, on the pixel that shows the original pixel it projects to.
  # The fixture's color is a ramp (R = 8 x, G = 10 y), so the resized image tells which original pixel it shows.
  points = tf.constant([[[[0.1, 0.05, 2.0], [-0.2, 0.1, 1.5], [0.15, -0.12, 1.8]]]])
  original = geometry.project(points, k[np.newaxis])[0, 0].numpy()
  resized = geometry.project(points, frame["intrinsics"][tf.newaxis])
  seen = geometry.resample(frame["image"][tf.newaxis, ..., :2] * 255.0, resized)[0, 0].numpy() / [8.0, 10.0]
  np.testing.assert_allclose(seen, original, atol=0.02)
  # Depth and labels: nearest neighbour with half-pixel centres keeps original pixels (1, 3, 5, ...).
  np.testing.assert_allclose(frame["depth"], expected.depths_mm[0][1::2, 1::2] / 1000.0, rtol=1e-6)
  np.testing.assert_array_equal(frame["label"], expected.classes[0][1::2, 1::2])


def test_load_frame_inside_tf_data(dataset_root):
  root, _ = dataset_root
  scene = scannet.read_scene(os.path.join(root, "scene0001_00"))
  size = (12, 16)

  def load(row):
    checked = {key: row[key] for key in ("label_default", "color_size", "depth_size", "first_color_path",
                                         "first_depth_path")}
    frame = scannet.load_frame(row["color_path"], row["depth_path"], row["label_path"], intrinsics=row["intrinsics"],
                               size=size, label_table=scene.label_table, **checked)
    frame["pose"] = row["pose"]
    return frame

  dataset = tf.data.Dataset.from_tensor_slices(scene.frame_table()).map(load).batch(2)
  assert dataset.element_spec["image"].shape.as_list() == [None, 12, 16, 3]
  assert dataset.element_spec["label"].shape.as_list() == [None, 12, 16]
  batches = list(dataset)
  assert [b["image"].shape[0] for b in batches] == [2, 1]
  for k in range(scene.num_frames):
    eager = scene.load(k, size)
    for key in ("image", "depth", "label", "has_label", "intrinsics", "pose"):
      np.testing.assert_allclose(batches[k // 2][key][k % 2], eager[key], atol=1e-6, err_msg=key)


def test_scene_without_labels(tmp_path):
  fixtures.write_scene(str(tmp_path), "scene0002_00", num_frames=2, labels=None)
  scene = scannet.read_scene(tmp_path / "scene0002_00")
  assert scene.label_source is None and scene.label_paths is None and scene.label_table is None
  assert list(scene.frame_table()["label_path"]) == ["", ""]
  frame = scene.load(0, (6, 8))
  assert not bool(frame["has_label"])
  np.testing.assert_array_equal(frame["label"], np.full([6, 8], labels.IGNORE_LABEL))
  # An empty label path (the tf.data form of "no label") gives the same.
  row = {k: v[1] for k, v in scene.frame_table().items()}
  frame = tf.function(lambda r: scannet.load_frame(r["color_path"], r["depth_path"], r["label_path"],
                                                   intrinsics=r["intrinsics"], size=(6, 8)))(row)
  assert not bool(frame["has_label"]) and np.all(frame["label"].numpy() == labels.IGNORE_LABEL)


def test_nonfinite_poses_are_skipped_with_a_warning(tmp_path, monkeypatch):
  fixtures.write_scene(str(tmp_path), "scene0003_00", num_frames=6, labels=None, nonfinite_pose_ids=(1, 4))
  warnings = []
  monkeypatch.setattr(absl_logging, "warning", lambda message, *args: warnings.append(message % args))
  scene = scannet.read_scene(tmp_path / "scene0003_00")
  assert scene.frame_ids == (0, 2, 3, 5) and scene.skipped_frame_ids == (1, 4)
  assert np.all(np.isfinite(scene.poses)) and scene.poses.shape == (4, 4, 4)
  assert len(warnings) == 1 and "scene0003_00" in warnings[0] and "frame ids 1, 4" in warnings[0]


def test_intrinsic_depth_defaults_to_resized_color_intrinsics(tmp_path):
  fixtures.write_scene(str(tmp_path), "s", num_frames=1, labels=None, depth_size=(12, 16),
                       write_depth_intrinsics=False)
  scene = scannet.read_scene(tmp_path / "s")
  np.testing.assert_allclose(scene.depth_intrinsics,
                             geometry.resize_intrinsics(fixtures.DEFAULT_INTRINSICS, SIZE, (12, 16)), rtol=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# Listing scenes.


def test_list_scenes(dataset_root, tmp_path):
  root, _ = dataset_root
  names = lambda directories: [os.path.basename(d) for d in directories]
  assert names(scannet.list_scenes(root)) == ["scene0000_00", "scene0001_00"]
  assert names(scannet.list_scenes(root, "train")) == ["scene0000_00"]
  assert names(scannet.list_scenes(root, "val")) == ["scene0001_00"]
  # A scene folder as root; scenes under scans/ as ScanNet's download has them (the tsv sits above scans/).
  assert scannet.list_scenes(os.path.join(root, "scene0000_00")) == [os.path.join(root, "scene0000_00")]
  fixtures.write_scene(str(tmp_path / "scans"), "scene0100_00", num_frames=1, labels="raw")
  os.rename(tmp_path / "scans" / labels.LABEL_TSV_NAME, tmp_path / labels.LABEL_TSV_NAME)
  (tmp_path / "notes").mkdir()
  assert names(scannet.list_scenes(tmp_path)) == ["scene0100_00"]
  assert scannet.read_scene(scannet.list_scenes(tmp_path)[0]).label_source == scannet.LABEL_RAW


def test_list_scenes_errors(dataset_root, tmp_path):
  root, _ = dataset_root
  with pytest.raises(ValueError, match="Unknown split 'test'"):
    scannet.list_scenes(root, "test")
  with pytest.raises(labels.DataError, match=str(tmp_path / "nowhere")):
    scannet.list_scenes(tmp_path / "nowhere")
  with pytest.raises(labels.DataError, match="scannetv2_train.txt"):
    scannet.list_scenes(tmp_path, "train")
  fixtures.write_splits(str(tmp_path), train=["scene0999_00"])
  with pytest.raises(labels.DataError, match="scene0999_00.*scannetv2_train.txt"):
    scannet.list_scenes(tmp_path, "train")
  with pytest.raises(labels.DataError, match="No scene folders"):
    scannet.list_scenes(tmp_path)


# ----------------------------------------------------------------------------------------------------------------------
# Malformed scenes: every error names the file or folder.


def _remove(path):
  os.remove(path)


def _write(path, content):
  mode = "wb" if isinstance(content, bytes) else "w"
  with open(path, mode) as f:
    f.write(content)


def _eight_bit_depth(path):
  Image.fromarray(np.zeros([24, 32], np.uint8)).save(path)


_CORRUPTIONS = {
    "missing color folder": (lambda s: os.rename(f"{s}/color", f"{s}/rgb"), "color", "Missing folder"),
    "missing pose folder": (lambda s: os.rename(f"{s}/pose", f"{s}/poses"), "pose", "Missing folder"),
    "missing intrinsic folder": (lambda s: os.rename(f"{s}/intrinsic", f"{s}/k"), "intrinsic",
                                 "missing intrinsics folder"),
    "missing intrinsic file": (lambda s: _remove(f"{s}/intrinsic/intrinsic_color.txt"),
                               "intrinsic/intrinsic_color.txt", "Missing intrinsics file"),
    "depth frame missing": (lambda s: _remove(f"{s}/depth/2.png"), "scene", "depth/ lacks frame ids 2"),
    "extra pose": (lambda s: _write(f"{s}/pose/7.txt", "1 0 0 0\n" * 4), "scene",
                   "pose/ has frame ids without a color image: 7"),
    "label frame missing": (lambda s: [_remove(f"{s}/label/{i}.png") for i in (1, 2)], "scene",
                            "label/ lacks frame ids 1-2"),
    "no color images": (lambda s: [_remove(f"{s}/color/{i}.png") for i in range(3)], "color",
                        "no color images"),
    "corrupt first color": (lambda s: _write(f"{s}/color/0.png", b"not a png"), "color/0.png", "Cannot read color"),
    "eight-bit depth": (lambda s: _eight_bit_depth(f"{s}/depth/0.png"), "depth/0.png", "not a 16-bit"),
    "pose with 12 numbers": (lambda s: _write(f"{s}/pose/1.txt", "1 0 0 0\n0 1 0 0\n0 0 1 0\n"), "pose/1.txt",
                             "expected 16 numbers"),
    "pose with text": (lambda s: _write(f"{s}/pose/1.txt", "identity\n"), "pose/1.txt", "expected 16 numbers"),
    "intrinsics with zero focal": (
        lambda s: _write(f"{s}/intrinsic/intrinsic_color.txt", "0 0 16 0\n0 28 12 0\n0 0 1 0\n0 0 0 1\n"),
        "intrinsic/intrinsic_color.txt", "fx, fy > 0"),
    "two files for a frame": (lambda s: _write(f"{s}/color/1.jpg", b""), "color", "Two files for frame 1"),
}


@pytest.mark.parametrize("corruption", sorted(_CORRUPTIONS))
def test_malformed_scene_errors_name_the_file(tmp_path, corruption):
  scene_dir = fixtures.write_scene(str(tmp_path), "scene0005_00", num_frames=3).directory
  corrupt, named, message = _CORRUPTIONS[corruption]
  corrupt(scene_dir)
  with pytest.raises(labels.DataError, match=message) as error:
    scannet.read_scene(scene_dir)
  expected_name = "scene0005_00" if named == "scene" else os.path.join(scene_dir, named)
  assert expected_name in str(error.value)


def test_raw_labels_without_tsv_name_the_expected_file(tmp_path):
  scene_dir = fixtures.write_scene(str(tmp_path), "scene0006_00", num_frames=1, labels="raw").directory
  os.remove(tmp_path / labels.LABEL_TSV_NAME)
  with pytest.raises(labels.DataError, match=str(tmp_path / labels.LABEL_TSV_NAME)):
    scannet.read_scene(scene_dir)
  # An explicit tsv path (or a table read once) works from anywhere.
  (tmp_path / "elsewhere").mkdir()
  tsv = fixtures.write_label_tsv(str(tmp_path / "elsewhere"))
  assert scannet.read_scene(scene_dir, label_tsv=tsv).label_table[1163] == 0
  assert scannet.read_scene(scene_dir, label_table=labels.read_label_tsv(tsv)).label_table[2] == 5


def test_corrupt_later_frame_fails_on_load_naming_the_file(tmp_path):
  scene_dir = fixtures.write_scene(str(tmp_path), "scene0007_00", num_frames=3).directory
  _write(os.path.join(scene_dir, "depth", "2.png"), b"\x89PNG garbage")
  scene = scannet.read_scene(scene_dir)  # only the first frame's headers are read
  scene.load(1, SIZE)
  with pytest.raises(labels.DataError, match=r"frame 2: cannot decode .*depth/2\.png"):
    scene.load(2, SIZE)


def test_real_export_resolutions_labels_at_depth_size(tmp_path):
  """Real ScanNet: colour larger than depth and label-filt (640x480 vs 1296x968, not an integer ratio); each is
  resized to the working size on its own, and K is the colour K scaled to it."""
  written = fixtures.write_scene(str(tmp_path), "scene0010_00", num_frames=2, size=(30, 40), depth_size=(12, 16),
                                 labels="raw", nonfinite_pose_ids=(1,))
  # label-filt/ at the depth resolution, as ScanNet exports it.
  small = written.stored_labels[0][np.ix_(np.arange(12) * 30 // 12, np.arange(16) * 40 // 16)]
  fixtures.write_png(os.path.join(written.directory, "label-filt", "0.png"), small.astype(np.uint16))
  scene = scannet.read_scene(written.directory)
  assert scene.color_size == (30, 40) and scene.depth_size == (12, 16) and scene.frame_ids == (0,)
  frame = scene.load(0, (12, 16))
  classes = labels.raw_to_class_table(labels.read_label_tsv(tmp_path / labels.LABEL_TSV_NAME))[small]
  np.testing.assert_array_equal(frame["label"], classes)
  np.testing.assert_allclose(frame["depth"], written.depths_mm[0] / 1000.0, rtol=1e-6)
  assert float(tf.reduce_min(frame["depth"])) == 0.0  # missing depth stays 0
  np.testing.assert_allclose(frame["intrinsics"],
                             geometry.resize_intrinsics(fixtures.DEFAULT_INTRINSICS, (30, 40), (12, 16)), rtol=1e-6)
