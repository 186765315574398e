"""Exports a trained segmenter as a SavedModel that takes uint8 images of any size and returns class maps.

    python -m segmentation.export --model_dir=/tmp/run --output_dir=/tmp/segmenter_saved_model [--checkpoint=PATH]
        [--stage=efc]

Reads what the segmentation stage leaves in `<model_dir>/segmentation/` (or the efc stage in `<model_dir>/efc/`):
  segmenter.json      {"config": SegmenterConfig.to_dict(), "input_size": [H, W] (the training resolution),
                       "class_names": [...], "palette": [[r, g, b], ...], "networks": {name: architecture}}
                       (`write_run`; the last three optional: "networks" holds the stage's other networks, e.g.
                       the efc stage's flow branch, read by `read_network`)
  checkpoint, ckpt-N  tf.train.Checkpoint(step=..., optimizer=..., segmenter=<the Keras segmenter>)
builds the segmenter from the config, restores only its variables from the latest checkpoint (or --checkpoint), and
writes to --output_dir:
  saved_model.pb, variables/   a tf.Module with one signature, `serving_default`:
                                 images [N, H, W, 3] uint8, any H and W
                                 -> class_ids [N, H, W] int32 (argmax), probabilities [N, H, W, C] float32 (softmax)
                               The images are scaled to [0, 1] and resized (bilinear) to the training resolution; the
                               logits are resized (bilinear) back to the image size before the softmax and argmax.
                               The signature declares `images` as uint8 of any shape and checks the shape itself, so
                               that another rank, RGBA or grey images, or H or W of 0 fail with InvalidArgumentError
                               "images must be uint8 [N, H, W, 3] ..." and the shape received, not deep in the model.
  assets/labels.json           class names, palette (RGB per class), the model input size and where it came from.

The restore fails, naming the checkpoint, unless every variable of the segmenter is restored, the checkpoint holds
no other segmenter variables, and every restored value is finite (a checkpoint saved after training diverged holds NaN
or Inf: the error names some of those variables). The SavedModel needs nothing of this project to load:
`tf.saved_model.load(path)`. This module never imports training code.
"""

import json
import os
import shutil
import sys
import tempfile

from absl import app
from absl import flags
from absl import logging
import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from datasets import labels as labels_lib
from datasets import visualize
from segmentation import segmenter as segmenter_lib

# Files of the contract with the segmentation training stage.
STAGE_DIR = "segmentation"
SEGMENTER_JSON = "segmenter.json"
# Checkpoint dependency name of the segmenter (tf.train.Checkpoint(segmenter=...)).
CHECKPOINT_KEY = "segmenter"

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "images"
LABELS_FILE = "labels.json"


def write_run(stage_dir, config, input_size, class_names=None, palette=None, networks=None):
  """Writes `stage_dir`/segmenter.json, the stage's one architecture record (`read_run`, `read_classes` and
  `read_network` read it): the segmenter's architecture, the training resolution, the classes (names and RGB palette)
  the export labels its outputs with and, in `networks` ({name: JSON-able constructor arguments}), the stage's
  other networks."""
  record = {"config": config.to_dict(), "input_size": [int(s) for s in input_size]}
  if class_names is not None:
    record["class_names"] = list(class_names)
  if palette is not None:
    record["palette"] = [[int(c) for c in colour] for colour in palette]
  if networks:
    record["networks"] = dict(networks)
  tf.io.gfile.makedirs(stage_dir)
  with tf.io.gfile.GFile(os.path.join(stage_dir, SEGMENTER_JSON), "w") as f:
    json.dump(record, f, indent=2)


def _read_record(model_dir, stage):
  """(path, the parsed segmenter.json of `<model_dir>/<stage>`): the one place the record is opened.

  Raises:
    FileNotFoundError: naming segmenter.json when it is missing.
    json.JSONDecodeError: when it is not JSON (the callers name the file).
  """
  path = os.path.join(model_dir, stage, SEGMENTER_JSON)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"No segmenter description {path}: expected the file that the segmentation stage writes "
                            f"next to its checkpoints, holding {{\"config\": ..., \"input_size\": [H, W]}}.")
  with tf.io.gfile.GFile(path, "r") as f:
    return path, json.load(f)


