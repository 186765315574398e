"""A resumable grid of training runs: each run a `python -m consistency.train` subprocess into its own folder (`Run`),
or several in rounds until its validation mIoU plateaus (`UntilPlateau`), skipped when its stage already wrote
metrics.json at its last step, timed, made one or several at a time once the runs they start from have finished
(`execute_all`); and the provenance and summary statistics the grids' reports share (consistency.paper_tables,
consistency.efc_tables)."""

import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

from absl import logging
import numpy as np

from consistency.harness import trainer as trainer_lib
from segmentation import metrics as metrics_lib

METRICS_FILE = "metrics.json"
# Written into a run's folder when a command of it finishes: {"seconds": the wall-clock time of its commands, summed}.
RUNTIME_FILE = "runtime.json"
# Written into a run's folder when its command starts: {model_dir of each run it needs: that run's steps then}.
NEEDS_FILE = "needs.json"
# Written into a grid's output folder: [{"date", "seconds", "workers"}] of each invocation that made runs.
INVOCATIONS_FILE = "invocations.json"


# A run trained until plateau has plateaued when its validation mIoU moves by at most this much over the last quarter
# of its steps.
PLATEAU_TOLERANCE = 0.01
# Evaluations per round of a run trained until plateau (its learning curve; 3 fall in the last quarter).
EVALUATIONS_PER_ROUND = 8


