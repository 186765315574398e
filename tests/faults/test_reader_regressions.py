"""Regression tests of the readers' probed faults (issue [reliability] 5 and 11): files after the first frame are
checked as they are decoded, in eager loads and inside the tf.data pipeline, and every error names the file."""

import os

import numpy as np
import pytest
import tensorflow as tf

from datasets import clips
from datasets import labels
from datasets.readers import scannet
from tests.datasets import fixtures

SIZE = (24, 32)


def _scene(tmp_path, num_frames=4):
  return fixtures.write_scene(str(tmp_path), "scene0000_00", num_frames=num_frames, size=SIZE).directory


def _pipeline_error(scene_dir):
  """The DataError the clip pipeline's iteration ends with (every frame of the scene loaded inside tf.data)."""
  source = clips.ClipSource([scannet.read_scene(scene_dir)],
                            clips.ClipConfig(height=SIZE[0], width=SIZE[1], clip_length=1, batch_size=1))
  with pytest.raises(tf.errors.OpError) as info:
    for _ in source.dataset(training=False):
      pass
  error = labels.data_error_from(info.value)
  assert error is not None, info.value.message
  return str(error)


def test_an_8_bit_depth_png_after_the_first_frame_is_refused(tmp_path):
  # It used to load as depth 256x too small: only frame 0's header was checked.
  scene_dir = _scene(tmp_path)
  path = os.path.join(scene_dir, "depth", "2.png")
  fixtures.write_png(path, np.full(SIZE, 200, np.uint8))
  scene = scannet.read_scene(scene_dir)
  scene.load(1, SIZE)
  with pytest.raises(labels.DataError, match=path):
    scene.load(2, SIZE)
  assert path in _pipeline_error(scene_dir)


def test_label_ids_out_of_range_are_an_error_naming_the_file_and_ids(tmp_path):
  # They used to become background without a word.
  scene_dir = _scene(tmp_path)
  path = os.path.join(scene_dir, "label", "1.png")
  values = np.zeros(SIZE, np.uint8)
  values[0, :3] = (41, 200, 255)
  fixtures.write_png(path, values)
  scene = scannet.read_scene(scene_dir)
  with pytest.raises(labels.DataError, match=path) as info:
    scene.load(1, SIZE)
  assert all(str(i) in str(info.value) for i in (41, 200, 255)), info.value
  assert path in _pipeline_error(scene_dir)


def test_a_corrupt_png_met_during_training_names_the_file(tmp_path):
  # It used to end in InvalidArgumentError ... [[{{node decode_image}}]], naming no file.
  scene_dir = _scene(tmp_path)
  path = os.path.join(scene_dir, "color", "3.png")
  with open(path, "r+b") as f:
    f.truncate(70)
  assert path in _pipeline_error(scene_dir)


def test_a_scene_folder_name_that_is_not_utf8_is_a_data_error(tmp_path):
  root = str(tmp_path)
  fixtures.write_scene(root, "scene0000_00", num_frames=2, size=SIZE)
  os.rename(os.path.join(root, "scene0000_00"), os.path.join(os.fsencode(root), b"scene\xff_00"))
  with pytest.raises(labels.DataError, match=r"scene.*ff"):
    scannet.read_scenes(root)


def test_decoding_png_frames_prints_nothing(tmp_path, capfd):
  """The JPEG size probe is not run on PNGs: libjpeg printed "Not a JPEG file" to stderr once per frame."""
  source = clips.ClipSource([scannet.read_scene(_scene(tmp_path))],
                            clips.ClipConfig(height=SIZE[0], width=SIZE[1], clip_length=1, batch_size=1))
  capfd.readouterr()
  assert sum(1 for _ in source.dataset(training=False)) > 0
  assert "JPEG" not in capfd.readouterr().err
