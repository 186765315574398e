"""Segmenter size and speed: parameters per part and forward-pass time of the default and ResNet-18 configs.

    python -m benchmarks.segmenter [--repeats=5] [--batch=2] [--height=128] [--width=160] [--report=PATH]

Prints a markdown table: parameters of the backbone, NAS-FPN and head, and the median forward time (inference mode,
tf.function, and optionally XLA with --modes=function,xla) for a batch of random images; writes it to --report if set.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402
from segmentation import segmenter  # noqa: E402

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (the median is reported).")
_BATCH = flags.DEFINE_integer("batch", 2, "Images per forward pass.")
_HEIGHT = flags.DEFINE_integer("height", 128, "Image height.")
_WIDTH = flags.DEFINE_integer("width", 160, "Image width.")
_MODES = flags.DEFINE_list("modes", ["function"], "Execution modes to time: function, xla.")
_REPORT = flags.DEFINE_string("report", "", "Markdown report path ('' to only print).")

CONFIGS = {
    "ResNet-50 / NAS-FPN 256 x 5 / head 128 (default)": segmenter.SegmenterConfig(),
    "ResNet-18 / NAS-FPN 256 x 5 / head 128": segmenter.SegmenterConfig(backbone="resnet18"),
}


def main(argv):
  del argv
  images = tf.random.uniform([_BATCH.value, _HEIGHT.value, _WIDTH.value, 3])
  header = ["config", "backbone", "NAS-FPN", "head", "total params"]
  header += [f"forward ms ({mode})" for mode in _MODES.value]
  rows = []
  for name, config in CONFIGS.items():
    model = segmenter.build_segmenter(config)
    row = [name] + [f"{part.count_params():,}" for part in (model.backbone, model.decoder, model.head)]
    row.append(f"{model.count_params():,}")
    for mode in _MODES.value:
      forward = tf.function(lambda x, m=model: m(x, training=False)["logits"], jit_compile=(mode == "xla"))
      row.append(f"{1000 * timing.median_seconds(lambda: forward(images), _REPEATS.value):.0f}")
    rows.append(row)
    print(" | ".join(row), flush=True)
  timing.write_report(_REPORT.value, "Segmenter size and forward time", [
      f"Batch {_BATCH.value} x {_HEIGHT.value}x{_WIDTH.value}, inference mode, median of {_REPEATS.value} calls "
      f"(`python -m benchmarks.segmenter --repeats={_REPEATS.value}`).",
      timing.markdown_table(header, rows)])


if __name__ == "__main__":
  app.run(main)
