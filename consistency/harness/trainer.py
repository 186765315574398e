"""The training loop shared by every stage: tf.distribute, tf.function loops, checkpoints, summaries, evaluation,
profiling and the non-finite guard.

One train step (per replica): forward and loss dict -> total scaled for the global batch -> gradients -> all-reduce
-> clip by the global norm -> apply. Several steps run per tf.function call with the step count as a tensor, so
nothing retraces; loops end exactly at checkpoint / summary / evaluation / profiling steps.
"""

import json
import os
import shutil
import signal
import threading
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from consistency.harness import distribution
from consistency.harness import optimization


class NonFiniteError(RuntimeError):
  """A loss term, the gradient norm or a weight became NaN or Inf; the last good checkpoint is left as it was."""


class Interrupted(Exception):
  """Training or its evaluation stopped on SIGTERM / SIGINT; the checkpoint of the step reached is saved."""

  def __init__(self, signum, step, path, during="training"):
    super().__init__(f"Stopped by {signal.Signals(signum).name} during {during} at step {step}; checkpoint saved to "
                     f"{path}. Run the same command again to continue.")
    self.signum = signum


METRICS_FILE = "metrics.json"
# Every evaluation's metrics, {"<step>": metrics}: the learning curve (e.g. whether a baseline has plateaued).
METRICS_HISTORY_FILE = "metrics_history.json"


def untracked_variables(checkpoint, model):
  """Paths of `model`'s variables that `checkpoint` would not save.

  Keras 3 layers held only in Python lists are invisible to tf.train.Checkpoint (their variables are silently
  left out, and `assert_existing_objects_matched` cannot notice); layers must also be attributes.
  """
  reachable = {id(obj) for obj in tf.train.TrackableView(checkpoint).descendants()}  # the view holds a weak ref
  return [v.path for v in model.weights if id(v) not in reachable and id(getattr(v, "value", None)) not in reachable]


def read_metrics_history(stage_dir):
  """{step (int): metrics} of every evaluation of the stage in `stage_dir`, in step order ({} before the first)."""
  path = os.path.join(stage_dir, METRICS_HISTORY_FILE)
  if not os.path.exists(path):
    return {}
  with open(path, encoding="utf-8") as f:
    history = json.load(f)
  return {step: history[str(step)] for step in sorted(int(key) for key in history)}


def _remove_interrupted_saves(stage_dir):
  """Deletes the `<prefix>_temp/` folders a checkpoint save killed midway leaves (a finished save renames its own)."""
  for name in os.listdir(stage_dir):
    path = os.path.join(stage_dir, name)
    if name.startswith("ckpt-") and name.endswith("_temp") and os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
      logging.info("Removed %s, left by an interrupted checkpoint save.", path)


def _local(value, strategy):
  """The first replica's copy of a value that all replicas hold identically (after an all-reduce)."""
  return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], value)


