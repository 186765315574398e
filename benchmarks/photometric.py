"""The depth/motion loss's pooled weighted SSIM and batched-matmul rotation vs their predecessors, forward + backward.

    python -m benchmarks.photometric [--repeats=25] [--batch=8 --height=64 --width=96]

At the depth_motion train step's size (4 pairs in both directions at 64 x 96; one call per photometric blur level):
  weighted_ssim: one float64 3x3 average pooling of every weighted window sum (shipped) and the same with a depthwise
    convolution of constant kernel as the window mean, vs the nine strided windows with two-pass variances (old);
    gradients w.r.t. both images (the loss stops the weight's).
  rigid_motion._rotate on a [B, H, W, 3] point field: reshape + batched matmul (new) vs einsum("bij,b...j->b...i")
    (old); gradients w.r.t. the rotation and the field.
Each inside tf.function; the candidates of one function are called alternately in one process and the median of each
is reported with the ratio old / candidate (> 1: the candidate is faster); on a shared machine quote the ratio, not
the times. The references are the tests' private copies of the old code.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402
from unittest import mock  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from depth_motion import photometric  # noqa: E402
from depth_motion.geometry import rigid_motion  # noqa: E402
from tests.depth_motion import test_photometric_equivalence  # noqa: E402
from tests.geometry import test_rigid_motion  # noqa: E402

_REPEATS = flags.DEFINE_integer("repeats", 25, "Timed calls of each candidate (alternating; the median is reported).")
_BATCH = flags.DEFINE_integer("batch", 8, "Images per call (the train step: batch_size pairs, both directions).")
_HEIGHT = flags.DEFINE_integer("height", 64, "Image height.")
_WIDTH = flags.DEFINE_integer("width", 96, "Image width.")


def _depthwise_window_means(values):
  """The alternative to `photometric._window_means`: a depthwise 3x3 convolution with a constant 1/9 kernel."""
  kernel = tf.fill([3, 3, values.shape[-1], 1], tf.constant(1.0 / 9.0, values.dtype))
  return tf.nn.depthwise_conv2d(values, kernel, [1, 1, 1, 1], "VALID")


def _ssim_step(ssim, window_means=None):
  """tf.function: [dissimilarity, pooled weight, d/dx, d/dy] of sum(dissimilarity * upstream)."""

  @tf.function
  def step(x, y, weight, upstream):
    with tf.GradientTape() as tape:
      tape.watch([x, y])
      dissimilarity, pooled_weight = ssim(x, y, weight)
      objective = tf.reduce_sum(dissimilarity * upstream)
    return [dissimilarity, pooled_weight] + tape.gradient(objective, [x, y])

  if window_means is None:
    return step

  def patched(*args):  # the patch only matters while tracing: the graph keeps the op it was traced with
    with mock.patch.object(photometric, "_window_means", window_means):
      return step(*args)
  return patched


def _rotate_step(rotate):
  """tf.function: [R v, d/dR, d/dv] of sum(R v * upstream)."""

  @tf.function
  def step(rotation, vectors, upstream):
    with tf.GradientTape() as tape:
      tape.watch([rotation, vectors])
      rotated = rotate(rotation, vectors)
    return [rotated] + tape.gradient(rotated, [rotation, vectors], output_gradients=upstream)
  return step


def _compare(title, candidates, inputs, names, repeats):
  """Times the candidates alternately (the first is the reference) and prints medians, deviations and ratios."""
  outputs = {}
  for name, step in candidates.items():  # trace and warm up
    for _ in range(2):
      outputs[name] = tf.nest.map_structure(np.asarray, step(*inputs))
  times = {name: [] for name in candidates}
  for _ in range(repeats):
    for name, step in candidates.items():
      start = time.perf_counter()
      tf.nest.map_structure(np.asarray, step(*inputs))
      times[name].append(time.perf_counter() - start)
  medians = {name: float(np.median(values)) for name, values in times.items()}
  reference = next(iter(candidates))
  print(f"{title} ({repeats} calls each, forward + backward in tf.function):")
  for name, median in medians.items():
    line = f"  {name}: median {median * 1e3:.2f} ms"
    if name != reference:
      deviations = [np.abs(new - old).max() / max(np.abs(old).max(), 1e-30)
                    for new, old in zip(outputs[name], outputs[reference])]
      line += (f", ratio old / this {medians[reference] / median:.2f}x; max |difference| / max |old| of "
               + ", ".join(f"{n} {d:.1e}" for n, d in zip(names, deviations)))
    print(line)


def main(argv):
  del argv
  batch, height, width = _BATCH.value, _HEIGHT.value, _WIDTH.value
  x, y, weight = test_photometric_equivalence.random_ssim_inputs(batch, height, width, seed=0)
  upstream = tf.random.stateless_uniform([batch, height - 2, width - 2, 3], seed=[1, 2])
  _compare(f"weighted_ssim at [{batch}, {height}, {width}, 3]", {
      "nine windows (old)": _ssim_step(
          test_photometric_equivalence._reference_weighted_ssim),  # pylint: disable=protected-access
      "avg_pool2d (new, shipped)": _ssim_step(photometric.weighted_ssim),
      "depthwise conv": _ssim_step(photometric.weighted_ssim, _depthwise_window_means),
  }, (x, y, weight, upstream), ("dissimilarity", "pooled weight", "d/dx", "d/dy"), _REPEATS.value)

  rotation, points = test_rigid_motion.random_rotate_inputs(batch, (height, width), seed=0)
  upstream = tf.random.stateless_normal(points.shape, seed=[3, 4])
  _compare(f"rigid_motion._rotate of a [{batch}, {height}, {width}, 3] field", {
      "einsum (old)": _rotate_step(test_rigid_motion._reference_rotate),  # pylint: disable=protected-access
      "matmul (new)": _rotate_step(rigid_motion._rotate),  # pylint: disable=protected-access
  }, (rotation, points, upstream), ("R v", "d/dR", "d/dv"), _REPEATS.value)


if __name__ == "__main__":
  app.run(main)
