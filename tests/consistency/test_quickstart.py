"""The quickstart flagfile parses, and a shortened run of it goes through every stage, the export and the summary."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from consistency import flags as flags_lib
from consistency import report
from consistency import train
from consistency.stages import depth_motion as depth_motion_stage

QUICKSTART = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "quickstart.flags")


def _config(*overrides):
  flags.FLAGS(["train", f"--flagfile={QUICKSTART}", *overrides])
  try:
    return flags_lib.config_from_flags()
  finally:
    flags.FLAGS.unparse_flags()


def test_quickstart_flagfile_parses_into_the_three_stages():
  config = _config()
  assert config.stages == ("depth_motion", "segmentation", "consistency")
  assert config.export_dir and config.geometry == "learned" and config.label_fraction < 1.0


def test_shortened_quickstart_runs_every_stage_exports_and_summarizes(tmp_path):
  model_dir = tmp_path / "run"
  config = _config(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'saved_model'}",
                   f"--data_root={tmp_path / 'data'}", "--synthetic_scenes=3", "--synthetic_frames=8",
                   "--train_steps=2", "--steps_per_loop=2", "--checkpoint_every=2", "--eval_max_batches=1")
  results = train.run(config)
  assert set(results) == {"depth_motion", "segmentation", "consistency"}
  for losses in results.values():
    assert all(np.isfinite(v) for v in losses.values())
  assert results["consistency"]["consistency"] >= 0.0
  for stage in config.stages:
    assert report.read_metrics(str(model_dir), stage)["step"] == 2
  # The consistency stage trained the segmenter only; the teachers kept the depth_motion stage's weights.
  teachers, settings = depth_motion_stage.load_teachers(str(model_dir / "depth_motion"))
  after = depth_motion_stage.build_networks(settings)
  status = tf.train.Checkpoint(**after).read(tf.train.latest_checkpoint(str(model_dir / "consistency")))
  status.assert_existing_objects_matched().expect_partial()
  for name in ("depth", "motion"):
    for before_weight, after_weight in zip(teachers[name].weights, after[name].weights):
      np.testing.assert_array_equal(before_weight.numpy(), after_weight.numpy(), err_msg=before_weight.path)
  served = tf.saved_model.load(str(tmp_path / "saved_model"))
  output = served.signatures["serving_default"](images=tf.zeros([1, 32, 48, 3], tf.uint8))
  assert output["class_ids"].shape == [1, 32, 48]
  summary = report.summarize(str(model_dir), config.stages, str(tmp_path / "saved_model"))
  assert "baseline" in summary and "with 4D consistency" in summary and "SavedModel" in summary
  assert "training-video AbsRel" in summary and "depth std/mean" in summary and "warp error (px)" in summary


def test_summary_names_stages_without_metrics(tmp_path):
  (tmp_path / "segmentation").mkdir()
  (tmp_path / "segmentation" / "metrics.json").write_text(json.dumps({"miou": 0.25, "step": 7}))
  summary = report.summarize(str(tmp_path), ("segmentation", "consistency"))
  assert "mIoU 0.2500" in summary and "step 7" in summary and "consistency (with 4D consistency): no metrics" in summary


@pytest.mark.parametrize("bad", ["--geometry=lidar", "--consistency_min_gap=0"])
def test_bad_consistency_flags_fail_clearly(bad):
  with pytest.raises((ValueError, flags.IllegalFlagValueError)):
    _config(bad)