class Trainer:
  """Builds a stage's models, optimizer and checkpoint under a strategy, and trains / evaluates them."""

  def __init__(self, stage, config, strategy, stage_dir):
    self.stage = stage
    self.config = config
    self.strategy = strategy
    self.stage_dir = stage_dir
    self.is_chief = distribution.is_chief(strategy)
    self._stop_signal = None
    self._eval_writer = None
    self._eval_batch = None
    os.makedirs(stage_dir, exist_ok=True)
    if config.mixed_precision != "none":
      keras.mixed_precision.set_global_policy(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
      self.models = stage.build_models()
      names = stage.trainable_models() or list(self.models)
      unknown = sorted(set(names) - set(self.models))
      if unknown:
        raise ValueError(f"Stage {stage.name}: trainable_models names unknown models {unknown}; "
                         f"models are {sorted(self.models)}.")
      self.variables = [v for name in names for v in self.models[name].trainable_variables]
      self.optimizer = optimization.create_optimizer(config)
      self.optimizer.build(self.variables)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                              aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.checkpoint = tf.train.Checkpoint(step=self.step, optimizer=self.optimizer, **self.models)
    for name, model in self.models.items():
      # Checked on the model alone: warm starts and export read a model without the optimizer, which would
      # otherwise reach the trainable variables and hide the problem.
      missing = untracked_variables(tf.train.Checkpoint(**{name: model}), model)
      if missing:
        raise ValueError(f"Stage {stage.name}: {len(missing)} variables of model {name!r} would not be checkpointed "
                         f"(layers held only in Python lists?), e.g. {missing[:3]}.")
    # Every worker saves (collective ops need all of them); only the chief's checkpoints are kept.
    directory = stage_dir if self.is_chief else os.path.join(stage_dir, f"worker_tmp_{distribution.task_id(strategy)}")
    self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=config.keep_checkpoints,
                                              step_counter=self.step)
    self._float_weights = [v for v in self.checkpoint_variables() if tf.as_dtype(v.dtype).is_floating]
    self._all_finite = tf.function(
        lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in self._float_weights]), autograph=False)
    if self.is_chief:
      _remove_interrupted_saves(stage_dir)

  def checkpoint_variables(self):
    """Every variable the stage's checkpoint holds: the models' weights and the optimizer's slots."""
    return [v for model in self.models.values() for v in model.weights] + list(self.optimizer.variables)

  # --------------------------------------------------------------------------------------------------------------
  # Checkpoints.

  def restore_or_warm_start(self):
    """Resumes from the latest checkpoint of the stage directory, else applies the stage's initial checkpoints and
    the configured warm starts.

    Returns:
      The restored checkpoint path, or None.
    """
    latest = tf.train.latest_checkpoint(self.stage_dir)
    if latest:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
      logging.info("Resumed %s from %s at step %d.", self.stage.name, latest, int(self.step.numpy()))
      return latest
    starts = dict(self.stage.initial_checkpoints())
    starts.update(self.config.warm_start)
    for part, path in starts.items():
      self.warm_start(part, path)
    return None

  def warm_start(self, part, path):
    """Initialises model `part` from another run's checkpoint; fails unless every variable of it is restored."""
    if part not in self.models:
      raise ValueError(f"--warm_start names {part!r}, but stage {self.stage.name} has models {sorted(self.models)}.")
    source = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
    if not source or not tf.io.gfile.exists(source + ".index"):
      raise FileNotFoundError(f"{self.stage.name}: warm start {part}={path}: no checkpoint there (expected a "
                              "checkpoint prefix with an .index file, or a directory holding one).")
    try:
      status = tf.train.Checkpoint(**{part: self.models[part]}).read(source)
      status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
      raise ValueError(f"{self.stage.name}: warm start {part}={source}: the checkpoint does not hold every variable "
                       f"of {part!r} "
                       f"(different architecture or model name?): {str(e)[:500]}") from None
    status.expect_partial()
    logging.info("Warm-started %s from %s.", part, source)

  def save(self):
    """Saves a checkpoint of the current step; never one holding a NaN or Inf.

    Raises:
      NonFiniteError: when a weight or optimizer slot is not finite (an update overflowed although the loss and the
        gradient were finite, e.g. a learning rate far too large); nothing is saved.
    """
    step = int(self.step.numpy())
    if not bool(self._all_finite()):
      bad = [v.path for v in self._float_weights if not np.all(np.isfinite(v.numpy()))]
      raise NonFiniteError(
          f"{self.stage.name}: {len(bad)} variables became non-finite by step {step} although the loss and the "
          f"gradient were finite (an update overflowed: is --learning_rate={self.config.learning_rate:g} far too "
          f"large?), e.g. {bad[:3]}. Nothing was saved; the last good checkpoint in {self.stage_dir} is untouched.")
    path = self.manager.save(checkpoint_number=step)
    if not self.is_chief:
      shutil.rmtree(self.manager.directory, ignore_errors=True)
    return path

  # --------------------------------------------------------------------------------------------------------------
  # The step and the loop.

  def _replica_step(self, batch):
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync
    loss_scaling = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
    with tf.GradientTape() as tape:
      losses, _ = self.stage.compute_losses(self.models, batch, self.step, training=True)
      losses = {name: tf.cast(value, tf.float32) for name, value in losses.items()}
      total = tf.add_n(list(losses.values()))
      # Each replica's loss is the mean over its share: dividing by the replica count makes the summed gradient
      # the gradient of the global-batch mean.
      scaled = total / replicas
      if loss_scaling:
        scaled = self.optimizer.scale_loss(scaled)
    grads = tape.gradient(scaled, self.variables)
    # Missing gradients are zeros; sparse ones (tf.gather of a table, e.g. per-video intrinsics) are densified, so
    # every gradient all-reduces, clips and scales alike.
    grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, self.variables)]
    grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    scale = tf.cast(self.optimizer.dynamic_scale, tf.float32) if loss_scaling else tf.constant(1.0)
    grad_norm = tf.linalg.global_norm(grads) / scale
    if self.config.clip_norm > 0:
      # Clipping scaled gradients at clip_norm * scale equals clipping the true gradients at clip_norm.
      grads, _ = tf.clip_by_global_norm(grads, self.config.clip_norm * scale, use_norm=grad_norm * scale)
    # Keras sums gradients over replicas again inside apply_gradients (and clips before that, per replica, which is
    # why clipping happens here): hand it 1/replicas of the all-reduced gradient so that its sum is exactly ours.
    self.optimizer.apply_gradients(zip([g / replicas for g in grads], self.variables))
    reported = ctx.all_reduce(tf.distribute.ReduceOp.SUM, {name: v / replicas for name, v in losses.items()})
    reported["total"] = tf.add_n(list(reported.values()))
    finite = tf.reduce_all([tf.math.is_finite(v) for v in reported.values()])
    if not loss_scaling:  # with dynamic loss scaling, overflowing gradients are expected and skipped
      finite &= tf.math.is_finite(grad_norm)
    return {"losses": reported, "grad_norm": grad_norm, "finite": finite}

  def _build_loop(self, iterator):
    strategy = self.strategy
    # Stages are TensorFlow ops with Python control flow on static values only, so the step needs no autograph:
    # converting every function it calls (models, geometry, losses, tensorflow-graphics) took over 10 minutes per
    # trace for the depth_motion step. Only the loop below (a tf.range loop with a break) is converted.
    step_fn = tf.autograph.experimental.do_not_convert(self._replica_step)
    if self.config.jit_compile:
      step_fn = tf.function(step_fn, jit_compile=True, autograph=False)

    def one_step(iterator):
      start = tf.timestamp()
      batch = next(iterator)
      waited = tf.timestamp() - start
      result = _local(strategy.run(step_fn, args=(batch,)), strategy)
      self.step.assign_add(1)
      return result, waited

    if self.config.run_eagerly:
      initial = None
    else:
      # The step is traced once, here, and called once in the loop's body: the loop starts from zeros of its
      # outputs' structure (read from this trace), so the graph holds a single copy of the model and its gradients.
      one_step = tf.function(one_step, autograph=False)
      outputs, _ = one_step.get_concrete_function(iterator).structured_outputs
      initial = tf.nest.map_structure(lambda t: tf.zeros(t.shape, t.dtype), outputs)

    def loop(iterator, num_steps):
      """Runs up to `num_steps` steps; stops right after a non-finite step. Returns (last result, steps, input s)."""
      result = initial
      done = tf.constant(0)
      input_seconds = tf.constant(0.0, tf.float64)
      for _ in tf.range(num_steps):
        result, waited = one_step(iterator)
        input_seconds += waited
        done += 1
        if not result["finite"]:
          break
      return result, done, input_seconds

    return loop if self.config.run_eagerly else tf.function(loop)

  def _next_boundary(self, step):
    config = self.config
    intervals = [config.checkpoint_every, config.summary_every, config.steps_per_loop]
    intervals += [k for k in (config.eval_every, config.image_summary_every) if k > 0]
    boundary = min((step // k + 1) * k for k in intervals)
    for mark in config.profile_steps:
      if mark > step:
        boundary = min(boundary, mark)
    return min(boundary, config.train_steps)

  # --------------------------------------------------------------------------------------------------------------
  # Training.

  def _install_signal_handlers(self):
    if threading.current_thread() is not threading.main_thread():
      return {}

    def handler(signum, frame):
      del frame
      logging.warning("Received %s: finishing the current loop, then saving a checkpoint.",
                      signal.Signals(signum).name)
      self._stop_signal = signum

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

  def train(self):
    """Trains to `config.train_steps`, resuming if possible, then evaluates unless metrics.json already holds the
    final step's metrics (a rerun of a finished run whose evaluation was interrupted evaluates).

    SIGTERM / SIGINT stop training at the end of the current loop, or evaluation at the end of the current batch,
    with the checkpoint of the step reached saved (`Interrupted`).

    Returns:
      The last step's losses (floats); {} when the stage was already trained.
    """
    self.restore_or_warm_start()
    previous_handlers = self._install_signal_handlers()
    try:
      step = int(self.step.numpy())
      if step >= self.config.train_steps:
        logging.info("%s: already trained to step %d.", self.stage.name, step)
        losses = {}
      else:
        losses = self._train_to_end(step)
      if self.stage.eval_dataset() is not None and not self._has_final_metrics():
        self.evaluate()
    finally:
      for sig, previous in previous_handlers.items():
        signal.signal(sig, previous)
    return losses

  def _has_final_metrics(self):
    path = os.path.join(self.stage_dir, METRICS_FILE)
    try:
      with open(path, encoding="utf-8") as f:
        return json.load(f).get("step") == int(self.step.numpy())
    except (OSError, ValueError, AttributeError):
      return False

  def _checkpoint_of_this_step(self):
    """The latest checkpoint if it holds the current step, else a new one."""
    latest = self.manager.latest_checkpoint
    if latest and latest.endswith(f"-{int(self.step.numpy())}"):
      return latest
    return self.save()

  def _train_to_end(self, step):
    config, stage = self.config, self.stage
    writer = (tf.summary.create_file_writer(os.path.join(self.stage_dir, "train")) if self.is_chief
              else tf.summary.create_noop_writer())
    dataset = self.strategy.experimental_distribute_dataset(stage.train_dataset(step))
    iterator = iter(dataset)
    image_batch = next(iter(stage.train_dataset(0))) if config.image_summary_every > 0 else None
    loop = self._build_loop(iterator)
    profiling = False
    losses = {}
    run_start, run_start_step = time.perf_counter(), step
    try:
      while step < config.train_steps:
        if config.profile_steps and step == config.profile_steps[0] and self.is_chief:
          tf.profiler.experimental.start(os.path.join(self.stage_dir, "train"))
          profiling = True
        num_steps = self._next_boundary(step) - step
        start = time.perf_counter()
        result, done, input_seconds = loop(iterator, tf.constant(num_steps))
        elapsed = time.perf_counter() - start
        step = int(self.step.numpy())
        losses = {k: float(v) for k, v in result["losses"].items()}
        if not bool(result["finite"]):
          bad = [k for k, v in losses.items() if not np.isfinite(v)] or ["gradient norm"]
          raise NonFiniteError(
              f"{stage.name}: non-finite {', '.join(bad)} at step {step} "
              f"(values: { {k: losses[k] for k in losses} }, gradient norm {float(result['grad_norm'])}). "
              f"Training stopped; the last good checkpoint in {self.stage_dir} is untouched.")
        if profiling and step >= config.profile_steps[1]:
          tf.profiler.experimental.stop()
          profiling = False
        done = int(done)
        stats = {"steps_per_second": done / elapsed,
                 "examples_per_second": done * config.batch_size / elapsed,
                 "input_wait_fraction": min(float(input_seconds) / elapsed, 1.0),
                 "learning_rate": float(self.optimizer.learning_rate),
                 "gradient_norm": float(result["grad_norm"])}
        with writer.as_default(step=step):
          if step % config.summary_every == 0 or step == config.train_steps:
            self._write_scalars(losses, stats)
            self._log_progress(step, losses, stats, run_start, run_start_step)
          if config.image_summary_every and (step % config.image_summary_every == 0 or step == config.train_steps):
            self._write_images(image_batch)
        if step % config.checkpoint_every == 0 or step == config.train_steps:
          self.save()
        if config.eval_every and step % config.eval_every == 0 and step < config.train_steps:
          self.evaluate()
        if self._stop_signal is not None:
          raise Interrupted(self._stop_signal, step, self._checkpoint_of_this_step())
    finally:
      if profiling:
        tf.profiler.experimental.stop()
      writer.flush()
    return losses

  def _write_scalars(self, losses, stats):
    for name, value in losses.items():
      tf.summary.scalar(f"loss/{name}", value)
    for name, value in stats.items():
      tf.summary.scalar(f"train/{name}", value)

  def _log_progress(self, step, losses, stats, run_start, run_start_step):
    remaining = self.config.train_steps - step
    rate = (step - run_start_step) / max(time.perf_counter() - run_start, 1e-9)
    eta = time.strftime("%H:%M:%S", time.gmtime(remaining / rate)) if rate > 0 else "?"
    terms = " ".join(f"{k} {v:.4g}" for k, v in losses.items())
    logging.info("%s step %d/%d | %s | %.1f examples/s | input wait %.0f%% | lr %.3g | ETA %s", self.stage.name,
                 step, self.config.train_steps, terms, stats["examples_per_second"],
                 100 * stats["input_wait_fraction"], stats["learning_rate"], eta)

  def _write_images(self, batch):
    _, outputs = self.stage.compute_losses(self.models, batch, self.step, training=False)
    for name, images in self.stage.summary_images(batch, outputs).items():
      tf.summary.image(name, images, max_outputs=4)

  # --------------------------------------------------------------------------------------------------------------
  # Evaluation.

  def evaluate(self):
    """Runs the stage's metrics over its evaluation data; the chief writes metrics.json and eval summaries."""
    dataset = self.stage.eval_dataset()
    if dataset is None:
      raise ValueError(f"Stage {self.stage.name} has no evaluation data.")
    strategy = self.strategy
    if self._eval_batch is None:  # traced once per trainer, not once per evaluation

      @tf.function
      def eval_batch(batch):
        step = tf.autograph.experimental.do_not_convert(lambda b: self.stage.eval_step(self.models, b))
        statistics = strategy.run(step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in statistics.items()}

      self._eval_batch = eval_batch
    totals = None
    for batch in strategy.experimental_distribute_dataset(dataset):
      if self._stop_signal is not None:
        raise Interrupted(self._stop_signal, int(self.step.numpy()), self._checkpoint_of_this_step(),
                          during="evaluation")
      values = {k: v.numpy() for k, v in self._eval_batch(batch).items()}
      totals = values if totals is None else {k: totals[k] + values[k] for k in totals}
    metrics = self.stage.eval_result(totals)
    metrics["step"] = int(self.step.numpy())
    if self.is_chief:
      history = read_metrics_history(self.stage_dir)
      history[metrics["step"]] = metrics  # a resumed run's evaluation at the same step replaces the earlier one
      history = {str(step): value for step, value in sorted(history.items())}
      for name, content in ((METRICS_FILE, metrics), (METRICS_HISTORY_FILE, history)):
        path = os.path.join(self.stage_dir, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
          json.dump(content, f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)  # a reader (or a kill) never sees half a file
      if self._eval_writer is None:
        self._eval_writer = tf.summary.create_file_writer(os.path.join(self.stage_dir, "eval"))
      with self._eval_writer.as_default(step=metrics["step"]):
        for name, value in metrics.items():
          if isinstance(value, (int, float)) and name != "step":
            tf.summary.scalar(f"eval/{name}", value)
      self._eval_writer.flush()
    logging.info("%s evaluation at step %d: %s", self.stage.name, metrics["step"], metrics)
    return metrics
