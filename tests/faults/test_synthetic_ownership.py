"""The synthetic generator writes only into a folder it made: a real dataset given by mistake is refused, untouched,
and inside its own folder it deletes only what it wrote (issue [reliability] 1)."""

import hashlib
import json
import os

import pytest

from datasets import sources
from datasets.synthetic import generator as synthetic

ARGUMENTS = dict(num_scenes=2, frames_per_scene=2, height=12, width=16, seed=1)


def _snapshot(root):
  """{relative path: sha256} of every file under root (and the folders, as None)."""
  found = {}
  for folder, folders, files in os.walk(root):
    for name in folders:
      found[os.path.relpath(os.path.join(folder, name), root)] = None
    for name in files:
      with open(os.path.join(folder, name), "rb") as f:
        found[os.path.relpath(os.path.join(folder, name), root)] = hashlib.sha256(f.read()).hexdigest()
  return found


def _user_scannet(root):
  """A user's ScanNet-like export: a scene without synthetic_scene.json and the split files."""
  for folder in ("color", "depth", "pose"):
    os.makedirs(root / "scene0000_00" / folder)
  (root / "scene0000_00" / "color" / "0.jpg").write_bytes(b"the user's frame")
  (root / "scene0000_00" / "pose" / "0.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
  (root / "scannetv2_train.txt").write_text("scene0000_00\n")
  (root / "scannetv2_val.txt").write_text("scene0000_00\n")


def test_a_real_dataset_given_as_the_synthetic_root_is_refused_untouched(tmp_path):
  _user_scannet(tmp_path)
  before = _snapshot(tmp_path)
  with pytest.raises(ValueError, match=r"not made by the synthetic generator.*scene0000_00.*--dataset"):
    synthetic.generate(tmp_path, **ARGUMENTS)
  assert _snapshot(tmp_path) == before


def test_training_on_a_real_root_without_dataset_flag_is_refused_untouched(tmp_path):
  # `consistency.train --data_root=/my/scannet` without --dataset: --dataset defaults to synthetic.
  _user_scannet(tmp_path)
  before = _snapshot(tmp_path)
  spec = sources.SourceSpec(dataset="synthetic", root=str(tmp_path), synthetic_scenes=2, synthetic_frames=2,
                            size=(12, 16))
  with pytest.raises(ValueError, match="Refusing to write there"):
    sources.load_scenes(spec, "train")
  assert _snapshot(tmp_path) == before


def test_any_other_non_empty_folder_is_refused(tmp_path):
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="notes.txt"):
    synthetic.generate(tmp_path, **ARGUMENTS)
  assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_new_and_empty_folders_are_claimed_with_a_marker(tmp_path):
  synthetic.generate(tmp_path / "new", **ARGUMENTS)
  (tmp_path / "empty").mkdir()
  synthetic.generate(tmp_path / "empty", **ARGUMENTS)
  for name in ("new", "empty"):
    with open(tmp_path / name / synthetic.MARKER, encoding="utf-8") as f:
      assert json.load(f)["generator"] == "datasets.synthetic"
    assert _snapshot(tmp_path / name) == _snapshot(tmp_path / "new")


def test_a_folder_from_an_older_generator_without_marker_is_adopted(tmp_path):
  synthetic.generate(tmp_path, **ARGUMENTS)
  os.remove(tmp_path / synthetic.MARKER)
  before = _snapshot(tmp_path)
  synthetic.generate(tmp_path, **ARGUMENTS)  # every scene complete: nothing rendered again
  after = _snapshot(tmp_path)
  assert synthetic.MARKER in after
  del after[synthetic.MARKER]
  assert after == before


def test_rendering_again_deletes_only_what_the_generator_wrote(tmp_path):
  synthetic.generate(tmp_path, num_scenes=1, frames_per_scene=3, height=12, width=16, seed=1)
  scene = tmp_path / "scene0000_00"
  (scene / "color" / "my_notes.md").write_text("keep me")
  (scene / "mine.txt").write_text("keep me too")
  os.remove(scene / synthetic.SCENE_DESCRIPTION)  # as if interrupted
  synthetic.generate(tmp_path, num_scenes=1, frames_per_scene=2, height=12, width=16, seed=1)
  assert (scene / "color" / "my_notes.md").read_text() == "keep me"
  assert (scene / "mine.txt").read_text() == "keep me too"
  # The interrupted run's third frame is gone with the rest of what it wrote: the scene is exactly 2 frames now.
  assert sorted(os.listdir(scene / "depth")) == ["0.png", "1.png"]
  assert (scene / synthetic.SCENE_DESCRIPTION).exists()
