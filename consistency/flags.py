"""Command-line flags of `python -m consistency.train` and `python -m consistency.evaluate`, and their conversion into
the frozen `TrainConfig`. Flags are read only here, from `main()`; library code receives the config."""

import dataclasses

from absl import flags

from consistency import config as config_lib

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "Directory for checkpoints, summaries, resolved flags and metrics. A run "
                    "resumes automatically from the latest checkpoint found here.")
flags.DEFINE_list("stages", ["toy_regression"], "Training stages to run in order, each into <model_dir>/<stage>. "
                  "Registered stages: see consistency/stages/.")
flags.DEFINE_integer("train_steps", 1000, "Optimizer steps per stage (the total, including resumed steps).")
flags.DEFINE_integer("batch_size", 8, "Global batch size, split evenly over all replicas.")

flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "adam, or sgd with momentum (--momentum).")
flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate.")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "polynomial", "cosine"],
                  "constant; polynomial: (lr - lr_end) (1 - step/train_steps)^lr_power + lr_end (EFC's poly, power "
                  "0.9); cosine: decay to lr_end.")
flags.DEFINE_float("lr_end", 0.0, "Final learning rate of the polynomial and cosine schedules.")
flags.DEFINE_float("lr_power", 0.9, "Power of the polynomial schedule.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps from 0 to the peak learning rate.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (Adam: beta_1).")
flags.DEFINE_float("weight_decay", 0.0, "Decoupled weight decay (AdamW / SGDW style); 0 disables.")
flags.DEFINE_float("clip_norm", 10.0, "Clip gradients to this global norm (across all replicas); 0 disables.")
flags.DEFINE_integer("seed", 0, "Seed of model initialisation, data order and augmentation.")

flags.DEFINE_integer("num_cpu_replicas", 1, "Split the CPU into this many logical devices and train on all of them "
                     "with MirroredStrategy (tests multi-replica code without GPUs). Ignored when GPUs are visible "
                     "or TF_CONFIG is set.")
flags.DEFINE_integer("steps_per_loop", 10, "Training steps per tf.function call (the step count is a tensor: no "
                     "retracing). Loops also end at checkpoint, summary, evaluation and profiling steps.")
flags.DEFINE_bool("run_eagerly", False, "Run the training step eagerly, for debugging (slow).")
flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"],
                  "Keras mixed-precision policy; mixed_float16 adds dynamic loss scaling. Losses stay float32.")

flags.DEFINE_integer("checkpoint_every", 500, "Save a checkpoint every this many steps (and at the end, and on "
                     "SIGTERM / SIGINT).")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept per stage.")
flags.DEFINE_integer("summary_every", 10, "Write scalar summaries and the progress line every this many steps.")
flags.DEFINE_integer("image_summary_every", 100, "Write image summaries every this many steps; 0 disables.")
flags.DEFINE_integer("eval_every", 0, "Evaluate and write metrics.json every this many steps; 0: only at the end.")
flags.DEFINE_list("profile_steps", [], "START,END: write a TensorBoard profiler trace of these steps.")
flags.DEFINE_list("warm_start", [], "part=checkpoint,...: initialise a named model of the stage from another run's "
                  "checkpoint (file prefix or directory). Fails unless every variable of the part is restored.")

flags.DEFINE_enum("dataset", "synthetic", ["synthetic", "scannet"], "Video source of the data-driven stages: "
                  "the built-in synthetic indoor video, or a ScanNet export (--data_root).")
flags.DEFINE_string("data_root", "", "Dataset root. synthetic: cache directory, generated on first use (default: "
                    "under ~/.cache/video-consistency-segmentation, named after the synthetic settings).")
flags.DEFINE_integer("synthetic_scenes", 20, "Scenes of the generated synthetic video (80/20 train/val split).")
flags.DEFINE_integer("synthetic_frames", 100, "Frames per generated synthetic scene.")
flags.DEFINE_integer("synthetic_seed", 0, "Seed of the synthetic video.")
flags.DEFINE_integer("height", 128, "Working image height (a multiple of 32 for the networks).")
flags.DEFINE_integer("width", 160, "Working image width (a multiple of 32 for the networks).")
flags.DEFINE_float("label_fraction", 1.0, "Fraction of training frames whose labels are kept, in (0, 1] (seeded by "
                   "--seed, nested: a smaller fraction keeps a subset of a larger one).")
flags.DEFINE_integer("eval_max_batches", 0, "Evaluate on at most this many batches of the validation split (0: all).")

flags.DEFINE_enum("backbone", "resnet50", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
                  "ResNet backbone of the segmenter (keras-cv, built from arguments, randomly initialised).")
flags.DEFINE_list("backbone_filters", [], "Four stack widths of the backbone (default: the architecture's).")
flags.DEFINE_list("backbone_blocks", [], "Four block counts of the backbone (default: the architecture's).")
flags.DEFINE_integer("nasfpn_filters", 256, "Channels of the NAS-FPN pyramid.")
flags.DEFINE_integer("nasfpn_repeats", 5, "NAS-FPN repeats (7 merging cells each).")
flags.DEFINE_integer("head_filters", 128, "Channels of the semantic FPN head.")
flags.DEFINE_integer("head_groups", 32, "GroupNorm groups of the head (must divide --head_filters).")
flags.DEFINE_list("class_weights", [], "Per-class weights of the cross-entropy (21 values); default: all 1.")


def _parse_warm_start(items):
  parts = []
  for item in items:
    part, sep, path = item.partition("=")
    if not sep or not part or not path:
      raise ValueError(f"--warm_start entries must be part=checkpoint. Received: {item!r}")
    parts.append((part, path))
  return tuple(parts)


def _numbers(kind, what):
  def parse(name, values):
    try:
      return tuple(kind(v) for v in values)
    except ValueError:
      raise ValueError(f"--{name} must be a comma-separated list of {what}. Received: {values}") from None
  return parse


# List flags whose items are not strings; every other list flag becomes a tuple of strings.
_LIST_PARSERS = {
    "profile_steps": _numbers(int, "integers (START,END)"),
    "backbone_filters": _numbers(int, "integers"),
    "backbone_blocks": _numbers(int, "integers"),
    "class_weights": _numbers(float, "numbers"),
    "warm_start": lambda name, values: _parse_warm_start(values),
}


def config_from_flags():
  """The `TrainConfig` the parsed flags describe: every field of TrainConfig is the flag of the same name."""
  if not FLAGS.model_dir:
    raise ValueError("--model_dir is required.")
  values = {}
  for field in dataclasses.fields(config_lib.TrainConfig):
    value = FLAGS[field.name].value
    if field.name in _LIST_PARSERS:
      value = _LIST_PARSERS[field.name](field.name, value)
    elif isinstance(value, list):
      value = tuple(value)
    values[field.name] = value
  return config_lib.TrainConfig(**values)
