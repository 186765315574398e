"""The frozen training configuration every stage and the training loop read (built from flags in `flags.py`)."""

import dataclasses
import math


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
  export_dir: str = ""
  # Data shared by the stages.
  dataset: str = "synthetic"
  data_root: str = ""
  synthetic_scenes: int = 20
  synthetic_frames: int = 100
  synthetic_seed: int = 0
  synthetic_motion: str = "handheld"
  height: int = 128
  width: int = 160
  label_fraction: float = 1.0
  eval_max_batches: int = 0
  # Real datasets (datasets/sources.py); every root is data_root (kitti_raw: the folder holding the <date>/ folders).
  cityscapes_crop: bool = False
  camvid_intrinsics: tuple = ()  # (fx, fy, cx, cy) at CamVid's 480x360; empty: a stand-in (datasets/camvid.py)
  # Your own videos (datasets/video.py).
  video_fps: float = 0.0
  video_intrinsics: tuple = ()
  video_val: tuple = ()
  # The segmenter (segmentation.segmenter.SegmenterConfig).
  backbone: str = "resnet50"
  backbone_filters: tuple = ()
  backbone_blocks: tuple = ()
  backbone_weights: str = "none"
  nasfpn_filters: int = 256
  nasfpn_repeats: int = 5
  head_filters: int = 128
  head_groups: int = 32
  class_weights: tuple = ()
  # EFC (consistency/stages/efc.py).
  efc_segmentation_weight: float = 1.0
  efc_consistency_weight: float = 10.0
  efc_occlusion_weight: float = 0.4
  efc_smoothness_weight: float = 0.5
  efc_photometric_weight: float = 1.0
  efc_occlusion_alpha: float = 0.2
  efc_ssim_beta: float = 0.85
  efc_occlusion_mask: bool = True
  efc_error_mask: bool = True
  efc_mask_gradient: bool = False
  efc_flow_only: bool = False
  efc_flow_trains_encoder: bool = True
  efc_labelled_pairs: float = 0.5
  efc_min_gap: int = 1
  efc_max_gap: int = 5
  efc_eval_gap: int = 2
  efc_loss_levels: tuple = (0, 2, 3, 4, 5)
  efc_consistency_levels: tuple = (2, 3, 4)
  efc_flow_levels: tuple = (2, 3, 4, 5)
  efc_correlation_level: int = 3
  efc_max_displacement: int = 4
  efc_displacement_stride: int = 1
  efc_flow_filters: int = 32
  # Depth and motion (consistency/stages/depth_motion.py).
  dm_clip_length: int = 3
  dm_min_gap: int = 1
  dm_max_gap: int = 1
  dm_intrinsics: str = "learned"
  dm_residual_translation: bool = False
  dm_residual_ramp_steps: tuple = (10000, 20000)
  dm_motion_uses_depth: bool = False
  dm_loss_preset: str = "original"
  dm_loss_weights: tuple = ()  # ((term, weight), ...)
  dm_occlusion_tolerance: float = 0.0
  dm_photometric_blurs: tuple = (1,)
  dm_motion_trunk: str = "plain"
  dm_motion_correlation_radius: int = 3
  dm_motion_pose_solver: str = "regression"
  dm_motion_match_radius: int = 8
  dm_depth_encoder: str = "resnet18"
  dm_max_noise_stddev: float = 0.5
  dm_noise_ramp_steps: int = 10000
  dm_augment: bool = True
  # 4D consistency (consistency/stages/consistency.py).
  geometry: str = "learned"
  consistency_weight: float = 1.0
  consistency_uniform: float = 0.2
  consistency_label_prior: float = 0.4
  consistency_edge_prior: float = 0.4
  consistency_cross_entropy: float = 0.0
  consistency_min_gap: int = 1
  consistency_max_gap: int = 3
  consistency_teacher_dir: str = ""
  consistency_init_dir: str = ""
  consistency_train_teachers: bool = False
  pseudo_label_weight: float = 0.0

  def __post_init__(self):
    positive = ("train_steps", "batch_size", "steps_per_loop", "num_cpu_replicas", "checkpoint_every",
                "keep_checkpoints", "summary_every", "height", "width")
    for name in positive:
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field.name} must be a finite number. Received: {field.name}={value}")
    if self.learning_rate <= 0:
      raise ValueError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate}")
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
    if self.dm_clip_length < 2 or self.dm_min_gap < 1 or self.dm_max_gap < self.dm_min_gap:
      raise ValueError(f"dm_clip_length must be >= 2 and 1 <= dm_min_gap <= dm_max_gap. Received: "
                       f"{self.dm_clip_length}, {self.dm_min_gap}, {self.dm_max_gap}")
    if not 0.0 <= self.dm_occlusion_tolerance < 1.0:
      raise ValueError(f"dm_occlusion_tolerance must be in [0, 1). Received: {self.dm_occlusion_tolerance}")
    if not self.dm_photometric_blurs or any(size < 1 for size in self.dm_photometric_blurs):
      raise ValueError(f"dm_photometric_blurs must be one or more positive box filter sizes, e.g. 1,5. Received: "
                       f"{self.dm_photometric_blurs}")
    if self.dm_depth_encoder not in ("resnet18", "efficientnet_lite0"):
      raise ValueError(f"dm_depth_encoder must be resnet18 or efficientnet_lite0. Received: {self.dm_depth_encoder!r}")
    if self.dm_motion_trunk not in ("plain", "correlation"):
      raise ValueError(f"dm_motion_trunk must be plain or correlation. Received: {self.dm_motion_trunk!r}")
    if self.dm_motion_trunk == "correlation" and self.dm_residual_translation:
      raise ValueError("dm_motion_trunk=correlation has no residual translation field: use dm_motion_trunk=plain "
                       "with dm_residual_translation.")
    if self.dm_motion_pose_solver not in ("regression", "least_squares", "direct"):
      raise ValueError("dm_motion_pose_solver must be regression, least_squares or direct. Received: "
                       f"{self.dm_motion_pose_solver!r}")
    if self.dm_motion_pose_solver != "regression" and self.dm_residual_translation:
      raise ValueError(f"dm_motion_pose_solver={self.dm_motion_pose_solver} solves for one rigid motion: it has no "
                       "residual translation field (drop dm_residual_translation).")
    if self.dm_motion_match_radius < 1:
      raise ValueError(f"dm_motion_match_radius must be >= 1 (pixels). Received: {self.dm_motion_match_radius}")
    if self.dm_motion_correlation_radius < 1:
      raise ValueError(f"dm_motion_correlation_radius must be >= 1. Received: {self.dm_motion_correlation_radius}")
    if self.dm_intrinsics not in ("learned", "per_video", "given"):
      raise ValueError(f"dm_intrinsics must be learned, per_video or given. Received: {self.dm_intrinsics!r}")
    if self.geometry not in ("learned", "ground_truth"):
      raise ValueError(f"geometry must be learned or ground_truth. Received: {self.geometry!r}")
    if self.consistency_min_gap < 1 or self.consistency_max_gap < self.consistency_min_gap:
      raise ValueError(f"consistency gaps need 1 <= consistency_min_gap <= consistency_max_gap. Received: "
                       f"{self.consistency_min_gap}, {self.consistency_max_gap}")
    if self.consistency_weight < 0 or self.pseudo_label_weight < 0:
      raise ValueError(f"consistency_weight and pseudo_label_weight must be >= 0. Received: "
                       f"{self.consistency_weight}, {self.pseudo_label_weight}")
    ramp = self.dm_residual_ramp_steps
    if len(ramp) != 2 or not 0 <= ramp[0] <= ramp[1]:
      raise ValueError(f"dm_residual_ramp_steps must be BEGIN,END with 0 <= BEGIN <= END. Received: "
                       f"{self.dm_residual_ramp_steps}")
