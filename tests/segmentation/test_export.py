"""Export: a fake training run -> `python -m segmentation.export` -> a SavedModel that a fresh process (without this
project) reloads and whose outputs match the Keras segmenter's; mismatched or missing inputs fail, naming the file."""

import dataclasses
import importlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

from absl import flags
import keras
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from datasets import labels
from datasets import visualize
from segmentation import export
from segmentation import predict
from segmentation import segmenter
from tests import tiny

ROOT = pathlib.Path(__file__).resolve().parents[2]
INPUT_SIZE = (64, 64)
OTHER_SIZE = (50, 70)
# Tiny: a bottleneck ResNet with one block per stack and widths 8..16 (x4 expansion), NAS-FPN 16 x 1 repeat.
TINY = tiny.SEGMENTER_CONFIG


def _perturb(model, seed):
  """Moves every variable away from its initial value (BN variances stay positive), so a restore is visible."""
  rng = np.random.default_rng(seed)
  for variable in model.variables:
    value = variable.numpy()
    if "moving_variance" in variable.path:
      new_value = rng.uniform(0.5, 2.0, value.shape)
    else:
      new_value = value + rng.normal(0.0, 0.1, value.shape)
    variable.assign(new_value.astype(value.dtype))


def write_run(model_dir, config, input_size, steps=(3,), seed=0):
  """A run directory in the segmentation stage's format; returns the model, holding the last checkpoint's weights.

  Like the training stage: tf.train.Checkpoint(step, optimizer, segmenter) saved by a CheckpointManager into
  <model_dir>/segmentation/, and segmenter.json with the config and the training resolution. Every checkpoint gets
  different weights.
  """
  stage_dir = os.path.join(model_dir, export.STAGE_DIR)
  model = segmenter.build_segmenter(config)
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
  checkpoint = tf.train.Checkpoint(step=step, optimizer=optimizer, segmenter=model)
  manager = tf.train.CheckpointManager(checkpoint, stage_dir, max_to_keep=3, step_counter=step)
  weights = {}
  for i, number in enumerate(steps):
    _perturb(model, seed + i)
    step.assign(number)
    weights[manager.save(checkpoint_number=number)] = [v.numpy() for v in model.variables]
  with open(os.path.join(stage_dir, export.SEGMENTER_JSON), "w", encoding="utf-8") as f:
    json.dump({"config": config.to_dict(), "input_size": list(input_size)}, f)
  return model, weights


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("run"))
  model, weights = write_run(model_dir, TINY, INPUT_SIZE, steps=(3, 5))
  return model_dir, model, weights


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
  """The SavedModel of the run's latest checkpoint."""
  model_dir, _, _ = run
  return export.export(model_dir, str(tmp_path_factory.mktemp("export") / "saved_model"))


@pytest.fixture(scope="module")
def serve(exported):
  """The serving signature of the export, loaded in this process."""
  return tf.saved_model.load(exported).signatures[export.SIGNATURE_KEY]


def _expected(model, images):
  """The serving computation, done with the Keras model: (class_ids, probabilities, top-2 logit margin)."""
  size = images.shape[1:3]
  x = tf.image.resize(images.astype(np.float32) / 255.0, INPUT_SIZE, method="bilinear")
  logits = model(x, training=False)["logits"]
  if tuple(size) != INPUT_SIZE:
    logits = tf.image.resize(logits, size, method="bilinear")
  top2 = tf.math.top_k(logits, 2).values
  return (tf.argmax(logits, -1, output_type=tf.int32).numpy(), tf.nn.softmax(logits).numpy(),
          (top2[..., 0] - top2[..., 1]).numpy())


