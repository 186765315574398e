"""Each stage's training step against what this machine computes: ms/step, examples/s, GFLOP/step, % of the limit.

    python -m benchmarks.stage_step [--cases=segmentation,segmentation_resnet18,depth_motion,consistency,control,
                                             pseudo_label,consistency_pseudo_label,efc,depth_motion_kitti]
                                    [--modes=function,xla] [--precisions=float32,mixed_bfloat16] [--steps=5]
                                    [--repeats=3] [--profile=depth_motion] [--report=benchmarks/reports/stage_step.md]

A case is a shipped flagfile (configs/synthetic_<stage>.flags) as a user runs it, on a few scenes of its synthetic
video; segmentation_resnet18 is the segmentation flagfile with a random ResNet-18 encoder instead of its ImageNet
EfficientNet-Lite0; depth_motion_kitti is the depth_motion flagfile at Depth from Videos in the Wild's KITTI size
(128x416, triplets). One step is exactly the trainer's: `Trainer` builds the stage's models and optimizer from the config and
its compiled training loop (`--jit_compile` for xla, `--mixed_precision` for bf16) runs --steps steps on one batch of
the stage's own pipeline, repeated in memory (the input pipeline is excluded; speed does not depend on pixel values).
The time per step is the median of --repeats loops, after a first loop that traces (and compiles).

The limit: the faster of a float32 2048^3 matmul and a float32 3x3 128->128 convolution forward + backward, both
under tf.function, measured first in the same process. GFLOP/step are counted by the TensorFlow profiler on the
graph of one step (forward, backward and update; ops without a registered count, e.g. resampling, count 0). The top
ops of --profile cases come from a profiler trace of --steps steps (self time by op type).
"""

import collections
import glob
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402
from consistency import stages  # noqa: E402,F401  (registers the stages)
from consistency.harness import distribution  # noqa: E402
from consistency.harness import flags as flags_lib  # noqa: E402
from consistency.harness import stage as stage_lib  # noqa: E402
from consistency.harness import trainer as trainer_lib  # noqa: E402

# label: (flagfile, overrides). A few scenes of the flagfile's video: the batch's shapes are the flagfile's.
CASES = {
    "segmentation": ("configs/synthetic_segmentation.flags", ()),  # ImageNet EfficientNet-Lite0
    "segmentation_resnet18": ("configs/synthetic_segmentation.flags", ("--backbone=resnet18",
                                                                       "--backbone_weights=none")),
    "depth_motion": ("configs/synthetic_depth_motion.flags", ()),
    "consistency": ("configs/synthetic_consistency.flags", ("--stages=consistency",)),
    # The consistency stage's other columns of consistency.paper_tables: the control, pseudo-labels alone and with the
    # 4D consistency loss (the step cost of each method at the same data and segmenter).
    "control": ("configs/synthetic_consistency.flags", ("--stages=control",)),
    "pseudo_label": ("configs/synthetic_consistency.flags", ("--stages=consistency", "--consistency_weight=0",
                                                             "--pseudo_label_weight=1")),
    "consistency_pseudo_label": ("configs/synthetic_consistency.flags", ("--stages=consistency",
                                                                         "--pseudo_label_weight=1")),
    "efc": ("configs/synthetic_efc.flags", ()),
    "depth_motion_kitti": ("configs/synthetic_depth_motion.flags", ("--height=128", "--width=416",
                                                                    "--dm_clip_length=3")),
}
TOP_OPS = 12  # op types listed per profiled case
_SMALL_VIDEO = ("--synthetic_scenes=6", "--synthetic_frames=24")

_CASES = flags.DEFINE_list("cases", list(CASES), f"Cases to run: {', '.join(CASES)}.")
_MODES = flags.DEFINE_list("modes", ["function", "xla"], "function (tf.function) and/or xla (--jit_compile).")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "float32 and/or mixed_bfloat16.")
_STEPS = flags.DEFINE_integer("steps", 5, "Steps per timed loop.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed loops per cell (the median is reported).")
_PROFILE = flags.DEFINE_list("profile", ["depth_motion"], "Cases whose tf.function steps are traced for the top ops.")
_REPORT = flags.DEFINE_string("report", "benchmarks/reports/stage_step.md", "Markdown report path ('' to skip).")


def machine_limits():
  """{name: GFLOP/s} of a float32 and a bf16 2048^3 matmul and a float32 128-channel 3x3 convolution fwd + bwd."""
  limits = {}
  for dtype in (tf.float32, tf.bfloat16):
    a = tf.random.uniform([2048, 2048], dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda a=a: tf.matmul(a, a))
    limits[f"matmul {dtype.name}"] = 2 * 2048**3 / timing.median_seconds(matmul, 5) / 1e9
  x = tf.random.uniform([8, 64, 96, 128])
  kernel = tf.Variable(tf.random.normal([3, 3, 128, 128], stddev=0.05))

  @tf.function
  def conv():
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = tf.reduce_sum(tf.square(tf.nn.conv2d(x, kernel, 1, "SAME")))
    return tape.gradient(y, [x, kernel])

  limits["conv3x3 float32 fwd+bwd"] = 3 * 2 * 9 * 128 * 128 * 8 * 64 * 96 / timing.median_seconds(conv, 5) / 1e9
  return limits


def case_config(label, model_dir, mode, precision):
  flagfile, overrides = CASES[label]
  overrides = _SMALL_VIDEO + overrides + (f"--jit_compile={mode == 'xla'}",
                                          "--mixed_precision=" + ("none" if precision == "float32" else precision))
  return flags_lib.read_flagfile_config(flagfile, model_dir, overrides)


