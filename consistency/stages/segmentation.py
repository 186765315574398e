"""The supervised segmentation stage: the segmenter trained on the labelled fraction of the training frames.

Data: single labelled frames of the training split (`datasets.clips.labelled_frames`, augmented), evaluation on every
frame of the validation split. Loss: pixel-wise cross-entropy over labelled pixels (the ignore label excluded),
optionally class-weighted (`segmentation.losses`). Metrics (metrics.json): mIoU, per-class IoU, pixel accuracy and
class pixel frequencies from a confusion matrix over all evaluation pixels. Besides checkpoints the stage writes
`segmenter.json` (`segmentation.export.write_run`), which `python -m segmentation.export` reads. The implementation,
which the control and consistency stages extend, is `supervised.SupervisedStage`.
"""

from consistency.harness import stage as stage_lib
from consistency.stages import supervised


@stage_lib.register("segmentation")
class SegmentationStage(supervised.SupervisedStage):
  """Supervised training of the segmenter on the labelled frames: Pasad et al.'s baseline."""
