"""TrainConfig validates every group of settings once, when it is built: a wrong value fails there, naming it."""

import pytest

from consistency import config as config_lib


@pytest.mark.parametrize("setting, value, message", [
    ("batch_size", 0, "batch_size must be >= 1"),  # harness
    ("lr_schedule", "step", "lr_schedule must be one of constant, polynomial, cosine"),
    ("label_fraction", 0.0, r"label_fraction must be in \(0, 1\]"),  # data
    ("dm_occlusion_tolerance", 1.0, r"dm_occlusion_tolerance must be in \[0, 1\)"),  # depth_motion
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
