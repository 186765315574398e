"""Segments images with an exported segmenter SavedModel and writes colour masks, overlays and class maps.

    python -m segmentation.predict --saved_model=/tmp/segmenter_saved_model --input=photo.jpg --output_dir=/tmp/pred
    python -m segmentation.predict --saved_model=/tmp/segmenter_saved_model --input=folder/ --output_dir=/tmp/pred

--input is one image or a folder, whose .png / .jpg / .jpeg images are all taken, sorted by name. For each image
<stem>.<ext> it writes to --output_dir:
  <stem>_mask.png      the class map in the palette of the SavedModel's assets/labels.json (RGB)
  <stem>_overlay.png   the image blended 50/50 with the mask (RGB)
  <stem>_classes.png   the class ids (8-bit grey)
all at the image's own size. Only TensorFlow, NumPy and Pillow are needed: the SavedModel (from
`python -m segmentation.export`) is loaded with `tf.saved_model.load`, without building the Keras model.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
SIGNATURE_KEY = "serving_default"
LABELS_FILE = "labels.json"
# Weight of the image in the overlay (the mask gets the rest).
OVERLAY_IMAGE_WEIGHT = 0.5
OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png", "_classes.png")


def read_labels(saved_model):
  """The class names, palette and input size written next to the SavedModel (assets/labels.json).

  Returns:
    The parsed labels.json: {"class_names": [...], "palette": [[r, g, b], ...], "input_size": [H, W], ...}.

  Raises:
    FileNotFoundError / ValueError: naming the file when it is missing or malformed.
  """
  path = os.path.join(saved_model, "assets", LABELS_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"No {path}: expected a SavedModel written by `python -m segmentation.export`, with "
                            f"assets/{LABELS_FILE} (class names and palette).")
  try:
    with open(path, encoding="utf-8") as f:
      description = json.load(f)
    palette = np.asarray(description["palette"], np.int64)
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.min() < 0 or palette.max() > 255:
      raise ValueError(f"palette must be [num_classes, 3] values in 0..255, received shape {palette.shape}")
    if len(description["class_names"]) != len(palette):
      raise ValueError(f"{len(description['class_names'])} class names for {len(palette)} palette colours")
  except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
    raise ValueError(f"Malformed {path}: {type(e).__name__}: {e}.") from None
  return description


def list_images(inputs):
  """The image paths of `inputs`: one image file, or the .png/.jpg/.jpeg files of a folder, sorted by name.

  Args:
    inputs: a path, or a list of paths (each an image or a folder).

  Raises:
    FileNotFoundError: naming the path when it does not exist or a folder holds no image.
    ValueError: when two images would write the same outputs (same stem).
  """
  paths = []
  for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs):
    item = os.fspath(item)
    if os.path.isdir(item):
      found = sorted(os.path.join(item, name) for name in os.listdir(item)
                     if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, name)))
      if not found:
        raise FileNotFoundError(f"No image in the folder {item}: expected files ending in "
                                f"{', '.join(IMAGE_EXTENSIONS)}.")
      paths += found
    elif os.path.isfile(item):
      paths.append(item)
    else:
      raise FileNotFoundError(f"No such image or folder: {item}")
  stems = {}
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem in stems:
      raise ValueError(f"{stems[stem]} and {path} would both write {stem}_mask.png; rename one of them.")
    stems[stem] = path
  return paths


def read_image(path):
  """[H, W, 3] uint8 RGB of an image file (grey, palette and RGBA images are converted; alpha is dropped).

  Raises:
    ValueError: naming the file when it cannot be decoded.
  """
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert("RGB"), np.uint8)
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise ValueError(f"Cannot read the image {path}: {e}") from None


def colorize(class_ids, palette):
  """[H, W] class ids -> [H, W, 3] uint8 palette colours (ids outside the palette are black)."""
  palette = np.concatenate([np.asarray(palette, np.uint8), np.zeros([1, 3], np.uint8)])
  known = (class_ids >= 0) & (class_ids < len(palette) - 1)
  return palette[np.where(known, class_ids, len(palette) - 1)]


def blend(image, mask, image_weight=OVERLAY_IMAGE_WEIGHT):
  """image_weight * image + (1 - image_weight) * mask, rounded to uint8; both [H, W, 3] uint8."""
  mixed = image_weight * image.astype(np.float32) + (1.0 - image_weight) * mask.astype(np.float32)
  return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def predict(saved_model, inputs, output_dir):
  """Segments every image of `inputs` and writes its mask, overlay and class map to `output_dir`.

  Args:
    saved_model: SavedModel folder written by `segmentation.export` (with assets/labels.json).
    inputs: an image, a folder of images (.png/.jpg/.jpeg, taken in sorted order), or a list of these.
    output_dir: folder for <stem>_mask.png, <stem>_overlay.png and <stem>_classes.png (created if missing).

  Returns:
    The written paths, three per image in input order (mask, overlay, classes).

  Raises:
    FileNotFoundError: naming a missing input, SavedModel or labels file.
    ValueError: naming an image that cannot be read, or a malformed labels file.
  """
  paths = list_images(inputs)
  if not os.path.exists(os.path.join(saved_model, "saved_model.pb")):
    raise FileNotFoundError(f"No SavedModel in {saved_model}: expected {os.path.join(saved_model, 'saved_model.pb')}, "
                            "as `python -m segmentation.export` writes.")
  description = read_labels(saved_model)
  palette = np.asarray(description["palette"], np.uint8)
  if len(palette) > 256:
    raise ValueError(f"{len(palette)} classes do not fit the 8-bit <stem>_classes.png.")
  serve = tf.saved_model.load(saved_model).signatures[SIGNATURE_KEY]
  os.makedirs(output_dir, exist_ok=True)
  written = []
  for index, path in enumerate(paths):
    image = read_image(path)
    start = time.perf_counter()
    class_ids = serve(images=tf.constant(image[np.newaxis]))["class_ids"][0].numpy()
    seconds = time.perf_counter() - start
    mask = colorize(class_ids, palette)
    stem = os.path.splitext(os.path.basename(path))[0]
    outputs = [os.path.join(output_dir, stem + suffix) for suffix in OUTPUT_SUFFIXES]
    for output, array in zip(outputs, (mask, blend(image, mask), class_ids.astype(np.uint8))):
      Image.fromarray(array).save(output)
    written += outputs
    present = np.unique(class_ids)
    logging.info("%d/%d %s: %dx%d in %.0f ms; classes %s.", index + 1, len(paths), path, image.shape[0],
                 image.shape[1], 1000 * seconds, ", ".join(_class_name(description, c) for c in present[:8]) +
                 (", ..." if len(present) > 8 else ""))
  logging.info("Wrote %d files for %d images to %s.", len(written), len(paths), output_dir)
  return written


def _class_name(description, class_id):
  names = description["class_names"]
  return names[class_id] if 0 <= class_id < len(names) else str(class_id)


def define_flags():
  """The command's flags; defined only when run as a program, so importing this module defines none."""
  flags.DEFINE_string("saved_model", None, "SavedModel folder written by `python -m segmentation.export`.")
  flags.DEFINE_string("input", None, "An image (.png/.jpg/.jpeg) or a folder whose images are all segmented, in "
                      "sorted order.")
  flags.DEFINE_string("output_dir", None, "Folder for <stem>_mask.png, <stem>_overlay.png and <stem>_classes.png "
                      "(created if missing).")
  flags.mark_flags_as_required(["saved_model", "input", "output_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = flags.FLAGS
  try:
    predict(config.saved_model, config.input, config.output_dir)
  except (OSError, ValueError) as e:
    print(f"segmentation.predict: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
