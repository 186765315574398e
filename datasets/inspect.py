"""Summarise a dataset on disk and draw a contact sheet of one clip, to check data before training on it.

  python -m datasets.inspect --dataset=scannet --root=/data/scannet --split=val --output=sheet.png
  python -m datasets.inspect --dataset=cityscapes|camvid|kitti_flow|kitti_raw --root=DIR [--split=train|val|test]
  python -m datasets.inspect --dataset=video --root=DIR [--video_fps=10] [--video_intrinsics=fx,fy,cx,cy]
  python -m datasets.inspect --dataset=scannet --root=/data/scannet --check_all --output=   # decode every file

Prints the scenes and frames, image resolutions, the range of the intrinsics and the class pixel frequencies over a
sample of frames, then writes a PNG with one column per frame of a clip and rows RGB, depth, labels, ground-truth
flow to the next frame and its visibility (white: visible in the next frame, grey: hidden there, black: no depth or
leaves the image). KITTI flow pairs get a row of their ground-truth flow instead. Malformed data ends the command with
one message naming the file, and exit status 1. The summary decodes a sample of frames only; `--check_all` decodes
every frame of every scene (colour, depth, labels, with the checks training applies), lists every bad file with the
reason, and exits with status 1 when there is one.

Datasets are a small registry (`READERS`): each entry's scenes offer `name`, `frame_ids`, `num_frames`,
`color_size`, `intrinsics` and `load(index, size)`; rows whose data a dataset lacks (depth, pose, labels) are left
out of the sheet. Your own videos (`video`) are imported into the training cache at --height x --width first
(datasets/readers/video.py), so inspecting them at the training size also prepares the training run.
"""

import collections
import dataclasses
import os
import sys
from typing import Callable

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from PIL import ImageDraw
import tensorflow as tf

from datasets import ground_truth
from datasets import labels as labels_lib
from datasets import sources
from datasets import visualize
from datasets.readers import camvid
from datasets.readers import cityscapes
from datasets.readers import kitti_flow
from datasets.readers import kitti_raw
from datasets.readers import scannet
from datasets.readers import video


@dataclasses.dataclass(frozen=True)
class DatasetReader:
  """How the inspect command reads one dataset.

  Attributes:
    description: one line for the help text.
    scenes: (InspectConfig) -> iterable of scenes of its root and split (see the module docstring).
    class_set: the dataset whose classes the labels hold (`labels.class_names`, `visualize.palette`), or None for
      a dataset without labels.
    classes: for a dataset whose classes are in its root (your own video): (root) -> (names, palette or None).
    splits: the --split values the dataset has.
    ignore_label: label value of unlabeled pixels.
  """
  description: str
  scenes: Callable
  class_set: str | None = "scannet"
  splits: tuple = scannet.SPLITS
  ignore_label: int = labels_lib.IGNORE_LABEL
  classes: Callable | None = None

  def class_names(self, root):
    if self.classes:
      return (self.classes(root) or ((), None))[0]
    return labels_lib.class_names(self.class_set) if self.class_set else ()

  def palette(self, root):
    if self.classes:
      names, palette = self.classes(root) or ((), None)
      return np.asarray(palette if palette is not None else
                        [visualize.PALETTE[i % len(visualize.PALETTE)] for i in range(len(names))], np.uint8)
    return visualize.palette(self.class_set) if self.class_set else np.zeros([0, 3], np.uint8)


def _video_scenes(config):
  settings = video.VideoSettings(size=config.size, fps=config.video_fps, intrinsics=config.video_intrinsics,
                                 val=config.video_val)
  return video.read_scenes(config.root, config.split, settings, os.path.join(sources.CACHE_ROOT, "video"))


