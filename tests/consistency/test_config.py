"""TrainConfig validates every group of settings once, when it is built: a wrong value fails there, naming it."""

import pytest

from consistency.harness import config as config_lib


@pytest.mark.parametrize("setting, value, message", [
    ("batch_size", 0, "batch_size must be >= 1"),  # harness
    ("lr_schedule", "step", "lr_schedule must be one of constant, polynomial, cosine"),
    ("label_fraction", 0.0, r"label_fraction must be in \(0, 1\]"),  # data
    ("dm_occlusion_tolerance", 1.0, r"dm_occlusion_tolerance must be in \[0, 1\)"),  # depth_motion
    ("dm_occlusion_tolerance", -0.1, r"dm_occlusion_tolerance must be in \[0, 1\)"),
    ("dm_photometric_blurs", (), "dm_photometric_blurs must be one or more positive box filter sizes"),
    ("dm_photometric_blurs", (1, 0), "dm_photometric_blurs must be one or more positive box filter sizes"),
    ("dm_motion_trunk", "resnet", "dm_motion_trunk must be one of"),
    ("dm_motion_correlation_radius", 0, "dm_motion_correlation_radius must be >= 1"),
    ("dm_motion_match_radius", 0, "dm_motion_match_radius must be >= 1"),
    ("dm_motion_pose_solver", "svd", "dm_motion_pose_solver must be one of"),
    ("efc_labelled_pairs", 1.5, r"efc_labelled_pairs must be in \[0, 1\]"),  # efc
    ("efc_max_gap", 0, "Need 1 <= efc_min_gap <= efc_max_gap"),
    ("efc_smoothness_weight", -1.0, "EFC loss weights must be >= 0"),
    ("efc_occlusion_weight", 0.0, "--efc_occlusion_mask needs --efc_occlusion_weight > 0"),
    ("efc_consistency_levels", (6,), r"EFC levels \[6\] are not usable"),
    ("consistency_weight", -0.1, "consistency_weight and pseudo_label_weight must be >= 0"),  # consistency
])
def test_a_wrong_setting_fails_when_the_config_is_built(setting, value, message):
  config_lib.TrainConfig(model_dir="/tmp/unused")  # the defaults are valid
  with pytest.raises(ValueError, match=message):
    config_lib.TrainConfig(model_dir="/tmp/unused", **{setting: value})


@pytest.mark.parametrize("settings, message", [
    (dict(dm_motion_trunk="correlation", dm_residual_translation=True), "correlation has no residual translation"),
    (dict(dm_motion_pose_solver="least_squares", dm_residual_translation=True), "it has no residual translation"),
])
def test_settings_that_contradict_each_other_fail_when_the_config_is_built(settings, message):
  with pytest.raises(ValueError, match=message):
    config_lib.TrainConfig(model_dir="/tmp/unused", **settings)
