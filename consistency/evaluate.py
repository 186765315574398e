"""Evaluate a trained stage: `python -m consistency.evaluate --model_dir=DIR [--stage=NAME]`.

Reads the run's resolved flags (<model_dir>/flags.txt; flags given on this command line win, e.g.
--eval_max_batches=0 to evaluate every batch), restores the latest checkpoint of the stage, runs its metrics on the
evaluation split and writes <model_dir>/<stage>/metrics.json.
"""

import os

from absl import app
from absl import flags

from consistency import stages  # noqa: F401  (registers the stages)
from consistency.harness import distribution
from consistency.harness import flags as flags_lib
from consistency.harness import stage as stage_lib
from consistency.harness import trainer as trainer_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("stage", None, "Stage to evaluate (default: the last stage of the run).")


def evaluate(config, stage_name):
  """Restores the latest checkpoint of `stage_name` under config.model_dir and returns its metrics."""
  stage = stage_lib.get(stage_name)(config)
  stage_dir = os.path.join(config.model_dir, stage.name)
  trainer = trainer_lib.Trainer(stage, config, distribution.create_strategy(config.num_cpu_replicas), stage_dir)
  latest = trainer.restore_or_warm_start() if os.path.isdir(stage_dir) else None
  if latest is None:
    raise FileNotFoundError(f"No checkpoint of stage {stage.name} in {stage_dir}.")
  return trainer.evaluate()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  model_dir = FLAGS.model_dir
  if not model_dir:
    raise app.UsageError("--model_dir is required.")
  try:
    # The run's own flags, then this command line's (e.g. --eval_max_batches=0); --model_dir is this command's (the
    # run may have been moved).
    config = flags_lib.read_run_config(model_dir, overrides=flags_lib.given_on_command_line())
    metrics = evaluate(config, FLAGS.stage or config.stages[-1])
  except (FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  print(metrics)


if __name__ == "__main__":
  app.run(main)
