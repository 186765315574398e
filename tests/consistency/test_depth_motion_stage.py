"""The depth_motion stage: a tiny run with evaluation against ground truth, teachers restored, flags, overfitting."""

import json
import os
import unittest.mock

from absl import logging
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from consistency import train
from consistency.harness import flags as flags_lib
from consistency.harness import stage as stage_lib
from consistency.stages import depth_motion as depth_motion_stage
from datasets import ground_truth
from depth_motion import intrinsics_table as intrinsics_table_lib
from depth_motion import losses as losses_lib
from depth_motion import metrics as metrics_lib
from depth_motion import teachers as teachers_lib
from tests import tiny
from tests.datasets import fixtures


def _config(tmp_path, data_root, **overrides):
  return tiny.video_config(tmp_path / "run", data_root, **{"stages": ("depth_motion",), "image_summary_every": 2,
                                                           **overrides})


def _check_run(config):
  losses = train.run(config)["depth_motion"]
  assert losses and all(np.isfinite(v) for v in losses.values())
  stage_dir = os.path.join(config.model_dir, "depth_motion")
  with open(os.path.join(stage_dir, "metrics.json")) as f:
    metrics = json.load(f)
  for name in ("depth_abs_rel_median_scaled", "depth_abs_rel_unscaled", "depth_sq_rel_median_scaled",
               "depth_rmse_unscaled", "depth_delta1_median_scaled", "rotation_error_deg", "true_rotation_deg",
               "translation_angle_deg", "fx_relative_error", "cy_relative_error", "depth_abs_rel_constant_reference",
               "depth_delta1_constant_reference"):
    assert np.isfinite(metrics[name]), name
    # The same metrics on pairs of the training video (per-video K: one error per video, not per split).
    if config.dm_intrinsics == "learned" or "relative_error" not in name:
      assert np.isfinite(metrics[depth_motion_stage.TRAINING_VIDEO_PREFIX + name]), name
  assert metrics["depth_images"] == 2 and metrics["pairs"] == 2 and metrics["step"] == 2
  assert metrics["training_video/depth_images"] == 2 and metrics["training_video/pairs"] == 2
  return losses, stage_dir


# The default suite runs the stage through the shortened quickstart (tests/consistency/test_quickstart.py).
@pytest.mark.slow
def test_stage_trains_evaluates_against_ground_truth_and_restores_as_teachers(tmp_path, synthetic_root):
  config = _config(tmp_path, synthetic_root(), dm_loss_weights=(("depth_consistency", 0.0),))
  losses, stage_dir = _check_run(config)
  # Terms with weight 0 are neither computed into the total nor reported.
  assert "depth_consistency" not in losses and {"rgb", "ssim", "depth_smoothness", "total"} <= set(losses)

  teachers, settings = teachers_lib.load_teachers(stage_dir)
  assert settings["input_size"] == [64, 64] and settings["motion"]["learn_intrinsics"]
  # The restored networks are the trained ones: the same predictions as a fresh restore through tf.train.
  trained = teachers_lib.build_networks(settings)
  tf.train.Checkpoint(**trained).read(tf.train.latest_checkpoint(stage_dir)).expect_partial()
  images = tf.random.stateless_uniform([1, 64, 64, 3], [1, 2])
  np.testing.assert_allclose(teachers["depth"](images)["depth"].numpy(), trained["depth"](images)["depth"].numpy())
  fresh = teachers_lib.build_networks(settings)
  assert not np.allclose(fresh["depth"](images)["depth"].numpy(), trained["depth"](images)["depth"].numpy())


def test_predict_gives_the_least_squares_motion_net_the_depths():
  """The least-squares pose takes frame j's depth: predict passes it (the network's, or given ones), so depths
  twice as far give the same rotation and twice the translation."""
  settings = {"depth": {}, "motion": {"pose_solver": "least_squares", "match_radius": 3, "learn_intrinsics": True},
              "input_size": [32, 64]}
  models = teachers_lib.build_networks(settings)
  images = tf.random.stateless_uniform([2, 2, 32, 64, 3], seed=[1, 2])
  depths, motions = teachers_lib.predict(models, images)
  assert depths.shape == (2, 2, 32, 64) and sorted(motions) == [(0, 1), (1, 0)]
  _, far = teachers_lib.predict(models, images, depths=depths * 2.0)
  for pair in motions:
    np.testing.assert_allclose(far[pair]["rotation"], motions[pair]["rotation"], atol=1e-5)
    np.testing.assert_allclose(far[pair]["translation"], motions[pair]["translation"] * 2.0, rtol=1e-3, atol=1e-6)


