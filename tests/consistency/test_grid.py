"""The resumable grid: runs trained until plateau (in rounds, resumed), and runs made several at a time in the order
their needs allow."""

import json
import os
import re
import threading
import time

import pytest

from consistency import grid
from tests.consistency import runs


class _FakeTrain:
  """Stands in for `python -m consistency.train`: writes the evaluations a run to --train_steps with --eval_every
  would write, mIoU from `curve(step)`, resuming after the last evaluation already in the run's history."""

  def __init__(self, curve):
    self.curve = curve
    self.calls = []

  def __call__(self, command, stdout, stderr, env):
    del stdout, stderr
    options = dict(re.match(r"--(\w+)=(.*)", arg).groups() for arg in command if arg.startswith("--"))
    steps, every = int(options["train_steps"]), int(options["eval_every"])
    self.calls.append((steps, env))
    run = grid.Run("fake", options["model_dir"], "segmentation", steps, ())
    done = max(run.history(), default=0)
    curve = {step: self.curve(step) for step in range(done + 1, steps + 1) if step % every == 0 or step == steps}
    runs.write_history(run, curve)
    runs.write_metrics(run, miou=curve[steps])
    return 0


def _baseline(tmp_path, first_steps=20, max_steps=160):
  return grid.UntilPlateau("baseline", str(tmp_path / "baseline"), "segmentation", first_steps, max_steps,
                           ("--flagfile=base.flags",))


def test_until_plateau_doubles_its_steps_until_the_last_quarter_moves_little(tmp_path, monkeypatch):
  # mIoU rises by 0.01 per step until step 50, then stays: rounds to 20 and 40 are still learning; the round to 80
  # (evaluated at 60, 70, 80 in its last quarter) has plateaued.
  fake = _FakeTrain(lambda step: 0.01 * min(step, 50))
  monkeypatch.setattr(grid.subprocess, "call", fake)
  run = _baseline(tmp_path)
  assert run.rounds() == [20, 40, 80, 160]
  assert not run.finished() and run.steps == 20
  run.execute()
  assert [steps for steps, _ in fake.calls] == [20, 40, 80]
  assert run.finished() and run.steps == 80 and run.metrics()["miou"] == pytest.approx(0.5)
  assert sorted(run.history()) == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 25, 30, 35, 40, 50, 60, 70, 80]
  assert run.seconds() > 0  # the three commands' times, summed in runtime.json
  run.execute()  # finished: nothing more to run
  assert len(fake.calls) == 3


def test_until_plateau_resumes_at_the_round_it_stopped_in(tmp_path, monkeypatch):
  fake = _FakeTrain(lambda step: 0.01 * min(step, 50))
  monkeypatch.setattr(grid.subprocess, "call", fake)
  run = _baseline(tmp_path)
  run.round(20).execute()  # an earlier invocation made the first round only
  fake.calls.clear()
  run.execute()
  assert [steps for steps, _ in fake.calls] == [40, 80]


def test_until_plateau_stops_at_max_steps(tmp_path, monkeypatch):
  fake = _FakeTrain(lambda step: 0.01 * step)  # never plateaus
  monkeypatch.setattr(grid.subprocess, "call", fake)
  run = _baseline(tmp_path, first_steps=30, max_steps=100)
  assert run.rounds() == [30, 60, 100]
  run.execute()
  assert [steps for steps, _ in fake.calls] == [30, 60, 100]
  assert run.finished() and run.steps == 100
  assert grid.plateau(run.history(), 100) == (pytest.approx(0.16), False)  # evaluations at 84, 96, 100


def test_until_plateau_rejects_bad_lengths(tmp_path):
  with pytest.raises(ValueError, match="first_steps <= max_steps"):
    _baseline(tmp_path, first_steps=40, max_steps=20)


class _Job:
  """A run-like job that records when it ran; fails if asked to."""

  def __init__(self, folder, name, needs=(), fail=False, log=None):
    self.name, self.fail, self.log = name, fail, log
    self.model_dir, self.needs = str(folder / name), tuple(str(folder / need) for need in needs)
    self.steps = 1

  def finished(self):
    return False

  def execute(self, dry_run=False, env=None):
    del dry_run
    self.log.append(("start", self.name, env and env.get("TF_NUM_INTRAOP_THREADS")))
    time.sleep(0.05)
    self.log.append(("end", self.name, threading.active_count()))
    if self.fail:
      raise RuntimeError(f"{self.name} broke")
    return 0.05


