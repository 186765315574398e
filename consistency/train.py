"""Train one or several stages: `python -m consistency.train --flagfile=configs/<experiment>.flags [--flag=value]`.

Each stage trains into <model_dir>/<stage> (checkpoints, TensorBoard summaries under train/ and eval/, metrics.json)
and resumes from its latest checkpoint.

Before the first step the run is checked (`preflight`): stage names, replicas, each stage's settings and data (both
splits indexed, the first batch of each decoded), --model_dir writable, and, when --model_dir already holds a run, that
only run-length and logging flags differ from its record (`check_continuation`). Only then are the resolved flags
written to <model_dir>/flags.txt. A run that cannot start exits with status 2 and one line saying why; a non-finite
loss or weight with 3; SIGTERM / SIGINT with 128 + the signal, after saving a checkpoint.
"""

import dataclasses
import os
import signal
import sys
import tempfile
import threading

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from consistency import stages  # noqa: F401  (registers the stages)
from consistency.harness import distribution
from consistency.harness import flags as flags_lib
from consistency.harness import report
from consistency.harness import stage as stage_lib
from consistency.harness import trainer as trainer_lib
from datasets import labels as labels_lib
from segmentation import export as export_lib

FLAGS = flags.FLAGS
# Flags that may differ between a run and its continuation: how long it runs, how often it saves, logs, evaluates and
# profiles, where it exports, and which stages it runs (each stage keeps its own checkpoints). Any other difference
# means the checkpoints were trained with other settings, and continuing would mix them.
CONTINUABLE_FLAGS = frozenset({
    "stages", "train_steps", "steps_per_loop", "checkpoint_every", "keep_checkpoints", "summary_every",
    "image_summary_every", "eval_every", "eval_max_batches", "profile_steps", "export_dir"})


class RunError(ValueError):
  """A run that cannot start as asked; the message says why and what to do."""


def check_model_dir(model_dir):
  """Creates `model_dir` if needed and checks that it is a folder this process can write.

  Raises:
    RunError: naming the path when it is a file or cannot be written.
  """
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise RunError(f"--model_dir={model_dir} is a file, not a folder.")
  try:
    os.makedirs(model_dir, exist_ok=True)
    probe = tempfile.NamedTemporaryFile(dir=model_dir, prefix=".write_check", delete=True)
    probe.close()
  except OSError as e:
    raise RunError(f"--model_dir={model_dir} cannot be written: {e.strerror or e}.") from None


def check_continuation(config):
  """Refuses to continue the run recorded in `<model_dir>/flags.txt` with settings its checkpoints were not trained
  with (anything outside CONTINUABLE_FLAGS); a new model_dir has no record and passes.

  Raises:
    RunError: listing each differing flag with its recorded and requested values.
  """
  if not os.path.exists(os.path.join(config.model_dir, flags_lib.FLAGS_FILE)):
    return
  try:
    recorded = flags_lib.read_run_config(config.model_dir)
  except ValueError as e:
    raise RunError(f"{e}. Use a new --model_dir, or remove that file if the run is yours to discard.") from None
  differences = [f"--{field.name}: {getattr(recorded, field.name)!r} recorded, {getattr(config, field.name)!r} now"
                 for field in dataclasses.fields(config) if field.name not in CONTINUABLE_FLAGS
                 and getattr(recorded, field.name) != getattr(config, field.name)]
  if differences:
    raise RunError(
        f"{config.model_dir} holds a run made with other flags ({flags_lib.FLAGS_FILE}); continuing it would train "
        "its checkpoints with settings they were not trained with:\n  " + "\n  ".join(differences) +
        "\nUse a new --model_dir, or the recorded values. Only these may change on a rerun: "
        f"{', '.join(sorted(CONTINUABLE_FLAGS))}.")


def preflight(config, strategy):
  """Checks before the first step what the run needs: stage names, replicas, each stage's settings and data (both
  splits, the first batch of each), so that a mistake fails in seconds instead of after training.

  Returns:
    The stage classes, in order.

  Raises:
    RunError: naming the problem.
  """
  if not config.stages:
    raise RunError("No stages to run: pass a flagfile (python -m consistency.train --flagfile=configs/quickstart.flags "
                   "runs the whole pipeline; configs/ has one per stage and dataset) or --stages=... (registered: "
                   f"{', '.join(stage_lib.registered())}).")
  try:
    stage_classes = [stage_lib.get(name) for name in config.stages]
  except ValueError as e:
    raise RunError(f"--stages: {e}") from None
  if config.batch_size % strategy.num_replicas_in_sync:
    raise RunError(f"--batch_size={config.batch_size} must be divisible by the {strategy.num_replicas_in_sync} "
                   "replicas.")
  for stage_class in stage_classes:
    try:
      stage_class(config).preflight()
    except tf.errors.OpError as e:
      raise RunError(f"Stage {stage_class.name}: {labels_lib.data_error_from(e) or e.message}") from None
    except (ValueError, OSError) as e:
      raise RunError(f"Stage {stage_class.name}: {e}") from None
  return stage_classes


