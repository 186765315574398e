"""A resumable grid of training runs: each run a `python -m consistency.train` subprocess into its own folder,
skipped when its stage already wrote metrics.json at its last step, timed; and the provenance and summary statistics
the grids' reports share (consistency.paper_tables, consistency.efc_tables)."""

import dataclasses
import json
import os
import subprocess
import sys
import time

from absl import logging
import numpy as np

from consistency.harness import trainer as trainer_lib
from segmentation import metrics as metrics_lib

METRICS_FILE = "metrics.json"
# Written into a run's folder when it finishes: {"seconds": its wall-clock time}.
RUNTIME_FILE = "runtime.json"


@dataclasses.dataclass(frozen=True)
class Run:
  """One training command: where it writes, which stage's metrics it ends with, and its flag overrides."""
  name: str
  model_dir: str
  stage: str
  steps: int
  overrides: tuple

  def metrics_path(self):
    return os.path.join(self.model_dir, self.stage, METRICS_FILE)

  def finished(self):
    """Whether the stage's metrics.json exists and was written at its last step."""
    path = self.metrics_path()
    if not os.path.exists(path):
      return False
    with open(path, encoding="utf-8") as f:
      return json.load(f).get("step") == self.steps

  def metrics(self):
    with open(self.metrics_path(), encoding="utf-8") as f:
      return rescored(json.load(f))

  def seconds(self):
    """The run's wall-clock time when this driver made it (0 if it has not finished or was made otherwise)."""
    try:
      with open(os.path.join(self.model_dir, RUNTIME_FILE), encoding="utf-8") as f:
        return float(json.load(f)["seconds"])
    except (OSError, ValueError, KeyError):
      return 0.0

  def history(self):
    """{step: metrics} of the run's evaluations ({} if none was made)."""
    history = trainer_lib.read_metrics_history(os.path.dirname(self.metrics_path()))
    return {step: rescored(metrics) for step, metrics in history.items()}


def rescored(metrics):
  """A run's metrics with mIoU recomputed from their confusion matrix by `segmentation.metrics.mean_iou`, so that a run
  made before that definition changed (commit 97b9237 and earlier also averaged classes that are only predicted) is
  scored like a new one; metrics without a confusion matrix are returned as they are."""
  if "confusion_matrix" not in metrics:
    return metrics
  miou = metrics_lib.mean_iou(metrics["confusion_matrix"])
  return {**metrics, "miou": None if np.isnan(miou) else miou}


def execute(run, dry_run=False):
  """Runs `run` unless it has finished; returns the seconds it took (0 when skipped)."""
  if run.finished():
    logging.info("%s: finished earlier (%s), skipped.", run.name, run.metrics_path())
    return 0.0
  command = [sys.executable, "-m", "consistency.train", f"--model_dir={run.model_dir}", *run.overrides]
  logging.info("%s: %s", run.name, " ".join(command))
  if dry_run:
    return 0.0
  os.makedirs(run.model_dir, exist_ok=True)
  log_path = os.path.join(run.model_dir, "train.log")
  start = time.time()
  with open(log_path, "a", encoding="utf-8") as log:
    code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
  if code != 0 or not run.finished():
    raise RuntimeError(f"{run.name} failed (exit status {code}); see {log_path}")
  seconds = time.time() - start
  with open(os.path.join(run.model_dir, RUNTIME_FILE), "w", encoding="utf-8") as f:
    json.dump({"seconds": seconds}, f)
  return seconds


def execute_all(runs, dry_run=False, report_only=False):
  """Executes the runs in order (none with `report_only`), logging progress; returns the seconds they took."""
  logging.info("%d runs (%d finished earlier).", len(runs), sum(run.finished() for run in runs))
  seconds = 0.0
  for index, run in enumerate([] if report_only else runs, start=1):
    logging.info("Run %d / %d.", index, len(runs))
    seconds += execute(run, dry_run)
  return seconds


def mean_std(values):
  """(mean, standard deviation, count) of the values that exist (None = a run that was not made)."""
  values = [v for v in values if v is not None]
  if not values:
    return None, None, 0
  return float(np.mean(values)), float(np.std(values)), len(values)


def format_mean(mean, std, count):
  """"mean ± std", "mean (1 seed)" or "-"."""
  if mean is None:
    return "-"
  return f"{mean:.4f} ± {std:.4f}" if count > 1 else f"{mean:.4f} (1 seed)"


def provenance(module, argv):
  """{"command", "date", "commit"} of this invocation of `module` (commit: `git describe --always --dirty`, or
  "unknown")."""
  try:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = "unknown"
  return {"command": " ".join([f"python -m {module}", *argv[1:]]),
          "date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": commit}
