"""What every stage that trains the segmenter on labelled frames shares: the segmentation stage (segmentation.py
describes its data, loss and metrics), and the control and consistency stages that continue it. Unregistered."""

import os

import tensorflow as tf

from consistency.stages import video
from datasets import clips
from datasets import sources
from datasets import visualize
from segmentation import export as export_lib
from segmentation import losses as losses_lib
from segmentation import metrics as metrics_lib
from segmentation import segmenter as segmenter_lib

SEGMENTER_CONFIG_FILE = export_lib.SEGMENTER_JSON  # what `python -m segmentation.export` reads


def segmenter_config(config):
  """The `SegmenterConfig` a TrainConfig describes."""
  return segmenter_lib.SegmenterConfig(
      backbone=config.backbone, backbone_filters=config.backbone_filters or None,
      backbone_blocks=config.backbone_blocks or None, backbone_weights=config.backbone_weights,
      nasfpn_filters=config.nasfpn_filters,
      nasfpn_repeats=config.nasfpn_repeats, head_filters=config.head_filters, head_groups=config.head_groups,
      num_classes=sources.num_classes(video.source_spec(config)), input_size=(config.height, config.width))


def check_class_weights(config, source):
  """--class_weights holds one weight per class of the dataset, or none (the class count comes from the data)."""
  num_classes = sources.num_classes(source)
  if config.class_weights and len(config.class_weights) != num_classes:
    raise ValueError(f"--class_weights needs {num_classes} values (one per class of dataset={config.dataset}). "
                     f"Received {len(config.class_weights)}.")


def _single_frames(batch):
  return {"image": batch["image"][:, 0], "label": batch["label"][:, 0]}


class SupervisedStage(video.VideoStage):
  """Supervised training of the segmenter on the labelled frames (registered as the segmentation stage)."""

  def __init__(self, config):
    super().__init__(config)
    check_class_weights(config, self.source)
    self.segmenter_config = segmenter_config(config)

  def clip_config(self, training):
    config = self.config
    return clips.ClipConfig(height=config.height, width=config.width, clip_length=1, batch_size=config.batch_size,
                            label_fraction=config.label_fraction if training else 1.0, label_seed=config.seed,
                            seed=config.seed, include_ground_truth=False,
                            augment=clips.augment_lib.AugmentConfig() if training else None)

  def build_models(self):
    model = segmenter_lib.build_segmenter(self.segmenter_config)
    export_lib.write_run(os.path.join(self.config.model_dir, self.name), self.segmenter_config,
                         (self.config.height, self.config.width), sources.class_names(self.source),
                         sources.palette(self.source))
    return {"segmenter": model}

  def train_dataset(self, start_step):
    ds = clips.labelled_frames(self.scenes("train"), self.clip_config(True), training=True, skip_batches=start_step)
    return ds.map(_single_frames)

  def eval_dataset(self):
    if not self.has_validation():
      return None
    ds = clips.ClipSource(self.scenes("val"), self.clip_config(False)).dataset(training=False).map(_single_frames)
    if self.config.eval_max_batches:
      ds = ds.take(self.config.eval_max_batches)
    return ds

  def compute_losses(self, models, batch, step, training=True):
    logits = tf.cast(models["segmenter"](batch["image"], training=training)["logits"], tf.float32)
    loss = losses_lib.cross_entropy(logits, batch["label"], self.config.class_weights or None)
    return {"cross_entropy": loss}, {"image": batch["image"], "logits": logits, "label": batch["label"]}

  def eval_step(self, models, batch):
    logits = models["segmenter"](batch["image"], training=False)["logits"]
    return {"confusion": metrics_lib.confusion_matrix(batch["label"], logits,
                                                      num_classes=self.segmenter_config.num_classes)}

  def eval_result(self, totals):
    result = metrics_lib.metrics_dict(totals["confusion"], class_names=sources.class_names(self.source))
    # How many labelled frames the segmenter learned from (the label fraction, in frames).
    result["labelled_frames"] = len(clips.select_labelled_frames(self.scenes("train"), self.config.label_fraction,
                                                                 self.config.seed))
    return result

  def summary_images(self, batch, outputs):
    prediction = tf.argmax(outputs["logits"], axis=-1, output_type=tf.int32)
    colors = sources.palette(self.source)
    return {"image": outputs["image"], "prediction": visualize.colorize_labels(prediction, colors),
            "label": visualize.colorize_labels(outputs["label"], colors)}
