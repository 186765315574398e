"""Shared helpers of the benchmark scripts: median wall time of a callable, markdown tables and reports."""

import os
import platform
import time

import numpy as np
import tensorflow as tf


def median_seconds(fn, repeats, warmup=1):
  """Median wall time of `fn()` over `repeats` calls, after `warmup` calls (tracing, XLA compilation).

  `fn` must return tensors; they are copied to NumPy so asynchronous work is included.
  """
  for _ in range(warmup):
    tf.nest.map_structure(np.asarray, fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    tf.nest.map_structure(np.asarray, fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def machine_description():
  cpus = tf.config.list_physical_devices("CPU")
  gpus = tf.config.list_physical_devices("GPU")
  return (f"TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, "
          f"{len(cpus)} CPU device(s), {len(gpus)} GPU(s), threads: intra={tf.config.threading.get_intra_op_parallelism_threads()}")


def markdown_table(header, rows):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
  return "\n".join(lines)


def write_report(path, title, sections):
  """Prints a markdown report (title, machine, then `sections`) and writes it to `path` unless `path` is empty."""
  report = "\n\n".join([f"# {title}", machine_description()] + list(sections)) + "\n"
  print()
  print(report)
  if path:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      f.write(report)
