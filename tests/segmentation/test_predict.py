"""Predict: a SavedModel with a known answer (class = red value mod 21) -> masks, overlays and class maps of every
image of a folder, at each image's size; missing or unreadable inputs are named; no input and (without --overwrite) no
existing file is ever replaced; 16-bit PNGs are scaled, not saturated."""

import hashlib
import json
import os
import pathlib
import re
import shutil
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


def _hashes(folder):
  """{name: sha256} of the files of a folder."""
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(pathlib.Path(folder).iterdir())
          if p.is_file()}


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


@pytest.mark.slow  # two fresh interpreters: ~10 s each importing TensorFlow on 2 cores
def test_command_line(saved_model, tmp_path):
  image = _random_image((12, 18, 3), 5)
  Image.fromarray(image).save(tmp_path / "photo.png")
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "photo_mask.png").write_bytes(b"an earlier file")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable, "-m", "segmentation.predict", f"--saved_model={saved_model}",
             f"--input={tmp_path / 'photo.png'}", f"--output_dir={tmp_path / 'out'}"]
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == (
      f"segmentation.predict: error: 1 output file already exists in {tmp_path / 'out'}: "
      f"{tmp_path / 'out' / 'photo_mask.png'}. Pass --overwrite to replace it, or choose another --output_dir.")
  assert (tmp_path / "out" / "photo_mask.png").read_bytes() == b"an earlier file"
  result = subprocess.run(command + ["--overwrite"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"1/1 {tmp_path / 'photo.png'}: 12x18" in result.stderr
  assert sorted(os.listdir(tmp_path / "out")) == ["photo_classes.png", "photo_mask.png", "photo_overlay.png"]
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "photo_classes.png")), _red_classes(image))


def test_output_dir_equal_to_the_input_folder_never_overwrites_an_input(saved_model, tmp_path):
  # The probe: cat_mask.png, an input, was replaced by cat.png's mask before it was read.
  folder = tmp_path / "images"
  folder.mkdir()
  Image.fromarray(_random_image((10, 12, 3), 6)).save(folder / "cat.png")
  Image.fromarray(_random_image((10, 12, 3), 7)).save(folder / "cat_mask.png")  # the user's image, not an output
  Image.fromarray(_random_image((10, 12, 3), 8)).save(folder / "dog.png")
  before = _hashes(folder)
  for overwrite in (False, True):
    with pytest.raises(FileExistsError, match=re.escape(
        f"Writing to {folder} would overwrite 1 of the input images, which are read only: {folder / 'cat_mask.png'}. "
        "Choose an --output_dir outside the input set (--overwrite never replaces an input image).")):
      predict.predict(saved_model, str(folder), str(folder), overwrite=overwrite)
    assert _hashes(folder) == before  # nothing written, not even dog.png's outputs
  # A link to an input is the input too.
  out = tmp_path / "out"
  out.mkdir()
  (out / "dog_overlay.png").symlink_to(folder / "dog.png")
  with pytest.raises(FileExistsError, match=re.escape(f"{out / 'dog_overlay.png'} (also the input {folder}/dog.png)")):
    predict.predict(saved_model, str(folder), str(out), overwrite=True)
  assert _hashes(folder) == before and os.listdir(out) == ["dog_overlay.png"]


