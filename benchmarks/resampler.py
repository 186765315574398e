"""Resampler benchmark: ours vs keras.ops.image.map_coordinates (forward + backward) and vs TensorFlow's
ImageProjectiveTransformV3 (forward, homography warps), in eager, tf.function and XLA (jit_compile) modes.

    python -m benchmarks.resampler [--repeats=5] [--report=benchmarks/reports/resampler.md]

Prints a table of median milliseconds and the ratio of each alternative to ours in the same mode (> 1: ours is
faster), and writes it as markdown to --report. All timings are taken side by side in one run.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402
from depth_motion import geometry  # noqa: E402

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (the median is reported).")
_REPORT = flags.DEFINE_string("report", "benchmarks/reports/resampler.md", "Markdown report path ('' to skip).")
_MODES = flags.DEFINE_list("modes", ["eager", "function", "xla"], "Execution modes to time.")

# Realistic shapes: images at the depth/motion resolution, and stride-4 features of a segmenter.
GRADIENT_CASES = {"image [8,128,416,3]": (8, 128, 416, 3), "features [8,32,104,256]": (8, 32, 104, 256)}
HOMOGRAPHY_CASE = ("image [8,128,416,3]", (8, 128, 416, 3))


def map_coordinates_resample(image, coords):
  """The same job through keras.ops.image.map_coordinates: order-1 interpolation over the whole [B, H, W, C] tensor
  with integer batch/channel coordinates (so only x and y actually interpolate), zeros outside."""
  shape = tf.shape(image)
  out_shape = tf.concat([tf.shape(coords)[:-1], shape[3:]], axis=0)
  b = tf.cast(tf.range(shape[0])[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.float32)
  c = tf.cast(tf.range(shape[3]), tf.float32)
  full = [tf.broadcast_to(b, out_shape), tf.broadcast_to(coords[..., 1:2], out_shape),
          tf.broadcast_to(coords[..., 0:1], out_shape), tf.broadcast_to(c, out_shape)]
  return keras.ops.image.map_coordinates(image, full, order=1, fill_mode="constant", fill_value=0.0)


def ours_resample(image, coords):
  return geometry.resample(image, coords, boundary="zeros")


def _forward_backward(resample_fn):
  def step(image, coords, weights):
    with tf.GradientTape() as tape:
      tape.watch([image, coords])
      loss = tf.reduce_sum(resample_fn(image, coords) * weights)
    return tape.gradient(loss, [image, coords])
  return step


def _compile(fn, mode):
  if mode == "eager":
    return fn
  return tf.function(fn, jit_compile=(mode == "xla"))


def _homography(batch, height, width):
  """A mild random homography per sample (the depth warp of a tilted plane), as [B, 3, 3] and the V3 8-vector."""
  rng = np.random.default_rng(0)
  mats = []
  for _ in range(batch):
    m = np.eye(3) + rng.normal(scale=[[2e-2, 2e-2, 3.0], [2e-2, 2e-2, 3.0], [2e-5, 2e-5, 0]], size=(3, 3))
    mats.append(m / m[2, 2])
  mats = np.stack(mats).astype(np.float32)
  return tf.constant(mats), tf.constant(mats.reshape(batch, 9)[:, :8])


def ours_homography(image, homography):
  shape = tf.shape(image)
  grid = geometry.pixel_grid(shape[1], shape[2])
  points = tf.concat([grid, tf.ones_like(grid[..., :1])], axis=-1)
  mapped = tf.einsum("bij,hwj->bhwi", homography, points)
  return geometry.resample(image, mapped[..., :2] / mapped[..., 2:], boundary="zeros")


def projective_transform_v3(image, transforms):
  shape = tf.shape(image)
  return tf.raw_ops.ImageProjectiveTransformV3(images=image, transforms=transforms, output_shape=shape[1:3],
                                               fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def _check_agreement(image, coords, homography, transforms):
  """The contenders compute the same thing (so the timings compare like with like)."""
  small = image[:1, :16, :24, :2]
  small_coords = coords[:1, :16, :24] / 8.0
  np.testing.assert_allclose(map_coordinates_resample(small, small_coords), ours_resample(small, small_coords),
                             atol=1e-4)
  ours = ours_homography(image[:1], homography[:1]).numpy()
  theirs = projective_transform_v3(image[:1], transforms[:1]).numpy()
  inner = (slice(None), slice(4, -4), slice(4, -4))
  np.testing.assert_allclose(ours[inner], theirs[inner], atol=1e-3)


def main(argv):
  del argv
  repeats = _REPEATS.value
  rows = []
  header = ["case", "mode", "ours ms", "map_coordinates ms", "ratio (theirs/ours)"]
  for case, shape in GRADIENT_CASES.items():
    batch, height, width, _ = shape
    image = tf.random.normal(shape)
    coords = geometry.pixel_grid(height, width)[tf.newaxis] + tf.random.uniform([batch, height, width, 2], -4, 4)
    weights = tf.random.normal(shape)
    for mode in _MODES.value:
      ours = _compile(_forward_backward(ours_resample), mode)
      theirs = _compile(_forward_backward(map_coordinates_resample), mode)
      t_ours = timing.median_seconds(lambda: ours(image, coords, weights), repeats)
      t_theirs = timing.median_seconds(lambda: theirs(image, coords, weights), repeats)
      rows.append([f"fwd+bwd {case}", mode, f"{1e3 * t_ours:.1f}", f"{1e3 * t_theirs:.1f}",
                   f"{t_theirs / t_ours:.2f}"])
      print(" | ".join(rows[-1]), flush=True)

  case, shape = HOMOGRAPHY_CASE
  image = tf.random.normal(shape)
  homography, transforms = _homography(shape[0], shape[1], shape[2])
  _check_agreement(image, geometry.pixel_grid(shape[1], shape[2])[tf.newaxis] * tf.ones([shape[0], 1, 1, 1]),
                   homography, transforms)
  rows_h = []
  header_h = ["case", "mode", "ours ms", "ImageProjectiveTransformV3 ms", "ratio (theirs/ours)"]
  for mode in _MODES.value:
    ours = _compile(ours_homography, mode)
    theirs = _compile(projective_transform_v3, mode)
    try:
      t_theirs = timing.median_seconds(lambda: theirs(image, transforms), repeats)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:  # no XLA kernel for the op
      t_theirs = None
      print(f"ImageProjectiveTransformV3 in mode {mode}: not available ({type(e).__name__})")
    t_ours = timing.median_seconds(lambda: ours(image, homography), repeats)
    rows_h.append([f"fwd homography {case}", mode, f"{1e3 * t_ours:.1f}",
                   "n/a" if t_theirs is None else f"{1e3 * t_theirs:.1f}",
                   "n/a" if t_theirs is None else f"{t_theirs / t_ours:.2f}"])
    print(" | ".join(rows_h[-1]), flush=True)

  timing.write_report(_REPORT.value, "Resampler benchmark", [
      f"Median of {repeats} calls; ratio > 1 means ours is faster. Command: `python -m benchmarks.resampler`.",
      timing.markdown_table(header, rows), timing.markdown_table(header_h, rows_h)])


if __name__ == "__main__":
  app.run(main)
