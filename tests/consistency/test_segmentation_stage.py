"""The supervised segmentation stage on a tiny synthetic dataset, and its loss."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from consistency import train
from consistency.stages import segmentation as segmentation_stage
from consistency.stages import supervised
from datasets import clips
from datasets import labels
from segmentation import losses as seg_losses
from tests import tiny



def _config(tmp_path, data_root, **overrides):
  base = dict(stages=("segmentation",), train_steps=6, batch_size=4, learning_rate=1e-3, steps_per_loop=3,
              checkpoint_every=6, summary_every=3, image_summary_every=6, label_fraction=0.5, eval_max_batches=2)
  return tiny.video_config(tmp_path / "run", data_root, **{**base, **overrides})


def test_cross_entropy_known_answers():
  logits = tf.zeros([1, 2, 2, 4])
  labels_ = tf.constant([[[0, 1], [labels.IGNORE_LABEL, 3]]])
  assert float(seg_losses.cross_entropy(logits, labels_)) == pytest.approx(math.log(4))
  confident = tf.one_hot([[[0, 1], [2, 3]]], 4) * 100.0
  assert float(seg_losses.cross_entropy(confident, labels_)) == pytest.approx(0.0, abs=1e-6)
  # Class weights: a weight of 0 removes class 3's (wrong) pixel from the mean.
  wrong = tf.one_hot([[[0, 1], [2, 0]]], 4) * 100.0
  assert float(seg_losses.cross_entropy(wrong, labels_)) > 10.0
  assert float(seg_losses.cross_entropy(wrong, labels_, [1.0, 1.0, 1.0, 0.0])) == pytest.approx(0.0, abs=1e-6)
  assert float(seg_losses.cross_entropy(logits, tf.fill([1, 2, 2], labels.IGNORE_LABEL))) == 0.0


@pytest.mark.slow  # ~90 s; the default suite trains this stage through the shortened quickstart (test_quickstart.py)
def test_segmentation_stage_trains_evaluates_and_records_its_config(tmp_path):
  config = _config(tmp_path, tmp_path / "data")
  losses = train.run(config)["segmentation"]
  assert np.isfinite(losses["cross_entropy"])
  stage_dir = os.path.join(config.model_dir, "segmentation")
  assert tf.train.latest_checkpoint(stage_dir).endswith("ckpt-6")
  with open(os.path.join(stage_dir, "metrics.json")) as f:
    metrics = json.load(f)
  assert 0.0 <= metrics["miou"] <= 1.0 and metrics["num_pixels"] == 2 * 4 * 64 * 64
  assert set(metrics["per_class"]) == set(labels.CLASS_NAMES)
  with open(os.path.join(stage_dir, supervised.SEGMENTER_CONFIG_FILE)) as f:
    recorded = json.load(f)
  assert recorded["input_size"] == [64, 64] and recorded["config"]["nasfpn_filters"] == 16
  # The data was generated into the cache on first use.
  assert os.path.isfile(os.path.join(tmp_path, "data", "scannetv2_train.txt"))


def test_training_batches_hold_only_kept_labels(tmp_path, synthetic_root):
  stage = segmentation_stage.SegmentationStage(_config(tmp_path, synthetic_root(), label_fraction=0.25))
  batch = next(iter(stage.train_dataset(0)))
  assert batch["image"].shape == (4, 64, 64, 3) and batch["label"].shape == (4, 64, 64)
  assert np.all(np.any(batch["label"].numpy() != labels.IGNORE_LABEL, axis=(1, 2)))
  train_frames = sum(s.num_frames for s in stage.scenes("train"))
  kept = clips.select_labelled_frames(stage.scenes("train"), 0.25, stage.config.seed)
  assert len(kept) == round(0.25 * train_frames)


def test_bad_class_weights(tmp_path, synthetic_root):
  with pytest.raises(ValueError, match="class_weights needs 21 values"):
    segmentation_stage.SegmentationStage(_config(tmp_path, synthetic_root(), class_weights=(1.0, 2.0)))
