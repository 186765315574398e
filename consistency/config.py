"""The frozen training configuration every stage and the training loop read (built from flags in `flags.py`)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run needs; see `consistency/flags.py` for the meaning of each field.

  Stage-specific settings live in the stage; this holds what the loop, the optimizer and the data share.
  """
  model_dir: str
  stages: tuple = ("toy_regression",)
  train_steps: int = 1000
  batch_size: int = 8
  # Optimization.
  optimizer: str = "adam"
  learning_rate: float = 1e-4
  lr_schedule: str = "constant"
  lr_end: float = 0.0
  lr_power: float = 0.9
  warmup_steps: int = 0
  momentum: float = 0.9
  weight_decay: float = 0.0
  clip_norm: float = 10.0
  seed: int = 0
  # Execution and distribution.
  num_cpu_replicas: int = 1
  steps_per_loop: int = 10
  run_eagerly: bool = False
  jit_compile: bool = False
  mixed_precision: str = "none"
  # Checkpoints, summaries, evaluation, profiling.
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  summary_every: int = 10
  image_summary_every: int = 100
  eval_every: int = 0
  profile_steps: tuple = ()
  warm_start: tuple = ()  # ((part, checkpoint path), ...)
  # Data shared by the stages.
  dataset: str = "synthetic"
  data_root: str = ""
  synthetic_scenes: int = 20
  synthetic_frames: int = 100
  synthetic_seed: int = 0
  height: int = 128
  width: int = 160
  label_fraction: float = 1.0
  eval_max_batches: int = 0
  # The segmenter (segmentation.segmenter.SegmenterConfig).
  backbone: str = "resnet50"
  backbone_filters: tuple = ()
  backbone_blocks: tuple = ()
  nasfpn_filters: int = 256
  nasfpn_repeats: int = 5
  head_filters: int = 128
  head_groups: int = 32
  class_weights: tuple = ()

  def __post_init__(self):
    positive = ("train_steps", "batch_size", "steps_per_loop", "num_cpu_replicas", "checkpoint_every",
                "keep_checkpoints", "summary_every", "height", "width")
    for name in positive:
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
    if self.optimizer not in ("adam", "sgd"):
      raise ValueError(f"optimizer must be 'adam' or 'sgd'. Received: optimizer={self.optimizer!r}")
    if self.lr_schedule not in ("constant", "polynomial", "cosine"):
      raise ValueError(f"lr_schedule must be constant, polynomial or cosine. Received: {self.lr_schedule!r}")
    if self.mixed_precision not in ("none", "mixed_float16", "mixed_bfloat16"):
      raise ValueError(f"mixed_precision must be none, mixed_float16 or mixed_bfloat16. "
                       f"Received: {self.mixed_precision!r}")
    if self.profile_steps and (len(self.profile_steps) != 2 or not 0 <= self.profile_steps[0] < self.profile_steps[1]):
      raise ValueError(f"profile_steps must be START,END with 0 <= START < END. Received: {self.profile_steps}")
    if not 0.0 < self.label_fraction <= 1.0:
      raise ValueError(f"label_fraction must be in (0, 1]. Received: {self.label_fraction}")
