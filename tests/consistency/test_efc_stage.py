"""The EFC stage on a tiny synthetic dataset: training, evaluation metrics, ablation switches, export contract."""

import copy
import glob
import json
import os
import unittest.mock

from absl import logging
import numpy as np
import pytest
import tensorflow as tf

from consistency import flow_evaluation
from consistency import train
from consistency.harness import stage as stage_lib
from consistency.stages import efc as efc_stage
from segmentation import export
from segmentation import segmenter
from tests import tiny
from tests.datasets import fixtures



@pytest.fixture(name="data_root")
def _data_root(synthetic_root):
  return synthetic_root(64, 96)


def _config(tmp_path, data_root, **overrides):
  # Eager training steps: tracing the joint graph costs more than the two steps themselves (the graph is exercised
  # by evaluation here, and by benchmarks/efc_step.py and the flagfiles).
  base = dict(stages=("efc",), batch_size=4, learning_rate=1e-3, image_summary_every=2, width=96, label_fraction=0.25,
              efc_loss_levels=(0, 2, 3, 4), run_eagerly=True, **tiny.EFC_SETTINGS)
  return tiny.video_config(tmp_path / "run", data_root, **{**base, **overrides})


def test_interleave_spreads_labelled_pairs():
  order = efc_stage._interleave_order(2, 2)
  np.testing.assert_array_equal(order, [0, 2, 1, 3])  # labelled, unlabeled, labelled, unlabeled
  assert sorted(efc_stage._interleave_order(3, 5)) == list(range(8))


def test_efc_stage_trains_evaluates_and_exports_the_segmenter(tmp_path, data_root):
  config = _config(tmp_path, data_root)
  losses = train.run(config)["efc"]
  assert set(losses) == {"segmentation", "consistency", "occlusion", "smoothness", "photometric", "total"}
  assert all(np.isfinite(v) for v in losses.values())
  stage_dir = os.path.join(config.model_dir, "efc")
  with open(os.path.join(stage_dir, "metrics.json")) as f:
    metrics = json.load(f)
  for key in ("flow_epe_all", "flow_epe_noc", "flow_fl_all", "zero_flow_epe_all", "miou"):
    assert metrics[key] is not None and np.isfinite(metrics[key]), key
  assert 0.0 <= metrics["flow_fl_all"] <= 1.0 and metrics["flow_epe_noc"] >= 0.0
  assert metrics["eval_pixels"] > 0 and metrics["num_pixels"] == 4 * 64 * 96
  assert 0.0 <= metrics.get("occlusion_f1", 0.0) <= 1.0  # absent when nothing is, or is predicted, occluded
  assert None not in metrics.values()
  # TensorBoard images: the flow (colour wheel), occlusion and prediction, also side by side with the frame.
  tags = set()
  for path in glob.glob(os.path.join(stage_dir, "train", "events.*")):
    for record in tf.data.TFRecordDataset(path):
      tags |= {value.tag for value in tf.compat.v1.Event.FromString(record.numpy()).summary.value}
  assert {"flow", "occlusion", "prediction", "side_by_side"} <= tags
  # The export reads the segmenter alone from the efc stage's directory (segmenter.json + the "segmenter" part).
  segmenter_config, input_size = export.read_run(config.model_dir, stage="efc")
  assert input_size == (64, 96) and segmenter_config.nasfpn_filters == 16
  checkpoint = export.find_checkpoint(config.model_dir, stage="efc")
  assert checkpoint.endswith("ckpt-2")
  export.restore_segmenter(segmenter.build_segmenter(segmenter_config), checkpoint)  # every variable, no extra


def test_flow_branch_shares_an_imagenet_efficientnet_lite0_encoder(tmp_path, data_root):
  """EFC's shared encoder can be the ImageNet EfficientNet-Lite0: the flow net reads its levels, every loss is
  finite."""
  from segmentation import pretrained  # pylint: disable=import-outside-toplevel

  stage = efc_stage.EfcStage(_config(tmp_path, data_root, backbone="efficientnet_lite0", backbone_filters=(),
                                     backbone_blocks=(), backbone_weights="imagenet"))
  models = stage.build_models()
  np.testing.assert_array_equal(models["segmenter"].backbone.stem_conv.get_weights()[0],
                                pretrained.converted_weights()["stem_conv"][0])
  losses, _ = stage.compute_losses(models, next(iter(stage.train_dataset(0))), tf.constant(0))
  assert set(losses) == {"segmentation", "consistency", "occlusion", "smoothness", "photometric"}
  assert all(np.isfinite(float(v)) for v in losses.values())


def test_batches_mix_labelled_and_random_pairs(tmp_path, data_root):
  stage = efc_stage.EfcStage(_config(tmp_path, data_root, batch_size=4, label_fraction=0.1))
  batch = next(iter(stage.train_dataset(0)))
  assert batch["image"].shape == (4, 2, 64, 96, 3) and batch["label"].shape == (4, 2, 64, 96)
  labelled = np.any(batch["label"].numpy()[:, 0] != 255, axis=(1, 2))
  assert labelled[0] and labelled[2]  # interleaved: pairs 0 and 2 start at a labelled frame


