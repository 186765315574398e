"""Train one or several stages: `python -m consistency.train --flagfile=configs/<experiment>.flags [--flag=value]`.

Each stage trains into <model_dir>/<stage> (checkpoints, TensorBoard summaries under train/ and eval/, metrics.json)
and resumes from its latest checkpoint. The resolved flags are written to <model_dir>/flags.txt.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from consistency import distribution
from consistency import flags as flags_lib
from consistency import report
from consistency import stage as stage_lib
from consistency import stages  # noqa: F401  (registers the stages)
from consistency import trainer as trainer_lib
from segmentation import export as export_lib

FLAGS = flags.FLAGS


def run(config, strategy=None):
  """Trains every stage of `config` in order; returns {stage: last losses}."""
  stage_classes = [stage_lib.get(name) for name in config.stages]  # unknown names fail before any work
  if strategy is None:
    strategy = distribution.create_strategy(config.num_cpu_replicas)
  if config.batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"batch_size {config.batch_size} must be divisible by the {strategy.num_replicas_in_sync} "
                     "replicas.")
  results = {}
  for stage_class in stage_classes:
    stage = stage_class(config)
    trainer = trainer_lib.Trainer(stage, config, strategy, os.path.join(config.model_dir, stage.name))
    results[stage.name] = trainer.train()
  if distribution.is_chief(strategy):
    if config.export_dir:
      export_lib.export(config.model_dir, config.export_dir, stage=_segmenter_stage(config))
    logging.info("%s", report.summarize(config.model_dir, config.stages, config.export_dir))
  return results


def _segmenter_stage(config):
  """The last stage of the run that trains a segmenter (what --export_dir exports)."""
  for name in reversed(config.stages):
    if os.path.exists(os.path.join(config.model_dir, name, export_lib.SEGMENTER_JSON)):
      return name
  raise ValueError(f"--export_dir: none of the stages {list(config.stages)} trained a segmenter.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])} (flags take the form --name=value).")
  try:
    config = flags_lib.config_from_flags()
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  strategy = distribution.create_strategy(config.num_cpu_replicas)
  if distribution.is_chief(strategy):
    os.makedirs(config.model_dir, exist_ok=True)
    path = os.path.join(config.model_dir, "flags.txt")
    with open(path, "w", encoding="utf-8"):
      pass  # append_flags_into_file appends; start from an empty file
    FLAGS.append_flags_into_file(path)
  try:
    run(config, strategy)
  except trainer_lib.NonFiniteError as e:
    logging.error("%s", e)
    sys.exit(3)
  except trainer_lib.Interrupted as e:
    logging.warning("%s", e)
    sys.exit(128 + e.signum)


if __name__ == "__main__":
  flags.mark_flag_as_required("model_dir")
  app.run(main)
