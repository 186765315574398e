"""What every stage that reads video shares: its data source, built from the config, and its scenes per split,
indexed once."""

from absl import logging

from consistency.harness import stage as stage_lib
from datasets import sources


def source_spec(config):
  """The `sources.SourceSpec` of a TrainConfig."""
  return sources.SourceSpec(dataset=config.dataset, root=config.data_root, synthetic_scenes=config.synthetic_scenes,
                            synthetic_frames=config.synthetic_frames, size=(config.height, config.width),
                            synthetic_seed=config.synthetic_seed, synthetic_motion=config.synthetic_motion,
                            cityscapes_crop=config.cityscapes_crop,
                            camvid_intrinsics=config.camvid_intrinsics, video_fps=config.video_fps,
                            video_intrinsics=config.video_intrinsics, video_val=config.video_val)


class VideoStage(stage_lib.Stage):
  """A stage that reads the configured video source (`self.source`); `scenes(split)` indexes a split once."""

  def __init__(self, config):
    super().__init__(config)
    self.source = source_spec(config)
    self._scenes = {}
    self._warned_no_validation = False

  def scenes(self, split):
    """The `scannet.SceneIndex` list of `split` ("train" or "val"), loaded (and generated, if synthetic) on first
    use."""
    if split not in self._scenes:
      self._scenes[split] = sources.load_scenes(self.source, split)
    return self._scenes[split]

  def has_validation(self):
    """Whether the source has validation scenes; without (your own video without --video_val or val.txt), says once
    that evaluation is skipped."""
    if self.scenes("val"):
      return True
    if not self._warned_no_validation:
      logging.warning("%s: %s has no validation videos (name them with --video_val or in val.txt at the root): "
                      "evaluation is skipped%s.", self.name, self.source.root,
                      "" if self.name != "depth_motion" else " on validation videos (the training video's is kept)")
      self._warned_no_validation = True
    return False