# Run in a fresh interpreter, outside the repository and without PYTHONPATH: only TensorFlow and NumPy.
RELOAD_SCRIPT = textwrap.dedent("""\
    import json, sys
    class BlockProject:  # the project may be installed (pip install -e): make any import of it fail
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("segmentation", "consistency", "depth_motion", "datasets"):
          raise ImportError(f"the SavedModel must not need the project, but {name} was imported")
    sys.meta_path.insert(0, BlockProject())
    import numpy as np
    import tensorflow as tf
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    outputs = {}
    for name in sys.argv[2:]:
      result = serve(images=tf.constant(np.load(name + ".npy")))
      outputs.update({f"{name}_{key}": value.numpy() for key, value in result.items()})
    np.savez("outputs.npz", **outputs)
    spec = serve.structured_input_signature[1]["images"]
    print(json.dumps({"shape": spec.shape.as_list() if spec.shape.rank is not None else None,
                      "dtype": spec.dtype.name,
                      "outputs": sorted(serve.structured_outputs),
                      "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in
                                                ("segmentation", "datasets", "consistency", "depth_motion"))}))
""")


def test_fresh_process_reload_matches_the_keras_model(run, exported, tmp_path):
  _, model, _ = run
  rng = np.random.default_rng(1)
  images = {"native": rng.integers(0, 256, (2, *INPUT_SIZE, 3), dtype=np.uint8),
            "other": rng.integers(0, 256, (2, *OTHER_SIZE, 3), dtype=np.uint8)}
  for name, value in images.items():
    np.save(tmp_path / f"{name}.npy", value)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, exported, *images], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  info = json.loads(result.stdout.strip().splitlines()[-1])
  # Any shape is declared: the signature checks it itself (test_serving_signature_checks_the_image_shape).
  assert info == {"shape": None, "dtype": "uint8", "outputs": ["class_ids", "probabilities"], "project_modules": []}
  outputs = np.load(tmp_path / "outputs.npz")
  for name, value in images.items():
    class_ids, probabilities, margin = _expected(model, value)
    assert outputs[f"{name}_class_ids"].dtype == np.int32 and outputs[f"{name}_probabilities"].dtype == np.float32
    assert outputs[f"{name}_class_ids"].shape == value.shape[:3]
    assert outputs[f"{name}_probabilities"].shape == (*value.shape[:3], labels.NUM_CLASSES)
    np.testing.assert_allclose(outputs[f"{name}_probabilities"], probabilities, atol=1e-4, err_msg=name)
    # Where the two best logits (nearly) tie, float rounding may pick either.
    clear = margin > 1e-4
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(outputs[f"{name}_class_ids"][clear], class_ids[clear], err_msg=name)


def test_labels_json_and_layout(run, exported):
  model_dir, _, weights = run
  assert sorted(os.listdir(exported)) == ["assets", "fingerprint.pb", "saved_model.pb", "variables"]
  with open(os.path.join(exported, "assets", export.LABELS_FILE), encoding="utf-8") as f:
    description = json.load(f)
  assert description["class_names"] == list(labels.CLASS_NAMES)
  np.testing.assert_array_equal(description["palette"], visualize.PALETTE)
  assert description["input_size"] == list(INPUT_SIZE)
  # The latest checkpoint is exported.
  assert description["checkpoint"] == os.path.abspath(sorted(weights)[-1]) and description["checkpoint"].endswith(
      "ckpt-5")
  assert segmenter.SegmenterConfig.from_dict(description["segmenter_config"]) == TINY
  assert tf.train.latest_checkpoint(os.path.join(model_dir, "segmentation")).endswith("ckpt-5")


def test_restore_reads_a_given_checkpoint_and_every_variable(run):
  model_dir, _, weights = run
  first = sorted(weights)[0]
  assert first.endswith("ckpt-3")
  assert export.find_checkpoint(model_dir, first) == first
  assert export.find_checkpoint(model_dir) == sorted(weights)[-1]
  model = segmenter.build_segmenter(TINY)
  export.restore_segmenter(model, first)
  for variable, value in zip(model.variables, weights[first]):
    np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