def test_load_teachers_errors_name_the_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="depth_motion.json"):
    teachers_lib.load_teachers(str(tmp_path))
  (tmp_path / teachers_lib.MODEL_CONFIG_FILE).write_text("{}")
  with pytest.raises(FileNotFoundError, match="No checkpoint"):
    teachers_lib.load_teachers(str(tmp_path))


def test_teachers_of_an_earlier_version_load_unless_they_used_a_removed_option(tmp_path):
  """A depth_motion.json with the since-removed mean_normalized / center_images options off (or without effect) loads
  as before; one with an option that changed the network is refused with a message naming the file and the option."""
  settings = {"depth": {}, "motion": {"pose_solver": "direct", "learn_intrinsics": False}, "input_size": [32, 64]}
  networks = teachers_lib.build_networks(settings)
  tf.train.CheckpointManager(tf.train.Checkpoint(**networks), str(tmp_path), max_to_keep=1).save()
  config_path = tmp_path / teachers_lib.MODEL_CONFIG_FILE
  old = {"depth": {"mean_normalized": False}, "motion": {**settings["motion"], "center_images": False},
         "input_size": [32, 64]}
  config_path.write_text(json.dumps(old))
  restored, loaded = teachers_lib.load_teachers(str(tmp_path))
  assert "mean_normalized" not in loaded["depth"] and "center_images" not in loaded["motion"]
  images = tf.random.stateless_uniform([1, 32, 64, 3], seed=[3, 4])
  np.testing.assert_array_equal(restored["depth"](images)["depth"], networks["depth"](images)["depth"])
  # center_images=True changed nothing of a motion network without a trunk (a solved pose with K given).
  config_path.write_text(json.dumps({**old, "motion": {**settings["motion"], "center_images": True}}))
  teachers_lib.load_teachers(str(tmp_path))
  config_path.write_text(json.dumps({**old, "depth": {"mean_normalized": True}}))
  with pytest.raises(ValueError, match="mean_normalized=True, an option this version removed"):
    teachers_lib.load_teachers(str(tmp_path))


@pytest.mark.slow
def test_per_video_intrinsics_and_residual_translation_train(tmp_path, synthetic_root):
  losses, _ = _check_run(_config(tmp_path, synthetic_root(), dm_intrinsics="per_video", dm_residual_translation=True,
                                 dm_residual_ramp_steps=(0, 1), dm_loss_preset="later", dm_occlusion_tolerance=0.05,
                                 dm_photometric_blurs=(1, 5)))
  assert losses["motion_drift"] >= 0.0


def test_loss_weight_and_ramp_flags_parse():
  argv = ["train", "--model_dir=/tmp/x", "--dm_loss_weights=rgb=1.5,depth_consistency=0",
          "--dm_residual_ramp_steps=5,9", "--dm_photometric_blurs=1,5", "--dm_motion_trunk=correlation",
          "--dm_motion_correlation_radius=2", "--dm_motion_pose_solver=least_squares",
          "--dm_motion_match_radius=5"]
  flags.FLAGS(argv)
  try:
    config = flags_lib.config_from_flags()
    assert config.dm_loss_weights == (("rgb", 1.5), ("depth_consistency", 0.0))
    assert config.dm_residual_ramp_steps == (5, 9)
    assert config.dm_photometric_blurs == (1, 5)
    motion = teachers_lib.network_settings(config)["motion"]
    assert motion["trunk_type"] == "correlation" and motion["correlation_radius"] == 2
    assert motion["pose_solver"] == "least_squares" and motion["match_radius"] == 5
    flags.FLAGS(["train", "--model_dir=/tmp/x", "--dm_loss_weights=rgb"])
    with pytest.raises(ValueError, match="term=number"):
      flags_lib.config_from_flags()
  finally:
    flags.FLAGS.unparse_flags()
  with pytest.raises(ValueError, match="Unknown loss weight"):
    depth_motion_stage.DepthMotionStage(tiny.train_config("/tmp/x", dm_loss_weights=(("rbg", 1.0),)))


