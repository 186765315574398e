"""What the tests train and on what, declared once: the tiny segmenter (seconds per step on a CPU), a short run's
settings, and the small synthetic video (3 scenes x 8 frames; `tests/conftest.py`'s `synthetic_root` renders it once
per session and size)."""

from consistency.harness import config as config_lib
from segmentation import segmenter

# TrainConfig fields of the tiny segmenter.
SEGMENTER_SETTINGS = dict(backbone="resnet50", backbone_filters=(8, 8, 16, 16), backbone_blocks=(1, 1, 1, 1),
                          nasfpn_filters=16, nasfpn_repeats=1, head_filters=16, head_groups=4)
# With EFC's flow branch as narrow.
EFC_SETTINGS = dict(SEGMENTER_SETTINGS, efc_flow_filters=8)
# The same segmenter built directly (21 classes).
SEGMENTER_CONFIG = segmenter.SegmenterConfig(**SEGMENTER_SETTINGS)
# A short run: two steps, everything saved, summarised and evaluated (on one batch) within them.
RUN_SETTINGS = dict(train_steps=2, batch_size=2, steps_per_loop=2, checkpoint_every=2, summary_every=2,
                    image_summary_every=0, eval_max_batches=1)
# The small synthetic video.
SYNTHETIC_SETTINGS = dict(dataset="synthetic", synthetic_scenes=3, synthetic_frames=8, height=64, width=64)


def train_config(model_dir, **settings):
  """A TrainConfig of a short run into `model_dir`: `RUN_SETTINGS`, then `settings` (which may override them)."""
  return config_lib.TrainConfig(**{**RUN_SETTINGS, "model_dir": str(model_dir), **settings})


def video_config(model_dir, data_root, **settings):
  """`train_config` of the tiny segmenter on the small synthetic video in `data_root`, then `settings`."""
  return train_config(model_dir, **{**SYNTHETIC_SETTINGS, **SEGMENTER_SETTINGS, "data_root": str(data_root),
                                    **settings})