def read_network(model_dir, stage, name):
  """The architecture (constructor arguments) of the stage's network `name` that `write_run` recorded.

  Raises:
    FileNotFoundError: naming segmenter.json when it is missing.
    ValueError: naming segmenter.json and the networks it records when `name` is not one of them.
  """
  path, record = _read_record(model_dir, stage)
  networks = record.get("networks", {})
  if name not in networks:
    raise ValueError(f"{path} records no network {name!r} (it records: {sorted(networks) or 'none'}); was it written "
                     f"by the stage that trains {name}? (A run made before the record held it: run its "
                     f"`python -m consistency.train` command again; the stage rewrites the record, then finds "
                     f"nothing left to train.)")
  return networks[name]


def read_classes(model_dir, stage=STAGE_DIR):
  """(class names, palette) that the run's segmenter.json records, each None when it records none."""
  _, description = _read_record(model_dir, stage)
  return description.get("class_names"), description.get("palette")


def read_run(model_dir, stage=STAGE_DIR):
  """The segmenter config and input size of a run.

  Args:
    model_dir: the run's model directory (holding `<stage>/segmenter.json`).
    stage: the stage directory that trained the segmenter ("segmentation", or "efc", which writes the same files).

  Returns:
    (SegmenterConfig, (height, width)): the architecture and the training resolution.

  Raises:
    FileNotFoundError: naming segmenter.json when it is missing.
    ValueError: naming segmenter.json when it is malformed.
  """
  path = os.path.join(model_dir, stage, SEGMENTER_JSON)
  try:
    path, description = _read_record(model_dir, stage)
    # The checkpoint restored next holds every weight: the initial ones (ImageNet, a user's file) are not needed.
    config = segmenter_lib.SegmenterConfig.from_dict(dict(description["config"], backbone_weights="none"))
    input_size = description.get("input_size") or config.input_size
    if input_size is None:
      raise ValueError("no input_size, neither at the top level nor in the config")
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) != 2 or min(input_size) < 1:
      raise ValueError(f"input_size must be [height, width], received {list(input_size)}")
  except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
    raise ValueError(f"Malformed segmenter description {path}: {type(e).__name__}: {e}. Expected "
                     "{\"config\": SegmenterConfig.to_dict(), \"input_size\": [H, W]}.") from None
  return config, input_size


def find_checkpoint(model_dir, checkpoint=None, stage=STAGE_DIR):
  """The checkpoint prefix to export: `checkpoint` if given, else the latest one of `<model_dir>/<stage>`.

  Raises:
    FileNotFoundError: naming the directory or prefix when there is no checkpoint.
  """
  if checkpoint:
    if tf.io.gfile.isdir(checkpoint):
      latest = tf.train.latest_checkpoint(checkpoint)
      if not latest:
        raise FileNotFoundError(f"No checkpoint in {checkpoint} (expected a `checkpoint` file and ckpt-N.index).")
      checkpoint = latest
    if not tf.io.gfile.exists(checkpoint + ".index"):
      raise FileNotFoundError(f"No checkpoint {checkpoint}: expected a checkpoint prefix with a {checkpoint}.index "
                              "file (e.g. .../segmentation/ckpt-1000).")
    return checkpoint
  stage_dir = os.path.join(model_dir, stage)
  latest = tf.train.latest_checkpoint(stage_dir)
  if not latest:
    raise FileNotFoundError(f"No checkpoint in {stage_dir}: expected the `checkpoint` file and ckpt-N.index / "
                            "ckpt-N.data-* that the segmentation stage writes.")
  return latest


def _is_variable(obj):
  return isinstance(obj, (tf.Variable, keras.Variable))


def _is_float(variable):
  return tf.as_dtype(variable.dtype).is_floating


def _checkpoint_variable_count(checkpoint, key):
  """Number of variables reachable from the root's dependency `key` in the checkpoint's object graph (None: absent)."""
  reader = tf.train.load_checkpoint(checkpoint)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
  roots = [child.node_id for child in graph.nodes[0].children if child.local_name == key]
  if not roots:
    return None
  seen, stack = set(roots), list(roots)
  while stack:
    for child in graph.nodes[stack.pop()].children:
      if child.node_id not in seen:
        seen.add(child.node_id)
        stack.append(child.node_id)
  return sum(any(a.name == "VARIABLE_VALUE" for a in graph.nodes[n].attributes) for n in seen)


def _read_checkpoint(model, checkpoint, hint):
  """tf.train.Checkpoint(segmenter=model).read(checkpoint): the load status (the step and optimizer stay unused)."""
  try:
    status = tf.train.Checkpoint(**{CHECKPOINT_KEY: model}).read(checkpoint)
    # The step and the optimizer's variables are meant to stay unused: no warnings about them.
    status.expect_partial()
  except (ValueError, tf.errors.OpError) as e:  # e.g. a variable of another shape
    raise ValueError(f"Checkpoint {checkpoint} does not match the segmenter: {str(e)[:1000]} {hint}") from None
  return status