@pytest.mark.slow
def test_a_few_hundred_steps_overfit_one_clip(tmp_path, synthetic_root):
  """The unsupervised losses are learnable: on one synthetic clip the photometric loss falls well below its start."""
  config = _config(tmp_path, synthetic_root(), batch_size=1, dm_augment=False, dm_max_noise_stddev=0.0)
  stage = depth_motion_stage.DepthMotionStage(config)
  models = stage.build_models()
  batch = next(iter(stage.train_dataset(0)))
  variables = [v for m in models.values() for v in m.trainable_variables]
  optimizer = tf.keras.optimizers.Adam(1e-3)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      losses, _ = stage.compute_losses(models, batch, tf.constant(0), training=True)
      total = tf.add_n(list(losses.values()))
    optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    return losses["rgb"] + losses["ssim"]

  photometric = [float(step()) for _ in range(300)]
  start, end = np.mean(photometric[:5]), np.mean(photometric[-5:])
  assert end < 0.5 * start, (start, end)


@pytest.mark.slow
def test_depth_network_fits_one_clip_given_the_true_motion(tmp_path, synthetic_root):
  """With the true motion and K, the photometric losses alone teach the depth network one clip's depth: its
  median-scaled AbsRel falls below half of a constant map's (0.18 -> 0.03 in 100 steps at 64x96 when written)."""
  config = _config(tmp_path, synthetic_root(64, 96), batch_size=2, height=64, width=96, dm_clip_length=2,
                   dm_min_gap=2, dm_max_gap=2, dm_augment=False, dm_max_noise_stddev=0.0, dm_loss_preset="later",
                   dm_occlusion_tolerance=0.05)
  stage = depth_motion_stage.DepthMotionStage(config)
  models = stage.build_models()
  batch = next(iter(stage.eval_dataset()))  # pairs with ground truth
  images, truth = tf.cast(batch["image"], tf.float32), tf.cast(batch["depth"], tf.float32)
  intrinsics = tf.cast(batch["intrinsics"], tf.float32)
  motions = {pair: {"rotation": rotation, "translation": translation}
             for pair, (rotation, translation) in ground_truth.pair_motions(batch["pose"],
                                                                            losses_lib.directed_pairs(2)).items()}
  net = models["depth"]
  frames = tf.reshape(images, [-1, 64, 96, 3])
  optimizer = tf.keras.optimizers.Adam(1e-3)

  def abs_rel(depth):
    return float(tf.reduce_mean(metrics_lib.depth_errors(depth, truth[:, 0], median_scaling=True)["abs_rel"]))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      depths = tf.reshape(net(frames, training=True)["depth"], [-1, 2, 64, 96])
      values, _ = losses_lib.clip_losses(images, depths, motions, intrinsics=intrinsics, occlusion_tolerance=0.05)
      total, _ = losses_lib.weighted_total({k: v for k, v in values.items() if stage.weights[k]}, stage.weights)
    optimizer.apply_gradients(zip(tape.gradient(total, net.trainable_variables), net.trainable_variables))

  constant = abs_rel(tf.ones_like(truth[:, 0]))
  for _ in range(100):
    step()
  learned = abs_rel(tf.reshape(net(frames)["depth"], [-1, 2, 64, 96])[:, 0])
  assert learned < 0.5 * constant, (learned, constant)



# ----------------------------------------------------------------------------------------------------------------------
# Metrics the data cannot give are absent (issue [reliability] 6; end to end on raw KITTI: tests/faults/
# test_stage_metrics.py), and the working size is checked before anything trains.

