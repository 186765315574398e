"""A user's keras.applications ResNet weights in the project's ResNet encoder: the same features, every file format,
clear errors."""

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from segmentation import applications_weights
from segmentation import backbone
from segmentation import segmenter

# The last block of each stack of keras.applications.ResNet50: pyramid levels P2..P5.
LEVEL_OUTPUTS = {2: "conv2_block3_out", 3: "conv3_block4_out", 4: "conv4_block6_out", 5: "conv5_block3_out"}


@pytest.fixture(scope="module")
def resnet50_files(tmp_path_factory):
  """keras.applications.ResNet50 (no download) with every weight random, biases and batch-norm statistics included,
  saved in the three formats a user may hold; and its P2..P5 features of a test image."""
  keras.utils.set_random_seed(0)
  model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(None, None, 3))
  rng = np.random.default_rng(0)
  for weight in model.weights:
    if weight.path.endswith(("gamma", "moving_variance")):
      weight.assign(rng.uniform(0.5, 1.5, weight.shape))
    elif weight.path.endswith(("bias", "beta", "moving_mean")):
      weight.assign(rng.normal(0.0, 0.1, weight.shape))
  directory = tmp_path_factory.mktemp("resnet50")
  keras3 = str(directory / "resnet50.weights.h5")
  whole_model = str(directory / "resnet50_model.h5")
  legacy = str(directory / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
  model.save_weights(keras3)
  model.save(whole_model)
  # The layout of the files Keras publishes: the whole-model file's weight group at the root.
  with h5py.File(whole_model, "r") as source, h5py.File(legacy, "w") as target:
    for key, value in source["model_weights"].attrs.items():
      target.attrs[key] = value
    for name in source["model_weights"]:
      source.copy(source["model_weights"][name], target, name)
  features = keras.Model(model.inputs, [model.get_layer(name).output for name in LEVEL_OUTPUTS.values()])
  images = rng.normal(size=(2, 70, 96, 3)).astype(np.float32)  # odd height: the stem's padding matters
  return {"keras3": keras3, "whole_model": whole_model, "legacy": legacy, "images": images,
          "features": dict(zip(LEVEL_OUTPUTS, features(images, training=False)))}


@pytest.mark.parametrize("file_format", ["keras3", "whole_model", "legacy"])
def test_backbone_features_equal_the_application_models(resnet50_files, file_format):
  ours = backbone.create("resnet50")
  ours.build((None, None, None, 3))
  applications_weights.load(ours, resnet50_files[file_format])
  features = ours(resnet50_files["images"], training=False)
  for level, expected in resnet50_files["features"].items():
    np.testing.assert_allclose(features[level], expected, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(expected))))


def test_segmenter_builds_with_a_weights_file(resnet50_files):
  config = segmenter.SegmenterConfig(backbone="resnet50", backbone_weights=resnet50_files["legacy"], nasfpn_filters=16,
                                     nasfpn_repeats=1, head_filters=16, head_groups=4, num_classes=3)
  model = segmenter.build_segmenter(config)
  features = model.backbone(resnet50_files["images"], training=False)
  np.testing.assert_allclose(features[5], resnet50_files["features"][5], rtol=1e-4,
                             atol=1e-4 * float(np.max(np.abs(resnet50_files["features"][5]))))
  assert model(tf.zeros([1, 64, 64, 3]))["logits"].shape == (1, 64, 64, 3)


def test_errors_name_the_file_and_the_layer(resnet50_files, tmp_path):
  fewer_blocks = backbone.create("resnet50", blocks=(2, 4, 6, 3))
  fewer_blocks.build((None, None, None, 3))
  with pytest.raises(ValueError, match=r"resnet50_model\.h5: layer conv2_block3_1_conv of the file has no "
                                       r"counterpart"):
    applications_weights.load(fewer_blocks, resnet50_files["whole_model"])
  narrower = backbone.create("resnet50", filters=(32, 128, 256, 512))
  narrower.build((None, None, None, 3))
  with pytest.raises(ValueError, match=r"notop\.h5: layer conv2_block1_1_conv has weights of shapes"):
    applications_weights.load(narrower, resnet50_files["legacy"])
  resnet101 = backbone.create("resnet101")
  resnet101.build((None, None, None, 3))
  with pytest.raises(ValueError, match=r"resnet50\.weights\.h5: not keras\.applications\.ResNet101 weights"):
    applications_weights.load(resnet101, resnet50_files["keras3"])
  with pytest.raises(FileNotFoundError, match="missing.h5"):
    applications_weights.read(str(tmp_path / "missing.h5"), "resnet50")
  not_h5 = tmp_path / "weights.h5"
  not_h5.write_text("not hdf5")
  with pytest.raises(ValueError, match=r"weights\.h5: not an HDF5 weights file"):
    applications_weights.read(str(not_h5), "resnet50")
  with pytest.raises(ValueError, match=r"for backbone \['resnet101', 'resnet152', 'resnet50'\]"):
    segmenter.SegmenterConfig(backbone="resnet18", backbone_weights=resnet50_files["legacy"])