def test_ablation_switches(tmp_path, data_root):
  flow_only = efc_stage.EfcStage(_config(tmp_path, data_root, efc_flow_only=True))
  assert flow_only.weights["segmentation"] == 0.0 and flow_only.weights["consistency"] == 0.0
  assert not flow_only.error_mask and flow_only.flow_active
  supervised = efc_stage.EfcStage(_config(tmp_path, data_root, efc_consistency_weight=0.0, efc_occlusion_weight=0.0,
                                          efc_smoothness_weight=0.0, efc_photometric_weight=0.0,
                                          efc_occlusion_mask=False))
  assert not supervised.flow_active


@pytest.mark.parametrize("overrides, expected", [
    (dict(efc_flow_only=True), {"occlusion", "smoothness", "photometric"}),
    (dict(efc_consistency_weight=0.0, efc_occlusion_weight=0.0, efc_smoothness_weight=0.0,
          efc_photometric_weight=0.0, efc_occlusion_mask=False), {"segmentation"}),
], ids=["flow_only", "supervised_only"])
@pytest.mark.slow  # ~20 s each (model build); the default suite trains the full stage in test_efc_stage_trains...
def test_ablation_losses(tmp_path, data_root, overrides, expected):
  stage = efc_stage.EfcStage(_config(tmp_path, data_root, **overrides))
  models = stage.build_models()
  batch = next(iter(stage.train_dataset(0)))
  losses, _ = stage.compute_losses(models, batch, tf.constant(0))
  assert set(losses) == expected
  assert all(np.isfinite(float(v)) for v in losses.values())


@pytest.mark.parametrize("name", ["synthetic_efc", "synthetic_efc_flow_only", "synthetic_efc_flow_only_no_occlusion",
                                  "synthetic_efc_no_occlusion", "synthetic_efc_no_error_mask",
                                  "synthetic_efc_supervised_only", "scannet_efc"])
