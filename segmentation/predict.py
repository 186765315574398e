"""Segments images or a video with an exported segmenter SavedModel and writes colour masks, overlays and class maps.

    python -m segmentation.predict --saved_model=/tmp/segmenter_saved_model --input=photo.jpg --output_dir=/tmp/pred
    python -m segmentation.predict --saved_model=/tmp/segmenter_saved_model --input=folder/ --output_dir=/tmp/pred \
        [--overwrite]
    python -m segmentation.predict --saved_model=/tmp/segmenter_saved_model --input=clip.mp4 --output_dir=/tmp/pred \
        [--write_masks] [--overwrite]

A video (.mp4, .mov, .mkv, .avi, .webm; decoded with PyAV) gives <stem>_overlay.mp4 (H.264, the input's frame rate
and frame count; an odd width or height is padded by one pixel, as H.264 needs even sizes) and, with --write_masks,
<stem>_<frame index>_classes.png per frame (8-bit class ids, at the frame's size). Progress is logged every 5 %.

--input is one image or a folder, whose .png / .jpg / .jpeg images are all taken, sorted by name. For each image
<stem>.<ext> it writes to --output_dir:
  <stem>_mask.png      the class map in the palette of the SavedModel's assets/labels.json (RGB)
  <stem>_overlay.png   the image blended 50/50 with the mask (RGB)
  <stem>_classes.png   the class ids (8-bit grey)
all at the image's own size. Grey, palette and RGBA images are converted to RGB (alpha is dropped); 16-bit PNGs are
scaled to 8 bits (v / 257, rounded; Pillow keeps the high byte of 16-bit colour PNGs). Only TensorFlow, NumPy and
Pillow are needed: the SavedModel (from `python -m segmentation.export`) is loaded with `tf.saved_model.load`, without
building the Keras model.

Nothing is lost: every output path is checked before anything is written. An existing output file is an error that
lists them all, unless --overwrite is given; an output that is one of the input images (e.g. --output_dir equal to the
input folder, which holds both cat.png and cat_mask.png) is an error even with --overwrite. The files written carry a
PNG text chunk (`segmentation.predict`: the input file name), so that a folder holding earlier outputs next to its
images can be segmented again: files with an output name (<x>_mask.png, ...) and that chunk are not taken as inputs,
while an image of the user's that merely has such a name is an input like any other (and is never overwritten).
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
from PIL import PngImagePlugin
import tensorflow as tf

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm")
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "images"
LABELS_FILE = "labels.json"
# Weight of the image in the overlay (the mask gets the rest).
OVERLAY_IMAGE_WEIGHT = 0.5
OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png", "_classes.png")
# PNG text chunk key of every written output; its value is the input image's file name.
OUTPUT_MARKER = "segmentation.predict"
# At most this many conflicting paths are listed in an error.
MAX_LISTED = 10


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


def is_output(path):
  """Whether `path` is a file that predict wrote: an output name (<x>_mask.png, ...) and predict's PNG text chunk.

  An image that merely has an output name is not one (nor is a file that cannot be opened: it stays an input, and
  reading it names it).
  """
  if not os.path.basename(path).endswith(OUTPUT_SUFFIXES):
    return False
  try:
    with Image.open(path) as image:
      return image.format == "PNG" and OUTPUT_MARKER in image.info
  except (OSError, ValueError, Image.DecompressionBombError):
    return False


def list_images(inputs):
  """The image paths of `inputs`: one image file, or the .png/.jpg/.jpeg files of a folder, sorted by name.

  Files of a folder that predict wrote (see `is_output`) are not taken; a file named explicitly always is.

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
      outputs = {path for path in found if is_output(path)}
      if outputs:
        logging.info("Not segmenting %d files of %s that segmentation.predict wrote, e.g. %s.", len(outputs), item,
                     os.path.basename(min(outputs)))
        found = [path for path in found if path not in outputs]
      if not found:
        raise FileNotFoundError(f"No image in the folder {item}: expected files ending in "
                                f"{', '.join(IMAGE_EXTENSIONS)}" + (
                                    f" ({_plural(len(outputs), 'file')} there "
                                    f"{'was' if len(outputs) == 1 else 'were'} written by segmentation.predict: not "
                                    "taken as input)"
                                    if outputs else "") + ".")
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


