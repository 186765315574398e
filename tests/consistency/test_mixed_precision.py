"""Every stage trains under --mixed_precision=mixed_bfloat16: one step's float32 losses stay within bf16's tolerance
of the float32 step with the same weights, and its gradients are finite."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from consistency import stages  # noqa: F401  (registers the stages)
from consistency.harness import distribution
from consistency.harness import stage as stage_lib
from consistency.harness import trainer as trainer_lib
from tests import tiny

STAGES = {
    "segmentation": dict(label_fraction=0.5),
    "depth_motion": dict(dm_clip_length=2, dm_motion_pose_solver="least_squares", dm_motion_trunk="correlation",
                         dm_intrinsics="given", dm_max_noise_stddev=0.0),
    "consistency": dict(label_fraction=0.5, geometry="ground_truth", consistency_init_dir="none"),
    "efc": dict(label_fraction=0.5, width=96, efc_loss_levels=(0, 2, 3, 4), **tiny.EFC_SETTINGS),
}


@pytest.fixture(name="float32_policy_after")
def _float32_policy_after():
  yield
  keras.mixed_precision.set_global_policy("float32")


def _trainer(tmp_path, synthetic_root, name, precision):
  settings = STAGES[name]
  config = tiny.video_config(tmp_path / precision, synthetic_root(64, settings.get("width", 64)), stages=(name,),
                             mixed_precision=precision, **settings)
  stage = stage_lib.get(name)(config)
  return stage, trainer_lib.Trainer(stage, config, distribution.create_strategy(1), str(tmp_path / precision / name))


def _losses_and_gradients(stage, trainer, batch):
  with tf.GradientTape() as tape:
    losses, _ = stage.compute_losses(trainer.models, batch, trainer.step, training=False)
    losses = {name: tf.cast(value, tf.float32) for name, value in losses.items()}
    total = tf.add_n(list(losses.values()))
  gradients = tape.gradient(total, trainer.variables)
  return {name: float(value) for name, value in losses.items()}, gradients


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_bf16_step_matches_the_float32_step(tmp_path, synthetic_root, name, float32_policy_after):
  del float32_policy_after
  stage, reference = _trainer(tmp_path, synthetic_root, name, "none")
  batch = next(iter(stage.train_dataset(0)))
  expected, _ = _losses_and_gradients(stage, reference, batch)
  weights = {key: model.get_weights() for key, model in reference.models.items()}

  stage, mixed = _trainer(tmp_path, synthetic_root, name, "mixed_bfloat16")
  assert keras.mixed_precision.global_policy().compute_dtype == "bfloat16"
  for key, model in mixed.models.items():
    model.set_weights(weights[key])
  losses, gradients = _losses_and_gradients(stage, mixed, batch)
  assert set(losses) == set(expected)
  for term, value in expected.items():
    assert losses[term] == pytest.approx(value, rel=0.03, abs=1e-3), term
  assert all(g is None or np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in gradients)
  assert any(g is not None for g in gradients)
