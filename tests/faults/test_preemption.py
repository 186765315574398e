"""Preemption: a tiny run killed at random points (SIGTERM, SIGKILL, during checkpoint saves and evaluations) and
resumed ends bit-identical to an uninterrupted run (tests/faults/preemption.py runs the drill)."""

import json
import os
import subprocess
import sys

import pytest

from tests.faults import fault_count

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _drill(tmp_path, rounds, seed):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run([sys.executable, "-m", "tests.faults.preemption", f"--workdir={tmp_path}",
                           f"--rounds={rounds}", f"--seed={seed}"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  fault_count.add("preemption attempts", summary["attempts"])
  fault_count.add("kills survived", summary["faults_hit"])
  return summary


def _check(summary):
  assert not summary["unexpected_statuses"], summary["unexpected_statuses"]
  assert summary["all_identical"], summary["rounds_detail"]
  # The faults hit live runs: SIGTERM, SIGKILL, mid-save and mid-evaluation kills all happened.
  hit = {s["fault"] for s in summary["statuses"] if s["status"] != 0}
  assert summary["faults_hit"] >= summary["rounds"], summary["statuses"]
  return hit


def test_killed_and_resumed_runs_end_bit_identical(tmp_path):
  summary = _drill(tmp_path, rounds=2, seed=0)
  _check(summary)


@pytest.mark.slow
def test_killed_and_resumed_runs_end_bit_identical_long(tmp_path):
  summary = _drill(tmp_path, rounds=12, seed=1)
  hit = _check(summary)
  assert {"sigterm", "sigkill", "sigkill_checkpoint_state", "sigterm_eval", "sigkill_eval"} <= hit
