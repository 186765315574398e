"""CamVid reader (SegNet's split): sequences as scenes, class ids with void ignored, given intrinsics, errors."""

import os

from absl import logging as absl_logging
import numpy as np
from PIL import Image
import pytest

from datasets import labels
from datasets import sources
from datasets.readers import camvid
from tests.datasets import fixtures

SIZE = fixtures.CAMVID_SIZE


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return fixtures.write_camvid(str(tmp_path_factory.mktemp("CamVid")))


def test_class_table():
  table = labels.CAMVID_TO_CLASS
  np.testing.assert_array_equal(table[:11], np.arange(11))
  assert table[11] == labels.IGNORE_LABEL and np.all(table[12:] == labels.INVALID_LABEL)
  assert labels.num_classes("camvid") == 11 and labels.class_names("camvid")[3] == "road"


def test_sequences_are_scenes_sorted_by_frame(root):
  scenes = camvid.read_scenes(root, "train", intrinsics=(9.0, 9.5, 5.5, 3.5))
  assert [s.name for s in scenes] == ["train_0001TP", "train_Seq05VD"]
  tp = scenes[0]
  assert tp.frame_ids == (6690, 6720, 6750) and tp.color_size == SIZE
  assert tp.color_paths[0] == os.path.join(root, "train", "0001TP_006690.png")  # SegNet's absolute paths remapped
  assert tp.labelled_frame_ids() == tp.frame_ids and not tp.has_depth and not tp.has_poses
  np.testing.assert_allclose(tp.intrinsics, [[9.0, 0, 5.5], [0, 9.5, 3.5], [0, 0, 1]])
  assert [s.name for s in camvid.read_scenes(root)] == ["train_0001TP", "train_Seq05VD", "val_0016E5"]


def test_frames_load_classes_with_void_ignored(root):
  scene = camvid.read_scenes(root, "train", intrinsics=(9.0, 9.5, 5.5, 3.5))[0]
  # 0001TP_006690 is the second line of train.txt (annotation shifted by 1).
  frame = scene.load(0, SIZE)
  annotation = fixtures.camvid_annotation(1)
  np.testing.assert_array_equal(frame["label"], np.where(annotation == 11, 255, annotation))
  assert bool(frame["has_label"]) and "depth" not in frame and "pose" not in frame
  np.testing.assert_allclose(frame["image"].numpy() * 255.0, fixtures.ramp_image(SIZE, 10), atol=1e-3)
  np.testing.assert_allclose(frame["intrinsics"], [[9.0, 0, 5.5], [0, 9.5, 3.5], [0, 0, 1]], rtol=1e-6)


def test_default_intrinsics_warn(root, monkeypatch):
  warnings = []
  monkeypatch.setattr(absl_logging, "warning", lambda message, *args: warnings.append(message % args))
  scenes = camvid.read_scenes(root, "train")
  np.testing.assert_allclose(scenes[0].intrinsics, [[12, 0, 5.5], [0, 12, 3.5], [0, 0, 1]])
  assert len(warnings) == 1 and "no camera calibration" in warnings[0]


def test_sources_dispatch(root):
  spec = sources.SourceSpec(dataset="camvid", root=root, camvid_intrinsics=(9.0, 9.5, 5.5, 3.5))
  assert sources.num_classes(spec) == 11 and sources.num_classes(sources.SourceSpec()) == 21
  assert [s.name for s in sources.load_scenes(spec, "val")] == ["val_0016E5"]
  with pytest.raises(ValueError, match="needs a data root"):
    sources.SourceSpec(dataset="camvid")
  with pytest.raises(ValueError, match="camvid_intrinsics"):
    sources.SourceSpec(dataset="camvid", root=root, camvid_intrinsics=(9.0, 5.5))


# ----------------------------------------------------------------------------------------------------------------------
# Bad input.


def _rewrite(path, text):
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


_CORRUPTIONS = {
    "missing split file": (lambda r: os.remove(f"{r}/train.txt"), "train.txt", "Cannot read the CamVid train split"),
    "malformed line": (lambda r: _rewrite(f"{r}/train.txt", "train/0001TP_006690.png\n"), "train.txt",
                       "line 1: expected '<image path> <annotation path>'"),
    "listed file missing": (lambda r: os.remove(f"{r}/trainannot/Seq05VD_f00000.png"),
                            "trainannot/Seq05VD_f00000.png", "does not exist"),
    "sixteen-bit annotation": (lambda r: fixtures.write_png(f"{r}/trainannot/0001TP_006750.png",
                                                            np.zeros(SIZE, np.uint16)),
                               "trainannot/0001TP_006750.png", "not a 8-bit grayscale PNG"),
    "rgba image": (lambda r: Image.fromarray(np.zeros(SIZE + (4,), np.uint8)).save(f"{r}/train/0001TP_006690.png"),
                   "train/0001TP_006690.png", "8-bit RGBA"),
    "unreadable annotation": (lambda r: _rewrite(f"{r}/trainannot/0001TP_006720.png", "garbage"),
                              "trainannot/0001TP_006720.png", "not a PNG file"),
}


@pytest.mark.parametrize("corruption", sorted(_CORRUPTIONS))
def test_malformed_files_are_named(tmp_path, corruption):
  root = fixtures.write_camvid(str(tmp_path))
  corrupt, named, message = _CORRUPTIONS[corruption]
  corrupt(root)
  with pytest.raises(labels.DataError, match=message) as error:
    camvid.read_scenes(root, "train", intrinsics=(9.0, 9.5, 5.5, 3.5))
  assert os.path.join(root, named) in str(error.value)


def test_class_id_out_of_range_fails_on_load_naming_the_file(tmp_path):
  root = fixtures.write_camvid(str(tmp_path))
  path = os.path.join(root, "trainannot", "0001TP_006720.png")
  annotation = fixtures.camvid_annotation(0)
  annotation[1, 1] = 12
  Image.fromarray(annotation).save(path)
  scene = camvid.read_scenes(root, "train", intrinsics=(9.0, 9.5, 5.5, 3.5))[0]
  with pytest.raises(labels.DataError, match=r"label id\(s\) 12 outside .* \(expected ids in 0-11\)") as error:
    scene.load(1, SIZE)
  assert path in str(error.value)
