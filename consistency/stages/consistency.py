"""The consistency stage (Pasad et al. 2020): the segmenter trained on labelled frames plus the 4D consistency loss on
unlabeled frame pairs, with correspondences from frozen depth / motion / intrinsics teachers.

Each step sees a batch of labelled frames (cross-entropy, as the segmentation stage) and a batch of frame pairs of
the training video, labelled or not (gap uniform in [--consistency_min_gap, --consistency_max_gap]), all in one
forward pass of the segmenter, so that batch norm normalises labelled and unlabeled frames alike. For both
directed pairs of each pair, the frame-i logits are warped onto frame j (`spatiotemporal.rigid_correspondence`) and
compared with frame j's logits (`spatiotemporal.consistency_terms`); the two directions are averaged and weighted by
--consistency_uniform / _label_prior / _edge_prior / _cross_entropy, the sum by --consistency_weight.

The `control` stage is the experiment the consistency stage is measured against: the same continuation of the same
baseline (fresh optimizer state and learning-rate schedule in both), the same labelled batches and the same pairs in
the same order, and the same forward passes of the segmenter over the pair frames, so its batch-norm statistics follow
the same frames; only the consistency loss is left out (its correspondences are not computed). Its weights after N
steps equal the consistency stage's with --consistency_weight=0 (tests/consistency/test_consistency_stage.py), so a
difference between the two stages is the loss's alone.

Geometry (--geometry):
  learned       depth, motion and K from the depth_motion stage's networks (--consistency_teacher_dir, default
                <model_dir>/depth_motion), frozen: no gradient reaches them unless --consistency_train_teachers;
  ground_truth  the data's depth, poses and K (synthetic video, ScanNet): an oracle that separates the method from
                the quality of the learned geometry.

--pseudo_label_weight > 0 adds weak-to-strong pseudo-labelling of the pair frames as single images (FixMatch /
UniMatch, consistency/pseudo_label.py): the single-image semi-supervised baseline, alone with --consistency_weight=0
or next to the 4D consistency loss. Its weak view is the pair frames' forward pass that both losses share.

The segmenter starts from the segmentation stage (--consistency_init_dir, default <model_dir>/segmentation; "none"
starts from scratch), as the paper continues training its baseline. Evaluation is the segmentation stage's (mIoU on
every frame of the validation split), so the two stages' metrics compare directly.
"""

import dataclasses
import os

import tensorflow as tf

from consistency import pseudo_label
from consistency import spatiotemporal
from consistency.harness import stage as stage_lib
from consistency.stages import supervised
from datasets import clips
from datasets import ground_truth
from depth_motion import geometry
from depth_motion import teachers as teachers_lib
from segmentation import losses as seg_losses

_PAIRS = ((0, 1), (1, 0))


def _flat_labelled(batch):
  return {"labelled_image": batch["image"][:, 0], "labelled_label": batch["label"][:, 0]}