READERS = {
    "scannet": DatasetReader("ScanNet frames exported by SensReader (color/, depth/, pose/, intrinsic/, labels).",
                             lambda c: scannet.iter_scenes(c.root, c.split)),
    "synthetic": DatasetReader("The built-in synthetic video, written by datasets.synthetic in the ScanNet layout.",
                               lambda c: scannet.iter_scenes(c.root, c.split)),
    "cityscapes": DatasetReader("Cityscapes 30-frame snippets (the folder holding leftImg8bit_sequence/, gtFine/, "
                                "camera/).", lambda c: cityscapes.iter_scenes(c.root, c.split), "cityscapes",
                                cityscapes.SPLITS),
    "camvid": DatasetReader("CamVid in SegNet's split (the CamVid/ folder holding train.txt, train/, trainannot/, "
                            "...).", lambda c: camvid.iter_scenes(c.root, c.split), "camvid", camvid.SPLITS),
    "kitti_flow": DatasetReader("KITTI optical flow 2015 pairs with ground-truth flow (the folder holding "
                                "training/).", lambda c: kitti_flow.iter_scenes(c.root, c.split), None,
                                tuple(kitti_flow.SPLITS)),
    "kitti_raw": DatasetReader("Raw KITTI drives, left colour camera (the folder holding the <date>/ folders, "
                               "optionally test_scenes.txt).", lambda c: kitti_raw.iter_scenes(c.root, c.split), None,
                               kitti_raw.SPLITS),
    "video": DatasetReader("Your own videos: video files and folders of frames, optional labels/ "
                           "(datasets/readers/video.py).",
                           _video_scenes, None, ("train", "val"), classes=video.read_classes),
}


@dataclasses.dataclass(frozen=True)
class InspectConfig:
  """The resolved command line."""
  dataset: str
  root: str
  split: str | None
  output: str
  size: tuple
  num_samples: int
  clip_length: int
  scene: str | None
  max_scenes: int
  max_listed: int
  check_all: bool = False
  video_fps: float = 0.0
  video_intrinsics: tuple = ()
  video_val: tuple = ()


def inspect(config, out=None):
  """Prints the summary of `config.root` to `out` (default stdout) and writes the contact sheet; returns the scenes."""
  out = out or sys.stdout
  reader = READERS[config.dataset]
  if config.split is not None and config.split not in reader.splits:
    raise labels_lib.DataError(f"--split={config.split}: {config.dataset} has the splits {', '.join(reader.splits)}.")
  scenes = []
  for scene in reader.scenes(config):
    scenes.append(scene)
    if config.max_scenes and len(scenes) >= config.max_scenes:
      break

  def say(line=""):
    print(line, file=out)

  if not scenes:
    raise labels_lib.DataError(f"{config.root} has no {config.split or ''} scenes" +
                               (" (no validation videos: name them with --video_val or in val.txt)"
                                if config.dataset == "video" and config.split == "val" else "") + ".")
  total = sum(s.num_frames for s in scenes)
  skipped = sum(len(getattr(s, "skipped_frame_ids", ())) for s in scenes)
  say(f"dataset {config.dataset} at {config.root}, split {config.split or 'all'}")
  say(f"scenes: {len(scenes)}" + (" (--max_scenes reached)" if config.max_scenes == len(scenes) else ""))
  say(f"frames: {total}" + (f" ({skipped} more skipped: non-finite pose)" if skipped else ""))
  say(f"frames per scene: min {min(s.num_frames for s in scenes)}, max {max(s.num_frames for s in scenes)}, "
      f"mean {total / len(scenes):.1f}")
  for scene in scenes[:config.max_listed]:
    say("  " + _scene_line(scene))
  if len(scenes) > config.max_listed:
    say(f"  ... and {len(scenes) - config.max_listed} more scenes")

  color_sizes = collections.Counter(tuple(s.color_size) for s in scenes)
  say("color resolution(s): " + _sizes_text(color_sizes))
  if all(getattr(s, "depth_size", None) for s in scenes):
    say("depth resolution(s): " + _sizes_text(collections.Counter(tuple(s.depth_size) for s in scenes)))
  k = np.stack([np.asarray(s.intrinsics) for s in scenes])
  known = np.isfinite(k).all(axis=(1, 2)) & np.array([getattr(s, "intrinsics_known", True) for s in scenes])
  if known.any():
    k = k[known]
    params = {"fx": k[:, 0, 0], "fy": k[:, 1, 1], "cx": k[:, 0, 2], "cy": k[:, 1, 2]}
    say("intrinsics at the colour resolution (min .. max): " +
        ", ".join(f"{n} {v.min():.2f} .. {v.max():.2f}" for n, v in params.items()) +
        ("" if known.all() else f" ({int(np.sum(~known))} scenes without calibration)"))
  else:
    say("intrinsics: unknown (no calibration given: a stand-in K is used, which depth_motion can learn)")

  if reader.class_names(config.root):
    _print_class_frequencies(scenes, config, reader, say)
  if config.check_all:
    bad = check_all(scenes, config.size, say)
    if bad:
      raise labels_lib.DataError(f"{len(bad)} of the frames of {config.root} do not load (listed above).")

  if config.output:
    _write_contact_sheet(scenes, config, reader, say)
  return scenes


