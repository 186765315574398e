"""Training-harness benchmark: examples/s on 1 vs 2 CPU replicas, and the harness overhead.

    python -m benchmarks.harness [--steps=60] [--batch_size=8]

A small conv net (4 stride-2 convs, 32..128 filters) regresses a per-pixel target from [B,128,160,3] images that an
in-memory tf.data pipeline repeats. "harness" is `Trainer.train` in steady state: the median of the examples/s it
records per 10-step loop (tf.data, distribution, all-reduce and clipping, summaries), first loop (tracing) excluded;
"bare step" is forward/backward/apply on a fixed batch in a tight tf.function loop. Overhead = 1 - bare / harness
time per step.
"""

import glob
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
from consistency.harness import distribution  # noqa: E402
from consistency.harness import stage as stage_lib  # noqa: E402
from consistency.harness import trainer as trainer_lib  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 100, "Timed training steps per configuration.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Global batch size.")
_REPORT = flags.DEFINE_string("report", "benchmarks/reports/harness.md", "Markdown report path ('' to skip).")

SHAPE = (128, 160, 3)


class ConvStage(stage_lib.Stage):
  name = "bench_conv"

  def build_models(self):
    layers = [keras.Input(SHAPE)]
    for filters in (32, 64, 96, 128):
      layers.append(keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu"))
    layers.append(keras.layers.Conv2D(1, 1))
    return {"net": keras.Sequential(layers)}

  def train_dataset(self, start_step):
    images = tf.random.stateless_uniform((64,) + SHAPE, [1, 2])
    targets = tf.reduce_mean(images[:, ::16, ::16, :], axis=-1, keepdims=True)
    return tf.data.Dataset.from_tensor_slices({"image": images, "target": targets}).repeat().batch(
        self.config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

  def compute_losses(self, models, batch, step, training=True):
    return {"mse": tf.reduce_mean(tf.square(models["net"](batch["image"]) - batch["target"]))}, {}


def _loop_seconds_per_step(strategy, model_dir):
  config = config_lib.TrainConfig(model_dir=model_dir, train_steps=10 + _STEPS.value, batch_size=_BATCH.value,
                                  steps_per_loop=10, summary_every=10, checkpoint_every=10**6,
                                  image_summary_every=0, learning_rate=1e-3)
  trainer = trainer_lib.Trainer(ConvStage(config), config, strategy, os.path.join(model_dir, "bench"))
  trainer.train()
  rates = []
  for path in sorted(glob.glob(os.path.join(model_dir, "bench", "train", "events.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      rates += [tf.make_ndarray(v.tensor) for v in event.summary.value if v.tag == "train/examples_per_second"]
  return _BATCH.value / float(np.median(rates[1:])), trainer


def _bare_seconds_per_step(trainer):
  batch = next(iter(trainer.stage.train_dataset(0)))
  model, optimizer = trainer.models["net"], trainer.optimizer

  @tf.function
  def steps(n):
    for _ in tf.range(n):
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(batch["image"]) - batch["target"]))
      grads = tape.gradient(loss, model.trainable_variables)
      optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  steps(tf.constant(2))
  return timing.median_seconds(lambda: steps(tf.constant(_STEPS.value)), 3, warmup=0) / _STEPS.value


def main(argv):
  del argv
  distribution.split_cpu(2)
  rows = []
  with tempfile.TemporaryDirectory() as model_dir:
    one, trainer = _loop_seconds_per_step(tf.distribute.get_strategy(), os.path.join(model_dir, "1"))
    bare = _bare_seconds_per_step(trainer)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    two, _ = _loop_seconds_per_step(mirrored, os.path.join(model_dir, "2"))
  batch = _BATCH.value
  rows.append(["bare step (no tf.data, no harness), 1 device", f"{batch / bare:.1f}", f"{1e3 * bare:.1f}", "-"])
  rows.append(["harness, 1 replica", f"{batch / one:.1f}", f"{1e3 * one:.1f}", f"{100 * (1 - bare / one):.0f}%"])
  rows.append(["harness, 2 CPU replicas (MirroredStrategy)", f"{batch / two:.1f}", f"{1e3 * two:.1f}",
               f"{100 * (1 - bare / two):.0f}%"])
  for row in rows:
    print(" | ".join(row))
  timing.write_report(_REPORT.value, "Training harness benchmark", [
      f"Conv net on [{batch},128,160,3], {_STEPS.value} timed steps. Command: `python -m benchmarks.harness`. "
      "2 CPU replicas split the same 2 cores, so they show the cost of distribution, not a speed-up.",
      timing.markdown_table(["configuration", "examples/s", "ms/step", "overhead vs bare step"], rows)])


if __name__ == "__main__":
  app.run(main)