@stage_lib.register("consistency")
class ConsistencyStage(supervised.SupervisedStage):
  """Segmentation + 4D consistency on unlabeled pairs."""
  control = False  # ControlStage: everything but the consistency loss

  def __init__(self, config):
    super().__init__(config)
    self.weights = {"uniform": config.consistency_uniform, "label_prior": config.consistency_label_prior,
                    "edge_prior": config.consistency_edge_prior, "cross_entropy": config.consistency_cross_entropy}
    self.terms = tuple(name for name, weight in self.weights.items() if weight != 0)
    self.teacher_dir = config.consistency_teacher_dir or os.path.join(config.model_dir, "depth_motion")
    self.teacher_settings = None
    # What the losses need: the geometry (teachers or ground truth) only for the 4D consistency term.
    self.consistency_active = config.consistency_weight > 0 and not self.control
    self.pseudo_labelling = config.pseudo_label_weight > 0 and not self.control
    self._preflighting = False

  # ------------------------------------------------------------------------------------------------------------
  # Models.

  def build_models(self):
    models = super().build_models()
    if self.config.geometry == "learned" and self.consistency_active:
      teachers, self.teacher_settings = teachers_lib.load_teachers(self.teacher_dir)
      models.update(teachers)
    return models

  def trainable_models(self):
    if self.config.geometry == "learned" and self.config.consistency_train_teachers and self.consistency_active:
      return ["segmenter", "depth", "motion"]
    return ["segmenter"]

  def initial_checkpoints(self):
    starts = []
    init_dir = self.config.consistency_init_dir or os.path.join(self.config.model_dir, "segmentation")
    if init_dir != "none":
      starts.append(("segmenter", init_dir))
    return tuple(starts)  # the teachers are restored (and checked) by build_models

  # ------------------------------------------------------------------------------------------------------------
  # Data.

  def pair_config(self, training):
    config = self.config
    return clips.ClipConfig(
        height=config.height, width=config.width, clip_length=2, min_gap=config.consistency_min_gap,
        max_gap=config.consistency_max_gap if training else config.consistency_min_gap,
        batch_size=config.batch_size, label_fraction=config.label_fraction, label_seed=config.seed,
        seed=config.seed + 1, include_ground_truth=config.geometry == "ground_truth",
        augment=clips.augment_lib.AugmentConfig() if training else None)

  def pair_scenes(self):
    """The training scenes the pairs come from, each with the K its teachers learned when they learned one per
    video (--dm_intrinsics=per_video: the video's own K may be unknown, a stand-in). Preflight, which may run before
    the teachers exist, checks the scenes as they are."""
    scenes = self.scenes("train")
    if self._preflighting or not (self.config.geometry == "learned" and self.consistency_active):
      return scenes
    learned = teachers_lib.learned_intrinsics(self.teacher_dir)
    if learned is None:
      return scenes
    size, intrinsics = learned
    missing = [scene.name for scene in scenes if scene.name not in intrinsics]
    if missing:
      raise ValueError(f"The teachers in {self.teacher_dir} learned no K for the training video(s) {missing[:5]} "
                       f"(they learned one for {sorted(intrinsics)[:5]}): train the teachers on these videos.")
    return [dataclasses.replace(scene, intrinsics=geometry.resize_intrinsics(intrinsics[scene.name], size,
                                                                             scene.color_size).numpy())
            for scene in scenes]

  def preflight(self):
    self._preflighting = True
    try:
      super().preflight()
    finally:
      self._preflighting = False

  def train_dataset(self, start_step):
    labelled = clips.labelled_frames(self.scenes("train"), self.clip_config(True), training=True,
                                     skip_batches=start_step).map(_flat_labelled)
    pairs = clips.clips(self.pair_scenes(), self.pair_config(True), training=True, skip_batches=start_step)
    keep = ("image", "intrinsics", "depth", "pose")
    pairs = pairs.map(lambda b: {key: b[key] for key in keep if key in b})
    return tf.data.Dataset.zip(labelled, pairs).map(lambda a, b: {**a, **b})

  # ------------------------------------------------------------------------------------------------------------
  # Correspondences and losses.

  def correspondences(self, models, batch):
    """{(i, j): spatiotemporal.Correspondence} for both directed pairs of the pairs in `batch`."""
    if self.config.geometry == "ground_truth":
      depth = tf.cast(batch["depth"], tf.float32)
      intrinsics = tf.cast(batch["intrinsics"], tf.float32)
      return {(i, j): spatiotemporal.rigid_correspondence(depth[:, j], depth[:, i], rotation, translation, intrinsics)
              for (i, j), (rotation, translation) in ground_truth.pair_motions(batch["pose"], _PAIRS).items()}
    settings = self.teacher_settings
    intrinsics = None if settings["motion"]["learn_intrinsics"] else tf.cast(batch["intrinsics"], tf.float32)
    depths, motions = teachers_lib.predict(models, batch["image"], intrinsics=intrinsics)
    result = {}
    for i, j in _PAIRS:
      motion, inverse = motions[(i, j)], motions[(j, i)]
      k = intrinsics if intrinsics is not None else 0.5 * (motion["intrinsics"] + inverse["intrinsics"])
      translation = geometry.translation_field(motion["translation"], motion.get("residual_translation"))
      result[(i, j)] = spatiotemporal.rigid_correspondence(depths[:, j], depths[:, i], motion["rotation"],
                                                           translation, k)
    if not self.config.consistency_train_teachers:
      result = {pair: spatiotemporal.Correspondence(*(tf.stop_gradient(t) for t in c)) for pair, c in result.items()}
    return result

  def _forward(self, models, labelled_images, images, training):
    """The segmenter on the labelled frames and both frames of every pair in ONE batch [labelled, frame 0 of each
    pair, frame 1 of each pair], so that batch norm normalises them all with the same statistics. Returns
    (labelled logits, pair frames [2B, H, W, 3], pair outputs with "logits" and, when pseudo-labelling, the encoder
    "features").

    Two passes (labelled frames, then pair frames) let the segmenter tell the pair batch from the labelled one by its
    statistics, and the consistency loss is then minimised by predicting one class on the pair batch only: after 600
    steps at 0.5 % labels every validation pixel was one class (docs/results.md, "Batch norm")."""
    frames = tf.concat([images[:, 0], images[:, 1]], axis=0)
    count = tf.shape(labelled_images)[0]
    outputs = models["segmenter"](tf.concat([tf.cast(labelled_images, frames.dtype), frames], axis=0),
                                  training=training, return_features=self.pseudo_labelling)
    logits = tf.cast(outputs["logits"], tf.float32)
    pair_outputs = {"logits": logits[count:]}
    if self.pseudo_labelling:
      pair_outputs["features"] = {level: feature[count:] for level, feature in outputs["features"].items()}
    return logits[:count], frames, pair_outputs

  def pseudo_label_loss(self, segmenter, frames, outputs, step, training=True):
    """Weak-to-strong pseudo-labelling of `frames` whose weak-view outputs are `outputs` (consistency/pseudo_label.py):
    0.5 x the strong view's masked cross-entropy + 0.5 x the feature-perturbed view's. `training` is the segmenter's
    batch-norm mode (False for image summaries, which must not move its statistics)."""
    seeds = tf.random.experimental.stateless_split(
        tf.stack([tf.constant(self.config.seed, tf.int64), tf.cast(step, tf.int64)]), 3)
    labels, confident = pseudo_label.confident_pseudo_labels(outputs["logits"], pseudo_label.THRESHOLD)
    shape = tf.shape(frames)
    boxes = pseudo_label.cutmix_boxes(shape[0], shape[1], shape[2], seeds[0])
    strong = pseudo_label.cutmix(pseudo_label.strong_photometric(frames, seeds[1]), boxes)
    strong_logits = segmenter(strong, training=training)["logits"]
    strong_loss = pseudo_label.masked_cross_entropy(strong_logits, pseudo_label.cutmix(labels, boxes),
                                                    pseudo_label.cutmix(confident, boxes))
    perturbed = pseudo_label.feature_dropout(outputs["features"], seeds[2])
    feature_logits = segmenter.decode(perturbed, shape[1:3], training=training)
    feature_loss = pseudo_label.masked_cross_entropy(feature_logits, labels, confident)
    return pseudo_label.STRONG_WEIGHT * strong_loss + pseudo_label.FEATURE_WEIGHT * feature_loss

  def compute_losses(self, models, batch, step, training=True):
    images = tf.cast(batch["image"], tf.float32)
    # In the control too: batch norm sees the same frames.
    labelled_logits, frames, pair_outputs = self._forward(models, batch["labelled_image"], images, training)
    cross_entropy = seg_losses.cross_entropy(labelled_logits, batch["labelled_label"],
                                             self.config.class_weights or None)
    outputs = {"image": batch["labelled_image"], "logits": labelled_logits, "label": batch["labelled_label"]}
    losses = {"cross_entropy": cross_entropy}
    if self.control:
      return losses, outputs
    if self.consistency_active:
      batch_size = tf.shape(images)[0]
      logits = pair_outputs["logits"]  # float32 (_forward)
      logits = [logits[:batch_size], logits[batch_size:]]
      correspondences = self.correspondences(models, batch)
      totals = {}
      for i, j in _PAIRS:
        terms = spatiotemporal.consistency_terms(logits[i], logits[j], correspondences[(i, j)], images[:, j],
                                                 terms=self.terms)
        for name, value in terms.items():
          totals[name] = totals.get(name, 0.0) + 0.5 * value  # the mean of the two directions
      consistency = spatiotemporal.weighted_consistency(totals, self.weights)
      losses["consistency"] = self.config.consistency_weight * consistency
    if self.pseudo_labelling:
      losses["pseudo_label"] = self.config.pseudo_label_weight * self.pseudo_label_loss(
          models["segmenter"], frames, pair_outputs, step, training)
    return losses, outputs


@stage_lib.register("control")
class ControlStage(ConsistencyStage):
  """The consistency stage without its loss: the control experiment (see the module docstring)."""
  control = True
