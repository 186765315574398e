"""From scratch vs ImageNet-initialised: the supervised segmentation baseline on the synthetic video, paired by seed.

    python -m benchmarks.pretrained_baseline [--root=/tmp/pretrained_baseline] [--seeds=0,1,2]
                                             [--label_fractions=0.01,1.0] [--train_steps=400]
                                             [--report=docs/pretrained_results.md]

Each cell is `python -m consistency.train --flagfile=configs/synthetic_segmentation.flags` with --seed, --label_fraction
and --train_steps (evaluated once, at the end), once with a ResNet-18 from random weights (--backbone=resnet18
--backbone_weights=none) and once with the flagfile's ImageNet EfficientNet-Lite0; everything else identical (same labelled frames and data
order per seed). Runs that finished are reused, so the command resumes. The report gives validation mIoU and pixel
accuracy per run, their mean and range, and the per-seed paired difference with a 95 % t interval.
"""

import json
import os
import subprocess
import sys

from absl import app
from absl import flags
import numpy as np

from benchmarks import timing

BACKBONES = {"resnet18 (random)": ("--backbone=resnet18", "--backbone_weights=none"),
             "efficientnet_lite0 (ImageNet)": ("--backbone=efficientnet_lite0", "--backbone_weights=imagenet")}
# Two-sided 95 % quantile of Student's t with n - 1 degrees of freedom, for n seeds.
_T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}

_ROOT = flags.DEFINE_string("root", "/tmp/pretrained_baseline", "Directory of the runs (reused when finished).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (model initialisation, labelled frames, data order).")
_FRACTIONS = flags.DEFINE_list("label_fractions", ["0.01", "1.0"], "Label fractions.")
_STEPS = flags.DEFINE_integer("train_steps", 400, "Training steps of every run.")
_REPORT = flags.DEFINE_string("report", "docs/pretrained_results.md", "Markdown report ('' to only print).")


def _run(backbone, fraction, seed):
  """metrics.json of one finished run, training it first unless it finished before."""
  name = f"{backbone.split()[0]}-f{fraction}-s{seed}-n{_STEPS.value}"
  model_dir = os.path.join(_ROOT.value, name)
  path = os.path.join(model_dir, "segmentation", "metrics.json")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      metrics = json.load(f)
    if metrics.get("step") == _STEPS.value:
      return metrics
  command = [sys.executable, "-m", "consistency.train", "--flagfile=configs/synthetic_segmentation.flags",
             f"--model_dir={model_dir}", f"--seed={seed}", f"--label_fraction={fraction}",
             f"--train_steps={_STEPS.value}", "--eval_every=0", f"--checkpoint_every={_STEPS.value}",
             "--image_summary_every=0", *BACKBONES[backbone]]
  print(" ".join(command), flush=True)
  subprocess.run(command, check=True)
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _interval(differences):
  differences = np.asarray(differences, np.float64)
  if len(differences) < 2:
    return f"{differences.mean():+.3f}"
  half = _T_975[len(differences)] * differences.std(ddof=1) / np.sqrt(len(differences))
  return f"{differences.mean():+.3f} [{differences.mean() - half:+.3f}, {differences.mean() + half:+.3f}]"


def main(argv):
  del argv
  seeds = [int(s) for s in _SEEDS.value]
  rows, paired = [], []
  for fraction in _FRACTIONS.value:
    results = {}
    for backbone in BACKBONES:
      results[backbone] = [_run(backbone, fraction, seed) for seed in seeds]
      miou = [m["miou"] for m in results[backbone]]
      accuracy = [m["pixel_accuracy"] for m in results[backbone]]
      rows.append([fraction, backbone, " / ".join(f"{v:.3f}" for v in miou),
                   f"{np.mean(miou):.3f} ({min(miou):.3f}-{max(miou):.3f})",
                   " / ".join(f"{v:.3f}" for v in accuracy), f"{np.mean(accuracy):.3f}"])
    scratch, imagenet = (results[b] for b in BACKBONES)
    paired.append([fraction, _interval([b["miou"] - a["miou"] for a, b in zip(scratch, imagenet)]),
                   _interval([b["pixel_accuracy"] - a["pixel_accuracy"] for a, b in zip(scratch, imagenet)])])
  timing.write_report(_REPORT.value, "Segmentation baseline: from scratch vs ImageNet-initialised", [
      f"`python -m benchmarks.pretrained_baseline --seeds={','.join(_SEEDS.value)} "
      f"--label_fractions={','.join(_FRACTIONS.value)} --train_steps={_STEPS.value}`: "
      "configs/synthetic_segmentation.flags, validation split, one evaluation at the end.",
      timing.markdown_table(["label fraction", "encoder", "mIoU per seed", "mIoU mean (range)",
                             "pixel accuracy per seed", "pixel accuracy mean"], rows),
      "ImageNet minus from scratch, paired by seed (mean [95 % t interval]):\n\n" +
      timing.markdown_table(["label fraction", "mIoU gain", "pixel accuracy gain"], paired)])


if __name__ == "__main__":
  app.run(main)
