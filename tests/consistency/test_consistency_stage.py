"""The consistency stage's control experiment: the same continuation as the consistency stage, without its loss."""

import json

import numpy as np
import tensorflow as tf

from consistency import train
from consistency.stages import consistency as consistency_stage
from consistency.stages import segmentation as segmentation_stage
from consistency.stages import supervised
from datasets import clips
from depth_motion import geometry
from segmentation import segmenter as segmenter_lib
from tests import tiny


def _config(model_dir, data_root, **overrides):
  base = dict(train_steps=3, learning_rate=1e-2, steps_per_loop=3, checkpoint_every=3, summary_every=3,
              label_fraction=0.5, geometry="ground_truth")
  return tiny.video_config(model_dir, data_root, **{**base, **overrides})


def _segmenter_weights(config, stage_dir):
  """{variable path below the model: value} of every segmenter variable (weights and batch-norm statistics) of the
  stage's last save."""
  model = segmenter_lib.build_segmenter(supervised.segmenter_config(config))
  tf.train.Checkpoint(segmenter=model).read(tf.train.latest_checkpoint(stage_dir)).assert_existing_objects_matched()
  return {weight.path.split("/", 1)[1]: weight.numpy() for weight in model.weights}


def test_control_equals_the_consistency_stage_with_weight_zero(tmp_path, synthetic_root):
  # The control and the consistency stage with its loss weighted 0, from the same (seeded) start. (Both warm-start
  # from a baseline the same way, and the loss, when on, moves the weights away from the control's: test_quickstart.)
  config = _config(tmp_path / "run", synthetic_root(), stages=("control", "consistency"), consistency_weight=0.0,
                   consistency_init_dir="none")
  train.run(config)
  control, zero = (_segmenter_weights(config, str(tmp_path / "run" / stage)) for stage in ("control", "consistency"))
  assert set(control) == set(zero) and any("kernel" in key for key in control)
  assert any("moving_mean" in key for key in control)  # batch-norm statistics are compared too
  for key in control:
    np.testing.assert_array_equal(control[key], zero[key], err_msg=key)
  # The metrics say how many labelled frames the segmenter learned from.
  with open(tmp_path / "run" / "control" / "metrics.json", encoding="utf-8") as f:
    labelled = json.load(f)["labelled_frames"]
  stage = segmentation_stage.SegmentationStage(_config(tmp_path / "run", synthetic_root()))
  assert labelled == round(0.5 * sum(scene.num_frames for scene in stage.scenes("train"))) > 0


def test_labelled_and_pair_frames_share_one_batch_norm_pass(tmp_path, synthetic_root):
  # In two passes the segmenter could tell the pair batch from the labelled one by its batch-norm statistics and
  # minimise the consistency loss by predicting one class on the pair batch only (docs/results.md, "Batch norm").
  config = _config(tmp_path / "run", synthetic_root(), stages=("consistency",), batch_size=2,
                   consistency_init_dir="none")
  stage = consistency_stage.ConsistencyStage(config)
  models = stage.build_models()
  batch = next(iter(stage.train_dataset(0)))
  _, outputs = stage.compute_losses(models, batch, step=0, training=True)
  segmenter, images = models["segmenter"], tf.cast(batch["image"], tf.float32)
  joint = segmenter(tf.concat([batch["labelled_image"], images[:, 0], images[:, 1]], axis=0), training=True)
  alone = segmenter(batch["labelled_image"], training=True)
  np.testing.assert_allclose(outputs["logits"], joint["logits"][:2], atol=1e-4)
  assert np.max(np.abs(outputs["logits"] - alone["logits"])) > 1e-3  # the statistics of the batch matter


def test_ground_truth_correspondences_carry_frame_i_labels_onto_frame_j(tmp_path, synthetic_root):
  # The oracle geometry through the stage's own pair pipeline (augmented: flips and scale-and-crop, with K, depth and
  # poses following): frame i's labels, resampled where frame j's visible pixels land, are frame j's labels.
  config = _config(tmp_path / "run", synthetic_root(), stages=("consistency",), batch_size=4, label_fraction=1.0,
                   consistency_max_gap=3)
  stage = consistency_stage.ConsistencyStage(config)
  pairs = clips.clips(stage.scenes("train"), stage.pair_config(True), training=True)
  warped_agree, still_agree = [], []
  for batch in pairs.take(4):
    labels = tf.cast(batch["label"], tf.int32)
    for (i, j), correspondence in stage.correspondences({}, batch).items():
      warped = geometry.resample(tf.one_hot(labels[:, i], 41), correspondence.coords, boundary="border")
      warped = tf.argmax(warped, axis=-1, output_type=tf.int32).numpy()
      valid = (correspondence.mask.numpy() > 0) & (labels[:, j].numpy() != 255)
      warped_agree.append(np.mean(warped[valid] == labels[:, j].numpy()[valid]))
      still_agree.append(np.mean(labels[:, i].numpy()[valid] == labels[:, j].numpy()[valid]))
  # Bilinear resampling of one-hot labels disagrees only on boundary pixels (0.9 % here); not warping disagrees
  # wherever the camera moved the image (3.1 % on these short, slow clips).
  assert np.mean(warped_agree) > 0.98
  assert 1 - np.mean(warped_agree) < 0.5 * (1 - np.mean(still_agree))