# A SIGTERM / SIGINT that arrives while no stage's trainer handles it (flag parsing, preflight, between stages) is
# deferred to the next stage's start, where the run stops with 128 + the signal: nothing is left half-written.
_PENDING_SIGNALS = []


class Stopped(Exception):
  """A signal deferred by `main` stopped the run before a stage started."""

  def __init__(self, signum, stage):
    super().__init__(f"Stopped by {signal.Signals(signum).name} before stage {stage} started. Run the same command "
                     "again to continue.")
    self.signum = signum


def _defer_signals():
  if threading.current_thread() is not threading.main_thread():
    return

  def handler(signum, frame):
    del frame
    logging.warning("Received %s: stopping before the next stage starts.", signal.Signals(signum).name)
    _PENDING_SIGNALS.append(signum)

  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, handler)


def run(config, strategy=None, stage_classes=None):
  """Trains every stage of `config` in order; returns {stage: last losses}.

  Args:
    config: the TrainConfig.
    strategy: a tf.distribute strategy (default: from config.num_cpu_replicas).
    stage_classes: the stages, as `preflight` returns them; None runs `preflight` first.
  """
  if strategy is None:
    strategy = distribution.create_strategy(config.num_cpu_replicas)
  if stage_classes is None:
    stage_classes = preflight(config, strategy)
  results = {}
  for stage_class in stage_classes:
    if _PENDING_SIGNALS:
      raise Stopped(_PENDING_SIGNALS[0], stage_class.name)
    stage = stage_class(config)
    trainer = trainer_lib.Trainer(stage, config, strategy, os.path.join(config.model_dir, stage.name))
    results[stage.name] = trainer.train()
  if distribution.is_chief(strategy):
    export_dir = config.export_dir
    if export_dir:
      segmenter_stage = _segmenter_stage(config)
      if segmenter_stage is None:
        logging.warning("--export_dir=%s: no stage of this run (%s) trains a segmenter; nothing exported.", export_dir,
                        ", ".join(config.stages))
        export_dir = ""
      else:
        export_lib.export(config.model_dir, export_dir, stage=segmenter_stage)
    logging.info("%s", report.summarize(config.model_dir, config.stages, export_dir))
  return results


def _segmenter_stage(config):
  """The last stage of the run that trains a segmenter (what --export_dir exports), or None."""
  for name in reversed(config.stages):
    if os.path.exists(os.path.join(config.model_dir, name, export_lib.SEGMENTER_JSON)):
      return name
  return None


def _record_flags(model_dir):
  """Writes the resolved flags to <model_dir>/flags.txt (atomically: a kill never leaves half a record)."""
  path = os.path.join(model_dir, flags_lib.FLAGS_FILE)
  temporary = path + ".tmp"
  with open(temporary, "w", encoding="utf-8"):
    pass  # append_flags_into_file appends; start from an empty file
  FLAGS.append_flags_into_file(temporary)
  os.replace(temporary, path)


def main(argv):
  _defer_signals()
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])} (flags take the form --name=value).")
  try:
    config = flags_lib.config_from_flags()
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  strategy = distribution.create_strategy(config.num_cpu_replicas)
  try:
    if distribution.is_chief(strategy):
      check_model_dir(config.model_dir)
      check_continuation(config)
    stage_classes = preflight(config, strategy)
  except RunError as e:
    logging.error("%s", e)
    sys.exit(2)
  if distribution.is_chief(strategy):
    _record_flags(config.model_dir)  # only once the run is known to be valid
  try:
    run(config, strategy, stage_classes)
  except trainer_lib.NonFiniteError as e:
    logging.error("%s", e)
    sys.exit(3)
  except (trainer_lib.Interrupted, Stopped) as e:
    logging.warning("%s", e)
    sys.exit(128 + e.signum)
  except labels_lib.DataError as e:
    logging.error("%s", e)
    sys.exit(2)
  except tf.errors.OpError as e:  # a file that fails its check as the pipeline decodes it, named in the message
    error = labels_lib.data_error_from(e)
    if error is None:
      raise
    logging.error("%s", error)
    sys.exit(2)


if __name__ == "__main__":
  flags.mark_flag_as_required("model_dir")
  app.run(main)
