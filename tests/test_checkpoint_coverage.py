"""Every model's variables are saved by tf.train.Checkpoint and restore to identical outputs.

Keras 3 layers held only in Python lists are invisible to tf.train.Checkpoint, and `assert_existing_objects_matched`
does not notice: a checkpoint would silently lose them (here it once lost NAS-FPN, most of the head, and the depth and
motion networks' layers).
"""

import numpy as np
import pytest
import tensorflow as tf

from consistency import flow_net
from consistency.harness import config as config_lib
from consistency.harness import trainer as trainer_lib
from consistency.stages import toy_regression
from depth_motion import depth_net
from depth_motion import intrinsics_table
from depth_motion import motion_net
from segmentation import segmenter

TINY_SEGMENTER = segmenter.SegmenterConfig(backbone="resnet50", backbone_filters=(8, 8, 16, 16),
                                           backbone_blocks=(1, 1, 1, 1), nasfpn_filters=16, nasfpn_repeats=1,
                                           head_filters=16, head_groups=4)
IMAGES = tf.random.stateless_uniform([2, 64, 64, 3], [3, 4])


def _segmenter():
  return segmenter.build_segmenter(TINY_SEGMENTER), lambda m, training: m(IMAGES, training=training)["logits"]


def _depth():
  model = depth_net.DepthNet()
  return model, lambda m, training: m(IMAGES, training=training, step=0)["depth"]


def _motion():
  model = motion_net.MotionNet(residual_translation=True)
  inputs = {"image_i": IMAGES, "image_j": IMAGES[::-1]}
  return model, lambda m, training: m(inputs, training=training)["residual_translation"]


def _intrinsics_table():
  def run(model, training):
    if training:  # the table has no randomness of its own: move it away from its initial values
      model.params.assign(tf.random.stateless_uniform(model.params.shape, [5, 6], 0.5, 1.5))
    return model(tf.constant([0, 2, 1]))
  return intrinsics_table.IntrinsicsTable(3, (64, 64)), run


def _flow():
  encoder = segmenter.build_segmenter(TINY_SEGMENTER)
  features = encoder.backbone_features(IMAGES)
  inputs = {"features_a": features, "features_b": {level: value[::-1] for level, value in features.items()}}
  model = flow_net.build_flow_net(flow_net.FlowNet(filters=4), encoder.backbone.channels)
  return model, lambda m, training: m(inputs, training=training)["flow"][2]


@pytest.mark.parametrize("build", [_segmenter, _depth, _motion, _intrinsics_table, _flow],
                         ids=["segmenter", "depth_net", "motion_net", "intrinsics_table", "flow_net"])
def test_checkpoint_saves_and_restores_every_variable(tmp_path, build):
  model, run = build()
  run(model, True)  # builds, and moves batch-norm statistics away from their initial values
  checkpoint = tf.train.Checkpoint(model=model)
  assert trainer_lib.untracked_variables(checkpoint, model) == []
  path = checkpoint.write(str(tmp_path / "ckpt"))
  saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")
           and "OBJECT_CONFIG" not in name]
  assert len(saved) == len(model.weights)
  expected = run(model, False).numpy()
  fresh, _ = build()
  run(fresh, False)
  status = tf.train.Checkpoint(model=fresh).read(path)
  status.assert_existing_objects_matched()
  np.testing.assert_allclose(run(fresh, False).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_trainer_refuses_models_with_untracked_variables(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top

  class ListHolder(keras.layers.Layer):
    def __init__(self, **kwargs):
      super().__init__(**kwargs)
      self.denses = [keras.layers.Dense(1, name="hidden")]

    def call(self, x):
      return self.denses[0](x)

  class Untracked(toy_regression.ToyRegression):
    def build_models(self):
      inputs = keras.Input([toy_regression.FEATURES])
      return {"regressor": keras.Model(inputs, ListHolder()(inputs))}

  config = config_lib.TrainConfig(model_dir=str(tmp_path))
  with pytest.raises(ValueError, match="would not be checkpointed"):
    trainer_lib.Trainer(Untracked(config), config, tf.distribute.get_strategy(), str(tmp_path / "toy"))
