"""The quickstart flagfile parses, and a shortened run of it goes through every stage, the export and the summary."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from consistency import train
from consistency.harness import flags as flags_lib
from consistency.harness import report
from consistency.stages import supervised
from depth_motion import teachers as teachers_lib
from segmentation import segmenter as segmenter_lib

QUICKSTART = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "quickstart.flags")


def _config(*overrides):
  flags.FLAGS(["train", f"--flagfile={QUICKSTART}", *overrides])
  try:
    return flags_lib.config_from_flags()
  finally:
    flags.FLAGS.unparse_flags()


def test_quickstart_flagfile_parses_into_its_stages():
  config = _config()
  assert config.stages == ("depth_motion", "segmentation", "control", "consistency")
  assert config.export_dir and config.geometry == "learned" and config.label_fraction < 1.0


def test_shortened_quickstart_runs_every_stage_exports_and_summarizes(tmp_path):
  model_dir = tmp_path / "run"
  config = _config(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'saved_model'}",
                   f"--data_root={tmp_path / 'data'}", "--synthetic_scenes=3", "--synthetic_frames=8",
                   "--train_steps=2", "--steps_per_loop=2", "--checkpoint_every=2", "--eval_max_batches=1")
  results = train.run(config)
  assert set(results) == {"depth_motion", "segmentation", "control", "consistency"}
  for losses in results.values():
    assert all(np.isfinite(v) for v in losses.values())
  assert results["consistency"]["consistency"] >= 0.0
  for stage in config.stages:
    assert report.read_metrics(str(model_dir), stage)["step"] == 2
  # The consistency stage trained the segmenter only; the teachers kept the depth_motion stage's weights.
  teachers, settings = teachers_lib.load_teachers(str(model_dir / "depth_motion"))
  after = teachers_lib.build_networks(settings)
  status = tf.train.Checkpoint(**after).read(tf.train.latest_checkpoint(str(model_dir / "consistency")))
  status.assert_existing_objects_matched().expect_partial()
  for name in ("depth", "motion"):
    for before_weight, after_weight in zip(teachers[name].weights, after[name].weights):
      np.testing.assert_array_equal(before_weight.numpy(), after_weight.numpy(), err_msg=before_weight.path)
  # The control continued the baseline without the loss; with it, the consistency run ends elsewhere.
  control, consistency = (segmenter_lib.build_segmenter(supervised.segmenter_config(config)) for _ in range(2))
  for model, stage in ((control, "control"), (consistency, "consistency")):
    tf.train.Checkpoint(segmenter=model).read(tf.train.latest_checkpoint(str(model_dir / stage))).expect_partial()
  assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(control.trainable_weights,
                                                                      consistency.trainable_weights))
  served = tf.saved_model.load(str(tmp_path / "saved_model"))
  output = served.signatures["serving_default"](images=tf.zeros([1, 32, 48, 3], tf.uint8))
  assert output["class_ids"].shape == [1, 32, 48]
  summary = report.summarize(str(model_dir), config.stages, str(tmp_path / "saved_model"))
  assert "baseline" in summary and "with the losses on unlabeled frames" in summary and "SavedModel" in summary
  assert "mIoU side by side: baseline" in summary
  assert "training-video AbsRel" in summary and "depth std/mean" in summary and "warp error (px)" in summary


def test_summary_names_stages_without_metrics(tmp_path):
  (tmp_path / "segmentation").mkdir()
  (tmp_path / "segmentation" / "metrics.json").write_text(json.dumps({"miou": 0.25, "step": 7}))
  summary = report.summarize(str(tmp_path), ("segmentation", "consistency"))
  assert "mIoU 0.2500" in summary and "step 7" in summary
  assert "consistency (the baseline continued with the losses on unlabeled frames): no metrics" in summary
  assert "side by side" not in summary


def test_summary_puts_baseline_control_and_consistency_side_by_side(tmp_path):
  for stage, miou in (("segmentation", 0.25), ("control", 0.3), ("consistency", 0.35)):
    (tmp_path / stage).mkdir()
    (tmp_path / stage / "metrics.json").write_text(json.dumps({"miou": miou, "step": 7}))
  summary = report.summarize(str(tmp_path), ("segmentation", "control", "consistency"))
  assert "baseline 0.2500 | control 0.3000 | consistency 0.3500 (consistency - control: +0.0500" in summary


@pytest.mark.parametrize("bad", ["--geometry=lidar", "--consistency_min_gap=0"])
def test_bad_consistency_flags_fail_clearly(bad):
  with pytest.raises((ValueError, flags.IllegalFlagValueError)):
    _config(bad)
