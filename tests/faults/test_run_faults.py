"""Regression tests of the training command's probed faults (issue [reliability]): nothing overwritten, no
non-finite checkpoint, mistakes caught before the first step, evaluation that survives SIGTERM, flags that mean what
they say."""

import copy
import dataclasses
import os
import signal
import subprocess
import sys

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from consistency import train
from consistency.harness import config as config_lib
from consistency.harness import flags as flags_lib
from consistency.harness import trainer as trainer_lib
from consistency.stages import toy_regression
from datasets.readers import scannet
from tests import tiny
from tests.datasets import fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _config(model_dir, **overrides):
  base = dict(stages=("toy_regression",), train_steps=6, batch_size=8, learning_rate=0.05, seed=1)
  return tiny.train_config(model_dir, **{**base, **overrides})


def _trainer(config, stage_class=toy_regression.ToyRegression):
  return trainer_lib.Trainer(stage_class(config), config, tf.distribute.get_strategy(),
                             os.path.join(config.model_dir, "toy_regression"))


def _parse(argv):
  """A private copy of the training flags parsed from argv (the global FLAGS stay untouched)."""
  values = flags.FlagValues()
  for field in dataclasses.fields(config_lib.TrainConfig):
    values[field.name] = copy.deepcopy(flags_lib.FLAGS[field.name])
    values[field.name].unparse()
  values(["train"] + argv)
  return values


# --- 3: the quickstart exports into its own --model_dir ----------------------------------------------------------

def test_the_quickstart_exports_inside_its_model_dir(tmp_path):
  values = _parse([f"--flagfile={os.path.join(ROOT, 'configs', 'quickstart.flags')}", f"--model_dir={tmp_path}"])
  assert flags_lib.config_from_flags(values).export_dir == os.path.join(str(tmp_path), "saved_model")
  absolute = _parse([f"--model_dir={tmp_path}", "--export_dir=/elsewhere/model"])
  assert flags_lib.config_from_flags(absolute).export_dir == "/elsewhere/model"


# --- 4: an update that overflows is never saved -----------------------------------------------------------------

def test_weights_that_overflow_are_not_saved(tmp_path):
  # --learning_rate=1e39 --checkpoint_every=1: the first loss and gradient are finite, the update is not.
  config = _config(tmp_path, learning_rate=1e39, optimizer="sgd", clip_norm=0.0, checkpoint_every=1,
                   steps_per_loop=1)
  trainer = _trainer(config)
  with pytest.raises(trainer_lib.NonFiniteError, match=r"non-finite by step 1 .*learning_rate=1e\+39.*Nothing was "
                     r"saved"):
    trainer.train()
  assert tf.train.latest_checkpoint(os.path.join(str(tmp_path), "toy_regression")) is None


def test_a_good_checkpoint_stays_the_latest_after_an_overflow(tmp_path):
  _trainer(_config(tmp_path, train_steps=2, optimizer="sgd", clip_norm=0.0)).train()
  stage_dir = os.path.join(str(tmp_path), "toy_regression")
  good = tf.train.latest_checkpoint(stage_dir)
  trainer = _trainer(_config(tmp_path, train_steps=4, learning_rate=1e39, optimizer="sgd", clip_norm=0.0))
  with pytest.raises(trainer_lib.NonFiniteError):
    trainer.train()
  assert tf.train.latest_checkpoint(stage_dir) == good
  reader = tf.train.load_checkpoint(good)
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
      assert np.all(np.isfinite(value)), name


# --- 9, 14: mistakes fail before the first step, in one line ----------------------------------------------------

def test_a_missing_validation_split_fails_before_training(tmp_path):
  data = tmp_path / "data"
  fixtures.write_scene(data, "scene0000_00", num_frames=4, size=(32, 32))
  fixtures.write_splits(data, train=["scene0000_00"])  # no scannetv2_val.txt
  os.remove(data / "scannetv2_val.txt")
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path / "run"), stages=("segmentation",), train_steps=4, batch_size=2, dataset="scannet",
      data_root=str(data), height=32, width=32, backbone="resnet50", backbone_filters=(8, 8, 16, 16),
      backbone_blocks=(1, 1, 1, 1), nasfpn_filters=16, nasfpn_repeats=1, head_filters=16, head_groups=4)
  with pytest.raises(train.RunError, match=r"Stage segmentation: .*scannetv2_val"):
    train.run(config)
  assert not os.path.exists(os.path.join(config.model_dir, "segmentation", "checkpoint"))


def test_unknown_stage_and_bad_numbers_are_refused(tmp_path):
  with pytest.raises(train.RunError, match=r"--stages: Unknown stage 'segmentaton'"):
    train.run(_config(tmp_path, stages=("segmentaton",)))
  for value in (float("nan"), float("inf"), 0.0, -1e-3):
    with pytest.raises(ValueError, match="learning_rate must be"):
      _config(tmp_path, learning_rate=value)