def output_paths(paths, output_dir):
  """[[mask, overlay, classes], ...]: the three output paths of each image path, in order."""
  return [[os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0] + suffix)
           for suffix in OUTPUT_SUFFIXES] for path in paths]


def _plural(count, noun):
  return f"{count} {noun}" + ("" if count == 1 else "s")


def _listing(paths):
  shown = ", ".join(paths[:MAX_LISTED])
  return shown + (f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def check_outputs(paths, outputs, output_dir, overwrite=False):
  """Fails, before anything is written, when writing `outputs` would replace an input or (without overwrite) a file.

  Args:
    paths: the input image paths.
    outputs: the output paths, as `output_paths` gives them.
    output_dir: the output folder (for the messages).
    overwrite: whether existing output files (never inputs) may be replaced.

  Raises:
    FileExistsError: naming the output folder and the conflicting files: outputs that are input images (the same file,
      through links too), outputs that are folders, or (without overwrite) outputs that exist.
  """
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise FileExistsError(f"--output_dir {output_dir} is a file, not a folder.")
  # Inputs by (device, inode): an output that is the same file as an input, whatever its path, is found.
  inputs = {}
  for path in paths:
    stat = os.stat(path)
    inputs[(stat.st_dev, stat.st_ino)] = path
  into_inputs, folders, existing = [], [], []
  for image_outputs in outputs:
    for output in image_outputs:
      if not os.path.lexists(output):
        continue
      try:
        stat = os.stat(output)
      except OSError:  # a dangling link: writing would create its target
        existing.append(output)
        continue
      if (stat.st_dev, stat.st_ino) in inputs:
        into_inputs.append(f"{output} (also the input {inputs[(stat.st_dev, stat.st_ino)]})"
                           if os.path.abspath(inputs[(stat.st_dev, stat.st_ino)]) != os.path.abspath(output)
                           else output)
      elif os.path.isdir(output):
        folders.append(output)
      else:
        existing.append(output)
  if into_inputs:
    raise FileExistsError(
        f"Writing to {output_dir} would overwrite {len(into_inputs)} of the input images, which are read only: "
        f"{_listing(into_inputs)}. Choose an --output_dir outside the input set (--overwrite never replaces an "
        "input image).")
  if folders:
    raise FileExistsError(f"{_plural(len(folders), 'output path')} in {output_dir} "
                          f"{'is a folder' if len(folders) == 1 else 'are folders'}: {_listing(folders)}. Move "
                          f"{'it' if len(folders) == 1 else 'them'} or choose another --output_dir.")
  if existing and not overwrite:
    raise FileExistsError(f"{_plural(len(existing), 'output file')} already exist{'s' if len(existing) == 1 else ''} "
                          f"in {output_dir}: {_listing(existing)}. Pass --overwrite to replace "
                          f"{'it' if len(existing) == 1 else 'them'}, or choose another --output_dir.")


def read_image(path):
  """[H, W, 3] uint8 RGB of an image file.

  Grey, palette, CMYK and RGBA images are converted (alpha is dropped). 16-bit grey PNGs are scaled to 8 bits by
  v / 257, rounded (0 -> 0, 65535 -> 255); Pillow reads 16-bit colour PNGs as their high bytes (v >> 8).

  Raises:
    ValueError: naming the file when it cannot be decoded or its pixel format is not one of these.
  """
  try:
    with Image.open(path) as image:
      if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grey (Pillow's "I" for some PNGs)
        values = np.asarray(image).astype(np.float64)
        if values.size and (values.min() < 0 or values.max() > 65535):
          raise ValueError(f"{image.mode} pixels outside 0..65535 (from {values.min():g} to {values.max():g})")
        grey = np.round(values / 257.0).astype(np.uint8)
        return np.repeat(grey[..., np.newaxis], 3, axis=-1)
      if image.mode in ("F",) or image.mode.startswith(("I;", "BGR")):
        raise ValueError(f"pixel format {image.mode} is not supported: expected 8- or 16-bit grey, palette, RGB or "
                         "RGBA")
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


def load_signature(saved_model):
  """The SavedModel's `serving_default` signature, checked to take uint8 RGB images [N, H, W, 3].

  Raises:
    ValueError: naming the SavedModel when the signature is missing or takes other inputs.
  """
  signatures = tf.saved_model.load(saved_model).signatures
  if SIGNATURE_KEY not in signatures:
    raise ValueError(f"The SavedModel {saved_model} has no {SIGNATURE_KEY!r} signature (it has "
                     f"{sorted(signatures) or 'none'}): expected one written by `python -m segmentation.export`.")
  serve = signatures[SIGNATURE_KEY]
  specs = serve.structured_input_signature[1]
  spec = specs.get(INPUT_NAME)
  # The export declares images of any shape (and checks it itself); older exports declared [None, None, None, 3].
  if (set(specs) != {INPUT_NAME} or spec.dtype != tf.uint8 or
      not spec.shape.is_compatible_with([None, None, None, 3])):
    raise ValueError(f"The {SIGNATURE_KEY!r} signature of {saved_model} takes {specs}: expected a single input "
                     f"{INPUT_NAME!r}, uint8 RGB images [N, H, W, 3], as `python -m segmentation.export` writes.")
  if "class_ids" not in serve.structured_outputs:
    raise ValueError(f"The {SIGNATURE_KEY!r} signature of {saved_model} returns {sorted(serve.structured_outputs)}: "
                     "expected class_ids (and probabilities), as `python -m segmentation.export` writes.")
  return serve


def _write_png(array, path, source, overwrite):
  """Writes a PNG with predict's text chunk; without overwrite, fails rather than replace a file that appeared since
  the check."""
  info = PngImagePlugin.PngInfo()
  info.add_text(OUTPUT_MARKER, os.path.basename(source))
  with open(path, "wb" if overwrite else "xb") as f:
    Image.fromarray(array).save(f, format="PNG", pnginfo=info)


def predict(saved_model, inputs, output_dir, overwrite=False):
  """Segments every image of `inputs` and writes its mask, overlay and class map to `output_dir`.

  Every output path is checked before anything is written (see `check_outputs`).

  Args:
    saved_model: SavedModel folder written by `segmentation.export` (with assets/labels.json).
    inputs: an image, a folder of images (.png/.jpg/.jpeg, taken in sorted order), or a list of these.
    output_dir: folder for <stem>_mask.png, <stem>_overlay.png and <stem>_classes.png (created if missing).
    overwrite: whether existing output files may be replaced; an input image never is.

  Returns:
    The written paths, three per image in input order (mask, overlay, classes).

  Raises:
    FileNotFoundError: naming a missing input, SavedModel or labels file.
    FileExistsError: listing the outputs that are inputs, or that exist (without overwrite); nothing is written then.
    ValueError: naming an image that cannot be read, a malformed labels file or a SavedModel of another signature.
  """
  paths = list_images(inputs)
  if not os.path.exists(os.path.join(saved_model, "saved_model.pb")):
    raise FileNotFoundError(f"No SavedModel in {saved_model}: expected {os.path.join(saved_model, 'saved_model.pb')}, "
                            "as `python -m segmentation.export` writes.")
  description = read_labels(saved_model)
  palette = np.asarray(description["palette"], np.uint8)
  if len(palette) > 256:
    raise ValueError(f"{len(palette)} classes do not fit the 8-bit <stem>_classes.png.")
  outputs = output_paths(paths, output_dir)
  check_outputs(paths, outputs, output_dir, overwrite)
  serve = load_signature(saved_model)
  os.makedirs(output_dir, exist_ok=True)
  written = []
  for index, (path, image_outputs) in enumerate(zip(paths, outputs)):
    image = read_image(path)
    start = time.perf_counter()
    class_ids = serve(**{INPUT_NAME: tf.constant(image[np.newaxis])})["class_ids"][0].numpy()
    seconds = time.perf_counter() - start
    if class_ids.shape != image.shape[:2]:
      raise ValueError(f"The SavedModel {saved_model} returned class_ids of shape {list(class_ids.shape)} for the "
                       f"{image.shape[0]}x{image.shape[1]} image {path}: expected [{image.shape[0]}, "
                       f"{image.shape[1]}].")
    mask = colorize(class_ids, palette)
    for output, array in zip(image_outputs, (mask, blend(image, mask), class_ids.astype(np.uint8))):
      _write_png(array, output, path, overwrite)
    written += image_outputs
    present = np.unique(class_ids)
    logging.info("%d/%d %s: %dx%d in %.0f ms; classes %s.", index + 1, len(paths), path, image.shape[0],
                 image.shape[1], 1000 * seconds, ", ".join(_class_name(description, c) for c in present[:8]) +
                 (", ..." if len(present) > 8 else ""))
  logging.info("Wrote %d files for %d images to %s.", len(written), len(paths), output_dir)
  return written


def is_video(path):
  """Whether `path` names a video file (by its extension)."""
  return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def _open_video(path):
  """The opened container of a video with a video stream; ValueError naming the file otherwise."""
  import av  # pylint: disable=import-outside-toplevel  (only videos need FFmpeg)
  if os.path.getsize(path) == 0:
    raise ValueError(f"{path} is empty (0 bytes): expected a video file.")
  try:
    container = av.open(path)
  except (av.error.FFmpegError, OSError) as e:
    raise ValueError(f"{path} is not a video that FFmpeg can decode: {e}.") from None
  if not container.streams.video:
    container.close()
    raise ValueError(f"{path} has no video stream.")
  return container


def video_outputs(path, output_dir, num_frames=None):
  """The overlay video's path and, given `num_frames`, the per-frame class map paths of the video at `path`."""
  stem = os.path.splitext(os.path.basename(path))[0]
  overlay = os.path.join(output_dir, f"{stem}_overlay.mp4")
  masks = [os.path.join(output_dir, f"{stem}_{index:06d}_classes.png") for index in range(num_frames or 0)]
  return overlay, masks


def _count_frames(path):
  """The number of frames of the video (decoded: containers do not always say)."""
  import av  # pylint: disable=import-outside-toplevel
  with _open_video(path) as container:
    try:
      return sum(1 for _ in container.decode(container.streams.video[0]))
    except av.error.FFmpegError as e:
      raise ValueError(f"{path}: decoding failed: {e}.") from None


def predict_video(saved_model, path, output_dir, overwrite=False, write_masks=False):
  """Segments every frame of the video at `path`: writes <stem>_overlay.mp4 (same frame rate and frame count) and,
  with `write_masks`, <stem>_<frame index>_classes.png per frame. Every output path is checked first (`check_outputs`);
  the video is written to a temporary file and moved into place at the end.

  Returns:
    The written paths (the overlay video first).

  Raises:
    FileNotFoundError / FileExistsError / ValueError: as `predict`, and naming a file that is not a decodable video.
  """
  import av  # pylint: disable=import-outside-toplevel
  if not os.path.exists(os.path.join(saved_model, "saved_model.pb")):
    raise FileNotFoundError(f"No SavedModel in {saved_model}: expected {os.path.join(saved_model, 'saved_model.pb')}, "
                            "as `python -m segmentation.export` writes.")
  description = read_labels(saved_model)
  palette = np.asarray(description["palette"], np.uint8)
  num_frames = _count_frames(path)
  if num_frames == 0:
    raise ValueError(f"{path} has no frame to segment.")
  overlay_path, mask_paths = video_outputs(path, output_dir, num_frames if write_masks else 0)
  check_outputs([path], [[overlay_path] + mask_paths], output_dir, overwrite)
  serve = load_signature(saved_model)
  os.makedirs(output_dir, exist_ok=True)
  temporary = os.path.join(output_dir, f".{os.path.basename(overlay_path)}.tmp-{os.getpid()}.mp4")
  written, start, report_every = [], time.perf_counter(), max(1, num_frames // 20)
  try:
    try:
      with _open_video(path) as source, av.open(temporary, "w") as sink:
        stream = source.streams.video[0]
        rate = stream.average_rate or 30
        encoder = None
        for index, frame in enumerate(source.decode(stream)):
          image = frame.to_ndarray(format="rgb24")
          class_ids = serve(**{INPUT_NAME: tf.constant(image[np.newaxis])})["class_ids"][0].numpy()
          overlay = blend(image, colorize(class_ids, palette))
          if encoder is None:
            encoder = sink.add_stream("libx264", rate=rate)
            encoder.height, encoder.width = (v + v % 2 for v in image.shape[:2])
            encoder.pix_fmt = "yuv420p"
          padded = np.pad(overlay, [(0, image.shape[0] % 2), (0, image.shape[1] % 2), (0, 0)], mode="edge")
          for packet in encoder.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
            sink.mux(packet)
          if write_masks:
            _write_png(class_ids.astype(np.uint8), mask_paths[index], path, overwrite)
            written.append(mask_paths[index])
          if (index + 1) % report_every == 0 or index + 1 == num_frames:
            elapsed = time.perf_counter() - start
            rate_done = (index + 1) / elapsed
            logging.info("%s: frame %d/%d (%.0f %%), %.1f frames/s, ETA %s", path, index + 1, num_frames,
                         100.0 * (index + 1) / num_frames, rate_done,
                         time.strftime("%H:%M:%S", time.gmtime((num_frames - index - 1) / rate_done)))
        for packet in encoder.encode():
          sink.mux(packet)
    except av.error.FFmpegError as e:
      raise ValueError(f"{path}: decoding or encoding failed: {e}.") from None
    if overwrite:
      os.replace(temporary, overlay_path)
    elif os.path.lexists(overlay_path):  # appeared since the check: never replaced without --overwrite
      raise FileExistsError(f"{overlay_path} appeared while segmenting: pass --overwrite to replace it.")
    else:
      os.replace(temporary, overlay_path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)
  logging.info("Wrote %s (%d frames at %s fps)%s.", overlay_path, num_frames, rate,
               f" and {len(written)} class maps" if write_masks else "")
  return [overlay_path] + written


def _class_name(description, class_id):
  names = description["class_names"]
  return names[class_id] if 0 <= class_id < len(names) else str(class_id)


def define_flags():
  """The command's flags; defined only when run as a program, so importing this module defines none."""
  flags.DEFINE_string("saved_model", None, "SavedModel folder written by `python -m segmentation.export`.")
  flags.DEFINE_string("input", None, "An image (.png/.jpg/.jpeg), a folder whose images are all segmented, in "
                      "sorted order, or a video (.mp4/.mov/.mkv/.avi/.webm).")
  flags.DEFINE_string("output_dir", None, "Folder for <stem>_mask.png, <stem>_overlay.png and <stem>_classes.png "
                      "(created if missing).")
  flags.DEFINE_bool("write_masks", False, "Video input: also write each frame's class ids as "
                    "<stem>_<frame index>_classes.png.")
  flags.DEFINE_bool("overwrite", False, "Replace output files that exist already (otherwise they are an error, "
                    "listed before anything is written). An input image is never replaced.")
  flags.mark_flags_as_required(["saved_model", "input", "output_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = flags.FLAGS
  try:
    if is_video(config.input):
      predict_video(config.saved_model, config.input, config.output_dir, overwrite=config.overwrite,
                    write_masks=config.write_masks)
    else:
      predict(config.saved_model, config.input, config.output_dir, overwrite=config.overwrite)
  except (OSError, ValueError) as e:
    print(f"segmentation.predict: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
