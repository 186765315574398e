"""Where the consistency step's time goes: segmenter forward/backward on the pair, frozen teachers, warp + loss.

    python -m benchmarks.consistency_step [--repeats=5] [--batch=4] [--height=64] [--width=96] [--report=PATH]

Times, under tf.function, median of --repeats calls on random inputs (speed does not depend on pixel values):
  segmenter   forward + backward of the segmenter on both frames of the pairs (what the step needs anyway)
  teachers    forward of the frozen depth and motion networks on the pairs (no gradient)
  warp+loss   both directions' rigid correspondences + logit resampling + every consistency term, with backward
              into the logits
  full step   the stage's whole unlabeled part (all of the above, one graph)
The target of the issue: warp + loss at most 10 % of the full step.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402
from consistency import spatiotemporal  # noqa: E402
from consistency.harness import config as config_lib  # noqa: E402
from consistency.stages import supervised  # noqa: E402
from depth_motion import teachers as teachers_lib  # noqa: E402
from segmentation import segmenter as segmenter_lib  # noqa: E402

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (the median is reported).")
_BATCH = flags.DEFINE_integer("batch", 4, "Pairs per step.")
_HEIGHT = flags.DEFINE_integer("height", 64, "Image height.")
_WIDTH = flags.DEFINE_integer("width", 96, "Image width.")
_REPORT = flags.DEFINE_string("report", "", "Markdown report path ('' to only print).")


def main(argv):
  del argv
  height, width, batch = _HEIGHT.value, _WIDTH.value, _BATCH.value
  config = config_lib.TrainConfig(model_dir="/tmp/unused", height=height, width=width, backbone="resnet18",
                                  nasfpn_filters=64, nasfpn_repeats=2, head_filters=64, head_groups=16)
  segmenter = segmenter_lib.build_segmenter(supervised.segmenter_config(config))
  teachers = teachers_lib.build_networks(teachers_lib.network_settings(config))
  images = tf.random.uniform([batch, 2, height, width, 3])
  frames = tf.concat([images[:, 0], images[:, 1]], axis=0)
  variables = segmenter.trainable_variables

  def logits_of(x):
    return tf.cast(segmenter(x, training=True)["logits"], tf.float32)

  def consistency(logits, depths, motions):
    total = 0.0
    for i, j in ((0, 1), (1, 0)):
      motion, inverse = motions[(i, j)], motions[(j, i)]
      k = 0.5 * (motion["intrinsics"] + inverse["intrinsics"])
      correspondence = spatiotemporal.rigid_correspondence(depths[:, j], depths[:, i], motion["rotation"],
                                                           motion["translation"], k)
      terms = spatiotemporal.consistency_terms(logits[i], logits[j], correspondence, images[:, j])
      total += spatiotemporal.weighted_consistency(terms, spatiotemporal.DEFAULT_WEIGHTS)
    return total

  @tf.function(autograph=False)
  def segmenter_step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(logits_of(frames))
    return tape.gradient(loss, variables)

  @tf.function(autograph=False)
  def teacher_step():
    return teachers_lib.predict(teachers, images)

  depths, motions = teacher_step()
  fixed_logits = tf.split(tf.random.normal([2 * batch, height, width, 21]), 2)

  @tf.function(autograph=False)
  def warp_loss_step():
    with tf.GradientTape() as tape:
      tape.watch(fixed_logits)
      loss = consistency(fixed_logits, depths, motions)
    return tape.gradient(loss, fixed_logits)

  @tf.function(autograph=False)
  def full_step():
    with tf.GradientTape() as tape:
      logits = tf.split(logits_of(frames), 2)
      teacher_depths, teacher_motions = teachers_lib.predict(teachers, images)
      teacher_depths = tf.stop_gradient(teacher_depths)
      loss = consistency(logits, teacher_depths, teacher_motions)
    return tape.gradient(loss, variables)

  times = {name: timing.median_seconds(fn, _REPEATS.value) for name, fn in (
      ("segmenter", segmenter_step), ("teachers", teacher_step), ("warp+loss", warp_loss_step),
      ("full step", full_step))}
  rows = [[name, f"{1000 * t:.1f}", f"{100 * t / times['full step']:.1f} %"] for name, t in times.items()]
  timing.write_report(_REPORT.value, "Consistency step breakdown", [
      f"{batch} pairs at {height}x{width}, light segmenter (ResNet-18, NAS-FPN 64 x 2, head 64), tf.function, median "
      f"of {_REPEATS.value} calls (`python -m benchmarks.consistency_step --repeats={_REPEATS.value}`).",
      timing.markdown_table(["part", "ms", "share of the full step"], rows)])


if __name__ == "__main__":
  app.run(main)
