"""Command-line flags of `python -m consistency.train` and `python -m consistency.evaluate`, and their conversion into
the frozen `TrainConfig`. Every field of TrainConfig is one flag of the same name, defined here from the field's
declaration (`config.setting`: default, help, choices): bool, int, float and str fields become flags of that type, str
fields with choices enum flags, tuple fields list flags (`_LIST_PARSERS` reads the lists whose items are not strings).
Flags are read only here, from `main()`; library code receives the config."""

import copy
import dataclasses
import os

from absl import flags

from consistency.harness import config as config_lib

FLAGS = flags.FLAGS
# The resolved flags of a run, written into its --model_dir by `consistency.train`.
FLAGS_FILE = "flags.txt"
# Tuple fields whose default items are pairs, written back as "key=value" list items.
_PAIR_LISTS = ("warm_start", "dm_loss_weights")


def _list_default(name, value):
  if name in _PAIR_LISTS:
    return [f"{key}={item}" for key, item in value]
  return [str(item) for item in value]


def define_config_flags(flag_values=FLAGS):
  """Defines the flag of every TrainConfig field in `flag_values`, from the field's declaration."""
  for field in dataclasses.fields(config_lib.TrainConfig):
    name, help_text, choices = field.name, field.metadata["help"], field.metadata["choices"]
    default = None if field.default is dataclasses.MISSING else field.default
    if choices:
      flags.DEFINE_enum(name, default, list(choices), help_text, flag_values=flag_values)
    elif field.type is bool:
      flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
    elif field.type is int:
      flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
    elif field.type is float:
      flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
    elif field.type is tuple:
      flags.DEFINE_list(name, _list_default(name, default), help_text, flag_values=flag_values)
    else:
      flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


define_config_flags()


def _parse_warm_start(items):
  parts = []
  for item in items:
    part, sep, path = item.partition("=")
    if not sep or not part or not path:
      raise ValueError(f"--warm_start entries must be part=checkpoint. Received: {item!r}")
    parts.append((part, path))
  return tuple(parts)


def _parse_loss_weights(items):
  weights = []
  for item in items:
    term, sep, value = item.partition("=")
    try:
      weights.append((term, float(value)))
    except ValueError:
      raise ValueError(f"--dm_loss_weights entries must be term=number. Received: {item!r}") from None
    if not sep or not term:
      raise ValueError(f"--dm_loss_weights entries must be term=number. Received: {item!r}")
  return tuple(weights)


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
    "camvid_intrinsics": _numbers(float, "numbers (fx,fy,cx,cy)"),
    "video_intrinsics": _numbers(float, "numbers (fx,fy,cx,cy)"),
    "warm_start": lambda name, values: _parse_warm_start(values),
    "efc_loss_levels": _numbers(int, "integers"),
    "efc_consistency_levels": _numbers(int, "integers"),
    "efc_flow_levels": _numbers(int, "integers"),
    "dm_residual_ramp_steps": _numbers(int, "integers (BEGIN,END)"),
    "dm_photometric_blurs": _numbers(int, "positive integers"),
    "dm_loss_weights": lambda name, values: _parse_loss_weights(values),
}


def config_from_flags(flag_values=None):
  """The `TrainConfig` the parsed flags describe: every field of TrainConfig is the flag of the same name.

  Args:
    flag_values: the parsed `flags.FlagValues` to read (default: the global FLAGS); e.g. a run's flags.txt parsed
      into a private copy (`read_run_config`).
  """
  flag_values = FLAGS if flag_values is None else flag_values
  if not flag_values["model_dir"].value:
    raise ValueError("--model_dir is required.")
  values = {}
  for field in dataclasses.fields(config_lib.TrainConfig):
    value = flag_values[field.name].value
    if field.name in _LIST_PARSERS:
      value = _LIST_PARSERS[field.name](field.name, value)
    elif isinstance(value, list):
      value = tuple(value)
    values[field.name] = value
  if values["export_dir"] and not os.path.isabs(values["export_dir"]):
    values["export_dir"] = os.path.join(values["model_dir"], values["export_dir"])
  return config_lib.TrainConfig(**values)


def _flag_name(line):
  """The flag a flagfile line sets ("--efc_flow_filters=8" -> "efc_flow_filters"), or None."""
  line = line.strip()
  if not line.startswith("--"):
    return None
  return line[2:].split("=", 1)[0]


def _config_from_lines(lines, overrides, model_dir):
  """The TrainConfig of flag lines ("--height=64"; other lines and other flags ignored) with `overrides` on top.

  The lines are parsed into private copies of the TrainConfig flags reset to their defaults: the process's own flags
  (e.g. another command's --height) are left as they are and do not leak into the config.

  Raises:
    flags.Error, ValueError: the lines do not describe a valid TrainConfig.
  """
  fields = {field.name for field in dataclasses.fields(config_lib.TrainConfig)}
  values = flags.FlagValues()
  for name in fields:
    values[name] = copy.deepcopy(FLAGS[name])
    values[name].unparse()
  booleans = {name for name in fields if isinstance(values[name].default, bool)}
  negated = {f"no{name}" for name in booleans}  # how a flagfile writes a false boolean
  kept = [line.strip() for line in lines if _flag_name(line) in fields | negated]
  values(["config"] + kept + list(overrides) + [f"--model_dir={model_dir}"])
  return config_from_flags(values)


def read_run_config(model_dir, overrides=()):
  """The `TrainConfig` of a run, from its `<model_dir>/flags.txt`, with `overrides` applied on top.

  Only the lines naming TrainConfig fields are parsed (`_config_from_lines`). The config's model_dir is `model_dir`
  (the run may have been moved).

  Args:
    model_dir: the run's --model_dir.
    overrides: flag strings ("--eval_max_batches=0") applied after the run's own flags, e.g. a command line's.

  Raises:
    FileNotFoundError: naming flags.txt when it is missing.
    ValueError: naming flags.txt when it does not parse into a valid TrainConfig.
  """
  path = os.path.join(model_dir, FLAGS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No {path}: expected the resolved flags that consistency.train writes into its "
                            "--model_dir.")
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = f.readlines()
  try:
    return _config_from_lines(lines, overrides, model_dir)
  except (flags.Error, ValueError) as e:
    raise ValueError(f"The run's flags {path} do not describe a valid training config: {e}") from None


def read_flagfile_config(path, model_dir, overrides=()):
  """The `TrainConfig` a flagfile (e.g. configs/synthetic_depth_motion.flags) describes, with `overrides` on top.

  Raises:
    ValueError: naming the flagfile when it does not parse into a valid TrainConfig.
  """
  with open(path, encoding="utf-8") as f:
    lines = f.readlines()
  try:
    return _config_from_lines(lines, overrides, model_dir)
  except (flags.Error, ValueError) as e:
    raise ValueError(f"The flagfile {path} does not describe a valid training config: {e}") from None


def given_on_command_line(flag_values=None):
  """The TrainConfig flags set explicitly (command line or --flagfile) in `flag_values`, as flag strings."""
  flag_values = FLAGS if flag_values is None else flag_values
  return [flag_values[field.name].serialize() for field in dataclasses.fields(config_lib.TrainConfig)
          if flag_values[field.name].present]