@pytest.mark.parametrize("change, message", [
    ({"head_filters": 8}, r"does not match the segmenter"),                 # same variables, other shapes
    ({"nasfpn_repeats": 2}, r"does not restore \d+ of the \d+ variables"),  # the model has more variables
    ({"head_backbone_p2": True}, r"does not restore \d+ of the \d+ variables"),
])
def test_mismatched_config_fails_naming_the_checkpoint(run, tmp_path, change, message):
  model_dir, _, weights = run
  other_dir = tmp_path / "run"
  shutil.copytree(os.path.join(model_dir, "segmentation"), other_dir / "segmentation")
  config = dataclasses.replace(TINY, **change)
  (other_dir / "segmentation" / export.SEGMENTER_JSON).write_text(
      json.dumps({"config": config.to_dict(), "input_size": list(INPUT_SIZE)}))
  checkpoint = str(other_dir / "segmentation" / os.path.basename(sorted(weights)[-1]))
  with pytest.raises(ValueError, match=f"Checkpoint {checkpoint} {message}"):
    export.export(str(other_dir), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_serving_signature_checks_the_image_shape(serve):
  # The probe: RGBA or unbatched images failed deep in the graph ("convolution input must be 4-dimensional").
  # One test for all shapes: each test's tf.random.set_seed (conftest) clears the kernel caches, ~2 s to rebuild.
  for shape in [(1, 12, 16, 4), (1, 12, 16, 1), (12, 16, 3), (2, 1, 12, 16, 3), (1, 12, 0, 3), ()]:
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(
        "serving_default: images must be uint8 [N, H, W, 3] (a batch of RGB images, H and W at least 1; convert grey "
        f"or RGBA images to RGB first), received shape] [{' '.join(str(s) for s in shape)}]")):
      serve(images=tf.zeros(shape, tf.uint8))
  assert serve(images=tf.zeros((1, 5, 7, 3), tf.uint8))["class_ids"].shape == (1, 5, 7)


def test_non_finite_checkpoint_fails_naming_it_and_its_variables(run, tmp_path):
  # The probe: a checkpoint saved after an update overflowed (NaN/Inf weights) was reported as "does not restore 19 of
  # 167 variables": variables were filled with NaN before the restore, and a NaN restored read as "not restored".
  model_dir, model, _ = run
  shutil.copytree(os.path.join(model_dir, export.STAGE_DIR), tmp_path / "run" / export.STAGE_DIR)
  originals = [v.numpy() for v in model.variables]
  first, second, third = [v for v in model.variables if export._is_float(v)][:3]
  try:
    first.assign(np.full(first.shape, np.nan, np.float32))  # all NaN: the case that read as "not restored"
    second.assign(np.where(np.arange(second.shape.num_elements()).reshape(second.shape) == 0, np.inf,
                           second.numpy()).astype(np.float32))
    third.assign(np.full(third.shape, -np.inf, np.float32))
    prefix = tf.train.Checkpoint(segmenter=model).write(str(tmp_path / "run" / export.STAGE_DIR / "ckpt-7"))
  finally:
    for variable, value in zip(model.variables, originals):
      variable.assign(value)
  num_floats = sum(export._is_float(v) for v in model.variables)
  with pytest.raises(ValueError) as error:
    export.export(str(tmp_path / "run"), str(tmp_path / "out"), checkpoint=prefix)
  message = str(error.value)
  assert message.startswith(f"Checkpoint {prefix} holds non-finite weights: 3 of the {num_floats} float variables of "
                            "the segmenter hold NaN or Inf, e.g. "), message
  assert f"{first.path} ({first.shape.num_elements()} of {first.shape.num_elements()} values)" in message
  assert f"{second.path} (1 of {second.shape.num_elements()} values)" in message
  assert f"{third.path} (" in message
  assert message.endswith("export an earlier checkpoint with --checkpoint=PREFIX (next to it: ckpt-3, ckpt-5).")
  assert "does not restore" not in message
  assert not (tmp_path / "out").exists()