def _unrestored_variables(model, checkpoint, hint):
  """Restores `model` from `checkpoint`; returns (the float variables it did not restore, the status's complaint).

  A variable that the checkpoint restores holds the checkpoint's value whatever it held before; one that it does not
  restore keeps its value. Every float variable is filled with NaN before the read; those all NaN afterwards were
  either not restored or restored from an all-NaN value (a checkpoint saved after training diverged), which NaN alone
  cannot tell apart. So these are filled with 0 and read again: a variable both all NaN after the first read and all
  0 after the second was not restored (a restored one holds the same checkpoint value after both).
  """
  floats = [v for v in model.variables if _is_float(v) and v.shape.num_elements() != 0]
  for variable in floats:
    variable.assign(tf.fill(variable.shape, float("nan")))
  status = _read_checkpoint(model, checkpoint, hint)
  try:
    status.assert_existing_objects_matched()
    unmatched = None
  except AssertionError as e:
    unmatched = str(e)
  candidates = [v for v in floats if np.isnan(v.numpy()).all()]
  if not candidates:
    return [], unmatched
  for variable in candidates:
    variable.assign(tf.zeros(variable.shape, variable.dtype))
  _read_checkpoint(model, checkpoint, hint)
  return [v for v in candidates if not np.any(v.numpy())], unmatched


def _other_checkpoints(checkpoint):
  """The other checkpoint prefixes next to `checkpoint` (their base names, in step order where numbered)."""
  def order(name):
    number = name.rsplit("-", 1)[-1]
    return (0, int(number), name) if number.isdigit() else (1, 0, name)
  names = {os.path.basename(path)[:-len(".index")]
           for path in tf.io.gfile.glob(os.path.join(os.path.dirname(checkpoint), "*.index"))}
  return sorted(names - {os.path.basename(checkpoint)}, key=order)


def check_finite(model, checkpoint):
  """Fails, naming the checkpoint and some variables, when a float variable of the restored `model` is NaN or Inf.

  Raises:
    ValueError: naming the checkpoint, the non-finite variables (up to 5, with how many of their values are not
      finite) and the other checkpoints of its folder.
  """
  floats = [v for v in model.variables if _is_float(v)]
  bad = []
  for variable in floats:
    finite = np.isfinite(variable.numpy())
    if not finite.all():
      bad.append(f"{variable.path} ({finite.size - int(finite.sum())} of {finite.size} values)")
  if bad:
    others = _other_checkpoints(checkpoint)
    raise ValueError(
        f"Checkpoint {checkpoint} holds non-finite weights: {len(bad)} of the {len(floats)} float variables of the "
        f"segmenter hold NaN or Inf, e.g. {', '.join(bad[:5])}. Training had probably diverged when it was saved; "
        "export an earlier checkpoint with --checkpoint=PREFIX" + (
            f" (next to it: {', '.join(others[-5:])})." if others else " (there is no other one next to it)."))


def restore_segmenter(model, checkpoint):
  """Restores only the segmenter's variables from a training checkpoint; every one of them, or fails.

  `tf.train.Checkpoint(segmenter=model).read(...)` with `assert_existing_objects_matched()` checks the objects the
  model tracks; two more checks close the gaps it leaves: every variable of `model` must hold a value from the
  checkpoint afterwards (variables that the checkpoint's object graph never reaches, e.g. of sub-layers kept in plain
  Python lists, keep the values they held: see `_unrestored_variables`), and the checkpoint must hold no more
  segmenter variables than the model has (a larger architecture would otherwise restore silently into a smaller one).
  Last, the restored values must be finite.

  Args:
    model: a built Keras segmenter.
    checkpoint: checkpoint prefix (e.g. .../ckpt-1000).

  Raises:
    ValueError: naming the checkpoint, when the variables do not match or are not all finite.
  """
  hint = ("Was the checkpoint written with the config in segmenter.json (tf.train.Checkpoint(..., "
          f"{CHECKPOINT_KEY}=model))?")
  missing, unmatched = _unrestored_variables(model, checkpoint, hint)
  if missing:
    untracked = "" if unmatched else (
        " The checkpoint's object graph never reaches them: tf.train.Checkpoint does not track sub-layers held only "
        "in Python lists or dicts under Keras 3, so they were never saved.")
    raise ValueError(f"Checkpoint {checkpoint} does not restore {len(missing)} of the {len(model.variables)} "
                     f"variables of the segmenter, e.g. {[v.path for v in missing[:5]]}. {hint}{untracked}")
  if unmatched:
    raise ValueError(f"Checkpoint {checkpoint} does not match the segmenter: {unmatched[:1000]} {hint}")
  expected = sum(_is_variable(obj) for obj in tf.train.TrackableView(model).descendants())
  found = _checkpoint_variable_count(checkpoint, CHECKPOINT_KEY)
  if found != expected:
    raise ValueError(f"Checkpoint {checkpoint} holds {found} variables under {CHECKPOINT_KEY!r}; the segmenter built "
                     f"from the config has {expected}. {hint}")
  check_finite(model, checkpoint)


