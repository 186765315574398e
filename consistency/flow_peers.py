"""Optical flow against what a user would pick instead, on the EFC stage's validation pairs, scored exactly as the
EFC stage scores its flow network (`consistency.flow_evaluation`):

    python -m consistency.flow_peers --config=configs/synthetic_efc.flags [--efc_run=MODEL_DIR] [--output=FILE]

Rows, on the same pairs (gap --efc_eval_gap of the data flags, the same --eval_max_batches) at the working size:
  zero flow       what predicting no motion scores (the scale of the problem);
  ground truth    the true flow itself (a check of the scoring: EPE 0);
  Farneback       OpenCV's dense polynomial-expansion flow on the greyscale frames (OpenCV's usual settings:
                  pyramid scale 0.5, 3 levels, window 15, 3 iterations, poly_n 5, sigma 1.2);
  DIS             OpenCV's dense inverse search, its "medium" preset;
  EFC (--efc_run) the EFC stage's metrics.json of that run: its flow network on the same pairs, provided the run
                  used the same data flags (its own flags.txt is read instead of --config, so they are).
Each row's flow is also scored as an occlusion estimate by EFC's own definition (occluded where x + F(x) leaves the
image: `flow_evaluation`'s out_of_frame_f1); the ground-truth row's is the most that definition can reach.
The classical rows need OpenCV, a benchmark-only dependency: pip install -e '.[bench]' (opencv-python-headless).
Prints a markdown table (EPE all and non-occluded, Fl) and writes it to --output if given.
"""

import json
import os
import tempfile

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from consistency import flow_evaluation
from consistency.harness import flags as flags_lib
from consistency.stages import efc as efc_stage

ROWS = ("zero flow", "ground truth", "Farneback", "DIS")
_METRICS = (("flow_epe_all", "EPE all (px)", "{:.3f}"), ("flow_epe_noc", "EPE non-occluded (px)", "{:.3f}"),
            ("flow_fl_all", "Fl all", "{:.2%}"), ("out_of_frame_f1", "occlusion F1 (out of frame)", "{:.3f}"))


def _grey(image):
  return np.clip(np.round(np.dot(np.asarray(image, np.float32), [0.299, 0.587, 0.114]) * 255.0), 0, 255).astype(
      np.uint8)


def classical_flow(name, image_a, image_b):
  """[H, W, 2] flow (x, y) from [H, W, 3] image_a in [0, 1] to image_b by OpenCV's `name` (Farneback or DIS)."""
  try:
    import cv2  # pylint: disable=import-outside-toplevel  (a benchmark-only dependency)
  except ImportError:
    raise ImportError("The classical flow rows need OpenCV: pip install -e '.[bench]' (opencv-python-headless).") \
        from None
  a, b = _grey(image_a), _grey(image_b)
  if name == "Farneback":
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5,
                                        poly_sigma=1.2, flags=0)
  if name == "DIS":
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)
  raise ValueError(f"Unknown classical flow {name!r}. Known: Farneback, DIS")


def estimate(row, images, true):
  """[B, H, W, 2] flow of `row` (one of ROWS) for the pairs images [B, 2, H, W, 3], whose true flow is `true`."""
  if row == "zero flow":
    return tf.zeros_like(true)
  if row == "ground truth":
    return true
  images = np.asarray(images)
  return tf.constant(np.stack([classical_flow(row, pair[0], pair[1]) for pair in images]), tf.float32)


def score(batches, rows=ROWS):
  """{row: flow metrics (`flow_evaluation.metrics`)} of each row over the pair batches (dicts with image [B, 2, H,
  W, 3], depth, pose and intrinsics)."""
  totals = {row: None for row in rows}
  for batch in batches:
    true, known, visible = flow_evaluation.true_flow(batch)
    for row in rows:
      values = flow_evaluation.statistics(estimate(row, batch["image"], true), true, known, visible)
      values = {k: float(v) for k, v in values.items()}
      totals[row] = values if totals[row] is None else {k: totals[row][k] + values[k] for k in values}
  return {row: flow_evaluation.metrics(total)[0] for row, total in totals.items() if total is not None}


def table(results):
  """Markdown table of `score`'s results (plus any extra rows of the same metrics)."""
  lines = ["| flow | " + " | ".join(label for _, label, _ in _METRICS) + " |", "|---" * (1 + len(_METRICS)) + "|"]
  for row, metrics in results.items():
    cells = [fmt.format(metrics[key]) if key in metrics else "-" for key, _, fmt in _METRICS]
    lines.append(f"| {row} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def define_flags():
  flags.DEFINE_string("config", "configs/synthetic_efc.flags", "Flagfile whose data flags choose the validation "
                      "pairs (ignored with --efc_run).")
  flags.DEFINE_string("efc_run", "", "An EFC training run (its --model_dir): its data flags are used and its "
                      "efc/metrics.json is added as a row.")
  flags.DEFINE_string("output", "", "Also write the markdown table here.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  options = flags.FLAGS
  if options.efc_run:
    config = flags_lib.read_run_config(options.efc_run)
  else:
    if not os.path.exists(options.config):
      raise app.UsageError(f"--config={options.config} not found (run from the repository root or pass its path).")
    config = flags_lib.read_flagfile_config(options.config, tempfile.gettempdir())
  stage = efc_stage.EfcStage(config)
  logging.info("Scoring %s on the validation pairs of dataset=%s (gap %d).", ", ".join(ROWS), config.dataset,
               config.efc_eval_gap)
  results = score(stage.eval_dataset())
  if options.efc_run:
    path = os.path.join(options.efc_run, "efc", "metrics.json")
    if not os.path.exists(path):
      raise app.UsageError(f"--efc_run={options.efc_run} has no {path}: train it first.")
    with open(path, encoding="utf-8") as f:
      trained = json.load(f)
    results[f"EFC ({options.efc_run}, step {trained.get('step')})"] = trained
  markdown = table(results)
  print(markdown)
  if options.output:
    with open(options.output, "w", encoding="utf-8") as f:
      f.write(markdown + "\n")


if __name__ == "__main__":
  define_flags()
  app.run(main)
