"""Made-up results of grid runs for the grid drivers' tests: what a finished `consistency.train` leaves behind."""

import json
import os

from consistency import grid


def write_metrics(run, step=None, **metrics):
  """Writes `run`'s metrics.json at `step` (default: its last). An `UntilPlateau` run gets a flat learning curve over
  its first round too (plateaued, so finished)."""
  if isinstance(run, grid.UntilPlateau):
    steps = run.first_steps if step is None else step
    write_history(run, {s: metrics.get("miou", 0.0) for s in _round_evaluations(steps)})
    run = run.round(steps)
  os.makedirs(os.path.dirname(run.metrics_path()), exist_ok=True)
  with open(run.metrics_path(), "w", encoding="utf-8") as f:
    json.dump({"step": run.steps if step is None else step, **metrics}, f)


def write_history(run, curve):
  """Adds {step: mIoU} to the run's metrics_history.json."""
  path = os.path.join(os.path.dirname(run.metrics_path()), "metrics_history.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  history = {}
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      history = json.load(f)
  history.update({str(step): {"step": step, "miou": miou} for step, miou in curve.items()})
  with open(path, "w", encoding="utf-8") as f:
    json.dump(history, f)


def _round_evaluations(steps):
  every = max(1, steps // grid.EVALUATIONS_PER_ROUND)
  return list(range(every, steps, every)) + [steps]
