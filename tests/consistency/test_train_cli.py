"""`python -m consistency.train` / `consistency.evaluate` as users run them: flagfiles, signals, bad flags, and a
two-worker MultiWorkerMirroredStrategy run on 127.0.0.1."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

from absl import flags
import pytest
import tensorflow as tf

from consistency.harness import flags as flags_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
TOY_FLAGS = """# Harness test run.
--stages=toy_regression
--batch_size=8
--learning_rate=0.05
--steps_per_loop=5
--summary_every=5
--image_summary_every=10
"""


def _run(args, timeout=240, env=None, **kwargs):
  return subprocess.run([sys.executable, "-m"] + args, cwd=ROOT, env=env or ENV, capture_output=True, text=True,
                        timeout=timeout, **kwargs)


def _flagfile(tmp_path, extra=""):
  path = tmp_path / "toy.flags"
  path.write_text(TOY_FLAGS + extra)
  return str(path)


def test_flagfile_run_then_evaluate(tmp_path):
  model_dir = tmp_path / "run"
  result = _run(["consistency.train", f"--flagfile={_flagfile(tmp_path)}", f"--model_dir={model_dir}",
                 "--train_steps=20", "--checkpoint_every=10", "--num_cpu_replicas=2"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "MirroredStrategy (logical CPUs) with 2 replica(s)" in result.stderr
  stage_dir = model_dir / "toy_regression"
  assert tf.train.latest_checkpoint(str(stage_dir)).endswith("ckpt-20")
  assert (stage_dir / "ckpt-10.index").exists()
  assert "--train_steps=20" in (model_dir / "flags.txt").read_text()
  assert list((stage_dir / "train").glob("events.*"))
  assert "step 20/20" in result.stderr
  os.remove(stage_dir / "metrics.json")
  result = _run(["consistency.evaluate", f"--model_dir={model_dir}"])
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((stage_dir / "metrics.json").read_text())
  assert metrics["step"] == 20 and metrics["mse"] < 5.0


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path):
  model_dir = tmp_path / "run"
  command = [sys.executable, "-m", "consistency.train", f"--flagfile={_flagfile(tmp_path)}",
             f"--model_dir={model_dir}", "--train_steps=100000000", "--checkpoint_every=100000000"]
  log = open(tmp_path / "log.txt", "w")
  process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
  deadline = time.time() + 120
  while "step 10/" not in (tmp_path / "log.txt").read_text() and time.time() < deadline:
    assert process.poll() is None, (tmp_path / "log.txt").read_text()[-3000:]
    time.sleep(0.5)
  process.send_signal(signal.SIGTERM)
  assert process.wait(timeout=120) == 128 + signal.SIGTERM
  log.close()
  assert "Stopped by SIGTERM" in (tmp_path / "log.txt").read_text()
  latest = tf.train.latest_checkpoint(str(model_dir / "toy_regression"))
  assert latest is not None
  stopped_at = int(latest.rsplit("-", 1)[1])
  assert stopped_at >= 10
  result = _run(["consistency.train", f"--flagfile={_flagfile(tmp_path)}", f"--model_dir={model_dir}",
                 f"--train_steps={stopped_at + 5}"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resumed toy_regression from {latest} at step {stopped_at}" in result.stderr


def test_a_signal_before_training_is_deferred_to_the_next_stage_start(tmp_path):
  """A SIGTERM while no trainer handles it (flag parsing, preflight, between stages) does not kill the process
  mid-write: `main`'s handler records it and the run stops where the next stage would start, naming it."""
  from consistency.harness import config as config_lib  # pylint: disable=g-import-not-at-top
  from consistency import train  # pylint: disable=g-import-not-at-top
  previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    train._defer_signals()  # pylint: disable=protected-access
    os.kill(os.getpid(), signal.SIGTERM)  # the process survives it
    assert train._PENDING_SIGNALS == [signal.SIGTERM]  # pylint: disable=protected-access
    config = config_lib.TrainConfig(model_dir=str(tmp_path / "run"), stages=("toy_regression",), batch_size=8,
                                    train_steps=5)
    with pytest.raises(train.Stopped, match="Stopped by SIGTERM before stage toy_regression started") as stopped:
      train.run(config)
    assert stopped.value.signum == signal.SIGTERM and not (tmp_path / "run" / "toy_regression").exists()
  finally:
    train._PENDING_SIGNALS.clear()  # pylint: disable=protected-access
    for sig, handler in previous.items():
      signal.signal(sig, handler)


def test_bad_flags_and_missing_flagfile_give_clear_errors(tmp_path):
  """One process for the command line's own failure; the flag parsing it goes through is checked in this one (each
  process costs ~20 s of imports; an unknown stage is tests/consistency/test_trainer.py's)."""
  result = _run(["consistency.train", f"--model_dir={tmp_path}", "--learning_rat=0.1"])
  assert result.returncode != 0 and "Unknown command line flag 'learning_rat'" in result.stderr
  missing = tmp_path / "missing.flags"
  try:
    with pytest.raises(flags.Error, match=re.escape(str(missing))):
      flags_lib.FLAGS(["train", f"--flagfile={missing}", f"--model_dir={tmp_path}"])
  finally:
    flags_lib.FLAGS.unparse_flags()


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


@pytest.mark.slow  # ~35 s: two processes; the default suite covers MirroredStrategy in test_flagfile_run_then_evaluate
def test_two_workers_on_loopback(tmp_path):
  ports = _free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  model_dir = tmp_path / "run"
  processes = []
  for index in range(2):
    env = dict(ENV, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
    log = open(tmp_path / f"worker{index}.txt", "w")
    processes.append((subprocess.Popen(
        [sys.executable, "-m", "consistency.train", f"--flagfile={_flagfile(tmp_path)}", f"--model_dir={model_dir}",
         "--train_steps=10", "--checkpoint_every=5"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
  try:
    codes = [p.wait(timeout=300) for p, _ in processes]
  finally:
    for p, log in processes:
      if p.poll() is None:
        p.kill()
      log.close()
  logs = [(tmp_path / f"worker{i}.txt").read_text() for i in range(2)]
  assert codes == [0, 0], "\n\n".join(text[-2000:] for text in logs)
  assert "MultiWorkerMirroredStrategy with 2 replica(s)" in logs[0]
  stage_dir = model_dir / "toy_regression"
  assert tf.train.latest_checkpoint(str(stage_dir)).endswith("ckpt-10")
  assert not list(stage_dir.glob("worker_tmp_*"))  # the non-chief's temporary checkpoints are removed
  assert (stage_dir / "metrics.json").exists()


def test_a_run_without_stages_says_what_to_pass(tmp_path):
  result = subprocess.run([sys.executable, "-m", "consistency.train", f"--model_dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert result.returncode != 0
  assert "No stages to run: pass a flagfile (python -m consistency.train --flagfile=configs/quickstart.flags" in \
      result.stderr + result.stdout
  assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
