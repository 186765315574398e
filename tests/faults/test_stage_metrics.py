"""Regression tests of the probed silent-result faults of the stages' evaluation (issue [reliability], items 6 and 7):
a metric the data cannot give is absent (never 0 or null) with one warning saying why, and efc evaluates the labelled
frames first, so that --eval_max_batches keeps them.

Each test evaluates untrained tiny networks the way the trainer does (`eval_dataset` -> `eval_step` summed ->
`eval_result`), eagerly and without training: the metrics' presence does not depend on the weights.
"""

import json
import os
import unittest.mock

from absl import logging
from PIL import Image
import pytest

from consistency import flow_evaluation
from consistency.harness import config as config_lib
from consistency.stages import depth_motion as depth_motion_stage
from consistency.stages import efc as efc_stage
from datasets.readers import kitti_raw
from tests.datasets import fixtures

# The efc networks of tests/consistency/test_efc_stage.py.
TINY_EFC = dict(backbone="resnet50", backbone_filters=(8, 8, 16, 16), backbone_blocks=(1, 1, 1, 1),
                nasfpn_filters=16, nasfpn_repeats=1, head_filters=16, head_groups=4, efc_flow_filters=8)
KITTI_DATE = "2011_09_26"
KITTI_DRIVES = ("2011_09_26_drive_0001_sync", "2011_09_26_drive_0002_sync")  # train, val (test_scenes.txt)
KITTI_P_RECT_02 = "7.2e+01 0.0 3.1e+01 4.5e+01 0.0 7.3e+01 1.7e+01 2.1e-01 0.0 0.0 1.0 2.7e-03"
DEPTH_METRICS = ("depth_abs_rel_median_scaled", "depth_abs_rel_unscaled", "depth_delta1_median_scaled",
                 "depth_scale", "depth_relative_spread", "depth_abs_rel_constant_reference")
POSE_METRICS = ("rotation_error_deg", "true_rotation_deg", "translation_angle_deg")
INTRINSICS_METRICS = ("fx_relative_error", "fy_relative_error", "cx_relative_error", "cy_relative_error")
SEGMENTATION_METRICS = ("miou", "pixel_accuracy", "mean_class_accuracy", "per_class")


def write_kitti_raw(root, num_frames=4, size=(24, 40)):
  """Two drives of raw KITTI (no depth, poses or labels; K from P_rect_02); the second is the val split."""
  date_dir = os.path.join(root, KITTI_DATE)
  os.makedirs(date_dir, exist_ok=True)
  with open(os.path.join(date_dir, kitti_raw.CALIBRATION_FILE), "w", encoding="utf-8") as f:
    f.write(f"P_rect_02: {KITTI_P_RECT_02}\n")
  for index, drive in enumerate(KITTI_DRIVES):
    folder = os.path.join(date_dir, drive, kitti_raw.IMAGE_FOLDER)
    os.makedirs(folder, exist_ok=True)
    for frame in range(num_frames):
      Image.fromarray(fixtures.ramp_image(size, 40 * index + 9 * frame)).save(
          os.path.join(folder, f"{frame:010d}.png"))
  with open(os.path.join(root, kitti_raw.TEST_SCENES_FILE), "w", encoding="utf-8") as f:
    f.write(KITTI_DRIVES[1] + "\n")
  return root


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
  return write_kitti_raw(str(tmp_path_factory.mktemp("kitti_raw")))


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
  return fixtures.write_cityscapes(str(tmp_path_factory.mktemp("cityscapes")))


def evaluate(stage, models=None):
  """The stage's metrics on its evaluation data, with `models` (default: freshly built), and the warnings it
  logged."""
  models = models or stage.build_models()
  totals = None
  for batch in stage.eval_dataset():
    values = {name: value.numpy() for name, value in stage.eval_step(models, batch).items()}
    totals = values if totals is None else {name: totals[name] + values[name] for name in totals}
  with unittest.mock.patch.object(logging, "warning") as warning:
    metrics = stage.eval_result(totals)
  json.dumps(metrics, allow_nan=False)  # what metrics.json holds: no NaN
  return metrics, [call.args[0] % call.args[1:] for call in warning.call_args_list]


def _no_nulls(metrics):
  return [name for name, value in metrics.items() if value is None]


def _depth_motion_config(tmp_path, root, dataset, **overrides):
  base = dict(model_dir=str(tmp_path / "run"), stages=("depth_motion",), batch_size=2, dataset=dataset,
              data_root=root, height=32, width=64, eval_max_batches=1)
  base.update(overrides)
  return config_lib.TrainConfig(**base)


