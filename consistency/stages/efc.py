"""The EFC stage (Every Frame Counts, Ding et al. 2020): the segmenter and an unsupervised flow branch trained jointly.

Models: "segmenter" (the exported one; its backbone is EFC's shared encoder) and "flow_net"
(`consistency.flow_net.FlowNet` on the encoder levels of both frames). Only the segmenter is exported, so inference
costs nothing extra: `segmenter.json` is written next to the checkpoints as the segmentation stage does, and
`python -m segmentation.export --model_dir=<model_dir> --stage=efc` exports it.

Data: frame pairs with a gap uniform in [efc_min_gap, efc_max_gap] (EFC: 1..5). Each batch mixes
`efc_labelled_pairs` x batch pairs that start at a labelled frame (labels kept on `label_fraction` of the frames) with
random pairs of the video, which are mostly unlabeled (EFC: 10 pairs per snippet, 5 containing the labelled frame).
The two kinds are interleaved, so every replica gets its share of both.

Loss: cross-entropy on every labelled frame of the batch, plus `consistency.efc_losses` on both directions of every
pair (both frames go through the segmenter in one batch; the flow branch runs on (a, b) and (b, a) in one batch).
Every term has a weight flag (0 disables it), so each row of EFC's ablation tables is a flagfile:
  --efc_flow_only                  the flow branch alone (no cross-entropy, consistency or O_error): flow row "UL"
  --efc_occlusion_weight=0 --noefc_occlusion_mask   no occlusion estimation
  --noefc_error_mask               no O_seg / O_error (row "UL + OE + TC")
  --efc_consistency_weight=0 ...   no temporal consistency
  every unsupervised weight 0      the supervised-only baseline on the same batches (the flow branch is skipped)

Evaluation (metrics.json) on validation pairs with gap `efc_eval_gap`: the flow (end-point error all / non-occluded,
Fl, zero flow's EPE for scale) and O_est > 0.5 against the ground truth of depth and poses, scored by
`consistency.flow_evaluation` (as `consistency.flow_peers` scores classical flow on the same pairs), and mIoU,
per-class IoU, pixel accuracy ... (`segmentation.metrics`) on the first frame of every pair.
The pairs that start at a labelled frame are evaluated first, so that `--eval_max_batches` keeps them (a Cityscapes
snippet has one labelled frame, its 20th). A metric the data cannot give is left out of the metrics (never null),
with one warning naming it and why: the flow and occlusion metrics without depth and poses (Cityscapes, CamVid, raw
KITTI), the segmentation metrics when no labelled pixel was evaluated (raw KITTI; num_pixels 0 stays).

Before training (`preflight`), the working size is checked against the loss levels (the photometric loss needs 3x3
images at each), the flow levels against the encoder's, and --efc_labelled_pairs against the batch and the labels.
"""

import os

from absl import logging
import numpy as np
import tensorflow as tf

from consistency import efc_losses
from consistency import flow_evaluation
from consistency import flow_net as flow_net_lib
from consistency.harness import config as config_lib
from consistency.harness import stage as stage_lib
from consistency.stages import supervised
from consistency.stages import video
from datasets import augment as augment_lib
from datasets import clips
from datasets import sources
from datasets import visualize
from segmentation import export as export_lib
from segmentation import losses as seg_losses
from segmentation import metrics as metrics_lib
from segmentation import segmenter as segmenter_lib

# The encoder levels the flow branch can read (`Segmenter.backbone_features`: 1/4 .. 1/32).
ENCODER_LEVELS = (2, 3, 4, 5)
# The flow branch's correlation layer reads level 3 (1/8 of the image, FlowNetC's).
CORRELATION_LEVEL = 3
# The photometric loss compares 3x3 SSIM windows: every loss level must be at least this large.
MIN_LOSS_LEVEL_SIZE = 3


def _swap_halves(x):
  """[2B, ...] (a; b) -> (b; a)."""
  half = tf.shape(x)[0] // 2
  return tf.concat([x[half:], x[:half]], axis=0)