def test_execute_all_runs_each_job_after_its_needs_several_at_a_time(tmp_path, monkeypatch):
  monkeypatch.setattr(grid.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
  log = []
  jobs = [_Job(tmp_path, "a", log=log), _Job(tmp_path, "b", log=log), _Job(tmp_path, "c", needs=["a"], log=log),
          _Job(tmp_path, "d", needs=["a", "c"], log=log)]
  seconds = grid.execute_all(jobs, workers=2)
  assert seconds > 0
  order = [(event, name) for event, name, _ in log]
  assert order.index(("start", "b")) < order.index(("end", "a"))  # a and b ran side by side
  assert order.index(("end", "a")) < order.index(("start", "c")) and order.index(("end", "c")) < \
      order.index(("start", "d"))
  assert {threads for event, _, threads in log if event == "start"} == {"2"}  # 4 cores, 2 workers: 2 threads each
  log.clear()
  grid.execute_all(jobs[:1], workers=1)
  assert log[0] == ("start", "a", None)  # one worker: the machine's default threads


def test_execute_all_goes_on_past_a_failure_and_reports_it(tmp_path):
  log = []
  jobs = [_Job(tmp_path, "a", fail=True, log=log), _Job(tmp_path, "b", log=log),
          _Job(tmp_path, "c", needs=["a"], log=log)]
  with pytest.raises(RuntimeError, match="2 of 3 runs failed: a broke; c not started: .*a failed"):
    grid.execute_all(jobs, workers=1)
  assert ("end", "b") in [(event, name) for event, name, _ in log]
  assert ("start", "c") not in [(event, name) for event, name, _ in log]
  with pytest.raises(ValueError, match="needs runs not in the grid"):
    grid.execute_all([_Job(tmp_path, "x", needs=["y"], log=log)])


def test_runtime_of_repeated_commands_adds_up(tmp_path, monkeypatch):
  monkeypatch.setattr(grid.subprocess, "call", _FakeTrain(lambda step: 0.1))
  run = _baseline(tmp_path)
  os.makedirs(run.model_dir)
  with open(os.path.join(run.model_dir, grid.RUNTIME_FILE), "w", encoding="utf-8") as f:
    json.dump({"seconds": 100.0}, f)  # an earlier round's
  run.round(20).execute()
  assert run.seconds() > 100.0


def test_a_finished_run_whose_baseline_changed_since_stops_the_grid(tmp_path, monkeypatch):
  fake = _FakeTrain(lambda step: 0.01 * min(step, 50))
  monkeypatch.setattr(grid.subprocess, "call", fake)
  baseline = _baseline(tmp_path, max_steps=40)  # not plateaued at 40: stops there
  continuation = grid.Run("continuation", str(tmp_path / "continuation"), "segmentation", 10,
                          ("--train_steps=10", "--eval_every=5"), (baseline.model_dir,))
  grid.execute_all([baseline, continuation])
  with open(tmp_path / "continuation" / grid.NEEDS_FILE, encoding="utf-8") as f:
    assert json.load(f) == {baseline.model_dir: 40}  # the continuation started from the baseline's 40 steps
  grid.check_needs([baseline, continuation])  # nothing changed
  # The baseline allowed more rounds: not finished any more, the continuation's results would be stale.
  longer = _baseline(tmp_path, max_steps=80)
  with pytest.raises(ValueError, match=r"continuation: made from .*baseline, which is not finished now"):
    grid.execute_all([longer, grid.Run("continuation", continuation.model_dir, "segmentation", 10, (),
                                       (longer.model_dir,))])
  assert len(fake.calls) == 3  # nothing ran
  # A baseline finished at other steps than the continuation started from.
  with open(tmp_path / "continuation" / grid.NEEDS_FILE, "w", encoding="utf-8") as f:
    json.dump({baseline.model_dir: 20}, f)
  with pytest.raises(ValueError, match="made from .*baseline at step 20, which is at step 40 now"):
    grid.check_needs([baseline, continuation])
  # A run started (not finished) from the baseline's earlier state would resume from it: refused too.
  partial = grid.Run("partial", str(tmp_path / "partial"), "segmentation", 10, (), (baseline.model_dir,))
  os.makedirs(partial.model_dir)
  with open(os.path.join(partial.model_dir, grid.NEEDS_FILE), "w", encoding="utf-8") as f:
    json.dump({baseline.model_dir: 20}, f)
  with pytest.raises(ValueError, match="partial: made from .*baseline at step 20"):
    grid.check_needs([baseline, partial])