@dataclasses.dataclass(frozen=True)
class Run:
  """One training command: where it writes, which stage's metrics it ends with, its flag overrides, and the runs
  (their model_dir) that must have finished before it starts."""
  name: str
  model_dir: str
  stage: str
  steps: int
  overrides: tuple
  needs: tuple = ()

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
    """The run's wall-clock time summed over the commands this driver made in its folder (0 if none finished)."""
    try:
      with open(os.path.join(self.model_dir, RUNTIME_FILE), encoding="utf-8") as f:
        return float(json.load(f)["seconds"])
    except (OSError, ValueError, KeyError):
      return 0.0

  def history(self):
    """{step: metrics} of the run's evaluations ({} if none was made)."""
    history = trainer_lib.read_metrics_history(os.path.dirname(self.metrics_path()))
    return {step: rescored(metrics) for step, metrics in history.items()}

  def execute(self, dry_run=False, env=None):
    """Runs the command unless the run has finished, with environment `env` (None: this process's); returns the
    seconds it took (0 when skipped) and adds them to the folder's runtime.json."""
    if self.finished():
      logging.info("%s: finished earlier (%s), skipped.", self.name, self.metrics_path())
      return 0.0
    command = [sys.executable, "-m", "consistency.train", f"--model_dir={self.model_dir}", *self.overrides]
    logging.info("%s: %s", self.name, " ".join(command))
    if dry_run:
      return 0.0
    os.makedirs(self.model_dir, exist_ok=True)
    log_path = os.path.join(self.model_dir, "train.log")
    start = time.time()
    with open(log_path, "a", encoding="utf-8") as log:
      code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0 or not self.finished():
      raise RuntimeError(f"{self.name} failed (exit status {code}); see {log_path}")
    seconds = time.time() - start
    total = self.seconds() + seconds
    path = os.path.join(self.model_dir, RUNTIME_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      json.dump({"seconds": total}, f)
    os.replace(path + ".tmp", path)
    return seconds


def rescored(metrics):
  """A run's metrics with mIoU recomputed from their confusion matrix by `segmentation.metrics.mean_iou`, so that a run
  made before that definition changed (commit 97b9237 and earlier also averaged classes that are only predicted) is
  scored like a new one; metrics without a confusion matrix are returned as they are."""
  if "confusion_matrix" not in metrics:
    return metrics
  miou = metrics_lib.mean_iou(metrics["confusion_matrix"])
  return {**metrics, "miou": None if np.isnan(miou) else miou}


def plateau(history, steps):
  """(mIoU change over the last quarter of `steps`, whether it is within PLATEAU_TOLERANCE); None without 2
  evaluations there."""
  late = [metrics["miou"] for step, metrics in history.items() if 0.75 * steps <= step <= steps]
  if len(late) < 2:
    return None
  change = max(late) - min(late)
  return change, change <= PLATEAU_TOLERANCE


@dataclasses.dataclass(frozen=True)
class UntilPlateau:
  """A run trained in rounds until its validation mIoU plateaus (`plateau`): the first round trains to `first_steps`,
  each next one resumes the last checkpoint and trains to twice as many steps (its learning-rate schedule stretched
  to the new end, so the rate rises again where the previous round ended: a warm restart), up to `max_steps`. Each
  round evaluates EVALUATIONS_PER_ROUND times; the run stops after the first round whose last quarter has plateaued.
  `overrides` must not set --train_steps or --eval_every (each round sets them)."""
  name: str
  model_dir: str
  stage: str
  first_steps: int
  max_steps: int
  overrides: tuple
  needs: tuple = ()

  def __post_init__(self):
    if not 0 < self.first_steps <= self.max_steps:
      raise ValueError(f"{self.name}: need 0 < first_steps <= max_steps. Received: {self.first_steps}, "
                       f"{self.max_steps}")

  def rounds(self):
    """The steps each round ends at: first_steps doubled until max_steps (the last round ends there)."""
    ends = [self.first_steps]
    while ends[-1] < self.max_steps:
      ends.append(min(2 * ends[-1], self.max_steps))
    return ends

  def round(self, steps):
    return Run(self.name, self.model_dir, self.stage, steps,
               (*self.overrides, f"--train_steps={steps}",
                f"--eval_every={max(1, steps // EVALUATIONS_PER_ROUND)}"), self.needs)

  def history(self):
    return self.round(self.first_steps).history()

  def _done(self, history):
    """(steps of the last round that finished, or None; whether the run is complete)."""
    last = None
    for steps in self.rounds():
      if steps not in history:
        return last, False
      last = steps
      found = plateau(history, steps)
      if found and found[1]:
        return steps, True
    return last, True

  @property
  def steps(self):
    """The steps of the last finished round (first_steps before any)."""
    return self._done(self.history())[0] or self.first_steps

  def finished(self):
    return self._done(self.history())[1]

  def metrics_path(self):
    return self.round(self.steps).metrics_path()

  def metrics(self):
    return self.round(self.steps).metrics()

  def seconds(self):
    return self.round(self.steps).seconds()

  def execute(self, dry_run=False, env=None):
    """Runs the rounds still needed; returns the seconds they took."""
    seconds = 0.0
    for steps in self.rounds():
      if self.finished():
        break
      if steps in self.history():  # a round that finished earlier is kept
        continue
      seconds += self.round(steps).execute(dry_run, env)
      if dry_run or self._done(self.history())[1]:
        break
      logging.info("%s: not plateaued at step %d, going on to step %d.", self.name, steps,
                   min(2 * steps, self.max_steps))
    return seconds


def check_needs(runs):
  """Refuses a grid in which a run was made, wholly or in part, from a run that has changed since: one not finished
  now (e.g. a baseline allowed more rounds) or at other steps than when the run started from it (NEEDS_FILE). Its
  results would not follow from what the grid holds: skipping it would report them as if they did, and resuming it
  would go on from the old start.

  Raises:
    ValueError: naming each such run and what it was made from, or a needed run missing from the grid.
  """
  by_dir = {run.model_dir: run for run in runs}
  stale = []
  for run in runs:
    unknown = [need for need in run.needs if need not in by_dir]
    if unknown:
      raise ValueError(f"{run.name} needs runs not in the grid: {unknown}")
    try:
      with open(os.path.join(run.model_dir, NEEDS_FILE), encoding="utf-8") as f:
        recorded = json.load(f)
    except FileNotFoundError:
      recorded = None  # never started by this driver, or finished before it kept the record
    if not run.needs or (recorded is None and not run.finished()):
      continue
    recorded = recorded or {}
    for need in run.needs:
      source = by_dir[need]
      if not source.finished():
        stale.append(f"{run.model_dir}: made from {need}, which is not finished now")
      elif recorded.get(need, source.steps) != source.steps:
        stale.append(f"{run.model_dir}: made from {need} at step {recorded[need]}, which is at step {source.steps} now")
  if stale:
    raise ValueError("These runs were made from runs that have changed since, so their results would not "
                     "follow from them; move them out of the grid's folder (or undo the change) and run again:\n  " +
                     "\n  ".join(stale))


def execute_all(runs, dry_run=False, report_only=False, workers=1):
  """Executes the runs (`Run` or `UntilPlateau`; none with `report_only`), at most `workers` at a time, each once the
  runs it `needs` have finished, logging progress. With several workers each command gets an equal share of this
  machine's cores as its TensorFlow threads. Refuses to start if a finished run's needs have changed since
  (`check_needs`). Returns the wall-clock seconds the runs took."""
  logging.info("%d runs (%d finished earlier), %d at a time.", len(runs), sum(run.finished() for run in runs), workers)
  if report_only:
    return 0.0
  env = None
  if workers > 1:
    threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1"}
  check_needs(runs)
  by_dir = {run.model_dir: run for run in runs}
  start = time.time()
  done = threading.Condition()
  finished, failed = set(), {}
  stop = threading.Event()

  def execute(index, run):
    with done:
      done.wait_for(lambda: all(need in finished or need in failed for need in run.needs))
      broken = [need for need in run.needs if need in failed]
    try:
      if stop.is_set():  # counted as failed, so that runs waiting for this one wake up too
        raise RuntimeError(f"{run.name} not started: interrupted")
      if broken:
        raise RuntimeError(f"{run.name} not started: {broken[0]} failed")
      logging.info("Run %d / %d: %s.", index, len(runs), run.name)
      if run.needs and not run.finished() and not dry_run:
        os.makedirs(run.model_dir, exist_ok=True)
        with open(os.path.join(run.model_dir, NEEDS_FILE), "w", encoding="utf-8") as f:
          json.dump({need: by_dir[need].steps for need in run.needs}, f)
      run.execute(dry_run, env)
    except Exception as e:  # pylint: disable=broad-except  (reported below; the other runs go on)
      logging.error("%s", e)
      with done:
        failed[run.model_dir] = e
        done.notify_all()
      return
    with done:
      finished.add(run.model_dir)
      done.notify_all()

  # Runs are listed after the runs they need, and the pool takes them in order, so a waiting run's needs are running.
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    try:
      list(pool.map(execute, range(1, len(runs) + 1), runs))
    except KeyboardInterrupt:  # the running commands got it too and save a checkpoint; start no other
      stop.set()
      pool.shutdown(cancel_futures=True)
      raise
  if failed:
    raise RuntimeError(f"{len(failed)} of {len(runs)} runs failed: " + "; ".join(map(str, failed.values())))
  return time.time() - start


def record_invocation(output, seconds, workers):
  """Appends an invocation's wall-clock time to <output>/invocations.json (nothing for 0 s)."""
  if seconds <= 0:
    return
  os.makedirs(output, exist_ok=True)
  entries = invocations(output) + [{"date": time.strftime("%Y-%m-%d %H:%M %Z"), "seconds": seconds,
                                    "workers": workers}]
  path = os.path.join(output, INVOCATIONS_FILE)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(entries, f, indent=1)
  os.replace(path + ".tmp", path)


def invocations(output):
  """The entries `record_invocation` wrote into `output` ([] before any)."""
  try:
    with open(os.path.join(output, INVOCATIONS_FILE), encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError:
    return []


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
