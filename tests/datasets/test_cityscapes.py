"""Cityscapes reader: snippets anchored on fine labels, label ids -> train ids, camera intrinsics, the crop, errors."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from datasets import clips
from datasets import labels
from datasets.readers import cityscapes
from tests.datasets import fixtures

SIZE = fixtures.CITYSCAPES_SIZE


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return fixtures.write_cityscapes(str(tmp_path_factory.mktemp("cityscapes")))


def _expected_train_ids(ids):
  return np.vectorize(fixtures.CITYSCAPES_IDS.get)(ids)


def test_label_id_table():
  table = labels.CITYSCAPES_LABEL_ID_TO_CLASS
  assert labels.num_classes("cityscapes") == 19 and labels.class_names("cityscapes")[13] == "car"
  expected = {7: 0, 8: 1, 11: 2, 21: 8, 23: 10, 24: 11, 26: 13, 31: 16, 33: 18}
  for label_id, train_id in expected.items():
    assert table[label_id] == train_id
  for ignored in (0, 1, 3, 4, 6, 9, 10, 14, 15, 16, 18, 29, 30):
    assert table[ignored] == labels.IGNORE_LABEL
  assert np.all(table[34:] == labels.INVALID_LABEL)
  assert sorted(table[(table >= 0) & (table < 19)]) == list(range(19))


def test_snippets_are_anchored_on_the_fine_labels(root):
  scenes = cityscapes.read_scenes(root, "train")
  assert [s.name for s in scenes] == ["aachen_000000_000019", "aachen_000003_000119"]
  first, second = scenes
  assert first.frame_ids == tuple(range(30)) and second.frame_ids == tuple(range(100, 130))
  assert first.color_size == SIZE and first.num_frames == 30
  assert first.label_paths[19].endswith(os.path.join("gtFine", "train", "aachen",
                                                     "aachen_000000_000019_gtFine_labelIds.png"))
  assert [i for i, p in enumerate(first.label_paths) if p] == [19] and first.labelled_frame_ids() == (19,)
  assert not first.has_depth and not first.has_poses and first.has_labels
  camera = fixtures.CITYSCAPES_CAMERA
  np.testing.assert_allclose(first.intrinsics, [[camera["fx"], 0, camera["u0"]], [0, camera["fy"], camera["v0"]],
                                                [0, 0, 1]])
  assert [s.name for s in cityscapes.read_scenes(root, "val")] == ["frankfurt_000000_000294"]
  assert len(cityscapes.read_scenes(root)) == 3


def test_labelled_frame_loads_train_ids(root):
  scene = cityscapes.read_scenes(root, "train")[0]
  frame = scene.load(19, SIZE)
  ids = fixtures.cityscapes_label_ids()
  np.testing.assert_array_equal(frame["label"], _expected_train_ids(ids))
  assert set(np.unique(frame["label"])) == {0, 2, 10, 13, 18, 255}
  assert bool(frame["has_label"]) and "depth" not in frame and "pose" not in frame
  np.testing.assert_allclose(frame["image"].numpy() * 255.0,
                             fixtures.ramp_image(SIZE, fixtures.cityscapes_frame_shade(19)), atol=1e-3)
  other = scene.load(3, SIZE)
  assert not bool(other["has_label"]) and np.all(other["label"].numpy() == labels.IGNORE_LABEL)
  assert other["frame_id"] == 3
  np.testing.assert_allclose(other["image"][..., 2] * 255.0, fixtures.cityscapes_frame_shade(3), atol=1e-3)


def test_struct2depth_crop_keeps_the_middle_rows_and_the_working_aspect(root):
  scene = cityscapes.read_scenes(root, "train", crop=True)[0]
  # 16x32 -> rows 4..12 (the middle half), then 16 centred columns (8..24) for a 1:2 working aspect: 8x16, no resize.
  frame = scene.load(19, (8, 16))
  ids = fixtures.cityscapes_label_ids()
  np.testing.assert_array_equal(frame["label"], _expected_train_ids(ids[4:12, 8:24]))
  np.testing.assert_allclose(frame["image"].numpy() * 255.0, fixtures.ramp_image(SIZE, 57)[4:12, 8:24], atol=1e-3)
  camera = fixtures.CITYSCAPES_CAMERA
  np.testing.assert_allclose(frame["intrinsics"], [[camera["fx"], 0, camera["u0"] - 8], [0, camera["fy"],
                                                   camera["v0"] - 4], [0, 0, 1]], rtol=1e-6)
  # Halving the working size halves the focal lengths of the same crop (half-pixel centres for the principal point).
  small = scene.load(19, (4, 8))
  np.testing.assert_allclose(small["intrinsics"][0, 0], camera["fx"] / 2, rtol=1e-6)
  np.testing.assert_allclose(small["intrinsics"][0, 2], (camera["u0"] - 8 + 0.5) / 2 - 0.5, rtol=1e-6)


def test_clip_batches_have_no_depth_nan_poses_and_one_label_per_snippet(root):
  scenes = cityscapes.read_scenes(root, "train")
  assert clips.select_labelled_frames(scenes, 1.0, seed=0) == {("aachen_000000_000019", 19),
                                                                ("aachen_000003_000119", 119)}
  config = clips.ClipConfig(height=SIZE[0], width=SIZE[1], clip_length=2, batch_size=4, augment=None)
  # Flat frame indices 18, 19 (frames 18, 19 of the first snippet) and 48, 49 (frames 118, 119 of the second).
  batch = next(iter(clips.ClipSource(scenes, config).dataset(training=False, starts=[18, 19, 48, 49])))
  assert batch["image"].shape == (4, 2) + SIZE + (3,)
  np.testing.assert_array_equal(batch["frame_id"], [[18, 19], [19, 20], [118, 119], [119, 120]])
  assert np.all(batch["depth"].numpy() == 0.0) and np.all(np.isnan(batch["pose"].numpy()))
  has_label = batch["has_label"].numpy()
  frame_ids = batch["frame_id"].numpy()
  np.testing.assert_array_equal(frame_ids[has_label], [19, 19, 119, 119])
  np.testing.assert_array_equal(has_label, [[False, True], [True, False], [False, True], [True, False]])
  labelled = clips.labelled_frames(scenes, config, training=False)
  frames = list(labelled.unbatch())
  assert [int(f["frame_id"][0]) for f in frames] == [19, 119]
  np.testing.assert_array_equal(frames[0]["label"][0], _expected_train_ids(fixtures.cityscapes_label_ids()))


def test_sequences_without_fine_labels_are_cut_into_snippets(tmp_path):
  # 65 consecutive frames (0..64) in the test split, no gtFine: two whole snippets, the rest dropped.
  fixtures.write_cityscapes_snippet(str(tmp_path), "test", "berlin", 0, 19, labels=False)
  fixtures.write_cityscapes_snippet(str(tmp_path), "test", "berlin", 0, 49, labels=False)
  fixtures.write_cityscapes_snippet(str(tmp_path), "test", "berlin", 0, 54, labels=False)
  scenes = cityscapes.read_scenes(tmp_path, "test")
  assert [s.frame_ids for s in scenes] == [tuple(range(30)), tuple(range(30, 60))]
  assert not scenes[0].has_labels and scenes[0].label_paths is None


# ----------------------------------------------------------------------------------------------------------------------
# Bad input: errors name the file and what was expected.


def _label(root, split="train", stem="aachen_000000_000019"):
  return os.path.join(root, "gtFine", split, stem.split("_")[0], f"{stem}_gtFine_labelIds.png")


def _camera(root, stem="aachen_000000_000019"):
  return os.path.join(root, "camera", "train", "aachen", f"{stem}_camera.json")


def _image(root, frame):
  return os.path.join(root, "leftImg8bit_sequence", "train", "aachen", f"aachen_000000_{frame:06d}_leftImg8bit.png")


def _write_json(path, content):
  with open(path, "w", encoding="utf-8") as f:
    f.write(content if isinstance(content, str) else json.dumps(content))


def _write_bytes(path, content):
  with open(path, "wb") as f:
    f.write(content)


_CORRUPTIONS = {
    "camera without intrinsics": (lambda r: _write_json(_camera(r), {"extrinsic": {"x": 1.0}}), _camera,
                                  "has no intrinsics"),
    "camera not json": (lambda r: _write_json(_camera(r), "{intrinsic"), _camera, "not valid JSON"),
    # Python's json reads Infinity and NaN; 1e39 is finite as float64 but not as the pipeline's float32.
    "camera with infinite fx": (lambda r: _write_json(_camera(r), '{"intrinsic": {"fx": Infinity, "fy": 2, "u0": 1, '
                                                                  '"v0": 1}}'), _camera, "expected finite fx"),
    "camera fx past float32": (lambda r: _write_json(_camera(r), {"intrinsic": {"fx": 1e39, "fy": 2, "u0": 1,
                                                                                "v0": 1}}), _camera,
                               "expected finite fx"),
    "camera not utf-8": (lambda r: _write_bytes(_camera(r), b'{"intrinsic": "\xff"}'), _camera, "not valid JSON"),
    "camera missing": (lambda r: os.remove(_camera(r)), _camera, "Missing camera file"),
    "missing snippet frame": (lambda r: os.remove(_image(r, 25)), lambda r: _image(r, 25), "frames are missing"),
    "sixteen-bit label": (lambda r: fixtures.write_png(_label(r), np.zeros(SIZE, np.uint16)), _label,
                          "not a 8-bit grayscale PNG.*16-bit grayscale"),
    "palette label": (lambda r: Image.fromarray(np.zeros(SIZE, np.uint8)).convert("P").save(_label(r)), _label,
                      "8-bit palette"),
    "unreadable label": (lambda r: _write_json(_label(r), "not a png"), _label, "is not a PNG file"),
    "grayscale image": (lambda r: Image.fromarray(np.zeros(SIZE, np.uint8)).save(_image(r, 0)),
                        lambda r: _image(r, 0), "not a 8-bit RGB PNG"),
}


@pytest.mark.parametrize("corruption", sorted(_CORRUPTIONS))
def test_malformed_files_are_named(tmp_path, corruption):
  root = str(tmp_path)
  fixtures.write_cityscapes_snippet(root, "train", "aachen", 0, 19)
  corrupt, named, message = _CORRUPTIONS[corruption]
  corrupt(root)
  with pytest.raises(labels.DataError, match=message) as error:
    cityscapes.read_scenes(root, "train")
  assert named(root) in str(error.value)


def test_missing_folders_and_splits(tmp_path):
  with pytest.raises(labels.DataError, match="leftImg8bit_sequence"):
    cityscapes.read_scenes(tmp_path)
  fixtures.write_cityscapes_snippet(str(tmp_path), "train", "aachen", 0, 19)
  with pytest.raises(labels.DataError, match=os.path.join("leftImg8bit_sequence", "val")):
    cityscapes.read_scenes(tmp_path, "val")
  with pytest.raises(ValueError, match="Unknown Cityscapes split"):
    cityscapes.read_scenes(tmp_path, "training")


def test_label_id_out_of_range_fails_on_load_naming_the_file(tmp_path):
  root = str(tmp_path)
  ids = fixtures.write_cityscapes_snippet(root, "train", "aachen", 0, 19)
  ids[2, 3] = 40
  Image.fromarray(ids).save(_label(root))
  scene = cityscapes.read_scenes(root, "train")[0]
  scene.load(0, SIZE)
  with pytest.raises(labels.DataError, match=r"holds label id\(s\) 40 outside .* \(expected ids in 0-33\)") as error:
    scene.load(19, SIZE)
  assert _label(root) in str(error.value)


def test_corrupt_later_frame_fails_on_load_naming_the_file(tmp_path):
  root = str(tmp_path)
  fixtures.write_cityscapes_snippet(root, "train", "aachen", 0, 19)
  with open(_image(root, 7), "r+b") as f:  # a valid header, then garbage
    f.seek(40)
    f.write(b"garbage" * 4)
  scene = cityscapes.read_scenes(root, "train")[0]
  with pytest.raises(labels.DataError, match="frame 7: cannot decode") as error:
    scene.load(7, SIZE)
  assert _image(root, 7) in str(error.value)


def test_a_downscaled_copy_gets_k_scaled_from_the_camera_size(tmp_path):
  """The camera files' K is for 2048x1024: a copy at 16x32 must not keep fx = 1280 (issue [reliability] 8)."""
  root = str(tmp_path)
  fixtures.write_cityscapes_snippet(root, "train", "aachen", 0, 19)
  with open(os.path.join(root, "camera", "train", "aachen", "aachen_000000_000019_camera.json"),
            encoding="utf-8") as f:
    assert json.load(f)["intrinsic"]["fx"] == pytest.approx(1280.0)
  scene = cityscapes.read_scenes(root, "train")[0]
  camera = fixtures.CITYSCAPES_CAMERA
  np.testing.assert_allclose(scene.intrinsics, [[camera["fx"], 0, camera["u0"]], [0, camera["fy"], camera["v0"]],
                                                [0, 0, 1]], rtol=1e-6)
  # Full resolution: the file's K as it is.
  np.testing.assert_allclose(cityscapes.intrinsics_at(np.eye(3, dtype=np.float32) * 7, (1024, 2048), "x.png"),
                             np.eye(3) * 7)


def test_images_of_another_aspect_ratio_are_refused(tmp_path):
  root = str(tmp_path)
  fixtures.write_cityscapes_snippet(root, "train", "aachen", 0, 19, size=(16, 48))
  with pytest.raises(labels.DataError, match=r"aachen_000000_000000_leftImg8bit\.png is 48x16: the camera files' "
                     r"intrinsics are for 2048x1024"):
    cityscapes.read_scenes(root, "train")
