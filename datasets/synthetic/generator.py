"""The built-in synthetic dataset: procedural indoor RGB-D video with exact labels, written in ScanNet's layout.

Each scene is a furnished room (`scene`) filmed by a handheld-like camera or one on a dolly (`camera`) and ray cast
(`raycast`); the files are those of ScanNet's SensReader export, so the ScanNet reader serves both:

  <output_dir>/scannetv2_train.txt, scannetv2_val.txt   scene names, a deterministic ~80/20 split
  <output_dir>/scene0000_00/color/<i>.png               8-bit RGB (PNG: lossless)
                           /depth/<i>.png               uint16 z-depth in millimetres (0 = missing; never here)
                           /label/<i>.png               8-bit NYU40 ids (ScanNet's 20 benchmark classes + others)
                           /pose/<i>.txt                4x4 camera-to-world, camera x right, y down, z forward
                           /intrinsic/intrinsic_color.txt, intrinsic_depth.txt   4x4, K top-left (same camera)
                           /intrinsic/extrinsic_color.txt, extrinsic_depth.txt   4x4 identity
                           /synthetic_scene.json        generator parameters and scene summary, written last

Ground truth is exact: depth is the z-depth of the rendered ray hit rounded to the millimetre, labels are the class of
the surface hit, pose and K are the ones rendered with. Scene k depends only on (seed, k, frames, size, fps, motion,
noise), so the same arguments give byte-identical files and a larger `num_scenes` only adds scenes.

The generator writes only into a folder it made: `<output_dir>/.synthetic_dataset` marks it, and any other non-empty
folder (a real dataset given by mistake, e.g. `--data_root` without `--dataset`) is refused, untouched. Inside its own
folder, a scene holding `synthetic_scene.json` with the same parameters and all frames is complete and is skipped; any
other scene is rendered again, after deleting only the files the generator writes (frames, intrinsics, temporaries).
Every file is written under a temporary name and renamed, and the description is written last, so an interrupted run
never leaves a scene that looks complete.

Command (`datasets/synthetic/__main__.py`; about 30 s for the default 20 scenes x 100 frames at 128x160 on 2 idle CPU
cores; ~100 frames/s):
  python -m datasets.synthetic --output_dir=/tmp/synthetic --num_scenes=20 --frames_per_scene=100 \\
      --height=128 --width=160 --seed=0
"""

import concurrent.futures
import io
import json
import math
import numbers
import os
import re
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from datasets.synthetic import camera as synthetic_camera
from datasets.synthetic import raycast
from datasets.synthetic import scene as synthetic_scene

DEFAULT_FPS = 10.0  # ScanNet's 30 fps subsampled by 3
DEFAULT_MOTION = "handheld"
SCENE_DESCRIPTION = "synthetic_scene.json"
# Written first into a folder the generator creates (or finds empty): the only folders it writes into or deletes from.
MARKER = ".synthetic_dataset"
TRAIN_SPLIT = "scannetv2_train.txt"
VAL_SPLIT = "scannetv2_val.txt"
# Bumped whenever the rendering changes, so stale scenes are rendered again.
GENERATOR_VERSION = 1
# zlib level of the PNGs: 1 is several times faster to encode than the default 6, for ~15% larger files.
PNG_COMPRESS_LEVEL = 1
FRAME_FOLDERS = ("color", "depth", "label", "pose")
INTRINSICS_FILES = ("intrinsic_color.txt", "intrinsic_depth.txt", "extrinsic_color.txt", "extrinsic_depth.txt")
# The names of the files `render_scene` writes into FRAME_FOLDERS, and of the temporaries of `_write_atomic`.
_FRAME_FILE = re.compile(r"\d+\.(png|txt)")
_TEMPORARY_FILE = re.compile(r".+\.tmp\d+")


def scene_name(index):
  """ScanNet-style name of scene `index`: scene0000_00, scene0001_00, ..."""
  return f"scene{index:04d}_00"


def split_scenes(num_scenes):
  """(train names, val names): every fifth scene is validation, and at least one is when num_scenes >= 2."""
  val = [i for i in range(num_scenes) if i % 5 == 4]
  if num_scenes >= 2 and not val:
    val = [num_scenes - 1]
  train = [i for i in range(num_scenes) if i not in val]
  return [scene_name(i) for i in train], [scene_name(i) for i in val]


def _check_int(name, value, minimum):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ValueError(f"{name} must be {kind}. Received: {name}={value!r}")


def _check_float(name, value, positive):
  ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
  if not ok or (value <= 0 if positive else value < 0):
    raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}. Received: {name}={value!r}")


