"""Preemption drill: kill a tiny `consistency.train` run at random points, resume it each time, and compare the end
with an uninterrupted run.

    python -m tests.faults.preemption --workdir=/tmp/drill --rounds=10 --seed=0

One process imports TensorFlow once and forks each training attempt (the parent runs no TensorFlow op, so every
child starts a fresh runtime), which makes an attempt cost seconds instead of an import's ~20 s. Each attempt is the
command line's own `main` on the toy_regression stage (checkpoint every 3 steps, evaluation every 10 and at the end),
with one fault planned:
  sigterm / sigkill            the signal at a random time of the attempt;
  sigkill_checkpoint_state     SIGKILL during a checkpoint save: after the checkpoint's files are written, before the
                               `checkpoint` state file names it (or between the record and the sweep of old ones);
  sigterm_eval / sigkill_eval  the signal as an evaluation starts (mid-run or final), before metrics.json is written.
Each round attacks a new run until an attempt finishes it; one clean attempt then finishes (or rereads) it. Printed
(last line, JSON): the attempts, the faults that hit a live run, every exit status, and whether each round's final
checkpoint (every variable, optimizer slots included) and metrics.json equal those of the uninterrupted run bit for
bit, with no leftover temporary files.
"""

import argparse
import glob
import json
import os
import random
import signal
import sys
import threading
import time

import numpy as np

TRAIN_STEPS = 40
FLAGS = ["--stages=toy_regression", f"--train_steps={TRAIN_STEPS}", "--batch_size=8", "--learning_rate=0.05",
         "--steps_per_loop=2", "--checkpoint_every=3", "--keep_checkpoints=2", "--summary_every=5",
         "--image_summary_every=0", "--eval_every=10", "--seed=1"]
FAULTS = ("sigterm", "sigkill", "sigkill_checkpoint_state", "sigterm_eval", "sigkill_eval")


def _plan_fault(fault, delay, calls):
  """Installs `fault` in this (child) process before training starts."""
  # Imported here, in the child: the parent has imported them already, so this is a lookup.
  from consistency.harness import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from tensorflow.python.checkpoint import checkpoint_management  # pylint: disable=g-import-not-at-top
  pid = os.getpid()
  if fault in ("sigterm", "sigkill"):
    sig = signal.SIGTERM if fault == "sigterm" else signal.SIGKILL
    timer = threading.Timer(delay, os.kill, (pid, sig))
    timer.daemon = True
    timer.start()
  elif fault == "sigkill_checkpoint_state":
    manager = checkpoint_management.CheckpointManager
    count = {"calls": 0}
    for name in ("_record_state", "_sweep"):
      original = getattr(manager, name)

      def patched(self, *args, _original=original, **kwargs):
        count["calls"] += 1
        if count["calls"] == calls:
          os.kill(pid, signal.SIGKILL)
        return _original(self, *args, **kwargs)

      setattr(manager, name, patched)
  elif fault in ("sigterm_eval", "sigkill_eval"):
    sig = signal.SIGTERM if fault == "sigterm_eval" else signal.SIGKILL
    original = trainer_lib.Trainer.evaluate
    count = {"calls": 0}

    def evaluate(self):
      count["calls"] += 1
      if count["calls"] == calls:
        os.kill(pid, sig)
        time.sleep(0.2)  # SIGTERM: the handler runs; evaluation then stops at its first batch
      return original(self)

    trainer_lib.Trainer.evaluate = evaluate


def _attempt(model_dir, fault=None, delay=0.0, calls=1):
  """Forks one training attempt; returns its exit status (negative: killed by that signal)."""
  pid = os.fork()
  if pid == 0:
    code = 1
    try:
      from absl import flags  # pylint: disable=g-import-not-at-top
      from absl import logging  # pylint: disable=g-import-not-at-top
      from consistency import train  # pylint: disable=g-import-not-at-top
      logging.set_verbosity(logging.ERROR)
      argv = flags.FLAGS(["train", f"--model_dir={model_dir}"] + FLAGS)
      if fault:
        _plan_fault(fault, delay, calls)
      train.main(argv)
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # pylint: disable=broad-except
      print(f"attempt failed: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(code)  # pylint: disable=protected-access
  _, status = os.waitpid(pid, 0)
  return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _final_state(model_dir):
  """{variable name: array} of the stage's latest checkpoint, and its metrics.json."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  stage_dir = os.path.join(model_dir, "toy_regression")
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(stage_dir))
  # save_counter counts the saves, which an interrupted run makes more of; it is bookkeeping, not training state.
  variables = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
               if not name.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}
  with open(os.path.join(stage_dir, "metrics.json"), encoding="utf-8") as f:
    return variables, json.load(f)


def run(workdir, rounds, seed, max_attempts=8):
  """The drill: `rounds` runs, each attacked until an attempt finishes it (at most `max_attempts` faults), then
  compared with the uninterrupted run. Returns the summary dict."""
  # The parent imports what the children run, once; it runs no TensorFlow op itself.
  import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from consistency import train  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  rng = random.Random(seed)
  reference_dir = os.path.join(workdir, "uninterrupted")
  start = time.perf_counter()
  if _attempt(reference_dir) != 0:
    raise RuntimeError(f"The uninterrupted run in {reference_dir} failed.")
  duration = time.perf_counter() - start
  reference_variables, reference_metrics = _final_state(reference_dir)
  expected_codes = {0, 128 + signal.SIGTERM, -signal.SIGKILL}
  statuses, results = [], []
  for index in range(rounds):
    drilled_dir = os.path.join(workdir, f"interrupted_{index}")
    for _ in range(max_attempts):
      fault = rng.choice(FAULTS)
      delay = rng.uniform(0.0, duration)
      calls = rng.randint(1, 6) if fault == "sigkill_checkpoint_state" else rng.randint(1, 2)
      status = _attempt(drilled_dir, fault, delay, calls)
      statuses.append({"round": index, "fault": fault, "delay": round(delay, 2), "calls": calls, "status": status})
      if status == 0:
        break
    final_status = _attempt(drilled_dir)  # finishes the run if the faults left it unfinished, else only rereads it
    variables, metrics = _final_state(drilled_dir)
    results.append({
        "final_status": final_status,
        "differing_variables": sorted(
            name for name in reference_variables.keys() | variables.keys()
            if name not in variables or name not in reference_variables
            or not np.array_equal(variables[name], reference_variables[name])),
        "metrics_equal": metrics == reference_metrics,
        "leftovers": [path for path in glob.glob(os.path.join(drilled_dir, "**", "*"), recursive=True)
                      if path.endswith("_temp") or ".tmp" in os.path.basename(path)]})
  return {
      "rounds": rounds,
      "attempts": len(statuses),
      "faults_hit": sum(s["status"] != 0 for s in statuses),
      "unexpected_statuses": [s for s in statuses if s["status"] not in expected_codes],
      "variables_compared": len(reference_variables),
      "all_identical": all(r["final_status"] == 0 and not r["differing_variables"] and r["metrics_equal"]
                           and not r["leftovers"] for r in results),
      "rounds_detail": results,
      "statuses": statuses,
      "reference_seconds": round(duration, 2),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  print(json.dumps(run(args.workdir, args.rounds, args.seed)))


if __name__ == "__main__":
  main()