def test_existing_outputs_are_listed_and_replaced_only_with_overwrite(saved_model, tmp_path, monkeypatch):
  folder = tmp_path / "images"
  folder.mkdir()
  for i, name in enumerate(["a.png", "b.png", "c.png"]):
    Image.fromarray(_random_image((6, 8, 3), 10 + i)).save(folder / name)
  out = tmp_path / "out"
  out.mkdir()
  (out / "b_classes.png").write_bytes(b"someone else's file")
  (out / "c_mask.png").write_bytes(b"another one")
  (out / "a_overlay.png").mkdir()
  with pytest.raises(FileExistsError, match=re.escape(
      f"1 output path in {out} is a folder: {out / 'a_overlay.png'}. Move it or choose another --output_dir.")):
    predict.predict(saved_model, str(folder), str(out), overwrite=True)
  (out / "a_overlay.png").rmdir()
  with pytest.raises(FileExistsError, match=re.escape(
      f"2 output files already exist in {out}: {out / 'b_classes.png'}, {out / 'c_mask.png'}. Pass --overwrite to "
      "replace them, or choose another --output_dir.")):
    predict.predict(saved_model, str(folder), str(out))
  # Checked up front: not even a.png's outputs were written.
  assert _hashes(out) == {"b_classes.png": hashlib.sha256(b"someone else's file").hexdigest(),
                          "c_mask.png": hashlib.sha256(b"another one").hexdigest()}
  written = predict.predict(saved_model, str(folder), str(out), overwrite=True)
  assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in written) and len(written) == 9
  np.testing.assert_array_equal(np.asarray(Image.open(out / "b_classes.png")),
                                _red_classes(np.asarray(Image.open(folder / "b.png"))))
  monkeypatch.setattr(predict, "MAX_LISTED", 8)
  with pytest.raises(FileExistsError, match=re.escape(f"9 output files already exist in {out}: {out / 'a_mask.png'}, ")
                     + r".*/c_overlay\.png and 1 more\. Pass --overwrite"):
    predict.predict(saved_model, str(folder), str(out))
  with pytest.raises(FileExistsError, match=re.escape(f"--output_dir {folder / 'a.png'} is a file, not a folder.")):
    predict.predict(saved_model, str(folder / "b.png"), str(folder / "a.png"))


def test_earlier_outputs_in_the_input_folder_are_not_inputs(saved_model, tmp_path):
  folder = tmp_path / "images"
  folder.mkdir()
  image = _random_image((6, 8, 3), 20)
  Image.fromarray(image).save(folder / "cat.png")
  first = predict.predict(saved_model, str(folder), str(folder))  # outputs next to the images: allowed
  assert [os.path.basename(p) for p in first] == ["cat_mask.png", "cat_overlay.png", "cat_classes.png"]
  assert all(Image.open(p).info[predict.OUTPUT_MARKER] == "cat.png" for p in first)
  # The user's image named like an output stays an input; predict's own outputs are not segmented again.
  Image.fromarray(_random_image((6, 8, 3), 21)).save(folder / "dog_mask.png")
  assert predict.list_images(str(folder)) == [str(folder / "cat.png"), str(folder / "dog_mask.png")]
  with pytest.raises(FileExistsError, match="3 output files already exist"):
    predict.predict(saved_model, str(folder), str(folder))
  again = predict.predict(saved_model, str(folder), str(folder), overwrite=True)
  assert [os.path.basename(p) for p in again] == [os.path.basename(p) for p in first] + [
      "dog_mask_mask.png", "dog_mask_overlay.png", "dog_mask_classes.png"]
  np.testing.assert_array_equal(np.asarray(Image.open(folder / "cat_classes.png")), _red_classes(image))
  # A folder holding only predict's outputs has no input.
  only_outputs = tmp_path / "only_outputs"
  only_outputs.mkdir()
  os.replace(first[0], only_outputs / "cat_mask.png")
  with pytest.raises(FileNotFoundError, match=re.escape(
      f"No image in the folder {only_outputs}: expected files ending in .png, .jpg, .jpeg (1 file there was written "
      "by segmentation.predict: not taken as input).")):
    predict.predict(saved_model, str(only_outputs), str(tmp_path / "out"))


def _png16(values):
  """PNG bytes of a 16-bit image ([H, W] grey or [H, W, C]); TensorFlow encodes them (Pillow writes no 16-bit RGB)."""
  values = np.asarray(values, np.uint16)
  return tf.io.encode_png(values if values.ndim == 3 else values[..., None]).numpy()