def check_arguments(num_scenes, frames_per_scene, height, width, seed, fps=DEFAULT_FPS, color_noise=0.0,
                    motion=DEFAULT_MOTION):
  """Raises ValueError naming the first bad argument of `generate`."""
  if motion not in synthetic_camera.MOTIONS:
    raise ValueError(f"motion must be one of {synthetic_camera.MOTIONS}. Received: motion={motion!r}")
  _check_int("num_scenes", num_scenes, 1)
  _check_int("frames_per_scene", frames_per_scene, 1)
  _check_int("height", height, 1)
  _check_int("width", width, 1)
  _check_int("seed", seed, 0)
  _check_float("fps", fps, positive=True)
  _check_float("color_noise", color_noise, positive=False)


def make_scene(seed, index, num_frames, height, width, fps=DEFAULT_FPS, motion=DEFAULT_MOTION):
  """The `synthetic_scene.Scene` of scene `index` for `seed`: exactly the one `generate` renders."""
  rng = np.random.default_rng([seed, index])
  return synthetic_scene.sample_scene(rng, height, width, num_frames, fps, motion)


def _write_atomic(path, data):
  """Writes `data` under a temporary name in the same folder, then renames it: readers never see a partial file."""
  temporary = f"{path}.tmp{os.getpid()}"
  with open(temporary, "wb") as f:
    f.write(data)
  os.replace(temporary, path)


