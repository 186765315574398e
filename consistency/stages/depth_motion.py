"""The depth_motion stage: depth, egomotion and camera intrinsics learned from unlabeled video.

Data: clips of `--dm_clip_length` frames (triplets by default) of the training split, labels unused, gaps in
[--dm_min_gap, --dm_max_gap], augmented. Models: "depth" (`DepthNet`), "motion" (`MotionNet`) and, with
`--dm_intrinsics=per_video`, "intrinsics" (`IntrinsicsTable`, one K per training video). Losses: every directed pair
of the clip (`depth_motion.losses.clip_losses`), weighted by `--dm_loss_preset` and `--dm_loss_weights`; only terms
with a non-zero weight are computed into the total and reported.

Evaluation (metrics.json, TensorBoard eval/): on pairs of the validation split at gap `--dm_min_gap`, against the
ground truth where the data has it (synthetic video, ScanNet), and the same metrics on as many pairs of the training
video, prefixed "training_video/" (the later stages use the teachers on the training video itself, so that is where
their geometry has to be right; the validation split measures generalization to unseen rooms). A metric that the
data cannot give is left out (never reported as 0 or null), with one warning naming it and why: depth_* without
ground-truth depth (Cityscapes, CamVid, raw KITTI), the pose errors without camera poses, the intrinsics errors
without a true K (CamVid without --camvid_intrinsics, a video without intrinsics: a stand-in K); the counts
depth_images, pairs and pose_pairs (pairs with known poses) always stay:
  depth_*         AbsRel, SqRel, RMSE, delta<1.25 of frame 0's depth (flip-and-min inference), with per-image median
                  scaling (depth_*_median_scaled) and without (depth_*_unscaled), plus the mean median scale factor
                  and, for reference, AbsRel and delta<1.25 of a constant map with median scaling
                  (depth_*_constant_reference): what a depth network that learned nothing scores; the relative
                  spread (std / mean) of the predicted and of the true depth (depth_relative_spread,
                  depth_true_relative_spread; 0 predicted = a collapsed, constant depth map);
  rotation_error_deg, translation_angle_deg: relative pose errors of the motion 0 -> 1, and true_rotation_deg, the
                  mean true inter-frame rotation they should be small against (over the pairs with known poses;
                  the translation angle over those whose true translation has a direction);
  warp_epe_px, zero_flow_epe_px: the mean end-point error (pixels) of the predicted warp of frame 1 into frame 0
                  (its depth, motion and K: the correspondence the consistency stage uses) against the true warp,
                  and that of no motion for reference, over the pixels with a true depth that stay in view (pairs
                  with known poses and depth; warp_pairs counts them);
  fx/fy/cx/cy_relative_error: of the learned K (the pair's two directions averaged) against the true K; with
                  per_video intrinsics, of each training video's K (validation videos have no learned K).

Later stages restore the trained networks as frozen teachers with `depth_motion.teachers.load_teachers(<model_dir>/
depth_motion)`: it rebuilds them from `depth_motion.json` (written by this stage) and reads the checkpoint parts "depth"
and "motion"; with --dm_intrinsics=per_video the stage's evaluation also writes each training video's K to
intrinsics.json (`teachers_lib.learned_intrinsics`).
"""

import json
import os

from absl import logging
import numpy as np
import tensorflow as tf

from consistency.harness import stage as stage_lib
from consistency.stages import video
from datasets import augment as augment_lib
from datasets import clips
from datasets import ground_truth
from datasets import visualize
from depth_motion import depth_net as depth_net_lib
from depth_motion import geometry
from depth_motion import intrinsics_table as intrinsics_table_lib
from depth_motion import losses as losses_lib
from depth_motion import metrics as metrics_lib
from depth_motion import teachers as teachers_lib

_DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "delta1")
_INTRINSICS = ("fx", "fy", "cx", "cy")
_POSE_METRICS = ("rotation_error_deg", "true_rotation_deg", "translation_angle_deg")
# Metrics on pairs of the training video carry this prefix (those without it are the validation split's).
TRAINING_VIDEO_PREFIX = "training_video/"