def _split_totals(images, pose_pairs, translation_pairs, pairs=2, intrinsics=True):
  """One split's summed `eval_step` statistics: every per-sample value 0.5 (0.25 for the depth ones) where counted."""
  warp_pairs = pose_pairs if images else 0  # the warp needs both the true depth and the poses
  totals = {"depth_images": images, "pairs": pairs, "pose_pairs": pose_pairs, "translation_pairs": translation_pairs,
            "warp_pairs": warp_pairs, "warp_epe_px": 0.5 * warp_pairs, "zero_flow_epe_px": 0.5 * warp_pairs}
  for name in ("abs_rel", "sq_rel", "rmse", "delta1"):
    for suffix in ("median_scaled", "unscaled"):
      totals[f"depth_{name}_{suffix}"] = 0.25 * images
  for name in ("depth_scale", "depth_relative_spread", "depth_true_relative_spread",
               "depth_abs_rel_constant_reference", "depth_delta1_constant_reference"):
    totals[name] = 0.25 * images
  totals.update(rotation_error_deg=0.5 * pose_pairs, true_rotation_deg=0.5 * pose_pairs,
                translation_angle_deg=0.5 * translation_pairs)
  if intrinsics:
    totals.update({f"{name}_relative_error": 0.5 * pairs for name in ("fx", "fy", "cx", "cy")})
  return {name: np.float32(value) for name, value in totals.items()}


def _totals(validation, training):
  prefix = depth_motion_stage.TRAINING_VIDEO_PREFIX
  return {**validation, **{prefix + name: value for name, value in training.items()}}


def _eval_result(stage, totals):
  with unittest.mock.patch.object(logging, "warning") as warning:
    metrics = stage.eval_result(totals)
  json.dumps(metrics, allow_nan=False)
  return metrics, [call.args[0] % call.args[1:] for call in warning.call_args_list]


def test_eval_result_with_ground_truth_reports_every_metric_and_warns_nothing(tmp_path, synthetic_root):
  stage = depth_motion_stage.DepthMotionStage(_config(tmp_path, synthetic_root()))
  metrics, warnings = _eval_result(stage, _totals(_split_totals(2, 2, 2), _split_totals(2, 2, 2)))
  assert not warnings
  for name in ("depth_abs_rel_median_scaled", "depth_rmse_unscaled", "depth_scale", "depth_abs_rel_constant_reference",
               "rotation_error_deg", "true_rotation_deg", "translation_angle_deg", "warp_epe_px", "zero_flow_epe_px",
               "fx_relative_error"):
    for prefix in ("", depth_motion_stage.TRAINING_VIDEO_PREFIX):
      assert metrics[prefix + name] == pytest.approx(0.25 if name.startswith("depth_") else 0.5), prefix + name
  assert metrics["depth_images"] == 2 and metrics["pairs"] == 2 and metrics["pose_pairs"] == 2


