"""Predict: a SavedModel with a known answer (class = red value mod 21) -> masks, overlays and class maps of every
image of a folder, at each image's size; missing or unreadable inputs are named."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from datasets import labels
from datasets import visualize
from segmentation import export
from segmentation import predict

ROOT = pathlib.Path(__file__).resolve().parents[2]


class _RedModel(tf.Module):
  """The serving signature of `segmentation.export` with a known answer: class id = red value mod NUM_CLASSES."""

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
  def serve(self, images):
    class_ids = tf.cast(images[..., 0], tf.int32) % labels.NUM_CLASSES
    return {"class_ids": class_ids, "probabilities": tf.one_hot(class_ids, labels.NUM_CLASSES)}


def _red_classes(image):
  return image[..., 0].astype(np.int64) % labels.NUM_CLASSES


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
  path = tmp_path_factory.mktemp("red") / "saved_model"
  module = _RedModel()
  tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
  (path / "assets").mkdir(exist_ok=True)
  (path / "assets" / "labels.json").write_text(json.dumps(export.label_description(labels.NUM_CLASSES, (64, 64))))
  return str(path)


def _random_image(shape, seed):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_folder_of_images_of_different_sizes(saved_model, tmp_path):
  folder = tmp_path / "images"
  folder.mkdir()
  Image.fromarray(_random_image((50, 70, 3), 0)).save(folder / "b_frame.png")
  Image.fromarray(_random_image((64, 48, 3), 1)).save(folder / "a_frame.jpg", quality=90)
  (folder / "notes.txt").write_text("not an image")
  (folder / "sub.png").mkdir()  # a folder, even with an image name, is skipped
  written = predict.predict(saved_model, str(folder), str(tmp_path / "out"))
  # Sorted by name, three files per image.
  assert [os.path.basename(p) for p in written] == [
      "a_frame_mask.png", "a_frame_overlay.png", "a_frame_classes.png",
      "b_frame_mask.png", "b_frame_overlay.png", "b_frame_classes.png"]
  assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(p) for p in written)
  for name, size in [("a_frame.jpg", (64, 48)), ("b_frame.png", (50, 70))]:
    image = np.asarray(Image.open(folder / name).convert("RGB"))  # the decoded JPEG, as predict reads it
    stem = name.split(".")[0]
    mask, overlay, classes = (Image.open(tmp_path / "out" / f"{stem}{suffix}") for suffix in predict.OUTPUT_SUFFIXES)
    assert (mask.mode, overlay.mode, classes.mode) == ("RGB", "RGB", "L")
    assert mask.size == overlay.size == classes.size == (size[1], size[0])
    expected_classes = _red_classes(image)
    assert len(np.unique(expected_classes)) == labels.NUM_CLASSES
    np.testing.assert_array_equal(np.asarray(classes), expected_classes)
    np.testing.assert_array_equal(np.asarray(mask), visualize.PALETTE[expected_classes])
    colours = {tuple(c) for c in np.asarray(mask).reshape(-1, 3)}
    assert colours == {tuple(c) for c in visualize.PALETTE}
    blended = np.round(0.5 * image.astype(np.float64) + 0.5 * visualize.PALETTE[expected_classes])
    np.testing.assert_allclose(np.asarray(overlay), blended, atol=1)


def test_grey_and_rgba_images_are_read_as_rgb(saved_model, tmp_path):
  grey = _random_image((20, 30), 2)
  Image.fromarray(grey).save(tmp_path / "grey.png")
  rgba = _random_image((16, 24, 4), 3)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
  written = predict.predict(saved_model, [str(tmp_path / "grey.png"), str(tmp_path / "rgba.png")],
                            str(tmp_path / "out"))
  np.testing.assert_array_equal(np.asarray(Image.open(written[2])), _red_classes(grey[..., None]))
  np.testing.assert_array_equal(np.asarray(Image.open(written[5])), _red_classes(rgba))


def test_errors_name_the_file(saved_model, tmp_path):
  out = str(tmp_path / "out")
  missing = str(tmp_path / "missing.png")
  with pytest.raises(FileNotFoundError, match=f"No such image or folder: {missing}"):
    predict.predict(saved_model, missing, out)
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match=f"No image in the folder {empty}"):
    predict.predict(saved_model, str(empty), out)
  broken = empty / "broken.png"
  broken.write_bytes(b"\x89PNG not really")
  with pytest.raises(ValueError, match=f"Cannot read the image {broken}"):
    predict.predict(saved_model, str(empty), out)
  Image.fromarray(_random_image((8, 8, 3), 4)).save(empty / "broken.jpg")
  with pytest.raises(ValueError, match="broken.jpg and .*broken.png would both write broken_mask.png"):
    predict.predict(saved_model, str(empty), out)
  image = str(empty / "broken.jpg")
  with pytest.raises(FileNotFoundError, match=f"No SavedModel in {tmp_path}"):
    predict.predict(str(tmp_path), image, out)
  no_labels = tmp_path / "no_labels"
  no_labels.mkdir()
  (no_labels / "saved_model.pb").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match=f"No {no_labels}/assets/labels.json"):
    predict.predict(str(no_labels), image, out)


@pytest.mark.slow  # a fresh interpreter: ~10 s importing TensorFlow on 2 cores
def test_command_line(saved_model, tmp_path):
  image = _random_image((12, 18, 3), 5)
  Image.fromarray(image).save(tmp_path / "photo.png")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable, "-m", "segmentation.predict", f"--saved_model={saved_model}",
             f"--input={tmp_path / 'photo.png'}", f"--output_dir={tmp_path / 'out'}"]
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"1/1 {tmp_path / 'photo.png'}: 12x18" in result.stderr
  assert sorted(os.listdir(tmp_path / "out")) == ["photo_classes.png", "photo_mask.png", "photo_overlay.png"]
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "photo_classes.png")), _red_classes(image))