def check_all(scenes, size, say):
  """Loads every frame of `scenes` at `size` (every file decoded and checked as training does); says each failure.

  Returns:
    [(scene name, frame id, message naming the file)] of the frames that failed.
  """
  bad, done, total = [], 0, sum(scene.num_frames for scene in scenes)
  say(f"checking all {total} frames ...")
  for scene in scenes:
    for index in range(scene.num_frames):
      try:
        scene.load(index, size)
      except labels_lib.DataError as e:
        bad.append((scene.name, scene.frame_ids[index], str(e)))
      except tf.errors.OpError as e:
        bad.append((scene.name, scene.frame_ids[index], str(labels_lib.data_error_from(e) or e.message)))
      else:
        continue
      finally:
        done += 1
      say(f"  BAD {scene.name} frame {scene.frame_ids[index]}: {bad[-1][2]}")
    say(f"  checked {done}/{total} frames ({scene.name} done), {len(bad)} bad")
  say(f"checked {total} frames: " + (f"{len(bad)} bad" if bad else "all load"))
  return bad


def _scene_line(scene):
  parts = [f"{scene.name}: {scene.num_frames} frames (ids {scannet.format_ids(scene.frame_ids, max_ranges=3)})"]
  skipped = getattr(scene, "skipped_frame_ids", ())
  if skipped:
    parts.append(f"{len(skipped)} skipped (non-finite pose: {scannet.format_ids(skipped, max_ranges=3)})")
  parts.append("color {}x{}".format(*scene.color_size))
  native_size = getattr(scene, "native_size", None)
  if native_size:
    k = video.resize_intrinsics(np.asarray(scene.intrinsics), scene.color_size, native_size)
    parts.append("imported from {}x{}, K at that size: fx {:.1f} fy {:.1f} cx {:.1f} cy {:.1f}".format(
        *native_size, k[0, 0], k[1, 1], k[0, 2], k[1, 2]) +
        ("" if scene.intrinsics_known else " (unknown: a stand-in; depth_motion learns it)"))
  if getattr(scene, "depth_size", None):
    parts.append("depth {}x{}".format(*scene.depth_size))
  if getattr(scene, "has_flow", False):
    parts.append("ground-truth flow")
  source = getattr(scene, "label_source", None)
  label_paths = getattr(scene, "label_paths", None)
  labelled = sum(1 for path in label_paths if path) if label_paths else 0
  parts.append({None: "no labels", scannet.LABEL_NYU40: "labels label/ (NYU40)",
                scannet.LABEL_RAW: "labels label-filt/ (raw ids via tsv)"}.get(source, f"labels {source}"))
  if source is not None and labelled < scene.num_frames:
    parts[-1] += f" on {labelled} frame{'s' if labelled != 1 else ''}"
  return ", ".join(parts)


def _sizes_text(counter):
  return ", ".join(f"{h}x{w} ({n} scene{'s' if n > 1 else ''})" for (h, w), n in counter.most_common())