def test_eval_result_leaves_out_what_has_no_ground_truth_with_one_warning(tmp_path):
  """No depth and no poses (the probe reported AbsRel 0.000 with depth_images 0); a pair whose true translation has
  no direction; CamVid's stand-in K (no --camvid_intrinsics): absent, each named with its reason in one warning."""
  stage = depth_motion_stage.DepthMotionStage(_config(tmp_path, tmp_path / "data"))
  validation = _split_totals(0, 0, 0)
  metrics, warnings = _eval_result(stage, _totals(validation, _split_totals(2, 2, 0)))
  assert not [name for name in metrics if name.startswith("depth_") and name != "depth_images"]
  assert not {"rotation_error_deg", "true_rotation_deg", "translation_angle_deg"} & set(metrics)
  assert metrics["depth_images"] == 0 and metrics["pose_pairs"] == 0 and metrics["pairs"] == 2
  prefix = depth_motion_stage.TRAINING_VIDEO_PREFIX
  assert metrics[prefix + "depth_abs_rel_median_scaled"] == pytest.approx(0.25)
  assert metrics[prefix + "rotation_error_deg"] == pytest.approx(0.5)
  assert prefix + "translation_angle_deg" not in metrics
  assert len(warnings) == 1
  assert "depth_* but depth_images (no validation frame has ground-truth depth)" in warnings[0]
  assert "rotation_error_deg, true_rotation_deg, translation_angle_deg (no validation pair has ground-truth " \
         "camera poses)" in warnings[0]
  assert "training_video/translation_angle_deg (no training-video pair has a true translation longer than" in \
         warnings[0]

  # Poses without depth: the pose errors stay, the warp's are left out.
  metrics, warnings = _eval_result(stage, _totals(_split_totals(0, 2, 2), _split_totals(2, 2, 2)))
  assert metrics["rotation_error_deg"] == pytest.approx(0.5) and "warp_epe_px" not in metrics
  assert metrics[prefix + "warp_epe_px"] == pytest.approx(0.5)
  assert len(warnings) == 1 and "warp_epe_px, zero_flow_epe_px (no validation pair has both ground-truth depth and " \
      "camera poses)" in warnings[0]

  camvid_root = fixtures.write_camvid(str(tmp_path / "CamVid"))
  camvid = depth_motion_stage.DepthMotionStage(_config(tmp_path, camvid_root, dataset="camvid"))
  assert not camvid.true_intrinsics
  camvid.scenes("val")  # indexed (and the reader's own warning given) before the evaluation
  assert depth_motion_stage.DepthMotionStage(_config(tmp_path, camvid_root, dataset="camvid",
                                                     camvid_intrinsics=(400.0, 400.0, 240.0, 180.0))).true_intrinsics
  no_k = _split_totals(0, 0, 0, intrinsics=False)  # eval_step computes no intrinsics errors against a stand-in
  metrics, warnings = _eval_result(camvid, _totals(no_k, no_k))
  assert not [name for name in metrics if "relative_error" in name]
  assert len(warnings) == 1 and "fx_relative_error, fy_relative_error, cx_relative_error, cy_relative_error " \
      "(dataset=camvid has no camera calibration (none was given: --camvid_intrinsics, --video_intrinsics, " \
      "<video>.intrinsics.txt): its K is a stand-in" in \
      warnings[0]
  # Per-video intrinsics are scored against each training video's K: not against a stand-in either.
  per_video = depth_motion_stage.DepthMotionStage(_config(tmp_path, camvid_root, dataset="camvid",
                                                          dm_intrinsics="per_video"))
  per_video._models = {"intrinsics": intrinsics_table_lib.IntrinsicsTable(len(per_video.scenes("train")), (64, 64))}
  per_video.scenes("val")
  metrics, warnings = _eval_result(per_video, _totals(no_k, no_k))
  assert not [name for name in metrics if "relative_error" in name] and "fx_relative_error," in warnings[0]


@pytest.mark.parametrize("overrides, message", [
    (dict(height=48), r"--height=48 does not suit the depth_motion stage: DepthNet needs a height and width divisible "
                      r"by 32 .* Expected a multiple of 32, e.g. --height=32 or --height=64\."),
    (dict(width=20), r"--width=20 does not suit .* e\.g\. --width=32\."),
])
def test_preflight_rejects_sizes_depth_net_cannot_take(tmp_path, overrides, message):
  """Before the data is touched (nothing generated): the run fails in seconds instead of at the first step."""
  stage = depth_motion_stage.DepthMotionStage(_config(tmp_path, tmp_path / "data", **overrides))
  with unittest.mock.patch.object(stage_lib.Stage, "preflight") as data_checks:
    with pytest.raises(ValueError, match=message):
      stage.preflight()
  data_checks.assert_not_called()
  assert not os.path.exists(str(tmp_path / "data"))


def test_preflight_checks_the_data_after_the_size(tmp_path):
  stage = depth_motion_stage.DepthMotionStage(_config(tmp_path, tmp_path / "data"))
  with unittest.mock.patch.object(stage_lib.Stage, "preflight") as data_checks:
    stage.preflight()
  data_checks.assert_called_once_with()


def test_the_run_stops_at_preflight_on_a_size_depth_net_cannot_take(tmp_path):
  """Through the training driver: rejected before any stage trains or any data is generated."""
  config = _config(tmp_path, tmp_path / "data", height=48)
  with pytest.raises(train.RunError, match=r"Stage depth_motion: --height=48 does not suit the depth_motion stage"):
    train.preflight(config, tf.distribute.get_strategy())
  assert not os.path.exists(str(tmp_path / "data")) and not os.path.exists(os.path.join(config.model_dir,
                                                                                       "depth_motion"))