class SegmenterServing(tf.Module):
  """The serving module: uint8 images of any size -> per-pixel classes and probabilities at the image's size.

  Only the segmenter's variables are tracked (the Keras objects stay out of the SavedModel), so loading it needs
  nothing but TensorFlow.
  """

  def __init__(self, model, input_size, name="segmenter_serving"):
    """Wraps a built segmenter.

    Args:
      model: a Keras segmenter: images [B, H, W, 3] float32 in [0, 1] -> {"logits": [B, H, W, C]}.
      input_size: (height, width) the images are resized to before the model.
      name: module name.
    """
    super().__init__(name=name)
    self.model_variables = list(model.variables)
    height, width = (int(s) for s in input_size)

    # No shape in the signature: with [None, None, None, 3] TensorFlow would take the rank as known and drop a rank
    # check at trace time, and a caller of the loaded signature can feed any shape anyway.
    @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name=INPUT_NAME)])
    def serve(images):
      """images [N, H, W, 3] uint8 -> {"class_ids": [N, H, W] int32, "probabilities": [N, H, W, C] float32}."""
      images = check_images(images)
      image_size = tf.shape(images)[1:3]
      x = tf.cast(images, tf.float32) / 255.0
      x = tf.image.resize(x, [height, width], method="bilinear")
      logits = tf.cast(model(x, training=False)["logits"], tf.float32)
      logits = tf.image.resize(logits, image_size, method="bilinear")
      return {"class_ids": tf.argmax(logits, axis=-1, output_type=tf.int32),
              "probabilities": tf.nn.softmax(logits, axis=-1)}

    self.serve = serve


def check_images(images):
  """Checks the shape of `images` at run time; returns them with the static shape [N, H, W, 3].

  Another rank, a channel count other than 3, or H or W of 0 fail here with InvalidArgumentError, saying what is
  expected and the shape received, instead of deep in the model ("convolution input must be 4-dimensional").
  """
  shape = tf.shape(images)
  # Padded, so that reading the dimensions of a tensor of another rank cannot fail before the assertion.
  dims = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)[:4]
  valid = tf.reduce_all([tf.equal(tf.size(shape), 4), tf.equal(dims[3], 3), dims[1] > 0, dims[2] > 0])
  check = tf.debugging.Assert(valid, [
      f"{SIGNATURE_KEY}: {INPUT_NAME} must be uint8 [N, H, W, 3] (a batch of RGB images, H and W at least 1; convert "
      "grey or RGBA images to RGB first), received shape", shape], summarize=8, name="check_images")
  with tf.control_dependencies([check]):
    return tf.ensure_shape(tf.identity(images), [None, None, None, 3])


def label_description(num_classes, input_size, class_names=None, palette=None):
  """The labels.json content: class names, RGB palette and the model input size.

  The classes the training run recorded (`class_names`, `palette`) when given; else the 21 project classes get their
  names and `datasets.visualize.PALETTE`, another class count `class_<i>` and the palette repeated.
  """
  if class_names is not None and len(class_names) == num_classes:
    palette = palette if palette is not None and len(palette) == num_classes else [
        visualize.PALETTE[i % len(visualize.PALETTE)] for i in range(num_classes)]
    return {"class_names": list(class_names), "palette": [[int(c) for c in colour] for colour in palette],
            "input_size": [int(s) for s in input_size]}
  if num_classes == labels_lib.NUM_CLASSES:
    names = list(labels_lib.CLASS_NAMES)
  else:
    logging.warning("The segmenter has %d classes, not the project's %d: class names will be class_<i>.", num_classes,
                    labels_lib.NUM_CLASSES)
    names = [f"class_{i}" for i in range(num_classes)]
  palette = [[int(c) for c in visualize.PALETTE[i % len(visualize.PALETTE)]] for i in range(num_classes)]
  return {"class_names": names, "palette": palette, "input_size": [int(s) for s in input_size]}


