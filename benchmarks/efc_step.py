"""EFC training step vs the supervised segmentation step: same segmenter, same batch, side by side.

    python -m benchmarks.efc_step [--batch_size=8] [--height=128] [--width=160] [--repeats=5] [--report=PATH]

The architecture is configs/synthetic_efc.flags' (ResNet-18, NAS-FPN 64 x 2, head 64, flow branch width 32). Each
row is one optimizer step (forward, loss, backward, Adam update) under tf.function, on a fixed batch of random
images: B pairs [B, 2, H, W, 3] with the first frame of every pair labelled. The supervised step is the
`segmentation` stage's on the B labelled frames; the EFC rows are the `efc` stage's on the B pairs (2B frames through
the segmenter, and the flow branch on both directions). Reported: the median seconds per step over --repeats calls
after one warm-up call (tracing excluded), and the ratio to the supervised step. Calls take turns between the
configurations, so a shared machine's load hits them alike.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402
from consistency.harness import config as config_lib  # noqa: E402
from consistency.stages import efc as efc_stage  # noqa: E402
from consistency.stages import segmentation as segmentation_stage  # noqa: E402

_BATCH = flags.DEFINE_integer("batch_size", 8, "Pairs (EFC) / labelled frames (supervised) per step.")
_HEIGHT = flags.DEFINE_integer("height", 128, "Image height.")
_WIDTH = flags.DEFINE_integer("width", 160, "Image width.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed steps per configuration (the median is reported).")
_REPORT = flags.DEFINE_string("report", "benchmarks/reports/efc_step.md", "Markdown report path ('' to skip).")

ARCHITECTURE = dict(backbone="resnet18", nasfpn_filters=64, nasfpn_repeats=2, head_filters=64, head_groups=16,
                    efc_flow_filters=32)
NO_FLOW = dict(efc_consistency_weight=0.0, efc_occlusion_weight=0.0, efc_smoothness_weight=0.0,
               efc_photometric_weight=0.0, efc_occlusion_mask=False)
CASES = (
    ("supervised segmentation step (B frames)", "segmentation", {}),
    ("efc, all terms (B pairs)", "efc", {}),
    ("efc, flow only (B pairs)", "efc", dict(efc_flow_only=True)),
    ("efc, cross-entropy only (B pairs, flow branch skipped)", "efc", NO_FLOW),
)


def _batches(batch_size, height, width):
  images = tf.random.stateless_uniform([batch_size, 2, height, width, 3], [1, 2])
  labels = tf.random.stateless_uniform([batch_size, height, width], [3, 4], 0, 21, dtype=tf.int32)
  pair_labels = tf.stack([labels, tf.fill([batch_size, height, width], 255)], axis=1)
  return {"image": images[:, 0], "label": labels}, {"image": images, "label": pair_labels}


def _step_function(stage, config):
  models = stage.build_models()
  variables = [v for model in models.values() for v in model.trainable_variables]
  optimizer = keras.optimizers.Adam(config.learning_rate)
  optimizer.build(variables)

  @tf.function
  def step(batch):
    with tf.GradientTape() as tape:
      losses, _ = stage.compute_losses(models, batch, tf.constant(0, tf.int64))
      total = tf.add_n(list(losses.values()))
    grads = tape.gradient(total, variables)
    optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
    return total

  return step


def main(argv):
  del argv
  frames, pairs = _batches(_BATCH.value, _HEIGHT.value, _WIDTH.value)
  steps = []
  with tempfile.TemporaryDirectory() as model_dir:
    for name, stage_name, overrides in CASES:
      config = config_lib.TrainConfig(model_dir=model_dir, stages=(stage_name,), batch_size=_BATCH.value,
                                      height=_HEIGHT.value, width=_WIDTH.value, learning_rate=1e-3,
                                      **ARCHITECTURE, **overrides)
      stage = (efc_stage.EfcStage if stage_name == "efc" else segmentation_stage.SegmentationStage)(config)
      step = _step_function(stage, config)
      batch = pairs if stage_name == "efc" else frames
      np.asarray(step(batch))  # tracing and the first run, not timed
      steps.append((name, step, batch))
      print(f"traced: {name}", flush=True)
  times = {name: [] for name, _, _ in steps}
  for _ in range(_REPEATS.value):  # taking turns
    for name, step, batch in steps:
      times[name].append(timing.median_seconds(lambda s=step, b=batch: s(b), repeats=1, warmup=0))
  reference = float(np.median(times[CASES[0][0]]))
  rows = []
  for name, _, _ in steps:
    median = float(np.median(times[name]))
    rows.append([name, f"{median:.3f}", f"{median / reference:.2f}x"])
  timing.write_report(_REPORT.value, "EFC training step vs the supervised segmentation step", [
      f"Batch {_BATCH.value} at {_HEIGHT.value}x{_WIDTH.value}, configs/synthetic_efc.flags architecture, Adam, "
      f"tf.function, median of {_REPEATS.value} steps after tracing "
      f"(`python -m benchmarks.efc_step --repeats={_REPEATS.value}`).",
      timing.markdown_table(["step", "median s", "vs supervised"], rows)])


if __name__ == "__main__":
  app.run(main)