def test_flagfiles_describe_valid_efc_stages(name, tmp_path):
  """Each ablation row is one flagfile: it parses, and the stage accepts its combination of switches."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from consistency.harness import flags as flags_lib  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  values = copy.deepcopy(flags.FLAGS)
  cwd = os.getcwd()
  os.chdir(root)  # nested --flagfile paths are relative to the repository root
  try:
    values(["train", f"--flagfile=configs/{name}.flags", f"--model_dir={tmp_path}", f"--data_root={tmp_path}"])
  finally:
    os.chdir(cwd)
  with unittest.mock.patch.object(flags_lib, "FLAGS", values):
    config = flags_lib.config_from_flags()
  assert config.stages == ("efc",)
  stage = efc_stage.EfcStage(config)
  assert stage.flow_active == (name != "synthetic_efc_supervised_only")


# ----------------------------------------------------------------------------------------------------------------------
# Labelled frames evaluated first, metrics without data absent (issue [reliability] 6 and 7; end to end:
# tests/faults/test_stage_metrics.py), settings checked before anything trains.

def test_eval_pairs_at_labelled_frames_come_first(tmp_path):
  """Probe: --eval_max_batches=1 on Cityscapes evaluated frames 275 and 276 of the val snippet, whose only label is
  frame 294. The pair at the labelled frame comes first, then the others in frame order."""
  root = fixtures.write_cityscapes(str(tmp_path / "cityscapes"))
  stage = efc_stage.EfcStage(_config(tmp_path, root, dataset="cityscapes", batch_size=2, height=16, width=32))
  starts, labelled = stage.eval_starts()
  assert labelled == 1 and len(starts) == 30 - 2  # gap efc_eval_gap=2 in a 30-frame snippet
  assert list(starts[:3]) == [294 - 275, 0, 1] and sorted(starts) == list(range(28))
  # The batches themselves (and the mIoU they give): tests/faults/test_stage_metrics.py.


def _statistics(pixels=100, noc=80, tp=5.0, fp=5.0, fn=10.0, labelled=True):
  confusion = np.zeros([21, 21], np.int64)
  if labelled:
    confusion[1, 1], confusion[2, 1] = 30, 10
  return {"confusion": confusion, "epe_all": 2.0 * pixels, "epe_noc": 1.0 * noc, "outliers_all": 0.25 * pixels,
          "zero_flow_epe_all": 4.0 * pixels, "pixels_all": float(pixels), "pixels_noc": float(noc),
          "occlusion_tp": tp, "occlusion_fp": fp, "occlusion_fn": fn, "occlusion_pixels": tp + fn}


def _eval_result(stage, totals):
  with unittest.mock.patch.object(logging, "warning") as warning:
    metrics = stage.eval_result(totals)
  json.dumps(metrics, allow_nan=False)
  assert None not in metrics.values(), metrics
  return metrics, [call.args[0] % call.args[1:] for call in warning.call_args_list]


def test_eval_result_leaves_out_what_cannot_be_computed(tmp_path, data_root):
  stage = efc_stage.EfcStage(_config(tmp_path, data_root))
  metrics, warnings = _eval_result(stage, _statistics())
  assert not warnings
  assert metrics["flow_epe_all"] == 2.0 and metrics["flow_epe_noc"] == 1.0 and metrics["flow_fl_all"] == 0.25
  assert metrics["occlusion_precision"] == 0.5 and metrics["occlusion_recall"] == pytest.approx(1 / 3)
  assert metrics["miou"] == pytest.approx(0.5 * (30 / 40 + 0.0)) and metrics["num_pixels"] == 40

  # Nothing predicted occluded: precision has no denominator (was null).
  metrics, warnings = _eval_result(stage, _statistics(fp=0.0, tp=0.0))
  assert "occlusion_precision" not in metrics and metrics["occlusion_recall"] == 0.0
  assert len(warnings) == 1 and "occlusion_precision (no pixel with ground-truth flow was predicted occluded)" in \
      warnings[0]

  # No ground-truth flow and no labelled pixel (was miou: null, flow_epe_all: null, ...): absent, one warning.
  metrics, warnings = _eval_result(stage, _statistics(pixels=0, noc=0, tp=0.0, fp=0.0, fn=0.0, labelled=False))
  assert metrics == {"num_pixels": 0, "eval_pixels": 0}
  assert len(warnings) == 1
  assert "miou" in warnings[0] and "(no labelled pixel was evaluated: no evaluated pair starts at a labelled frame)" \
      in warnings[0]
  assert ", ".join(flow_evaluation.FLOW_METRICS) + " (no evaluated pixel has ground-truth flow" in warnings[0]


@pytest.mark.parametrize("overrides, message", [
    (dict(efc_loss_levels=(0, 2, 3, 4, 5)),
     r"--efc_loss_levels=0,2,3,4,5 does not suit --height=64 --width=96: loss level 5 is 2x3 pixels, and the "
     r"photometric loss needs at least 3x3 .* at least 65 for level 5, or --efc_loss_levels without it\."),
    (dict(height=8, width=8, efc_loss_levels=(0, 2)), r"loss level 2 is 2x2 pixels"),
    (dict(efc_flow_levels=(2, 3, 4, 5, 6)),
     r"--efc_flow_levels=2,3,4,5,6: the encoder gives levels 2,3,4,5 .* level\(s\) 6 do not exist"),
    (dict(efc_flow_levels=(2, 4, 5), efc_consistency_levels=(2, 4)), r"levels must be consecutive"),
    (dict(efc_labelled_pairs=0.1), r"--efc_labelled_pairs=0.1 of --batch_size=4 rounds to 0 labelled pairs per "
                                   r"batch\. Expected at least 1 / batch_size \(--efc_labelled_pairs>=0.25\)"),
], ids=["loss_level_too_small", "tiny_image", "flow_level_outside_encoder", "flow_levels_not_consecutive",
        "labelled_pairs_round_to_0"])
def test_preflight_rejects_settings_that_would_fail_in_training(tmp_path, overrides, message):
  """Each of these failed (or silently trained without labelled pairs) only once training started."""
  stage = efc_stage.EfcStage(_config(tmp_path, str(tmp_path / "data"), **overrides))
  with unittest.mock.patch.object(stage_lib.Stage, "preflight") as data_checks:
    with pytest.raises(ValueError, match=message):
      stage.preflight()
  data_checks.assert_not_called()
  assert not os.path.exists(str(tmp_path / "data"))  # rejected before the data is touched


def test_preflight_needs_labels_for_labelled_pairs(tmp_path):
  root = str(tmp_path / "cityscapes")
  fixtures.write_cityscapes_snippet(root, "train", "aachen", 0, 19, labels=False)
  stage = efc_stage.EfcStage(_config(tmp_path, root, dataset="cityscapes", efc_labelled_pairs=0.5))
  with pytest.raises(ValueError, match=r"--efc_labelled_pairs=0.5, but the train split of dataset=cityscapes has no "
                                       r"labelled frame .* Expected --efc_labelled_pairs=0"):
    stage.preflight()
  stage = efc_stage.EfcStage(_config(tmp_path, root, dataset="cityscapes", efc_labelled_pairs=0.0))
  with unittest.mock.patch.object(stage_lib.Stage, "preflight") as data_checks:
    stage.preflight()
  data_checks.assert_called_once_with()


def test_class_weights_need_one_value_per_class(tmp_path, data_root):
  with pytest.raises(ValueError, match=r"--class_weights needs 21 values \(one per class of dataset=synthetic\)\. "
                                       r"Received 3\."):
    efc_stage.EfcStage(_config(tmp_path, data_root, class_weights=(1.0, 2.0, 3.0)))