def _joined(values):
  return ",".join(str(value) for value in values)


def _interleave_order(labelled, unlabeled):
  """Permutation of [labelled pairs; unlabeled pairs] spreading the labelled ones evenly over the batch."""
  keys = [(i + 0.5) / labelled for i in range(labelled)] + [(j + 0.5) / unlabeled for j in range(unlabeled)]
  return np.argsort(np.array(keys), kind="stable").astype(np.int32)


@stage_lib.register("efc")
class EfcStage(video.VideoStage):
  """Joint training of the segmenter and the flow / occlusion branch (see the module docstring)."""

  def __init__(self, config):
    """The settings were validated with the config (`TrainConfig._check_efc`); what needs the data or the working
    size is checked by `preflight`."""
    super().__init__(config)
    self.weights = efc_losses.loss_weights({name: getattr(config, f"efc_{name}_weight")
                                            for name in config_lib.EFC_WEIGHTS})
    if config.efc_flow_only:
      self.weights.update(segmentation=0.0, consistency=0.0)
    self.flow_active = any(self.weights[name] > 0 for name in config_lib.EFC_WEIGHTS)
    self.error_mask = config.efc_error_mask and not config.efc_flow_only
    self.loss_config = efc_losses.EfcLossConfig(
        loss_levels=tuple(config.efc_loss_levels), consistency_levels=tuple(config.efc_consistency_levels),
        occlusion_mask=config.efc_occlusion_mask, error_mask=self.error_mask)
    supervised.check_class_weights(config, self.source)
    self.segmenter_config = supervised.segmenter_config(config)
    self.labelled_per_batch = int(round(config.efc_labelled_pairs * config.batch_size))
    self._eval_source = None

  def preflight(self):
    """Checks what would otherwise fail only once training starts, then the data (`Stage.preflight`).

    Raises:
      ValueError: naming the flag and its value: a loss level smaller than 3x3 at the working size, flow levels
        that the encoder does not give, --efc_labelled_pairs that gives no labelled pair per batch or needs labels
        the training split does not have.
    """
    config = self.config
    self.new_flow_net()  # its own argument checks (consecutive levels, the correlation level among them)
    outside = sorted(set(config.efc_flow_levels) - set(ENCODER_LEVELS))
    if outside:
      raise ValueError(f"--efc_flow_levels={_joined(config.efc_flow_levels)}: the encoder gives levels "
                       f"{_joined(ENCODER_LEVELS)} (1/4 .. 1/32 of the image) only; level(s) {_joined(outside)} do "
                       "not exist.")
    if self.flow_active:
      for level in sorted(config.efc_loss_levels, reverse=True):
        size = [-(-value // 2**level) for value in (config.height, config.width)]  # the encoder's ceil rule
        if min(size) < MIN_LOSS_LEVEL_SIZE:
          smallest = 2**level * (MIN_LOSS_LEVEL_SIZE - 1) + 1
          raise ValueError(
              f"--efc_loss_levels={_joined(config.efc_loss_levels)} does not suit --height={config.height} "
              f"--width={config.width}: loss level {level} is {size[0]}x{size[1]} pixels, and the photometric loss "
              f"needs at least {MIN_LOSS_LEVEL_SIZE}x{MIN_LOSS_LEVEL_SIZE} at every loss level (SSIM windows). "
              f"Expected a height and width of at least {smallest} for level {level}, or --efc_loss_levels without "
              "it.")
    if config.efc_labelled_pairs > 0:
      if not self.labelled_per_batch:
        raise ValueError(f"--efc_labelled_pairs={config.efc_labelled_pairs} of --batch_size={config.batch_size} "
                         f"rounds to 0 labelled pairs per batch. Expected at least 1 / batch_size "
                         f"(--efc_labelled_pairs>={1 / config.batch_size:.4g}), or --efc_labelled_pairs=0 for random "
                         "pairs only.")
      if not any(scene.has_labels for scene in self.scenes("train")):
        raise ValueError(f"--efc_labelled_pairs={config.efc_labelled_pairs}, but the train split of "
                         f"dataset={config.dataset} has no labelled frame to start a pair at. Expected "
                         "--efc_labelled_pairs=0 (random, unlabeled pairs only) on data without labels.")
    super().preflight()

  # --------------------------------------------------------------------------------------------------------------
  # Models.

  def new_flow_net(self):
    config = self.config
    return flow_net_lib.FlowNet(
        levels=tuple(config.efc_flow_levels), correlation_level=CORRELATION_LEVEL,
        max_displacement=config.efc_max_displacement, displacement_stride=config.efc_displacement_stride,
        filters=config.efc_flow_filters, name="flow_net")

  def build_models(self):
    segmenter = segmenter_lib.build_segmenter(self.segmenter_config)
    flow_net = flow_net_lib.build_flow_net(self.new_flow_net(), segmenter.backbone.channels)
    export_lib.write_run(os.path.join(self.config.model_dir, self.name), self.segmenter_config,
                         (self.config.height, self.config.width), sources.class_names(self.source),
                         sources.palette(self.source), networks={"flow_net": flow_net.architecture()})
    return {"segmenter": segmenter, "flow_net": flow_net}

  # --------------------------------------------------------------------------------------------------------------
  # Data.

  def _clip_config(self, batch_size, seed, training):
    config = self.config
    gaps = (config.efc_min_gap, config.efc_max_gap) if training else (config.efc_eval_gap, config.efc_eval_gap)
    return clips.ClipConfig(
        height=config.height, width=config.width, clip_length=2, min_gap=gaps[0], max_gap=gaps[1],
        label_fraction=config.label_fraction if training else 1.0, label_seed=config.seed, batch_size=batch_size,
        include_ground_truth=not training, augment=augment_lib.AugmentConfig() if training else None, seed=seed)

  def train_dataset(self, start_step):
    scenes = self.scenes("train")
    labelled, unlabeled = self.labelled_per_batch, self.config.batch_size - self.labelled_per_batch
    streams = []
    if labelled:
      source = clips.ClipSource(scenes, self._clip_config(labelled, self.config.seed, True))
      starts = np.intersect1d(source.labelled_starts(), source.clip_starts)
      if starts.size == 0:
        raise ValueError(f"efc: no labelled frame of the train split can start a training pair (--label_fraction="
                         f"{self.config.label_fraction} too small, or no labels; a labelled frame must be followed by "
                         f"--efc_min_gap={self.config.efc_min_gap} frames of its scene). Set --efc_labelled_pairs=0 "
                         f"(now {self.config.efc_labelled_pairs}) to train on random pairs only.")
      streams.append(source.dataset(True, starts=starts, skip_batches=start_step))
    if unlabeled:
      source = clips.ClipSource(scenes, self._clip_config(unlabeled, self.config.seed + 1, True))
      streams.append(source.dataset(True, skip_batches=start_step))
    height, width, batch_size = self.config.height, self.config.width, self.config.batch_size

    def static(b):  # augmentation leaves H and W unknown to the graph; they are the working size
      return {"image": tf.ensure_shape(b["image"], [batch_size, 2, height, width, 3]),
              "label": tf.ensure_shape(b["label"], [batch_size, 2, height, width])}

    if len(streams) == 1:
      return streams[0].map(static)
    order = _interleave_order(labelled, unlabeled)

    def mix(first, second):
      return static({k: tf.gather(tf.concat([first[k], second[k]], axis=0), order) for k in ("image", "label")})

    return tf.data.Dataset.zip((streams[0], streams[1])).map(mix).prefetch(tf.data.AUTOTUNE)

  def eval_source(self):
    """The `ClipSource` of the validation pairs (gap efc_eval_gap), built once."""
    if self._eval_source is None:
      self._eval_source = clips.ClipSource(self.scenes("val"),
                                           self._clip_config(self.config.batch_size, self.config.seed, False))
    return self._eval_source

  def eval_starts(self):
    """(starts, labelled): every validation pair's first frame (flat index), those at a labelled frame first (each
    part in frame order), so that --eval_max_batches keeps them; `labelled` is how many start at one."""
    source = self.eval_source()
    labelled = np.intersect1d(source.labelled_starts(), source.clip_starts)
    return np.concatenate([labelled, np.setdiff1d(source.clip_starts, labelled)]), len(labelled)

  def eval_dataset(self):
    if not self.has_validation():
      return None
    starts, _ = self.eval_starts()
    ds = self.eval_source().dataset(training=False, starts=starts)
    ds = ds.map(lambda b: {k: b[k] for k in ("image", "label", "depth", "pose", "intrinsics")})
    if self.config.eval_max_batches:
      ds = ds.take(self.config.eval_max_batches)
    return ds

  # --------------------------------------------------------------------------------------------------------------
  # Training.

  def _flow(self, models, features, training):
    """The flow branch on (a, b) and (b, a): features {level: [2B, ...]} of (a; b)."""
    if not self.config.efc_flow_trains_encoder:
      # stop_gradient: the flow losses must not shape the shared encoder in this ablation.
      features = {level: tf.stop_gradient(value) for level, value in features.items()}
    swapped = {level: _swap_halves(value) for level, value in features.items()}
    return models["flow_net"]({"features_a": features, "features_b": swapped}, training=training)

  def compute_losses(self, models, batch, step, training=True):
    del step
    images = batch["image"]
    frames = tf.concat([images[:, 0], images[:, 1]], axis=0)  # (a; b): [2B, H, W, 3]
    labels = tf.concat([batch["label"][:, 0], batch["label"][:, 1]], axis=0)
    segmenter = models["segmenter"]
    terms, outputs = {}, {"image": images[:, 0], "label": batch["label"][:, 0]}
    logits = None
    if self.config.efc_flow_only:
      features = segmenter.backbone_features(frames, training=training)
    else:
      out = segmenter(frames, training=training, return_features=self.flow_active)
      logits = tf.cast(out["logits"], tf.float32)
      features = out.get("features")
      terms["segmentation"] = seg_losses.cross_entropy(logits, labels, self.config.class_weights or None)
      outputs["logits"] = logits[:tf.shape(images)[0]]
    if self.flow_active:
      flow = self._flow(models, features, training)
      use_occlusion = self.weights["occlusion"] > 0 or self.loss_config.occlusion_mask
      use_consistency = self.weights["consistency"] > 0
      probabilities = tf.nn.softmax(logits) if self.error_mask else None
      unsupervised, masks = efc_losses.unsupervised_losses(
          frames, _swap_halves(frames), flow["flow"],
          occlusion_logits=flow["occlusion_logits"] if use_occlusion else None,
          features=features if use_consistency else None,
          target_features={k: _swap_halves(v) for k, v in features.items()} if use_consistency else None,
          probabilities=probabilities,
          target_probabilities=None if probabilities is None else _swap_halves(probabilities),
          config=self.loss_config)
      terms.update(unsupervised)
      finest = min(flow["flow"])
      outputs["flow"] = flow_net_lib.resize_flow(flow["flow"][finest], tf.shape(frames)[1:3])
      outputs.update(masks)
    return efc_losses.weighted(terms, self.weights), outputs

  # --------------------------------------------------------------------------------------------------------------
  # Evaluation.

  def eval_step(self, models, batch):
    images = batch["image"]
    size = tf.shape(images)[2:4]
    segmenter = models["segmenter"]
    out = segmenter(images[:, 0], training=False, return_features=True)
    statistics = {"confusion": metrics_lib.confusion_matrix(batch["label"][:, 0], out["logits"],
                                                          num_classes=sources.num_classes(self.source))}
    features_b = segmenter.backbone_features(images[:, 1], training=False)
    flow_out = models["flow_net"]({"features_a": out["features"], "features_b": features_b}, training=False)
    finest = min(flow_out["flow"])
    flow = flow_net_lib.resize_flow(flow_out["flow"][finest], size)
    occlusion = tf.sigmoid(tf.image.resize(flow_out["occlusion_logits"][finest], size, method="bilinear"))[..., 0]

    statistics.update(flow_evaluation.statistics(flow, *flow_evaluation.true_flow(batch), occlusion=occlusion))
    return statistics

  def eval_result(self, totals):
    """The metrics; those the data cannot give are left out, with one warning saying which and why."""
    absent = []  # (metric names, why)
    metrics = metrics_lib.metrics_dict(totals["confusion"], class_names=sources.class_names(self.source))
    if not metrics["num_pixels"]:
      absent.append((sorted(set(metrics) - {"num_pixels"}), f"no labelled pixel was evaluated: {self._no_labels()}"))
      metrics = {"num_pixels": 0}

    flow_metrics, flow_absent = flow_evaluation.metrics(totals)
    metrics["eval_pixels"] = int(totals["pixels_all"])
    metrics.update(flow_metrics)
    if not totals["pixels_all"]:
      flow_absent = [(names, why + self._no_flow_truth()) for names, why in flow_absent]
    absent += flow_absent
    if absent:
      logging.warning("%s evaluation: metrics left out (they cannot be computed from this data): %s.", self.name,
                      "; ".join(f"{', '.join(names)} ({why})" for names, why in absent))
    return metrics

  def _no_labels(self):
    """Why the evaluated pairs held no labelled pixel."""
    config = self.config
    if self._eval_source is None:
      return "no evaluated pair starts at a labelled frame"
    scenes = self._eval_source.scenes
    frames = sum(len(scene.labelled_frame_ids()) for scene in scenes)
    if not frames:
      return f"the validation split of dataset={config.dataset} has no labels"
    _, pairs = self.eval_starts()
    if not pairs:
      return (f"none of the validation split's {frames} labelled frame(s) can start a pair at --efc_eval_gap="
              f"{config.efc_eval_gap} (each is within {config.efc_eval_gap} frames of its scene's end)")
    return (f"the {pairs} pair(s) that start at a labelled frame (evaluated first) hold no labelled pixel: their "
            "labels are all ignored (void)")

  def _no_flow_truth(self):
    """" (...)": what the validation split lacks for ground-truth flow, when known."""
    if self._eval_source is None:
      return " (it needs depth and camera poses)"
    scenes = self._eval_source.scenes
    missing = [what for what, has in (("depth", any(s.has_depth for s in scenes)),
                                      ("camera poses", any(s.has_poses for s in scenes))) if not has]
    if missing:
      return f" (it needs depth and camera poses; dataset={self.config.dataset} has no {' and no '.join(missing)})"
    return " (it needs depth and camera poses: no evaluated pixel has both)"

  def summary_images(self, batch, outputs):
    """The frame, its label and prediction, the flow (colour wheel), the occlusion maps, and "side_by_side": frame |
    flow | occlusion | prediction in one image per pair."""
    colors = sources.palette(self.source)
    images = {"image": outputs["image"], "label": visualize.colorize_labels(outputs["label"], colors)}
    if "logits" in outputs:
      images["prediction"] = visualize.colorize_labels(tf.argmax(outputs["logits"], axis=-1, output_type=tf.int32),
                                                       colors)
    if "flow" in outputs:
      forward = tf.shape(outputs["image"])[0]  # the first half of the directed pairs: a -> b
      images["flow"] = visualize.colorize_flow(outputs["flow"][:forward])
      for name in ("occlusion", "occlusion_target", "segmentation_error"):
        if name in outputs:
          images[name] = visualize.colorize_mask(outputs[name][:forward])
    panels = [tf.image.convert_image_dtype(outputs["image"], tf.uint8, saturate=True)]
    panels += [images[name] for name in ("flow", "occlusion", "prediction") if name in images]
    images["side_by_side"] = tf.concat(panels, axis=2)
    return images
