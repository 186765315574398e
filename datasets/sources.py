"""Where a stage's scenes come from: a dataset root (ScanNet, Cityscapes, CamVid, raw KITTI), a folder of your own
videos, or the built-in synthetic video.

    spec = sources.SourceSpec(dataset="cityscapes", root="/data/cityscapes")
    scenes = sources.load_scenes(spec, "train")        # scannet.SceneIndex list, for datasets.clips
    segmenter_classes = sources.num_classes(spec)      # 21, 19 or 11 (raw KITTI: Cityscapes' 19)

The synthetic video is written once into its cache directory (complete scenes are skipped on later calls, an
interrupted generation is finished), then read through the same ScanNet reader as real data. Every reader returns
`scannet.SceneIndex` scenes, so the clip pipeline is the same for all. Raw KITTI has no labels: a segmenter trained on
it predicts Cityscapes' 19 classes (`kitti_raw.CLASS_SET`), as in EFC's KITTI setup. Your own videos (`video`) are
imported into a cache folder once (datasets/readers/video.py); their classes are those of labels/classes.json.
"""

import dataclasses
import os

from absl import logging
import numpy as np

from datasets import labels as labels_lib
from datasets import visualize
from datasets.readers import camvid
from datasets.readers import cityscapes
from datasets.readers import kitti_raw
from datasets.readers import scannet
from datasets.readers import video
from datasets.synthetic import camera as synthetic_camera
from datasets.synthetic import generator as synthetic

DATASETS = ("synthetic", "scannet", "cityscapes", "camvid", "kitti_raw", "video")
# Datasets without labels of their own, and the class set a segmenter trained on them predicts.
_CLASS_SETS = {"kitti_raw": kitti_raw.CLASS_SET}
CACHE_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "video-consistency-segmentation")


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """A dataset and how to get it.

  Attributes:
    dataset: one of DATASETS.
    root: dataset root. synthetic: the cache directory ("" for a default under ~/.cache named after the settings).
      cityscapes: the folder holding leftImg8bit_sequence/ (gtFine/, camera/); camvid: SegNet's CamVid/ folder;
      kitti_raw: the folder holding the <date>/ folders of raw KITTI (and optionally test_scenes.txt).
    synthetic_scenes, synthetic_frames: size of the generated video.
    size: (height, width), the working resolution: the synthetic video is rendered and your own videos are cached
      at it (the other datasets are resized as they are read).
    synthetic_seed: generator seed.
    synthetic_motion: the camera's, one of `synthetic_camera.MOTIONS` ("handheld" or "dolly").
    cityscapes_crop: load Cityscapes frames with the struct2depth crop.
    camvid_intrinsics: (fx, fy, cx, cy) of CamVid at 480x360, or () for a stand-in (`scannet.stand_in_intrinsics`).
    video_fps: video: frames per second kept (0: every frame).
    video_intrinsics: video: (fx, fy, cx, cy) at each video's own size, for videos without <name>.intrinsics.txt.
    video_val: video: the validation scenes' names (() reads val.txt at the root, if any).
  """
  dataset: str = "synthetic"
  root: str = ""
  synthetic_scenes: int = 20
  synthetic_frames: int = 100
  size: tuple = (128, 160)
  synthetic_seed: int = 0
  synthetic_motion: str = synthetic.DEFAULT_MOTION
  cityscapes_crop: bool = False
  camvid_intrinsics: tuple = ()
  video_fps: float = 0.0
  video_intrinsics: tuple = ()
  video_val: tuple = ()

  def __post_init__(self):
    if self.dataset not in DATASETS:
      raise ValueError(f"dataset must be one of {DATASETS}. Received: dataset={self.dataset!r}")
    if self.dataset != "synthetic" and not self.root:
      raise ValueError(f"dataset={self.dataset} needs a data root (--data_root=/path/to/{self.dataset}).")
    if self.synthetic_motion not in synthetic_camera.MOTIONS:
      raise ValueError(f"synthetic_motion must be one of {synthetic_camera.MOTIONS}. Received: "
                       f"synthetic_motion={self.synthetic_motion!r}")
    if self.camvid_intrinsics and (len(self.camvid_intrinsics) != 4 or min(self.camvid_intrinsics[:2]) <= 0):
      raise ValueError(f"camvid_intrinsics must be fx,fy,cx,cy with fx, fy > 0. Received: {self.camvid_intrinsics}")
    self.video_settings()  # validates the video settings

  def video_settings(self):
    """The `video.VideoSettings` of this spec (frames cached at `size`, the working size)."""
    return video.VideoSettings(size=tuple(self.size), fps=self.video_fps,
                               intrinsics=tuple(self.video_intrinsics), val=tuple(self.video_val))

  @property
  def resolved_root(self):
    if self.root or self.dataset != "synthetic":
      return self.root
    height, width = self.size
    motion = "" if self.synthetic_motion == synthetic.DEFAULT_MOTION else f"-{self.synthetic_motion}"
    return os.path.join(CACHE_ROOT, f"synthetic-{self.synthetic_scenes}x{self.synthetic_frames}-{height}x{width}-"
                                    f"seed{self.synthetic_seed}{motion}")


def class_set(spec):
  """The labelled dataset whose classes a segmenter trained on `spec` predicts: its own, or raw KITTI's Cityscapes."""
  return _CLASS_SETS.get(spec.dataset, spec.dataset)


def _video_classes(spec):
  classes = video.read_classes(spec.root)
  if classes is None:
    raise labels_lib.DataError(f"{spec.root} has no {video.LABELS_DIR}/{video.CLASSES_FILE}: the segmentation "
                               "stages need labelled frames (labels/<video>/<frame index>.png) and the class names.")
  return classes


def num_classes(spec):
  """The number of classes the segmenter predicts for `spec`'s dataset (`labels.num_classes`; raw KITTI: 19; your
  own video: labels/classes.json's)."""
  return len(class_names(spec))


def class_names(spec):
  """The class names of `spec`'s dataset, in class id order (raw KITTI: Cityscapes')."""
  if spec.dataset == "video":
    return _video_classes(spec)[0]
  return labels_lib.class_names(class_set(spec))


def palette(spec):
  """[C, 3] uint8 RGB colour per class of `spec`'s dataset (your own video: classes.json's palette, or the project's
  palette repeated)."""
  if spec.dataset == "video":
    names, colours = _video_classes(spec)
    if colours is None:
      colours = [visualize.PALETTE[i % len(visualize.PALETTE)] for i in range(len(names))]
    return np.asarray(colours, np.uint8)
  return visualize.palette(class_set(spec))


def load_scenes(spec, split=None):
  """The `scannet.SceneIndex` list of `spec` (one split, or all scenes), generating synthetic data if needed."""
  root = spec.resolved_root
  if spec.dataset == "cityscapes":
    return cityscapes.read_scenes(root, split, crop=spec.cityscapes_crop)
  if spec.dataset == "camvid":
    return camvid.read_scenes(root, split, intrinsics=tuple(spec.camvid_intrinsics) or None)
  if spec.dataset == "kitti_raw":
    return kitti_raw.read_scenes(root, split)
  if spec.dataset == "video":
    return video.read_scenes(root, split, spec.video_settings(), os.path.join(CACHE_ROOT, "video"))
  if spec.dataset == "synthetic":
    height, width = spec.size
    logging.info("Synthetic video in %s (generated on first use).", root)
    synthetic.generate(root, spec.synthetic_scenes, spec.synthetic_frames, height, width, seed=spec.synthetic_seed,
                       motion=spec.synthetic_motion)
  return scannet.read_scenes(root, split)