def test_depth_motion_leaves_out_what_data_without_ground_truth_cannot_give(tmp_path, kitti_root):
  """Probe: depth_motion on raw KITTI reported AbsRel 0.000 with depth_images 0. Without depth and poses the depth and
  pose metrics are absent (the counts stay); the intrinsics errors stay (raw KITTI's K is a calibration); one warning
  says which and why. (CamVid's stand-in K: tests/consistency/test_depth_motion_stage.py.)"""
  config = _depth_motion_config(tmp_path, kitti_root, "kitti_raw")
  metrics, warnings = evaluate(depth_motion_stage.DepthMotionStage(config))
  prefix = depth_motion_stage.TRAINING_VIDEO_PREFIX
  for split in ("", prefix):
    assert metrics[split + "depth_images"] == 0 and metrics[split + "pose_pairs"] == 0
    assert metrics[split + "pairs"] == 2
    for name in DEPTH_METRICS + POSE_METRICS:
      assert split + name not in metrics, split + name
  assert not _no_nulls(metrics)
  assert all(name in metrics and metrics[name] >= 0.0 for name in INTRINSICS_METRICS)
  assert len(warnings) == 1, warnings
  message = warnings[0]
  assert "depth_* but depth_images" in message and "training_video/depth_*" in message
  assert "no validation frame has ground-truth depth (dataset=kitti_raw has no depth)" in message
  assert "no training-video frame has ground-truth depth" in message
  assert "rotation_error_deg, true_rotation_deg, translation_angle_deg (no validation pair has ground-truth camera " \
         "poses (dataset=kitti_raw has no poses))" in message
  assert "relative_error" not in message


def _efc_config(tmp_path, root, dataset, **overrides):
  base = dict(model_dir=str(tmp_path / "run"), stages=("efc",), batch_size=2, dataset=dataset, data_root=root,
              height=32, width=64, eval_max_batches=1, efc_loss_levels=(0, 2, 3), **TINY_EFC)
  base.update(overrides)
  return config_lib.TrainConfig(**base)


@pytest.fixture(scope="module")
def efc_models(tmp_path_factory, kitti_root):
  """The tiny efc networks (19 classes: raw KITTI's and Cityscapes'), built once for the efc tests."""
  config = _efc_config(tmp_path_factory.mktemp("efc_models"), kitti_root, "kitti_raw")
  return efc_stage.EfcStage(config).build_models()


def test_efc_without_labels_depth_or_poses_leaves_those_metrics_out(tmp_path, kitti_root, efc_models):
  """Probe: efc on raw KITTI reported miou and the flow metrics as null. They are absent, with one warning."""
  stage = efc_stage.EfcStage(_efc_config(tmp_path, kitti_root, "kitti_raw", efc_labelled_pairs=0.0))
  metrics, warnings = evaluate(stage, efc_models)
  assert not _no_nulls(metrics)
  assert metrics["num_pixels"] == 0 and metrics["eval_pixels"] == 0
  assert not set(SEGMENTATION_METRICS + flow_evaluation.FLOW_METRICS) & set(metrics), metrics
  assert len(warnings) == 1, warnings
  assert "no labelled pixel was evaluated: the validation split of dataset=kitti_raw has no labels" in warnings[0]
  assert "miou" in warnings[0] and "flow_epe_all" in warnings[0]
  assert "no evaluated pixel has ground-truth flow (it needs depth and camera poses; dataset=kitti_raw has no depth " \
         "and no camera poses)" in warnings[0]


def test_efc_eval_max_batches_keeps_the_labelled_frame(tmp_path, cityscapes_root, efc_models):
  """Probe: efc with --eval_max_batches=1 on Cityscapes evaluated frames 275 and 276 of the snippet (labelled at 294)
  and reported miou null. The pair at the labelled frame is evaluated first: miou is there."""
  stage = efc_stage.EfcStage(_efc_config(tmp_path, cityscapes_root, "cityscapes"))
  metrics, warnings = evaluate(stage, efc_models)
  assert metrics["num_pixels"] > 0 and 0.0 <= metrics["miou"] <= 1.0 and "per_class" in metrics
  assert not _no_nulls(metrics)
  # Cityscapes has no depth or poses: no flow metrics, and that is the only warning.
  assert not set(flow_evaluation.FLOW_METRICS) & set(metrics)
  assert len(warnings) == 1 and "no labelled pixel" not in warnings[0] and "flow_epe_all" in warnings[0]
