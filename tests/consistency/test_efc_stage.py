"""The EFC stage on a tiny synthetic dataset: training, evaluation metrics, ablation switches, export contract."""

import copy
import json
import os
import unittest.mock

import numpy as np
import pytest
import tensorflow as tf

from consistency import config as config_lib
from consistency import train
from consistency.stages import efc as efc_stage
from segmentation import export
from segmentation import segmenter

TINY = dict(backbone="resnet50", backbone_filters=(8, 8, 16, 16), backbone_blocks=(1, 1, 1, 1), nasfpn_filters=16,
            nasfpn_repeats=1, head_filters=16, head_groups=4, efc_flow_filters=8)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  return str(tmp_path_factory.mktemp("efc_data"))


def _config(tmp_path, data_root, **overrides):
  # Eager training steps: tracing the joint graph costs more than the two steps themselves (the graph is exercised
  # by evaluation here, and by benchmarks/efc_step.py and the flagfiles).
  base = dict(model_dir=str(tmp_path / "run"), stages=("efc",), train_steps=2, batch_size=4, learning_rate=1e-3,
              steps_per_loop=2, checkpoint_every=2, summary_every=2, image_summary_every=2, dataset="synthetic",
              data_root=data_root, synthetic_scenes=3, synthetic_frames=8, height=64, width=96, label_fraction=0.25,
              eval_max_batches=1, efc_loss_levels=(0, 2, 3, 4), run_eagerly=True, **TINY)
  base.update(overrides)
  return config_lib.TrainConfig(**base)


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
  assert metrics["occlusion_f1"] is None or 0.0 <= metrics["occlusion_f1"] <= 1.0
  assert os.path.isdir(os.path.join(stage_dir, "train"))  # summaries, images included
  # The export reads the segmenter alone from the efc stage's directory (segmenter.json + the "segmenter" part).
  segmenter_config, input_size = export.read_run(config.model_dir, stage="efc")
  assert input_size == (64, 96) and segmenter_config.nasfpn_filters == 16
  checkpoint = export.find_checkpoint(config.model_dir, stage="efc")
  assert checkpoint.endswith("ckpt-2")
  export.restore_segmenter(segmenter.build_segmenter(segmenter_config), checkpoint)  # every variable, no extra


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
  with pytest.raises(ValueError, match="efc_occlusion_mask needs"):
    efc_stage.EfcStage(_config(tmp_path, data_root, efc_occlusion_weight=0.0))


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
  from consistency import flags as flags_lib  # pylint: disable=g-import-not-at-top
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
