"""The clip pipeline: gaps, label fractions, the labelled stream, the batch dictionary, determinism."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from datasets import clips
from datasets import labels
from datasets.readers import scannet
from tests.datasets import fixtures

SIZE = (24, 32)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("clips"))
  fixtures.write_scene(root, "scene0000_00", num_frames=12, labels="nyu40")
  fixtures.write_scene(root, "scene0001_00", num_frames=9, labels="raw", first_id=100)
  fixtures.write_scene(root, "scene0002_00", num_frames=6, labels=None)
  return scannet.read_scenes(root)


def _config(**overrides):
  base = dict(height=SIZE[0], width=SIZE[1], batch_size=4, augment=None, shuffle_buffer=64)
  base.update(overrides)
  return clips.ClipConfig(**base)


@pytest.mark.parametrize("fraction", [0.001, 0.1, 0.5, 1.0])
def test_label_fraction_is_exact_deterministic_and_nested(scenes, fraction):
  labelled_total = sum(s.num_frames for s in scenes if s.has_labels)  # 21
  chosen = clips.select_labelled_frames(scenes, fraction, seed=3)
  assert len(chosen) == max(1, round(fraction * labelled_total))
  assert chosen == clips.select_labelled_frames(list(reversed(scenes)), fraction, seed=3)
  assert chosen <= clips.select_labelled_frames(scenes, 1.0, seed=3)
  assert chosen <= clips.select_labelled_frames(scenes, min(1.0, fraction * 4), seed=3)
  assert all(name != "scene0002_00" for name, _ in chosen)  # no labels there


def test_label_selection_depends_on_seed(scenes):
  picks = {frozenset(clips.select_labelled_frames(scenes, 0.25, seed)) for seed in range(5)}
  assert len(picks) > 1


def test_evaluation_clips_cover_every_start_in_order(scenes):
  source = clips.ClipSource(scenes, _config(clip_length=3, min_gap=2, max_gap=2))
  batches = list(source.dataset(training=False))
  frame_ids = np.concatenate([b["frame_id"].numpy() for b in batches])
  # Scenes of 12, 9 and 6 frames: clips need 5 frames, so 8 + 5 + 2 starts.
  assert len(frame_ids) == 8 + 5 + 2
  np.testing.assert_array_equal(np.diff(frame_ids, axis=1), 2)
  np.testing.assert_array_equal(frame_ids[:8, 0], np.arange(8))
  np.testing.assert_array_equal(frame_ids[8:13, 0], 100 + np.arange(5))


def test_training_gaps_are_uniform_within_range_and_stay_in_scene(scenes):
  source = clips.ClipSource(scenes, _config(clip_length=2, min_gap=1, max_gap=5, batch_size=16))
  batches = list(source.dataset(training=True).take(12))
  frame_ids = np.concatenate([b["frame_id"].numpy() for b in batches])
  scene_index = np.concatenate([b["scene_index"].numpy() for b in batches])
  gaps = np.diff(frame_ids, axis=1)[:, 0]
  assert set(gaps) == {1, 2, 3, 4, 5}
  counts = np.array([s.num_frames for s in scenes])
  first_ids = np.array([s.frame_ids[0] for s in scenes])
  assert np.all(frame_ids[:, 1] - first_ids[scene_index] < counts[scene_index])


def test_batch_dictionary(scenes):
  config = _config(clip_length=2, label_fraction=0.5)
  batch = next(iter(clips.clips(scenes, config)))
  b, t, (h, w) = 4, 2, SIZE
  expected = {"image": ((b, t, h, w, 3), tf.float32), "label": ((b, t, h, w), tf.int32),
              "has_label": ((b, t), tf.bool), "depth": ((b, t, h, w), tf.float32), "pose": ((b, t, 4, 4), tf.float32),
              "intrinsics": ((b, 3, 3), tf.float32), "scene_index": ((b,), tf.int32), "frame_id": ((b, t), tf.int64)}
  assert set(batch) == set(expected)
  for key, (shape, dtype) in expected.items():
    assert batch[key].shape == shape and batch[key].dtype == dtype, key
  label, has_label = batch["label"].numpy(), batch["has_label"].numpy()
  assert np.all(label[~has_label] == labels.IGNORE_LABEL)
  assert np.all(label[has_label] < labels.NUM_CLASSES)
  without = next(iter(clips.clips(scenes, dataclasses.replace(config, include_ground_truth=False))))
  assert "depth" not in without and "pose" not in without


def test_has_label_follows_the_selection(scenes):
  config = _config(clip_length=1, label_fraction=0.3, label_seed=5)
  chosen = clips.select_labelled_frames(scenes, 0.3, 5)
  seen = set()
  for batch in clips.ClipSource(scenes, config).dataset(training=False):
    for scene_index, frame_id, has_label in zip(batch["scene_index"].numpy(), batch["frame_id"].numpy()[:, 0],
                                                batch["has_label"].numpy()[:, 0]):
      key = (scenes[scene_index].name, int(frame_id))
      assert has_label == (key in chosen)
      seen.add(key)
  assert chosen <= seen


def test_clip_content_matches_the_reader(scenes):
  """Without augmentation, a clip's frames are exactly what the scene reader loads."""
  source = clips.ClipSource(scenes, _config(clip_length=2, min_gap=3, max_gap=3))
  batch = next(iter(source.dataset(training=False)))
  scene = scenes[int(batch["scene_index"][1])]
  for t, frame_id in enumerate(batch["frame_id"].numpy()[1]):
    frame = scene.load(scene.frame_ids.index(frame_id), SIZE)
    np.testing.assert_allclose(batch["image"][1, t], frame["image"], atol=1e-6)
    np.testing.assert_allclose(batch["depth"][1, t], frame["depth"])
    np.testing.assert_array_equal(batch["label"][1, t], frame["label"])
    np.testing.assert_allclose(batch["pose"][1, t], frame["pose"])
  np.testing.assert_allclose(batch["intrinsics"][1], frame["intrinsics"])