@stage_lib.register("depth_motion")
class DepthMotionStage(video.VideoStage):
  """Unsupervised depth, egomotion and intrinsics (Depth from Videos in the Wild)."""

  def __init__(self, config):
    super().__init__(config)
    self.weights = losses_lib.loss_weights(dict(config.dm_loss_weights), preset=config.dm_loss_preset)
    self._ramp = tuple(config.dm_residual_ramp_steps)
    self._models = None

  @property
  def true_intrinsics(self):
    """Whether every scene's K is a calibration the learned K can be scored against, not a stand-in for an unknown
    camera (CamVid without --camvid_intrinsics, a video without intrinsics: `SceneIndex.intrinsics_known`)."""
    return all(scene.intrinsics_known for split in ("train", "val") for scene in self.scenes(split))

  def preflight(self):
    """Checks the working size against DepthNet before the data and the first batches (`Stage.preflight`).

    Raises:
      ValueError: --height or --width not a multiple of `depth_net.DIVISOR` (DepthNet's five stride-2 stages).
      ValueError: --dm_intrinsics=given for scenes without a known K.
    """
    if self.config.dm_intrinsics == "given" and not self.true_intrinsics:
      unknown = [s.name for split in ("train", "val") for s in self.scenes(split) if not s.intrinsics_known]
      raise ValueError(f"--dm_intrinsics=given needs every video's K, but {len(unknown)} scene(s) have none "
                       f"({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}): learn them with "
                       "--dm_intrinsics=per_video (or learned), or give them (--camvid_intrinsics, --video_intrinsics, "
                       "<video>.intrinsics.txt).")
    divisor = depth_net_lib.DIVISOR
    for name in ("height", "width"):
      value = getattr(self.config, name)
      if value % divisor:
        nearest = sorted({max(divisor, value // divisor * divisor), (value // divisor + 1) * divisor})
        raise ValueError(f"--{name}={value} does not suit the depth_motion stage: DepthNet needs a height and width "
                         f"divisible by {divisor} (five stride-2 stages). Expected a multiple of {divisor}, e.g. "
                         + " or ".join(f"--{name}={size}" for size in nearest) + ".")
    super().preflight()

  def clip_config(self, training):
    config = self.config
    if not training:
      augment = None
    elif not config.dm_augment:
      augment = None
    elif config.dm_intrinsics == "per_video":
      augment = augment_lib.AugmentConfig(flip_probability=0.0, max_scale=1.0)  # keeps each video's K
    else:
      augment = augment_lib.AugmentConfig()
    return clips.ClipConfig(
        height=config.height, width=config.width, clip_length=config.dm_clip_length if training else 2,
        min_gap=config.dm_min_gap, max_gap=config.dm_max_gap if training else config.dm_min_gap,
        batch_size=config.batch_size, augment=augment, include_ground_truth=not training, seed=config.seed)

  # ------------------------------------------------------------------------------------------------------------
  # Models and data.

  def build_models(self):
    settings = teachers_lib.network_settings(self.config)
    models = teachers_lib.build_networks(settings)
    if self.config.dm_intrinsics == "per_video":
      table = intrinsics_table_lib.IntrinsicsTable(len(self.scenes("train")), (self.config.height, self.config.width),
                                                   name="intrinsics")
      table(tf.zeros([1], tf.int32))
      models["intrinsics"] = table
    stage_dir = os.path.join(self.config.model_dir, self.name)
    os.makedirs(stage_dir, exist_ok=True)
    with open(os.path.join(stage_dir, teachers_lib.MODEL_CONFIG_FILE), "w", encoding="utf-8") as f:
      json.dump(settings, f, indent=2)
    self._models = models
    return models

  def train_dataset(self, start_step):
    return clips.clips(self.scenes("train"), self.clip_config(True), training=True, skip_batches=start_step)

  def eval_dataset(self):
    """Validation pairs (if the source has validation videos), then as many pairs of the training video (marked by
    "training_video" = 1)."""
    parts = []
    for flag, split in ((0.0, "val"), (1.0, "train")):
      if split == "val" and not self.has_validation():
        continue
      ds = clips.ClipSource(self.scenes(split), self.clip_config(False)).dataset(training=False)
      if self.config.eval_max_batches:
        ds = ds.take(self.config.eval_max_batches)
      parts.append(ds.map(lambda batch, flag=flag: dict(
          batch, training_video=tf.fill(tf.shape(batch["image"])[:1], flag))))
    return parts[0].concatenate(parts[1]) if len(parts) == 2 else parts[0]

  # ------------------------------------------------------------------------------------------------------------
  # Losses.

  def _intrinsics(self, models, batch):
    """The K every directed pair uses, or None for the motion network's own (learned) predictions."""
    mode = self.config.dm_intrinsics
    if mode == "given":
      return tf.cast(batch["intrinsics"], tf.float32)
    if mode == "per_video":
      return models["intrinsics"](batch["scene_index"])
    return None

  def predict(self, models, images, step, training, intrinsics=None):
    return teachers_lib.predict(models, images, step=step, training=training, intrinsics=intrinsics,
                            residual_ramp=self._ramp)

  def compute_losses(self, models, batch, step, training=True):
    intrinsics = self._intrinsics(models, batch)
    depths, motions = self.predict(models, batch["image"], step, training, intrinsics)
    losses, masks = losses_lib.clip_losses(batch["image"], depths, motions, intrinsics=intrinsics,
                                           occlusion_tolerance=self.config.dm_occlusion_tolerance,
                                           photometric_blurs=self.config.dm_photometric_blurs)
    used = {name: value for name, value in losses.items() if self.weights[name] != 0}
    _, weighted = losses_lib.weighted_total(used, self.weights, step)
    return weighted, {"image": batch["image"][:, 0], "depth": depths[:, 0],
                      "reconstruction": masks[(1, 0)]["reconstruction"], "visible": masks[(1, 0)]["visible"]}

  # ------------------------------------------------------------------------------------------------------------
  # Evaluation.

  def eval_step(self, models, batch):
    image = tf.cast(batch["image"], tf.float32)
    per_sample = {}  # name -> [B] values (already multiplied by their validity), summed per split below
    depth = depth_net_lib.flip_min_depth(models["depth"], image[:, 0])
    for suffix, scaling in (("median_scaled", True), ("unscaled", False)):
      errors = metrics_lib.depth_errors(depth, batch["depth"][:, 0], median_scaling=scaling)
      for name in _DEPTH_METRICS:
        per_sample[f"depth_{name}_{suffix}"] = errors[name] * errors["valid"]
      if scaling:
        per_sample["depth_scale"] = errors["scale"] * errors["valid"]
        per_sample["depth_relative_spread"] = errors["relative_spread"] * errors["valid"]
        per_sample["depth_true_relative_spread"] = errors["true_relative_spread"] * errors["valid"]
        per_sample["depth_images"] = errors["valid"]
    # The reference a depth map must beat: a constant map, median-scaled (each image's true median everywhere).
    constant = metrics_lib.depth_errors(tf.ones_like(depth), batch["depth"][:, 0], median_scaling=True)
    for name in ("abs_rel", "delta1"):
      per_sample[f"depth_{name}_constant_reference"] = constant[name] * constant["valid"]

    intrinsics = self._eval_intrinsics(batch)
    depths, motions = self.predict(models, image, step=None, training=False, intrinsics=intrinsics)
    # A source without poses gives NaN (unknown): such pairs are scored against the identity and not counted.
    pose = tf.cast(batch["pose"][:, :2], tf.float32)
    known = tf.reduce_all(tf.math.is_finite(pose), axis=[1, 2, 3])
    pose = tf.where(known[:, tf.newaxis, tf.newaxis, tf.newaxis], pose, tf.eye(4))
    true_rotation, true_translation = ground_truth.pair_motions(pose, [(0, 1)])[(0, 1)]
    errors = metrics_lib.motion_errors(motions[(0, 1)]["rotation"], motions[(0, 1)]["translation"], true_rotation,
                                       true_translation)
    known = tf.cast(known, tf.float32)
    per_sample["rotation_error_deg"] = errors["rotation_error"] * known
    per_sample["true_rotation_deg"] = errors["true_rotation"] * known
    per_sample["translation_angle_deg"] = errors["translation_angle"] * known
    per_sample["translation_pairs"] = errors["translation_valid"] * known
    per_sample["pose_pairs"] = known
    # The correspondence the later stages use: the warp of frame 1's pixels into frame 0 (background motion).
    motion = motions[(0, 1)]
    warp = metrics_lib.warp_errors(depths[:, 1], motion["rotation"], motion["translation"], motion["intrinsics"],
                                   batch["depth"][:, 1], true_rotation, true_translation, batch["intrinsics"])
    warp_valid = warp["warp_valid"] * known
    per_sample["warp_epe_px"] = warp["warp_epe"] * warp_valid
    per_sample["zero_flow_epe_px"] = warp["zero_flow_epe"] * warp_valid
    per_sample["warp_pairs"] = warp_valid
    per_sample["pairs"] = tf.ones_like(errors["rotation_error"])
    if self.config.dm_intrinsics == "learned" and self.true_intrinsics:
      learned = 0.5 * (motions[(0, 1)]["intrinsics"] + motions[(1, 0)]["intrinsics"])
      per_sample.update(metrics_lib.intrinsics_errors(learned, batch["intrinsics"]))
    on_training_video = tf.cast(batch["training_video"], tf.float32)
    statistics = {}
    for prefix, weight in (("", 1.0 - on_training_video), (TRAINING_VIDEO_PREFIX, on_training_video)):
      for name, value in per_sample.items():
        statistics[prefix + name] = tf.reduce_sum(tf.cast(value, tf.float32) * weight)
    return statistics

  def _eval_intrinsics(self, batch):
    # Validation videos have no entry in a per-video table: their pose is estimated with the true K.
    return None if self.config.dm_intrinsics == "learned" else tf.cast(batch["intrinsics"], tf.float32)

  def eval_result(self, totals):
    """The metrics of both splits; those the data cannot give are left out, with one warning saying which and why."""
    prefix = TRAINING_VIDEO_PREFIX
    validation = {name: value for name, value in totals.items() if not name.startswith(prefix)}
    training = {name[len(prefix):]: value for name, value in totals.items() if name.startswith(prefix)}
    absent = []  # (metric names, why)
    result = self._split_result(validation, "", "validation", absent) if self.scenes("val") else {}
    result.update(self._split_result(training, prefix, "training-video", absent))
    if self.config.dm_intrinsics == "per_video":
      scenes = self.scenes("train")
      teachers_lib.write_learned_intrinsics(os.path.join(self.config.model_dir, self.name), scenes,
                               self._models["intrinsics"](tf.range(len(scenes))), (self.config.height,
                                                                                     self.config.width))
      if self.true_intrinsics:
        result.update(self._table_errors())
      else:
        absent.append(([f"{name}_relative_error" for name in _INTRINSICS], self._no_true_intrinsics()))
    if absent:
      logging.warning("%s evaluation: metrics left out (they cannot be computed from this data): %s.", self.name,
                      "; ".join(f"{', '.join(names)} ({why})" for names, why in absent))
    return result

  def _split_result(self, totals, prefix, split, absent):
    """Averages of one split's summed statistics, keys prefixed with `prefix`; appends what cannot be averaged (and
    why) to `absent`."""
    images, pairs = int(totals["depth_images"]), int(totals["pairs"])
    pose_pairs, translation_pairs = int(totals["pose_pairs"]), int(totals["translation_pairs"])
    result = {"depth_images": images, "pairs": pairs, "pose_pairs": pose_pairs}
    if images:
      result.update({name: float(totals[name]) / images for name in totals
                     if name.startswith("depth_") and name != "depth_images"})
    else:
      absent.append(([f"{prefix}depth_* but {prefix}depth_images"],
                     f"no {split} frame has ground-truth depth{self._missing('depth', split)}"))
    if pose_pairs:
      for name in ("rotation_error_deg", "true_rotation_deg"):
        result[name] = float(totals[name]) / pose_pairs
      if translation_pairs:
        result["translation_angle_deg"] = float(totals["translation_angle_deg"]) / translation_pairs
      else:
        absent.append(([f"{prefix}translation_angle_deg"],
                       f"no {split} pair has a true translation longer than {metrics_lib.MIN_TRANSLATION} m, so "
                       "none has a direction to compare"))
      warp_pairs = int(totals["warp_pairs"])
      result["warp_pairs"] = warp_pairs
      if warp_pairs:
        for name in ("warp_epe_px", "zero_flow_epe_px"):
          result[name] = float(totals[name]) / warp_pairs
      else:
        absent.append(([f"{prefix}warp_epe_px", f"{prefix}zero_flow_epe_px"],
                       f"no {split} pair has both ground-truth depth and camera poses"))
    else:
      absent.append(([prefix + name for name in _POSE_METRICS],
                     f"no {split} pair has ground-truth camera poses{self._missing('poses', split)}"))
    if self.config.dm_intrinsics == "learned":
      if self.true_intrinsics:
        for name in _INTRINSICS:
          result[f"{name}_relative_error"] = float(totals[f"{name}_relative_error"]) / max(pairs, 1)
      else:
        absent.append(([f"{prefix}{name}_relative_error" for name in _INTRINSICS], self._no_true_intrinsics()))
    return {prefix + name: value for name, value in result.items()}

  def _missing(self, what, split):
    """" (dataset=... has no <what>)" when the split's scenes (if already indexed) have none of it, else ""."""
    scenes = self._scenes.get("val" if split == "validation" else "train")
    attribute = {"depth": "has_depth", "poses": "has_poses"}[what]
    if scenes and not any(getattr(scene, attribute) for scene in scenes):
      return f" (dataset={self.config.dataset} has no {what})"
    return ""

  def _no_true_intrinsics(self):
    return (f"dataset={self.config.dataset} has no camera calibration (none was given: --camvid_intrinsics, "
            "--video_intrinsics, <video>.intrinsics.txt): its K is a stand-in, not a truth to measure the learned K "
            "against")

  def _table_errors(self):
    """Relative errors of each training video's learned K against its true K, averaged over the videos."""
    scenes = self.scenes("train")
    size = (self.config.height, self.config.width)
    truth = tf.stack([geometry.resize_intrinsics(tf.constant(scene.intrinsics, tf.float32), scene.color_size, size)
                      for scene in scenes])
    learned = self._models["intrinsics"](tf.range(len(scenes)))
    return {name: float(np.mean(value)) for name, value in metrics_lib.intrinsics_errors(learned, truth).items()}

  def summary_images(self, batch, outputs):
    return {"image": outputs["image"], "depth": visualize.colorize_depth(outputs["depth"]),
            "reconstruction_1_on_0": tf.clip_by_value(outputs["reconstruction"], 0.0, 1.0),
            "visible_1_in_0": visualize.colorize_mask(outputs["visible"])}