def test_checkpoint_of_a_larger_model_fails(tmp_path):
  # Every variable of the smaller model is found, so only the variable count tells the difference.
  write_run(str(tmp_path), dataclasses.replace(TINY, nasfpn_repeats=2), INPUT_SIZE)
  (tmp_path / "segmentation" / export.SEGMENTER_JSON).write_text(
      json.dumps({"config": TINY.to_dict(), "input_size": list(INPUT_SIZE)}))
  with pytest.raises(ValueError, match=r"ckpt-3 holds \d+ variables under 'segmenter'; the segmenter built from the "
                                       r"config has \d+"):
    export.export(str(tmp_path), str(tmp_path / "out"))


def test_missing_files_are_named(run, tmp_path):
  model_dir, _, _ = run
  with pytest.raises(FileNotFoundError, match=r"No segmenter description .*segmentation/segmenter\.json"):
    export.export(str(tmp_path), str(tmp_path / "out"))
  (tmp_path / "segmentation").mkdir()
  shutil.copy(os.path.join(model_dir, "segmentation", export.SEGMENTER_JSON), tmp_path / "segmentation")
  with pytest.raises(FileNotFoundError, match=f"No checkpoint in {tmp_path / 'segmentation'}"):
    export.export(str(tmp_path), str(tmp_path / "out"))
  missing = str(tmp_path / "segmentation" / "ckpt-9")
  with pytest.raises(FileNotFoundError, match=f"No checkpoint {missing}: expected .*ckpt-9.index"):
    export.export(model_dir, str(tmp_path / "out"), checkpoint=missing)
  (tmp_path / "segmentation" / export.SEGMENTER_JSON).write_text('{"config": {"head_fliters": 3}}')
  with pytest.raises(ValueError, match=r"Malformed segmenter description .*segmenter\.json.*head_fliters"):
    export.export(str(tmp_path), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_importing_defines_no_flags():
  before = set(flags.FLAGS)
  importlib.reload(export)
  importlib.reload(predict)
  assert set(flags.FLAGS) == before


def test_predict_on_the_export_matches_the_keras_model(run, exported, tmp_path):
  _, model, _ = run
  image = np.random.default_rng(2).integers(0, 256, (*OTHER_SIZE, 3), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / "frame.png")
  written = predict.predict(exported, str(tmp_path / "frame.png"), str(tmp_path / "out"))
  assert written == [str(tmp_path / "out" / name) for name in ("frame_mask.png", "frame_overlay.png",
                                                               "frame_classes.png")]
  class_ids, _, margin = _expected(model, image[None])
  clear = margin[0] > 1e-4
  np.testing.assert_array_equal(np.asarray(Image.open(written[2]))[clear], class_ids[0][clear])
  np.testing.assert_array_equal(np.asarray(Image.open(written[0])), visualize.PALETTE[np.asarray(
      Image.open(written[2]))])


@pytest.mark.slow  # two fresh interpreters: ~10 s each importing TensorFlow on 2 cores
def test_command_line(run, tmp_path):
  model_dir, _, weights = run
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  first = sorted(weights)[0]
  command = [sys.executable, "-m", "segmentation.export", f"--model_dir={model_dir}",
             f"--output_dir={tmp_path / 'saved_model'}", f"--checkpoint={first}"]
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  description = json.loads((tmp_path / "saved_model" / "assets" / "labels.json").read_text())
  assert description["checkpoint"] == os.path.abspath(first)
  command = [sys.executable, "-m", "segmentation.export", f"--model_dir={tmp_path}", f"--output_dir={tmp_path / 'x'}"]
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"segmentation.export: error: No segmenter description {tmp_path}/segmentation/segmenter.json: expected the "
      "file that the segmentation stage writes next to its checkpoints, holding {\"config\": ..., \"input_size\": "
      "[H, W]}.")