def _labelled_indices(scene):
  """Indices of the frames of `scene` that have a label file."""
  label_paths = getattr(scene, "label_paths", None) or ()
  return [index for index, path in enumerate(label_paths) if path]


def _print_class_frequencies(scenes, config, reader, say):
  # Sampled among the frames with labels (one in 30 in Cityscapes), or among all frames when none has any.
  frames = [(scene, index) for scene in scenes for index in _labelled_indices(scene)]
  frames = frames or [(scene, index) for scene in scenes for index in range(scene.num_frames)]
  count = min(config.num_samples, len(frames))
  if count == 0:
    return
  picks = sorted(set(np.linspace(0, len(frames) - 1, count).round().astype(int)))
  class_names = reader.class_names(config.root)
  counts = np.zeros([len(class_names)], np.int64)
  ignored = labelled_frames = 0
  for pick in picks:
    scene, index = frames[pick]
    frame = scene.load(index, config.size)
    if not bool(frame["has_label"]):
      continue
    labelled_frames += 1
    label = frame["label"].numpy().ravel()
    known = label != reader.ignore_label
    ignored += int(np.sum(~known))
    counts += np.bincount(label[known], minlength=len(counts))[:len(counts)]
  height, width = config.size
  say(f"class pixel frequencies over {len(picks)} sampled frames ({labelled_frames} labelled) at {height}x{width}:")
  if not counts.sum():
    say("  no labelled pixels")
    return
  for class_id in np.argsort(-counts, kind="stable"):
    if counts[class_id]:
      say(f"  {class_id:3d} {class_names[class_id]:<16s} {counts[class_id] / counts.sum():.4f}")
  unseen = [class_names[c] for c in range(len(counts)) if not counts[c]]
  if unseen:
    say(f"  not seen: {', '.join(unseen)}")
  if ignored:
    say(f"  ignored pixels: {ignored}")


