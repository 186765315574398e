"""geometry.motion_from_flow (batched-matmul normal equations) vs its einsum predecessor, forward + backward.

    python -m benchmarks.pose_solver [--repeats=25] [--batch=8 --height=64 --width=96]

At MotionNet's least-squares call (4 pairs in both directions at 64 x 96, 5 robust iterations with the translation
prior), each solver inside tf.function computing the pose and its gradient w.r.t. flow, depth, intrinsics and
confidence. The two are called alternately in one process and the median of each is reported with their ratio
(> 1: the new solver is faster); on a shared machine quote the ratio, not the times.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from depth_motion import geometry  # noqa: E402
from depth_motion import motion_net  # noqa: E402
from tests.geometry import test_pose_from_flow  # noqa: E402

_REPEATS = flags.DEFINE_integer("repeats", 25, "Timed calls of each solver (alternating; the median is reported).")
_BATCH = flags.DEFINE_integer("batch", 8, "Flow fields per call (MotionNet: batch_size pairs, both directions).")
_HEIGHT = flags.DEFINE_integer("height", 64, "Flow height.")
_WIDTH = flags.DEFINE_integer("width", 96, "Flow width.")


def _forward_backward(solver):
  kwargs = dict(iterations=motion_net.POSE_ITERATIONS, robust_scale=motion_net.POSE_ROBUST_SCALE,
                translation_prior=motion_net.POSE_TRANSLATION_PRIOR)

  @tf.function
  def step(flow, depth, intrinsics, confidence):
    inputs = [flow, depth, intrinsics, confidence]
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      rotation, translation = solver(*inputs, **kwargs)
      objective = tf.reduce_sum(rotation) + tf.reduce_sum(translation)
    return [rotation, translation] + tape.gradient(objective, inputs)
  return step


def main(argv):
  del argv
  inputs = test_pose_from_flow.random_solver_inputs(_BATCH.value, _HEIGHT.value, _WIDTH.value)
  reference = test_pose_from_flow._reference_motion_from_flow  # pylint: disable=protected-access
  solvers = {"einsum (old)": _forward_backward(reference), "matmul (new)": _forward_backward(geometry.motion_from_flow)}
  times = {name: [] for name in solvers}
  outputs = {}
  for name, step in solvers.items():  # trace and warm up
    for _ in range(2):
      outputs[name] = tf.nest.map_structure(np.asarray, step(*inputs))
  deviations = [np.abs(new - old).max() / np.abs(old).max()
                for new, old in zip(outputs["matmul (new)"], outputs["einsum (old)"])]
  for _ in range(_REPEATS.value):
    for name, step in solvers.items():
      start = time.perf_counter()
      tf.nest.map_structure(np.asarray, step(*inputs))
      times[name].append(time.perf_counter() - start)
  medians = {name: float(np.median(values)) for name, values in times.items()}
  shape = f"[{_BATCH.value}, {_HEIGHT.value}, {_WIDTH.value}]"
  for name, median in medians.items():
    print(f"{name}: median {median * 1e3:.1f} ms forward + backward at {shape} ({_REPEATS.value} calls)")
  print("new vs old, max |difference| / max |old| of R, t, d/d(flow, depth, intrinsics, confidence): " +
        ", ".join(f"{deviation:.1e}" for deviation in deviations))
  print(f"ratio old / new: {medians['einsum (old)'] / medians['matmul (new)']:.2f}x")


if __name__ == "__main__":
  app.run(main)
