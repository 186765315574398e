"""The training loop, in-process: resume equals uninterrupted, 2 replicas equal 1, the non-finite guard, warm starts,
profiling, schedules."""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from consistency import train
from consistency.harness import optimization
from consistency.harness import trainer as trainer_lib
from consistency.stages import toy_regression
from tests import tiny


def _config(model_dir, **overrides):
  base = dict(stages=("toy_regression",), train_steps=20, batch_size=8, learning_rate=0.05, steps_per_loop=4,
              checkpoint_every=10, summary_every=5, seed=1)
  return tiny.train_config(model_dir, **{**base, **overrides})


def _trainer(config, strategy=None, stage_class=toy_regression.ToyRegression):
  strategy = strategy or tf.distribute.get_strategy()
  return trainer_lib.Trainer(stage_class(config), config, strategy, os.path.join(config.model_dir, "toy_regression"))


def _weights(trainer):
  return [v.numpy() for v in trainer.models["regressor"].weights]


def test_resumed_run_ends_with_the_same_weights(tmp_path):
  full = _trainer(_config(tmp_path / "full", train_steps=30))
  full.train()
  first = _trainer(_config(tmp_path / "resumed", train_steps=13))  # stops mid-loop and between checkpoints
  first.train()
  resumed = _trainer(_config(tmp_path / "resumed", train_steps=30))
  resumed.train()
  assert int(resumed.step.numpy()) == 30
  for a, b in zip(_weights(full), _weights(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # The optimizer state came back too (Adam moments, iteration count).
  assert int(resumed.optimizer.iterations.numpy()) == 30


@pytest.mark.parametrize("optimizer, clip_norm", [("sgd", 0.5), ("adam", 10.0)])
def test_two_replicas_match_one_replica(tmp_path, optimizer, clip_norm):
  """Same global batch on 1 and on 2 (logical CPU) replicas: same losses and weights, with clipping active."""
  results = {}
  for replicas in (1, 2):
    config = _config(tmp_path / str(replicas), optimizer=optimizer, clip_norm=clip_norm, train_steps=12,
                     num_cpu_replicas=replicas)
    strategy = (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                               cross_device_ops=tf.distribute.ReductionToOneDevice())
                if replicas == 2 else tf.distribute.get_strategy())
    trainer = _trainer(config, strategy)
    losses = trainer.train()
    results[replicas] = (losses, _weights(trainer))
  assert results[1][0]["mse"] == pytest.approx(results[2][0]["mse"], rel=1e-5)
  for a, b in zip(results[1][1], results[2][1]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _NaNAfterStep7(toy_regression.ToyRegression):
  def compute_losses(self, models, batch, step, training=True):
    losses, outputs = super().compute_losses(models, batch, step, training)
    poison = tf.where(step >= 7, tf.constant(float("nan")), 1.0)
    return {"mse": losses["mse"] * poison}, outputs


def test_non_finite_guard_names_the_step_and_term_and_keeps_the_last_good_checkpoint(tmp_path):
  config = _config(tmp_path, checkpoint_every=5, steps_per_loop=10)
  trainer = _trainer(config, stage_class=_NaNAfterStep7)
  with pytest.raises(trainer_lib.NonFiniteError, match=r"non-finite mse, total at step 8"):
    trainer.train()
  stage_dir = os.path.join(tmp_path, "toy_regression")
  assert tf.train.latest_checkpoint(stage_dir).endswith("ckpt-5")
  restored = _trainer(config)
  restored.restore_or_warm_start()
  assert int(restored.step.numpy()) == 5
  assert all(np.all(np.isfinite(w)) for w in _weights(restored))


def test_warm_start_restores_a_part_and_fails_loudly_on_mismatch(tmp_path):
  source = _trainer(_config(tmp_path / "source"))
  source.train()
  source_dir = str(tmp_path / "source" / "toy_regression")
  target = _trainer(_config(tmp_path / "target", warm_start=(("regressor", source_dir),)))
  target.restore_or_warm_start()
  for a, b in zip(_weights(source), _weights(target)):
    np.testing.assert_array_equal(a, b)
  assert int(target.step.numpy()) == 0  # only the model, not the training state

  class Wider(toy_regression.ToyRegression):
    def build_models(self):
      import keras  # pylint: disable=g-import-not-at-top
      model = keras.Sequential([keras.Input([toy_regression.FEATURES]), keras.layers.Dense(4, name="hidden"),
                                keras.layers.Dense(1, name="dense")])
      return {"regressor": model}

  wider = _trainer(_config(tmp_path / "wider"), stage_class=Wider)
  with pytest.raises(ValueError, match="does not hold every variable of 'regressor'"):
    wider.warm_start("regressor", str(tmp_path / "source" / "toy_regression"))
  with pytest.raises(FileNotFoundError, match="no checkpoint there"):
    wider.warm_start("regressor", str(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match="has models"):
    wider.warm_start("segmenter", str(tmp_path / "source" / "toy_regression"))


def test_summaries_images_metrics_and_profile(tmp_path):
  config = _config(tmp_path, train_steps=12, image_summary_every=6, eval_every=6, profile_steps=(4, 8))
  train.run(config)
  stage_dir = os.path.join(tmp_path, "toy_regression")
  tags = set()
  for path in glob.glob(os.path.join(stage_dir, "train", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(v.tag for v in event.summary.value)
  assert {"loss/mse", "loss/total", "train/learning_rate", "train/gradient_norm", "train/examples_per_second",
          "train/input_wait_fraction", "inputs"} <= tags
  with open(os.path.join(stage_dir, "metrics.json")) as f:
    metrics = json.load(f)
  assert metrics["step"] == 12 and metrics["examples"] == toy_regression.EVAL_EXAMPLES and metrics["mse"] < 5
  # Every evaluation is kept, in step order: the learning curve.
  history = trainer_lib.read_metrics_history(stage_dir)
  assert list(history) == [6, 12] and history[12] == metrics and history[6]["mse"] > metrics["mse"]
  traces = glob.glob(os.path.join(stage_dir, "train", "plugins", "profile", "*", "*.xplane.pb"))
  assert traces, "no profiler trace written"


def test_jit_compile_and_eager_paths_agree_with_the_graph_path(tmp_path):
  weights = {}
  for name, overrides in {"graph": {}, "xla": {"jit_compile": True}, "eager": {"run_eagerly": True}}.items():
    trainer = _trainer(_config(tmp_path / name, train_steps=6, **overrides))
    trainer.train()
    weights[name] = _weights(trainer)
  for other in ("xla", "eager"):
    for a, b in zip(weights["graph"], weights[other]):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_learning_rate_schedules():
  poly = optimization.WarmupDecay(0.01, 100, "polynomial", end=0.0, power=0.9)
  assert float(poly(0)) == pytest.approx(0.01)
  assert float(poly(50)) == pytest.approx(0.01 * 0.5**0.9)
  assert float(poly(100)) == pytest.approx(0.0)
  cosine = optimization.WarmupDecay(0.01, 100, "cosine", end=0.001, warmup_steps=10)
  assert float(cosine(4)) == pytest.approx(0.005)
  assert float(cosine(10)) == pytest.approx(0.01)
  assert float(cosine(55)) == pytest.approx(0.001 + 0.5 * 0.009)
  assert float(optimization.WarmupDecay(0.01, 100)(70)) == pytest.approx(0.01)


def _apply_step(optimizer, variables):
  return tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)))


@pytest.mark.parametrize("weight_decay", [None, 0.01])
def test_fused_adam_equals_keras_adam(weight_decay):
  """Weights and both moments after 5 steps of a warm-up schedule, with and without decoupled weight decay."""
  import keras  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  initial = [rng.normal(size=shape).astype(np.float32) for shape in ([3, 4], [5])]
  gradients = [[rng.normal(size=w.shape).astype(np.float32) for w in initial] for _ in range(5)]
  results = []
  for optimizer_class in (keras.optimizers.Adam, optimization.FusedAdam):
    variables = [keras.Variable(w) for w in initial]
    optimizer = optimizer_class(optimization.WarmupDecay(0.01, 10, warmup_steps=3), beta_1=0.8,
                                weight_decay=weight_decay)
    optimizer.build(variables)
    step = _apply_step(optimizer, variables)
    for grads in gradients:
      step([tf.constant(g) for g in grads])
    results.append([v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables])
  for keras_value, fused_value in zip(*results):
    np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-7)


def test_config_rejects_bad_values(tmp_path):
  with pytest.raises(ValueError, match="optimizer must be"):
    _config(tmp_path, optimizer="rmsprop")
  with pytest.raises(ValueError, match="profile_steps must be START,END"):
    _config(tmp_path, profile_steps=(5, 2))
  with pytest.raises(ValueError, match="Unknown stage 'nope'"):
    train.run(dataclasses.replace(_config(tmp_path), stages=("nope",)))
  with pytest.raises(ValueError, match="must be divisible by the 2 replicas"):
    train.run(_config(tmp_path, batch_size=7),
              tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                             cross_device_ops=tf.distribute.ReductionToOneDevice()))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_losses(tmp_path, policy):
  import keras  # pylint: disable=g-import-not-at-top
  try:
    trainer = _trainer(_config(tmp_path, mixed_precision=policy, train_steps=20))
    assert trainer.models["regressor"].layers[-1].compute_dtype == policy.split("_")[1]
    first = _trainer(_config(tmp_path / "first", mixed_precision=policy, train_steps=1)).train()
    losses = trainer.train()
    assert np.isfinite(losses["mse"]) and losses["mse"] < first["mse"]
    if policy == "mixed_float16":
      assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
  finally:
    keras.mixed_precision.set_global_policy("float32")


def test_export_dir_without_a_segmenter_stage_exports_nothing_and_says_so(tmp_path, caplog):
  # E.g. the own-video flagfile (which exports) run with --stages=depth_motion to train the teachers alone.
  config = _config(tmp_path / "run", train_steps=4, export_dir=str(tmp_path / "saved_model"))
  train.run(config)
  assert "no stage of this run (toy_regression) trains a segmenter; nothing exported" in caplog.text
  assert not (tmp_path / "saved_model").exists()
