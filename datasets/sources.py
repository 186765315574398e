"""Where a stage's scenes come from: a ScanNet-layout root, or the built-in synthetic video generated on first use.

    scenes = sources.load_scenes(sources.SourceSpec(dataset="synthetic", root="", split="train", ...))

The synthetic video is written once into its cache directory (complete scenes are skipped on later calls, an
interrupted generation is finished), then read through the same ScanNet reader as real data.
"""

import dataclasses
import os

from absl import logging

from datasets import scannet
from datasets import synthetic

DATASETS = ("synthetic", "scannet")
CACHE_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "video-consistency-segmentation")


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """A dataset and how to get it.

  Attributes:
    dataset: "synthetic" or "scannet".
    root: dataset root. synthetic: the cache directory ("" for a default under ~/.cache named after the settings).
    synthetic_scenes, synthetic_frames: size of the generated video.
    synthetic_size: (height, width) rendered (the working resolution, so nothing is resized).
    synthetic_seed: generator seed.
  """
  dataset: str = "synthetic"
  root: str = ""
  synthetic_scenes: int = 20
  synthetic_frames: int = 100
  synthetic_size: tuple = (128, 160)
  synthetic_seed: int = 0

  def __post_init__(self):
    if self.dataset not in DATASETS:
      raise ValueError(f"dataset must be one of {DATASETS}. Received: dataset={self.dataset!r}")
    if self.dataset == "scannet" and not self.root:
      raise ValueError("dataset=scannet needs a data root (--data_root=/path/to/scannet).")

  @property
  def resolved_root(self):
    if self.root or self.dataset != "synthetic":
      return self.root
    height, width = self.synthetic_size
    return os.path.join(CACHE_ROOT, f"synthetic-{self.synthetic_scenes}x{self.synthetic_frames}-{height}x{width}-"
                                    f"seed{self.synthetic_seed}")


def load_scenes(spec, split=None):
  """The `scannet.SceneIndex` list of `spec` (one split, or all scenes), generating synthetic data if needed."""
  root = spec.resolved_root
  if spec.dataset == "synthetic":
    height, width = spec.synthetic_size
    logging.info("Synthetic video in %s (generated on first use).", root)
    synthetic.generate(root, spec.synthetic_scenes, spec.synthetic_frames, height, width, seed=spec.synthetic_seed)
  return scannet.read_scenes(root, split)
