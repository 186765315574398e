"""Training-step speed of the depth_motion stage: examples/s at several sizes, eager vs tf.function vs XLA.

    python -m benchmarks.depth_motion_step [--repeats=3] [--sizes=128x416x4x3,128x160x4x3,64x96x4x2]
                                           [--modes=eager,function,xla] [--motion_trunks=plain]
                                           [--report=PATH]

A size is HEIGHTxWIDTHxBATCHxFRAMES (FRAMES 3: triplets, 4 directed pairs; 2: pairs). One step = depth of every
frame, motion of every directed pair, every loss term with a non-zero weight (original preset, learned intrinsics),
gradients and an Adam update: exactly what the stage runs per replica, on random images (speed does not depend on
pixel values). --motion_trunks=plain,correlation measures the motion network's trunks side by side
(`--dm_motion_trunk`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402
from consistency import config as config_lib  # noqa: E402
from consistency.stages import depth_motion as depth_motion_stage  # noqa: E402

_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed steps per measurement (the median is reported).")
_SIZES = flags.DEFINE_list("sizes", ["128x416x4x3", "128x160x4x3", "64x96x4x2"], "HEIGHTxWIDTHxBATCHxFRAMES.")
_MODES = flags.DEFINE_list("modes", ["eager", "function", "xla"], "Execution modes: eager, function, xla.")
_TRUNKS = flags.DEFINE_list("motion_trunks", ["plain"], "Motion network trunks: plain, correlation.")
_REPORT = flags.DEFINE_string("report", "", "Markdown report path ('' to only print).")


def _step_fn(height, width, batch, frames, mode, trunk):
  config = config_lib.TrainConfig(model_dir="/tmp/unused", height=height, width=width, dm_clip_length=frames,
                                  dm_motion_trunk=trunk)
  stage = depth_motion_stage.DepthMotionStage(config)
  models = depth_motion_stage.build_networks(depth_motion_stage.network_settings(config))
  variables = [v for m in models.values() for v in m.trainable_variables]
  optimizer = keras.optimizers.Adam(1e-4)
  optimizer.build(variables)
  images = tf.random.uniform([batch, frames, height, width, 3])
  step = tf.Variable(1000, dtype=tf.int64)

  def train_step():
    with tf.GradientTape() as tape:
      losses, _ = stage.compute_losses(models, {"image": images}, step, training=True)
      total = tf.add_n(list(losses.values()))
    optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    return total

  if mode == "eager":
    return train_step
  return tf.function(train_step, jit_compile=(mode == "xla"))


def main(argv):
  del argv
  header = ["size (HxW, batch, frames)", "motion trunk"] + [f"{mode} s/step" for mode in _MODES.value] + [
      f"{mode} examples/s" for mode in _MODES.value]
  rows = []
  for size in _SIZES.value:
    height, width, batch, frames = (int(v) for v in size.split("x"))
    for trunk in _TRUNKS.value:
      seconds = []
      for mode in _MODES.value:
        seconds.append(timing.median_seconds(_step_fn(height, width, batch, frames, mode, trunk), _REPEATS.value))
        print(size, trunk, mode, f"{seconds[-1]:.2f} s/step", flush=True)
      rows.append([f"{height}x{width}, {batch}, {frames}", trunk] + [f"{s:.2f}" for s in seconds] +
                  [f"{batch / s:.2f}" for s in seconds])
  timing.write_report(_REPORT.value, "depth_motion training step", [
      f"Median of {_REPEATS.value} steps after one warm-up step (tracing / compilation excluded), Adam update "
      "included (`python -m benchmarks.depth_motion_step`).",
      timing.markdown_table(header, rows)])


if __name__ == "__main__":
  app.run(main)
