"""Writes scenes of the ScanNet layout (the synthetic video, a ScanNet export) as a folder of your own videos
(datasets/readers/video.py): to try the own-video path without footage, and to measure it against the scenes' ground
truth.

    python -m datasets.to_video --scannet_root=~/.cache/video-consistency-segmentation/synthetic-20x100-128x160-seed0 \\
        --output_dir=/tmp/my_videos [--label_every=20] [--fps=10]

Writes to --output_dir (a new or empty folder):
  <scene>.mp4                  H.264 (yuv420p, CRF 18: lossy, as a camera's video is) at --fps
  labels/<scene>/<index>.png   every --label_every-th frame's class ids (ScanNet's 21 classes, 255 = ignore)
  labels/classes.json          the class names and palette
  val.txt                      the scenes of the root's validation split
  true_intrinsics.json         {scene: [fx, fy, cx, cy]} at the video's size: the truth the learned K is compared with
                               (not <scene>.intrinsics.txt, which would give the K to training)
"""

import fractions
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from datasets import labels as labels_lib
from datasets import visualize
from datasets.readers import scannet
from datasets.readers import video

TRUE_INTRINSICS_FILE = "true_intrinsics.json"


def write_video(path, frames, fps, lossless=False):
  """Encodes RGB uint8 frames ([H, W, 3], even H and W) as H.264 at `fps`: CRF 18 in yuv420p (lossy, as a camera's
  video is), or lossless (4:4:4, qp 0: a decoded frame differs from the written one by the RGB <-> YUV rounding)."""
  import av  # pylint: disable=import-outside-toplevel
  with av.open(str(path), "w") as container:
    rate = fractions.Fraction(fps).limit_denominator(1001)  # 29.97 stays 30000/1001
    stream = container.add_stream("libx264", rate=rate, options={"qp": "0"} if lossless else {"crf": "18"})
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv444p" if lossless else "yuv420p"
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def convert(scannet_root, output_dir, label_every=20, fps=10.0):
  """Writes the scenes of `scannet_root` into `output_dir` in the own-video layout; returns the scene names."""
  if os.path.exists(output_dir) and os.listdir(output_dir):
    raise FileExistsError(f"--output_dir {output_dir} is not empty: choose a new or empty folder.")
  scenes = scannet.read_scenes(scannet_root)
  val = {scene.name for scene in scannet.read_scenes(scannet_root, "val")}
  os.makedirs(os.path.join(output_dir, video.LABELS_DIR), exist_ok=True)
  truth = {}
  for number, scene in enumerate(scenes, start=1):
    frames = [np.asarray(Image.open(path).convert("RGB")) for path in scene.color_paths]
    write_video(os.path.join(output_dir, f"{scene.name}.mp4"), frames, fps)
    if scene.has_labels:
      label_dir = os.path.join(output_dir, video.LABELS_DIR, scene.name)
      os.makedirs(label_dir, exist_ok=True)
      for index in range(0, scene.num_frames, label_every):
        if scene.label_paths[index]:  # class ids as training reads them, at the frames' size
          classes = scene.load(index, frames[0].shape[:2])["label"].numpy().astype(np.uint8)
          Image.fromarray(classes).save(os.path.join(label_dir, f"{index}.png"))
    k = video.resize_intrinsics(scene.intrinsics, scene.color_size, frames[0].shape[:2])
    truth[scene.name] = [float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])]
    logging.info("%d/%d %s: %d frames.", number, len(scenes), scene.name, len(frames))
  with open(os.path.join(output_dir, video.LABELS_DIR, video.CLASSES_FILE), "w", encoding="utf-8") as f:
    json.dump({"names": list(labels_lib.CLASS_NAMES), "palette": visualize.PALETTE.tolist()}, f)
  with open(os.path.join(output_dir, video.VAL_FILE), "w", encoding="utf-8") as f:
    f.write("".join(f"{name}\n" for name in sorted(val)))
  with open(os.path.join(output_dir, TRUE_INTRINSICS_FILE), "w", encoding="utf-8") as f:
    json.dump(truth, f, indent=1)
  return [scene.name for scene in scenes]


def define_flags():
  flags.DEFINE_string("scannet_root", None, "A folder of scenes in ScanNet's layout (e.g. the synthetic video's "
                      "cache).")
  flags.DEFINE_string("output_dir", None, "A new or empty folder for the videos.")
  flags.DEFINE_integer("label_every", 20, "Keep the label of every N-th frame (sparse labels, as a user's).",
                       lower_bound=1)
  flags.DEFINE_float("fps", 10.0, "Frame rate written into the videos (the synthetic video is 10 fps).")
  flags.mark_flags_as_required(["scannet_root", "output_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  options = flags.FLAGS
  try:
    names = convert(os.path.expanduser(options.scannet_root), options.output_dir, options.label_every, options.fps)
  except (OSError, labels_lib.DataError) as e:
    print(f"datasets.to_video: error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"Wrote {len(names)} videos to {options.output_dir}.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
