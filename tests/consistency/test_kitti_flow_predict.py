"""KITTI flow prediction from an efc run: restore both networks, resize the flow back to each pair's size, score."""

import copy
import io
import json
import os
import shutil

from absl import flags
import numpy as np
import pytest

from consistency import kitti_flow_predict
from consistency.harness import distribution
from consistency.harness import flags as flags_lib
from consistency.harness import trainer as trainer_lib
from consistency.stages import efc as efc_stage
from datasets.readers import kitti_flow
from tests.datasets import fixtures

# The tiny efc networks of tests/consistency/test_efc_stage.py, as command-line flags.
RUN_FLAGS = ("--stages=efc", "--dataset=synthetic", "--height=64", "--width=96", "--backbone=resnet50",
             "--backbone_filters=8,8,16,16", "--backbone_blocks=1,1,1,1", "--nasfpn_filters=16", "--nasfpn_repeats=1",
             "--head_filters=16", "--head_groups=4", "--efc_flow_filters=8", "--noefc_error_mask")
# Raw bias of the finest flow prediction (kernel zero): a constant flow of 20 x (0.48, -0.32) = (9.6, -6.4) px at the
# 64x96 working size, i.e. (9.6 x 10 / 96, -6.4 x 6 / 64) = (1.0, -0.6) px on KITTI's 6x10 fixture images.
FLOW_BIAS = (0.48, -0.32)
EXPECTED_FLOW = (1.0, -0.6)


def _write_run(model_dir, extra_flags=()):
  """An efc run as consistency.train leaves it: flags.txt, efc/segmenter.json and a checkpoint of the Trainer."""
  values = copy.deepcopy(flags.FLAGS)
  values(["train", f"--model_dir={model_dir}", *RUN_FLAGS, *extra_flags])
  config = flags_lib.config_from_flags(values)
  os.makedirs(model_dir, exist_ok=True)
  values.append_flags_into_file(os.path.join(model_dir, flags_lib.FLAGS_FILE))
  stage = efc_stage.EfcStage(config)
  trainer = trainer_lib.Trainer(stage, config, distribution.create_strategy(1), os.path.join(model_dir, "efc"))
  finest = trainer.models["flow_net"].predict_flow_2
  finest.bias.assign(np.array(FLOW_BIAS, np.float32))
  trainer.save()
  return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("efc_run"))
  return model_dir, _write_run(model_dir)


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
  return fixtures.write_kitti_flow(str(tmp_path_factory.mktemp("kitti_flow")))


def test_the_run_config_round_trips_through_flags_txt(run):
  model_dir, config = run
  assert flags_lib.read_run_config(model_dir) == config
  assert not flags.FLAGS["height"].present  # parsed into private copies: the process's flags are untouched


def test_predict_writes_flow_at_each_pairs_size_and_scores_it(run, kitti_root, tmp_path):
  model_dir, _ = run
  output = str(tmp_path / "pred")
  out = io.StringIO()
  metrics = kitti_flow_predict.predict(model_dir, kitti_root, output, log_every=1, out=out)
  for name in ("000000", "000001"):
    flow, valid = kitti_flow.read_flow(os.path.join(output, f"{name}_10.png"))
    assert flow.shape == fixtures.KITTI_SIZE + (2,) and valid.all()
    np.testing.assert_allclose(flow[..., 0], EXPECTED_FLOW[0], atol=1.0 / 64)
    np.testing.assert_allclose(flow[..., 1], EXPECTED_FLOW[1], atol=1.0 / 64)
  for key in ("epe_all", "epe_noc", "fl_all"):
    assert np.isfinite(metrics[key]) and metrics[key] >= 0.0, key
  assert metrics["num_images"] == 2
  assert "KITTI flow 2015 training, 2 pairs: EPE all" in out.getvalue()
  with open(os.path.join(output, kitti_flow_predict.METRICS_FILE), encoding="utf-8") as f:
    written = json.load(f)
  assert written["epe_all"] == pytest.approx(metrics["epe_all"]) and written["size"] == [64, 96]
  assert written["checkpoint"].endswith(os.path.join("efc", "ckpt-0"))


def test_missing_run_files_and_mismatched_flow_branch_are_named(run, kitti_root, tmp_path):
  with pytest.raises(FileNotFoundError, match=f"No segmenter description {tmp_path / 'efc' / 'segmenter.json'}"):
    kitti_flow_predict.predict(str(tmp_path), kitti_root, str(tmp_path / "pred"))
  model_dir, _ = run
  with pytest.raises(ValueError, match="multiples of 32"):
    kitti_flow_predict.predict(model_dir, kitti_root, str(tmp_path / "pred"), size=(60, 96))
  # The record says the flow branch is twice as wide as the one checkpointed.
  other = tmp_path / "other" / "efc"
  shutil.copytree(os.path.join(model_dir, "efc"), other)
  record = json.loads((other / "segmenter.json").read_text())
  assert record["networks"]["flow_net"]["filters"] == 8
  record["networks"]["flow_net"]["filters"] = 16
  (other / "segmenter.json").write_text(json.dumps(record))
  with pytest.raises(ValueError, match=r"ckpt-0 does not restore the flow branch recorded in .*segmenter\.json"):
    kitti_flow_predict.load_networks(str(tmp_path / "other"))
  # A record without the flow branch (a segmentation stage's) is named.
  del record["networks"]
  (other / "segmenter.json").write_text(json.dumps(record))
  with pytest.raises(ValueError, match=r"segmenter\.json records no network 'flow_net'"):
    kitti_flow_predict.load_networks(str(tmp_path / "other"))