def _png_bytes(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
  return buffer.getvalue()


def _matrix_text(matrix, decimals):
  return "".join(" ".join(f"{v:.{decimals}f}" for v in row) + "\n" for row in np.asarray(matrix, np.float64))


def depth_to_millimetres(depth):
  """[H, W] uint16 depth in millimetres from metres (rounded; beyond 65.535 m saturates, <= 0 stays 0 = missing)."""
  return np.clip(np.round(np.asarray(depth, np.float64) * 1000.0), 0, 65535).astype(np.uint16)


def write_frame(scene_dir, index, frame, pose):
  """Writes frame `index` (a `raycast.Frame` and its [4, 4] pose) into the scene folder, each file atomically."""
  _write_atomic(os.path.join(scene_dir, "color", f"{index}.png"), _png_bytes(frame.color))
  _write_atomic(os.path.join(scene_dir, "depth", f"{index}.png"), _png_bytes(depth_to_millimetres(frame.depth)))
  _write_atomic(os.path.join(scene_dir, "label", f"{index}.png"), _png_bytes(frame.label))
  _write_atomic(os.path.join(scene_dir, "pose", f"{index}.txt"),
                _matrix_text(pose, synthetic_camera.POSE_DECIMALS).encode())


def _write_intrinsics(scene_dir, intrinsics):
  k = np.eye(4)
  k[:3, :3] = intrinsics
  text = _matrix_text(k, synthetic_camera.INTRINSICS_DECIMALS).encode()
  identity = _matrix_text(np.eye(4), synthetic_camera.INTRINSICS_DECIMALS).encode()
  folder = os.path.join(scene_dir, "intrinsic")
  for name, data in zip(INTRINSICS_FILES, (text, text, identity, identity)):
    _write_atomic(os.path.join(folder, name), data)


def _generator_parameters(seed, index, frames_per_scene, height, width, fps, color_noise, motion):
  parameters = {"version": GENERATOR_VERSION, "seed": int(seed), "scene_index": int(index),
                "frames_per_scene": int(frames_per_scene), "height": int(height), "width": int(width),
                "fps": float(fps), "color_noise": float(color_noise)}
  if motion != DEFAULT_MOTION:  # absent for the default, so that videos generated before motions existed stay valid
    parameters["motion"] = motion
  return parameters


def _read_description(scene_dir):
  try:
    with open(os.path.join(scene_dir, SCENE_DESCRIPTION), encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _frames_complete(scene_dir, num_frames):
  expected = {"color": ".png", "depth": ".png", "label": ".png", "pose": ".txt"}
  for folder, extension in expected.items():
    try:
      names = set(os.listdir(os.path.join(scene_dir, folder)))
    except OSError:
      return False
    if not all(f"{i}{extension}" in names for i in range(num_frames)):
      return False
  return True


def claim_output_dir(output_dir):
  """Makes `output_dir` the generator's own (creating it and its marker), or checks that it already is.

  A folder is the generator's when it holds the marker, is new or empty, or holds only what an older version of the
  generator wrote (split files and scene folders each with a `synthetic_scene.json`; the marker is then added).

  Raises:
    ValueError: naming the folder when it holds anything else; nothing in it is changed.
  """
  os.makedirs(output_dir, exist_ok=True)
  marker = os.path.join(output_dir, MARKER)
  if os.path.exists(marker):
    return
  foreign = [name for name in sorted(os.listdir(output_dir))
             if name not in (TRAIN_SPLIT, VAL_SPLIT)
             and not os.path.isfile(os.path.join(output_dir, name, SCENE_DESCRIPTION))]
  if foreign:
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    raise ValueError(
        f"{output_dir} is not empty and was not made by the synthetic generator (no {MARKER} marker; it holds "
        f"{shown}). Refusing to write there, so that nothing of yours is overwritten or deleted. Give an empty or new "
        "folder for the synthetic video, or, if this is a real dataset, name it with --dataset (scannet, cityscapes, "
        "camvid, kitti_raw).")
  _write_atomic(marker, json.dumps({"generator": "datasets.synthetic", "version": GENERATOR_VERSION}).encode())


def _remove_generated_files(scene_dir):
  """Deletes the files `render_scene` writes (and its temporaries) from a scene folder, and nothing else."""
  for folder, pattern in [(folder, _FRAME_FILE) for folder in FRAME_FOLDERS] + [("intrinsic", None)]:
    path = os.path.join(scene_dir, folder)
    if not os.path.isdir(path):
      continue
    for name in os.listdir(path):
      generated = name in INTRINSICS_FILES if pattern is None else pattern.fullmatch(name)
      if generated or _TEMPORARY_FILE.fullmatch(name):
        os.remove(os.path.join(path, name))
  for name in os.listdir(scene_dir):
    if name == SCENE_DESCRIPTION or _TEMPORARY_FILE.fullmatch(name):
      os.remove(os.path.join(scene_dir, name))


def render_scene(scene_dir, scene, color_noise=0.0, noise_seed=None):
  """Renders every frame of `scene` into `scene_dir` (which must not hold an older scene) and its intrinsics.

  Args:
    scene_dir: the scene folder; created if missing.
    scene: a `synthetic_scene.Scene`.
    color_noise: standard deviation of Gaussian color noise in 8-bit levels (0: none).
    noise_seed: seed (int or sequence of ints) of the noise; required when color_noise > 0.
  """
  for folder in FRAME_FOLDERS + ("intrinsic",):
    os.makedirs(os.path.join(scene_dir, folder), exist_ok=True)
  _write_intrinsics(scene_dir, scene.intrinsics)
  renderer = raycast.Renderer(scene)
  noise_rng = np.random.default_rng(noise_seed) if color_noise > 0 else None
  # PNG encoding and file writes run on a second thread (zlib and numpy release the GIL) while the next frame
  # renders; at most one frame waits, and a failed write raises here.
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer:
    pending = None
    for index, pose in enumerate(scene.poses):
      frame = renderer.render(pose, noise_stddev=color_noise, noise_rng=noise_rng)
      if pending is not None:
        pending.result()
      pending = writer.submit(write_frame, scene_dir, index, frame, pose)
    if pending is not None:
      pending.result()


def generate(output_dir, num_scenes, frames_per_scene, height, width, seed=0, fps=DEFAULT_FPS, color_noise=0.0,
             overwrite=False, motion=DEFAULT_MOTION):
  """Generates (or completes) the synthetic dataset in `output_dir`; see the module docstring for the layout.

  Args:
    output_dir: the dataset root: new, empty, or made by this generator (see `claim_output_dir`).
    num_scenes: number of scenes (rooms), scene0000_00 ... .
    frames_per_scene: frames per scene, ids 0 .. frames_per_scene - 1.
    height, width: image size in pixels (color, depth and labels alike).
    seed: non-negative integer; scene k is a function of (seed, k) and the other arguments only.
    fps: frame rate of the camera (motion per frame shrinks as it grows).
    color_noise: standard deviation of Gaussian sensor noise on the color, in 8-bit levels (0: none). Depth and
      labels stay exact.
    overwrite: render every scene again, even a complete one. Without it, a complete scene rendered with other
      parameters is an error (use another output_dir), and an incomplete scene is rendered again.
    motion: the camera's, one of `synthetic_camera.MOTIONS`: "handheld" (rotation-dominated, like ScanNet's scans)
      or "dolly" (back and forth along a line at 0.5-1 m/s, heading fixed: translation-dominated).

  Returns:
    The list of the num_scenes scene folders.

  Raises:
    ValueError: naming a bad argument, a complete scene made with different parameters, or an output_dir that holds
      anything the generator did not write.
  """
  check_arguments(num_scenes, frames_per_scene, height, width, seed, fps, color_noise, motion)
  output_dir = os.fspath(output_dir)
  if not output_dir:
    raise ValueError("output_dir must be a non-empty path. Received: output_dir=''")
  claim_output_dir(output_dir)
  scene_dirs = []
  skipped = 0
  for index in range(num_scenes):
    name = scene_name(index)
    scene_dir = os.path.join(output_dir, name)
    scene_dirs.append(scene_dir)
    parameters = _generator_parameters(seed, index, frames_per_scene, height, width, fps, color_noise, motion)
    description = _read_description(scene_dir)
    if description is not None and not overwrite:
      if description.get("generator") != parameters:
        raise ValueError(
            f"{scene_dir} was generated with other parameters ({description.get('generator')}); requested "
            f"{parameters}. Use another output_dir, or overwrite=True (--overwrite) to render it again.")
      if _frames_complete(scene_dir, frames_per_scene):
        skipped += 1
        continue
    if os.path.exists(scene_dir):
      logging.info("%s: %s, rendering it again.", name, "overwriting" if overwrite else "incomplete")
      _remove_generated_files(scene_dir)
    start = time.perf_counter()
    scene = make_scene(seed, index, frames_per_scene, height, width, fps, motion)
    render_scene(scene_dir, scene, color_noise, noise_seed=[seed, index, 1])
    summary = {"generator": parameters, "scene": scene.description()}
    _write_atomic(os.path.join(scene_dir, SCENE_DESCRIPTION),
                  (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
    seconds = time.perf_counter() - start
    logging.info("%s (%d/%d): %s, %d objects, %d frames %dx%d in %.1f s (%.0f frames/s).", name, index + 1, num_scenes,
                 scene.room_type, len(scene.objects), frames_per_scene, height, width, seconds,
                 frames_per_scene / max(seconds, 1e-9))
  if skipped:
    logging.info("%d of %d scenes in %s were complete already, skipped.", skipped, num_scenes, output_dir)
  train, val = split_scenes(num_scenes)
  _write_atomic(os.path.join(output_dir, TRAIN_SPLIT), "".join(n + "\n" for n in train).encode())
  _write_atomic(os.path.join(output_dir, VAL_SPLIT), "".join(n + "\n" for n in val).encode())
  return scene_dirs


def define_flags():
  """The command's flags; defined only when run as a program, so importing this module defines none."""
  flags.DEFINE_string("output_dir", None, "Dataset root to write: a new or empty folder, or one this command made "
                      "(scenes already complete there with the same parameters are skipped); any other folder is "
                      "refused.")
  flags.DEFINE_integer("num_scenes", 20, "Number of scenes (rooms) scene0000_00, scene0001_00, ...; every fifth (and "
                       "at least one of two or more) is listed in scannetv2_val.txt, the rest in scannetv2_train.txt.")
  flags.DEFINE_integer("frames_per_scene", 100, "Frames per scene (ids 0 .. N-1).")
  flags.DEFINE_integer("height", 128, "Image height in pixels (color, depth and labels).")
  flags.DEFINE_integer("width", 160, "Image width in pixels (color, depth and labels).")
  flags.DEFINE_integer("seed", 0, "Non-negative random seed; the same seed gives byte-identical files.")
  flags.DEFINE_float("fps", DEFAULT_FPS, "Camera frame rate in Hz; the default is ScanNet's 30 fps subsampled by 3 "
                     "(0.2-0.5 m/s and 10-30 deg/s of camera motion).")
  flags.DEFINE_enum("motion", DEFAULT_MOTION, list(synthetic_camera.MOTIONS), "Camera motion: handheld "
                    "(rotation-dominated, like ScanNet's scans) or dolly (back and forth along a straight line at "
                    "0.5-1 m/s, heading fixed: translation-dominated, 5-10 cm per frame at 10 fps).")
  flags.DEFINE_float("color_noise", 0.0, "Standard deviation of Gaussian sensor noise added to the color images, in "
                     "8-bit levels (0 = none). Depth and labels stay exact.")
  flags.DEFINE_bool("overwrite", False, "Render every scene again, even complete ones or ones made with other "
                    "parameters.")
  flags.mark_flag_as_required("output_dir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = flags.FLAGS
  try:
    scene_dirs = generate(config.output_dir, config.num_scenes, config.frames_per_scene, config.height, config.width,
                          seed=config.seed, fps=config.fps, color_noise=config.color_noise,
                          overwrite=config.overwrite, motion=config.motion)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  logging.info("%d scenes in %s.", len(scene_dirs), config.output_dir)