def test_model_dir_that_is_a_file_is_one_line(tmp_path):
  path = tmp_path / "file"
  path.write_text("not a folder")
  with pytest.raises(train.RunError, match=r"--model_dir=.*file is a file, not a folder"):
    train.check_model_dir(str(path))
  with pytest.raises(train.RunError, match=r"--model_dir=.*file/run cannot be written"):
    train.check_model_dir(str(path / "run"))
  with pytest.raises(train.RunError, match=r"--model_dir=/proc/run cannot be written"):  # read-only, even for root
    train.check_model_dir("/proc/run")
  train.check_model_dir(str(tmp_path / "new" / "run"))
  assert os.listdir(tmp_path / "new" / "run") == []  # the write check leaves nothing behind


def test_an_interrupted_save_leaves_no_temp_folder(tmp_path):
  stage_dir = tmp_path / "toy_regression"
  (stage_dir / "ckpt-4_temp").mkdir(parents=True)
  (stage_dir / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"partial")
  _trainer(_config(tmp_path))
  assert not (stage_dir / "ckpt-4_temp").exists()


# --- 10: flags.txt is the record of the checkpoints --------------------------------------------------------------

def test_continuing_a_run_with_other_flags_is_refused(tmp_path):
  config = _config(tmp_path)
  (tmp_path / "flags.txt").write_text("--stages=toy_regression\n--learning_rate=0.05\n--batch_size=8\n--seed=1\n")
  train.check_continuation(config)  # the same settings
  train.check_continuation(_config(tmp_path, train_steps=50, summary_every=7, eval_max_batches=3))  # run length, logs
  with pytest.raises(train.RunError,
                     match=r"--learning_rate: 0\.05 recorded, 0\.1 now(.|\n)*--seed: 1 recorded, 2 now"):
    train.check_continuation(_config(tmp_path, learning_rate=0.1, seed=2))
  train.check_continuation(_config(tmp_path / "elsewhere", learning_rate=0.1))  # a new model_dir has no record


def test_a_typo_rerun_keeps_the_record_of_the_finished_run(tmp_path):
  """One process: the command line refuses a typo'd stage in one line (exit 2) and flags.txt is left as it was."""
  record = "--stages=toy_regression\n--train_steps=5\n"
  (tmp_path / "flags.txt").write_text(record)
  result = subprocess.run([sys.executable, "-m", "consistency.train", f"--model_dir={tmp_path}",
                           "--stages=segmentaton"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Unknown stage 'segmentaton'" in result.stderr and "Traceback" not in result.stderr
  assert (tmp_path / "flags.txt").read_text() == record


# --- 12: SIGTERM during the final evaluation ----------------------------------------------------------------------

class _SignalledEvaluation(toy_regression.ToyRegression):
  """The toy stage whose evaluation data sends SIGTERM to the process as its first batch is made."""

  def eval_dataset(self):
    def send(x):
      os.kill(os.getpid(), signal.SIGTERM)
      return x

    ds = super().eval_dataset()
    return ds.map(lambda b: {**b, "x": tf.numpy_function(send, [b["x"]], tf.float32, stateful=True)})


def test_sigterm_during_the_final_evaluation_is_survived_and_evaluated_on_rerun(tmp_path):
  config = _config(tmp_path)
  metrics = os.path.join(str(tmp_path), "toy_regression", trainer_lib.METRICS_FILE)
  with pytest.raises(trainer_lib.Interrupted, match="during evaluation at step 6"):
    _trainer(config, _SignalledEvaluation).train()
  assert not os.path.exists(metrics)
  assert tf.train.latest_checkpoint(os.path.join(str(tmp_path), "toy_regression")).endswith("ckpt-6")
  rerun = _trainer(config)
  assert rerun.train() == {}  # already trained...
  assert os.path.exists(metrics)  # ... and evaluated now


# --- 13: the evaluation command line wins over the run's flags ----------------------------------------------------

def test_evaluate_command_line_overrides_the_recorded_flags(tmp_path):
  (tmp_path / "flags.txt").write_text("--stages=toy_regression\n--eval_max_batches=20\n")
  assert flags_lib.read_run_config(str(tmp_path)).eval_max_batches == 20
  given = flags_lib.given_on_command_line(_parse([f"--model_dir={tmp_path}", "--eval_max_batches=0"]))
  assert "--eval_max_batches=0" in given
  assert flags_lib.read_run_config(str(tmp_path), overrides=given).eval_max_batches == 0


def test_scannet_fixture_is_readable(tmp_path):
  """The fixture the split test relies on reads (so the refusal above is about the split alone)."""
  data = tmp_path / "data"
  fixtures.write_scene(data, "scene0000_00", num_frames=4, size=(32, 32))
  fixtures.write_splits(data, train=["scene0000_00"], val=["scene0000_00"])
  assert len(scannet.read_scenes(str(data), "val")) == 1