def counted_gflop(trainer, strategy, batch):
  """GFLOP of one training step's graph, as the TensorFlow profiler counts them."""
  graph = tf.function(lambda b: strategy.run(trainer._replica_step, (b,)),  # pylint: disable=protected-access
                      autograph=False).get_concrete_function(batch).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder(
      tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
  return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops / 1e9


def top_ops(loop, iterator, steps, count):
  """[(op type, % of self time)] of `steps` training steps, from a profiler trace."""
  logdir = tempfile.mkdtemp(prefix="stage_step_profile_")
  tf.profiler.experimental.start(logdir)
  tf.nest.map_structure(np.asarray, loop(iterator, tf.constant(steps)))
  tf.profiler.experimental.stop()
  from xprof.convert import raw_to_tool_data  # pylint: disable=import-outside-toplevel  (TensorBoard's profile plugin)
  data, _ = raw_to_tool_data.xspace_to_tool_data(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
                                                 "framework_op_stats", {})
  table = json.loads(data)[0]
  columns = [column["id"] for column in table["cols"]]
  by_type = collections.Counter()
  for row in table["rows"]:
    cells = dict(zip(columns, (cell["v"] if cell else None for cell in row["c"])))
    if cells["type"] != "IDLE":
      by_type[cells["type"]] += cells["total_self_time"]
  total = sum(by_type.values())
  return [(name, 100 * t / total) for name, t in by_type.most_common(count)]


def _cause(error):
  """The line of a TensorFlow error that says what failed (not "Graph execution error:" or the traceback)."""
  lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
  skipped = ("Graph execution error", "Detected at node", "File ", "[[", "Stack trace", "in user code")
  causes = [line for line in lines if line and not line.startswith(skipped)]
  return (causes[-1] if causes else lines[0])[:240]


def measure(label, mode, precision, limit, profile):
  """One cell: {"ms": ms/step, "examples": examples/s, "gflop": GFLOP/step, "limit %", "top ops"} or {"error"}."""
  with tempfile.TemporaryDirectory(prefix="stage_step_") as model_dir:
    config = case_config(label, model_dir, mode, precision)
    strategy = distribution.create_strategy(config.num_cpu_replicas)
    name = config.stages[-1]
    try:
      stage = stage_lib.get(name)(config)
      trainer = trainer_lib.Trainer(stage, config, strategy, os.path.join(model_dir, name))
      batch = next(iter(stage.train_dataset(0)))
      iterator = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))
      loop = trainer._build_loop(iterator)  # pylint: disable=protected-access  (the loop the trainer runs)
      steps = tf.constant(_STEPS.value)
      seconds = timing.median_seconds(lambda: loop(iterator, steps), _REPEATS.value) / _STEPS.value
      gflop = counted_gflop(trainer, strategy, batch)
      cell = {"ms": 1000 * seconds, "examples": stage.batch_size_of(batch) / seconds, "gflop": gflop,
              "limit %": 100 * gflop / seconds / limit}
      if profile:
        cell["top ops"] = top_ops(loop, iterator, _STEPS.value, TOP_OPS)
      return cell
    except (tf.errors.OpError, ValueError, TypeError) as e:
      return {"error": f"{type(e).__name__}: {_cause(e)}"}
    finally:
      keras.mixed_precision.set_global_policy("float32")


def main(argv):
  del argv
  unknown = sorted(set(_CASES.value) - set(CASES))
  if unknown:
    raise app.UsageError(f"--cases: unknown {unknown}; known: {sorted(CASES)}.")
  limits = machine_limits()
  for name, value in limits.items():
    print(f"limit: {name} {value:.0f} GFLOP/s", flush=True)
  limit = max(limits["matmul float32"], limits["conv3x3 float32 fwd+bwd"])
  rows, profiles = [], []
  for label in _CASES.value:
    for precision in _PRECISIONS.value:
      for mode in _MODES.value:
        profile = label in _PROFILE.value and mode == "function"
        cell = measure(label, mode, precision, limit, profile)
        if "error" in cell:
          print(label, precision, mode, cell["error"], flush=True)
          rows.append([label, precision, mode, "fails", "", "", "", cell["error"]])
          continue
        print(label, precision, mode, f"{cell['ms']:.0f} ms/step {cell['examples']:.1f} examples/s "
              f"{cell['gflop']:.2f} GFLOP {cell['limit %']:.1f} % of the limit", flush=True)
        rows.append([label, precision, mode, f"{cell['ms']:.0f}", f"{cell['examples']:.1f}", f"{cell['gflop']:.2f}",
                     f"{cell['limit %']:.1f}", ""])
        if "top ops" in cell:
          profiles.append(f"Top ops of the {label} step ({precision}, tf.function, self time of {_STEPS.value} steps):\n\n" +
                          timing.markdown_table(["op type", "% of op time"],
                                                [[op, f"{share:.1f}"] for op, share in cell["top ops"]]))
  timing.write_report(_REPORT.value, "Training step of each stage against the machine's limit", [
      "`python -m benchmarks.stage_step` (see its docstring for what is measured).",
      "Limits: " + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in limits.items()) +
      f"; the limit used below: {limit:.0f} GFLOP/s.",
      timing.markdown_table(["case", "precision", "mode", "ms/step", "examples/s", "GFLOP/step", "% of limit", "note"],
                            rows)] + profiles)


if __name__ == "__main__":
  app.run(main)