def _write_contact_sheet(scenes, config, reader, say):
  if config.scene:
    matches = [s for s in scenes if s.name == config.scene]
    if not matches:
      raise labels_lib.DataError(f"--scene={config.scene} is not among the scenes read from {config.root}.")
    scene = matches[0]
  else:
    scene = next((s for s in scenes if s.num_frames > 1), scenes[0])
  length = min(config.clip_length, scene.num_frames)
  # The clip shows the scene's first labelled frame (Cityscapes: the 20th) when there is one.
  labelled = _labelled_indices(scene)
  start = min(max(0, labelled[0] - length // 2), scene.num_frames - length) if labelled else 0
  frames = [scene.load(index, config.size) for index in range(start, start + length)]
  sheet = contact_sheet(frames, [f"frame {f['frame_id']}" for f in frames], title=scene.name,
                        class_names=reader.class_names(config.root), palette=reader.palette(config.root))
  directory = os.path.dirname(os.path.abspath(config.output))
  os.makedirs(directory, exist_ok=True)
  Image.fromarray(sheet).save(config.output)
  say(f"contact sheet: {config.output} ({scene.name}, frames {frames[0]['frame_id']}..{frames[-1]['frame_id']}, "
      f"{sheet.shape[1]}x{sheet.shape[0]} px)")


# Sheet layout, in output pixels.
_MIN_CELL_HEIGHT = 120
_MARGIN_LEFT = 110
_MARGIN_TOP = 18
_GAP = 4
_BACKGROUND = (32, 32, 32)
_TEXT = (235, 235, 235)


def contact_sheet(frames, column_titles, title="", class_names=labels_lib.CLASS_NAMES, palette=visualize.PALETTE):
  """[height, width, 3] uint8 grid: one column per frame, one row per kind of data, and a legend of the classes seen.

  Args:
    frames: `load`ed frames of one clip (dicts with `image` [H, W, 3] and optionally `depth`, `label`, `pose`,
      `intrinsics`; the first frame optionally `flow` [H, W, 2] and `flow_valid` [H, W]), consecutive.
    column_titles: one title per frame.
    title: drawn in the top-left corner (e.g. the scene name).
    class_names, palette: the dataset's classes and their colours.
  """
  rows = [("RGB", [tf.image.convert_image_dtype(f["image"], tf.uint8, saturate=True).numpy() for f in frames])]
  if "depth" in frames[0]:
    rows.append(("depth", list(visualize.colorize_depth(tf.stack([f["depth"] for f in frames])).numpy())))
  has_labels = "label" in frames[0] and any(bool(f.get("has_label", True)) for f in frames)
  if has_labels:
    labels = tf.stack([f["label"] for f in frames])
    rows.append(("labels", list(visualize.colorize_labels(labels, palette).numpy())))
  if "flow" in frames[0]:
    flow = visualize.colorize_flow(frames[0]["flow"], frames[0].get("flow_valid")).numpy()
    rows.append(("ground-truth\nflow", [flow] + [None] * (len(frames) - 1)))
  if len(frames) > 1 and all(k in frames[0] for k in ("depth", "pose", "intrinsics")):
    stack = lambda key, part: tf.stack([f[key] for f in (frames[:-1] if part == "source" else frames[1:])])
    match = ground_truth.correspondence(stack("depth", "source"), stack("pose", "source"), stack("pose", "target"),
                                        stack("intrinsics", "source"), target_depth=stack("depth", "target"))
    # One magnitude normaliser for the clip, so that colours compare across columns.
    magnitude = tf.norm(match.flow, axis=-1)
    scale = float(tf.reduce_max(tf.where(match.valid, magnitude, 0.0)))
    flow = visualize.colorize_flow(match.flow, match.valid, max_magnitude=max(scale, 1e-3)).numpy()
    visibility = tf.where(match.visible, 1.0, tf.where(match.valid, 0.5, 0.0))
    visibility = visualize.colorize_mask(visibility).numpy()
    rows.append((f"flow to next\n(max {scale:.1f} px)", list(flow) + [None]))
    rows.append(("visible in\nnext frame", list(visibility) + [None]))

  height, width = rows[0][1][0].shape[:2]
  zoom = max(1, -(-_MIN_CELL_HEIGHT // height))
  cell_h, cell_w = height * zoom, width * zoom
  legend_classes = []
  if has_labels:
    seen = np.unique(np.concatenate([f["label"].numpy().ravel() for f in frames]))
    legend_classes = [int(c) for c in seen if 0 <= c < len(class_names)]
  legend_rows = -(-len(legend_classes) // 4)
  sheet_h = _MARGIN_TOP + len(rows) * (cell_h + _GAP) + legend_rows * 16 + (_GAP if legend_rows else 0)
  sheet_w = _MARGIN_LEFT + len(frames) * (cell_w + _GAP)
  sheet = Image.new("RGB", (max(sheet_w, 4 * 130 + 8), sheet_h), _BACKGROUND)
  draw = ImageDraw.Draw(sheet)
  draw.text((4, 3), title, fill=_TEXT)
  for c, column_title in enumerate(column_titles):
    draw.text((_MARGIN_LEFT + c * (cell_w + _GAP), 3), column_title, fill=_TEXT)
  for r, (row_title, cells) in enumerate(rows):
    top = _MARGIN_TOP + r * (cell_h + _GAP)
    draw.multiline_text((4, top + 4), row_title, fill=_TEXT)
    for c, cell in enumerate(cells):
      if cell is None:
        continue
      image = Image.fromarray(np.asarray(cell, np.uint8)).resize((cell_w, cell_h), Image.NEAREST)
      sheet.paste(image, (_MARGIN_LEFT + c * (cell_w + _GAP), top))
  top = _MARGIN_TOP + len(rows) * (cell_h + _GAP)
  for i, class_id in enumerate(legend_classes):
    x, y = 4 + (i % 4) * 130, top + (i // 4) * 16
    draw.rectangle([x, y + 2, x + 10, y + 12], fill=tuple(int(v) for v in palette[class_id]))
    draw.text((x + 14, y + 1), class_names[class_id], fill=_TEXT)
  return np.asarray(sheet)


FLAGS = flags.FLAGS


def define_flags():
  """The command's flags, defined only when it runs as a program: importing this module defines none, so it can sit
  next to the training flags (which also have --dataset, --height, --width)."""
  flags.DEFINE_enum("dataset", "scannet", sorted(READERS),
                    "Dataset format of --root: " + "; ".join(f"{k}: {v.description}" for k, v in READERS.items()))
  flags.DEFINE_string("root", None, "Dataset root as distributed: scannet: the folder holding the scene folders "
                      "(and split files, label tsv); cityscapes: the folder holding leftImg8bit_sequence/; camvid: "
                      "SegNet's CamVid/ folder; kitti_flow: the folder holding training/; kitti_raw: the folder "
                      "holding the <date>/ folders; video: your folder of videos (docs/own_video.md).")
  flags.DEFINE_enum("split", None, sorted({s for reader in READERS.values() for s in reader.splits}),
                    "Only the scenes of this split (scannet: scannetv2_<split>.txt at the root; kitti_flow: train = "
                    "training/, test = testing/; kitti_raw: val = test = the drives of test_scenes.txt, train = the "
                    "others); every scene (kitti_flow: training/) when not given.")
  flags.DEFINE_string("output", "contact_sheet.png", "Path of the contact sheet PNG to write; empty for none.")
  flags.DEFINE_integer("height", 240, "Working image height: frames are resized to it for the sheet and the "
                       "statistics.",
                       lower_bound=8)
  flags.DEFINE_integer("width", 320, "Working image width.", lower_bound=8)
  flags.DEFINE_float("video_fps", 0.0, "video: frames per second kept (as in training; 0: every frame).")
  flags.DEFINE_list("video_intrinsics", [], "video: fx,fy,cx,cy at each video's own size, for videos without "
                    "<name>.intrinsics.txt (default: unknown, a stand-in is shown).")
  flags.DEFINE_list("video_val", [], "video: names of the validation videos (default: val.txt at the root, if any).")
  flags.DEFINE_integer("num_samples", 16, "Frames, spread evenly over the dataset, whose labels are counted.",
                       lower_bound=0)
  flags.DEFINE_integer("clip_length", 4, "Consecutive frames shown in the contact sheet.", lower_bound=1)
  flags.DEFINE_string("scene", None, "Scene drawn in the contact sheet; by default the first scene.")
  flags.DEFINE_integer("max_scenes", 0, "Read at most this many scenes (0: all); reading a scene reads all its poses.",
                       lower_bound=0)
  flags.DEFINE_integer("max_listed", 30, "Scenes listed one per line; the rest are counted.", lower_bound=0)
  flags.DEFINE_bool("check_all", False, "Decode every frame of every scene (the summary samples a few), list each "
                    "file that fails with the reason, and exit with status 1 if any does.")


def config_from_flags():
  return InspectConfig(dataset=FLAGS.dataset, root=FLAGS.root, split=FLAGS.split, output=FLAGS.output,
                       size=(FLAGS.height, FLAGS.width), num_samples=FLAGS.num_samples,
                       clip_length=FLAGS.clip_length, scene=FLAGS.scene, max_scenes=FLAGS.max_scenes,
                       max_listed=FLAGS.max_listed, check_all=FLAGS.check_all, video_fps=FLAGS.video_fps,
                       video_intrinsics=tuple(float(v) for v in FLAGS.video_intrinsics),
                       video_val=tuple(FLAGS.video_val))


def run(config):
  """`inspect` for the command line: returns the exit status, printing one line for malformed data."""
  try:
    inspect(config)
  except labels_lib.DataError as e:
    print(f"datasets.inspect: error: {e}", file=sys.stderr)
    return 1
  return 0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  sys.exit(run(config_from_flags()))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("root")
  app.run(main)