def test_labelled_stream_has_only_labelled_frames(scenes):
  config = _config(label_fraction=0.25, batch_size=2)
  chosen = clips.select_labelled_frames(scenes, 0.25, config.label_seed)
  batches = list(clips.labelled_frames(scenes, config, training=False))
  assert sum(b["image"].shape[0] for b in batches) == len(chosen)
  for batch in batches:
    assert batch["image"].shape[1] == 1 and np.all(batch["has_label"])


def test_training_stream_is_reproducible(scenes):
  config = _config(clip_length=2, max_gap=3, augment=clips.augment_lib.AugmentConfig(), label_fraction=0.5)
  first = [next(iter(clips.clips(scenes, config))) for _ in range(2)]
  for key in first[0]:
    np.testing.assert_array_equal(first[0][key], first[1][key])
  other = next(iter(clips.clips(scenes, dataclasses.replace(config, seed=1))))
  assert not np.array_equal(other["image"], first[0]["image"])


def test_clear_errors(scenes):
  with pytest.raises(ValueError, match=r"needs 31 frames; the longest scene has 12"):
    clips.ClipSource(scenes, _config(clip_length=4, min_gap=10, max_gap=10))
  with pytest.raises(ValueError, match="label_fraction must be in"):
    _config(label_fraction=0.0)
  with pytest.raises(ValueError, match="max_gap must be >= min_gap"):
    _config(min_gap=3, max_gap=2)
  with pytest.raises(ValueError, match="No labelled frames"):
    clips.labelled_frames([s for s in scenes if not s.has_labels], _config())


def test_skip_batches_resumes_the_stream_exactly(scenes):
  config = _config(clip_length=2, max_gap=3, augment=clips.augment_lib.AugmentConfig(), batch_size=3)
  full = list(clips.clips(scenes, config).take(5))
  resumed = list(clips.clips(scenes, config, skip_batches=3).take(2))
  for a, b in zip(full[3:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
