"""Clip pipeline throughput: training batches (pairs, random gap 1..5, augmentation) per second.

    python -m benchmarks.clip_pipeline [--data_dir=/tmp/clip_pipeline_bench] [--batches=40]

Generates synthetic scenes at each resolution (cached in --data_dir), then times --batches batches after a warm-up
and prints examples/s (clips) and frames/s, to set against the train step's consumption.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import timing  # noqa: E402
from datasets import clips  # noqa: E402
from datasets.readers import scannet  # noqa: E402
from datasets.synthetic import generator as synthetic  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", "/tmp/clip_pipeline_bench", "Cache of the generated scenes.")
_BATCHES = flags.DEFINE_integer("batches", 40, "Timed batches per resolution.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Clips per batch.")
_REPORT = flags.DEFINE_string("report", "benchmarks/reports/clip_pipeline.md", "Markdown report path ('' to skip).")

RESOLUTIONS = ((128, 160), (256, 320))


def main(argv):
  del argv
  rows = []
  for height, width in RESOLUTIONS:
    root = os.path.join(_DATA_DIR.value, f"{height}x{width}")
    synthetic.generate(root, num_scenes=4, frames_per_scene=60, height=height, width=width, seed=0)
    scenes = scannet.read_scenes(root)
    config = clips.ClipConfig(height=height, width=width, clip_length=2, min_gap=1, max_gap=5,
                              batch_size=_BATCH_SIZE.value, label_fraction=0.1)
    iterator = iter(clips.clips(scenes, config))
    for _ in range(5):  # warm-up: tracing, autotuning, file cache
      next(iterator)
    start = time.perf_counter()
    for _ in range(_BATCHES.value):
      next(iterator)
    seconds = time.perf_counter() - start
    examples = _BATCHES.value * _BATCH_SIZE.value / seconds
    rows.append([f"{height}x{width}", str(_BATCH_SIZE.value), f"{examples:.0f}", f"{2 * examples:.0f}"])
    print(" | ".join(rows[-1]), flush=True)
  timing.write_report(_REPORT.value, "Clip pipeline benchmark", [
      "Training mode: pairs, frame gap uniform in 1..5, colour jitter + flip + scale-and-crop, label fraction 0.1, "
      f"{_BATCHES.value} batches after 5 warm-up batches. Command: `python -m benchmarks.clip_pipeline`.",
      timing.markdown_table(["resolution", "batch", "clips/s", "frames/s"], rows)])


if __name__ == "__main__":
  app.run(main)