def test_16_bit_pngs_are_scaled_not_saturated(saved_model, tmp_path):
  # The probe: a 16-bit grey PNG came out all white (Pillow's convert("RGB") clips its values to 255).
  grey = np.random.default_rng(30).integers(0, 65536, (9, 11)).astype(np.uint16)
  grey[0, :4] = [0, 128, 129, 65535]
  (tmp_path / "grey16.png").write_bytes(_png16(grey))
  expected = np.round(grey / 257.0).astype(np.uint8)
  assert list(expected[0, :4]) == [0, 0, 1, 255]
  np.testing.assert_array_equal(predict.read_image(str(tmp_path / "grey16.png")), np.stack([expected] * 3, -1))
  rgb = np.random.default_rng(31).integers(0, 65536, (9, 11, 3)).astype(np.uint16)
  (tmp_path / "rgb16.png").write_bytes(_png16(rgb))
  read = predict.read_image(str(tmp_path / "rgb16.png")).astype(np.int64)
  assert np.abs(read - np.round(rgb / 257.0)).max() <= 1  # Pillow keeps the high byte
  written = predict.predict(saved_model, str(tmp_path / "grey16.png"), str(tmp_path / "out"))
  np.testing.assert_array_equal(np.asarray(Image.open(written[2])), _red_classes(expected[..., None]))
  np.testing.assert_array_equal(np.asarray(Image.open(written[1])),
                                predict.blend(np.stack([expected] * 3, -1), np.asarray(Image.open(written[0]))))


class _FloatModel(tf.Module):
  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="images")])
  def serve(self, images):
    return {"class_ids": tf.cast(images[..., 0], tf.int32)}


def test_a_saved_model_of_another_signature_is_refused_before_any_write(saved_model, tmp_path):
  path = tmp_path / "float_model"
  module = _FloatModel()
  tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
  (path / "assets").mkdir(exist_ok=True)
  shutil.copy(os.path.join(saved_model, "assets", "labels.json"), path / "assets")
  Image.fromarray(_random_image((6, 8, 3), 40)).save(tmp_path / "photo.png")
  with pytest.raises(ValueError, match=re.escape(f"The 'serving_default' signature of {path} takes ") +
                     r".*float32.*" + re.escape("expected a single input 'images', uint8 RGB images [N, H, W, 3]")):
    predict.predict(str(path), str(tmp_path / "photo.png"), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_a_video_gives_an_overlay_video_of_the_same_frame_count_and_class_maps(saved_model, tmp_path):
  import av  # pylint: disable=import-outside-toplevel
  from tests.datasets import fixtures  # pylint: disable=import-outside-toplevel
  frames = [fixtures.video_frame(k, size=(30, 44)) for k in range(12)]
  clip = fixtures.write_video(tmp_path / "clip.mp4", frames, fps=25)
  written = predict.predict_video(saved_model, clip, str(tmp_path / "out"), write_masks=True)
  masks = [f"clip_{k:06d}_classes.png" for k in range(12)]
  assert [os.path.basename(p) for p in written] == ["clip_overlay.mp4"] + masks
  with av.open(written[0]) as container:
    stream = container.streams.video[0]
    decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == 12 and float(stream.average_rate) == 25 and decoded[0].shape == (30, 44, 3)
  # The class maps are the model's answer on the decoded frames (red value mod 21; the lossless video keeps red to
  # within the RGB <-> YUV rounding, so compare with the map of the frame as decoded by the same reader).
  with av.open(clip) as container:
    first = next(container.decode(container.streams.video[0])).to_ndarray(format="rgb24")
  np.testing.assert_array_equal(np.asarray(Image.open(written[1])), _red_classes(first))
  with pytest.raises(FileExistsError, match="already exist"):  # nothing is replaced without --overwrite
    predict.predict_video(saved_model, clip, str(tmp_path / "out"))
  (tmp_path / "audio.mp4").write_bytes(b"not a video at all")
  with pytest.raises(ValueError, match="audio.mp4 is not a video that FFmpeg can decode"):
    predict.predict_video(saved_model, str(tmp_path / "audio.mp4"), str(tmp_path / "out2"))