def save_serving_model(model, input_size, output_dir, metadata=None, class_names=None, palette=None):
  """Writes the serving SavedModel of a built (restored) segmenter, with assets/labels.json.

  The SavedModel is written to a temporary folder next to `output_dir` and moved into place, replacing an earlier
  SavedModel there; an existing non-empty folder that is not a SavedModel is an error.

  Args:
    model: a built Keras segmenter.
    input_size: (height, width) of the model's input.
    output_dir: the SavedModel folder to write.
    metadata: optional dict added to labels.json (e.g. the source checkpoint).
    class_names, palette: the classes' names and RGB colours (`label_description`).

  Returns:
    output_dir.
  """
  output_dir = os.path.abspath(output_dir)
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not os.path.exists(
      os.path.join(output_dir, "saved_model.pb")):
    raise ValueError(f"Output folder {output_dir} exists and is not a SavedModel; choose another --output_dir.")
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=os.path.basename(output_dir) + ".tmp-", dir=parent)
  try:
    module = SegmenterServing(model, input_size)
    tf.saved_model.save(module, staging, signatures={SIGNATURE_KEY: module.serve})
    num_classes = int(module.serve.get_concrete_function().structured_outputs["probabilities"].shape[-1])
    description = label_description(num_classes, input_size, class_names, palette)
    description.update(metadata or {})
    os.makedirs(os.path.join(staging, "assets"), exist_ok=True)
    with open(os.path.join(staging, "assets", LABELS_FILE), "w", encoding="utf-8") as f:
      # One key per line, each value on one line (the palette stays readable: one [r, g, b] per class).
      f.write("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in description.items()) + "\n}\n")
    if os.path.exists(output_dir):
      shutil.rmtree(output_dir)
    os.replace(staging, output_dir)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return output_dir


def export(model_dir, output_dir, checkpoint=None, stage=STAGE_DIR):
  """Exports the segmenter of a run as a serving SavedModel.

  Args:
    model_dir: the run's model directory; reads `<stage>/segmenter.json` and the checkpoints there.
    output_dir: the SavedModel folder to write (replaced if it holds an earlier SavedModel).
    checkpoint: a checkpoint prefix (or a folder holding checkpoints) to export instead of the latest of the run.
    stage: the stage directory to read ("segmentation", or "efc": both write segmenter.json and checkpoint the
      segmenter as "segmenter").

  Returns:
    output_dir (absolute).

  Raises:
    FileNotFoundError: naming segmenter.json or the checkpoint location when missing.
    ValueError: naming the checkpoint when its variables do not match the config or hold NaN or Inf.
  """
  config, input_size = read_run(model_dir, stage)
  checkpoint = find_checkpoint(model_dir, checkpoint, stage)
  logging.info("Building the segmenter (%s) for %dx%d inputs.", config.backbone, *input_size)
  model = segmenter_lib.build_segmenter(config)
  restore_segmenter(model, checkpoint)
  logging.info("Restored %d variables from %s.", len(model.variables), checkpoint)
  class_names, palette = read_classes(model_dir, stage)
  output_dir = save_serving_model(model, input_size, output_dir, metadata={
      "checkpoint": os.path.abspath(checkpoint), "segmenter_config": config.to_dict()}, class_names=class_names,
      palette=palette)
  logging.info("Wrote the SavedModel %s (signature %r: uint8 %s [N, H, W, 3] -> class_ids, probabilities).",
               output_dir, SIGNATURE_KEY, INPUT_NAME)
  return output_dir


def define_flags():
  """The command's flags; defined only when run as a program, so importing this module defines none."""
  flags.DEFINE_string("model_dir", None, "Model directory of a run: reads <stage>/segmenter.json and the latest "
                      "checkpoint of <stage>/ (--stage, default segmentation).")
  flags.DEFINE_string("output_dir", None, "SavedModel folder to write (an earlier SavedModel there is replaced).")
  flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (e.g. <model_dir>/segmentation/ckpt-1000) to export "
                      "instead of the latest one.")
  flags.DEFINE_string("stage", STAGE_DIR, "Stage directory of the run that trained the segmenter: segmentation, "
                      "consistency, control, or efc (its flow branch is not exported).")
  flags.mark_flags_as_required(["model_dir", "output_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = flags.FLAGS
  try:
    export(config.model_dir, config.output_dir, config.checkpoint, config.stage)
  except (OSError, ValueError) as e:
    print(f"segmentation.export: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
