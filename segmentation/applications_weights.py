"""ImageNet weights that a user downloaded for a `keras.applications` ResNet (ResNet50, ResNet101, ResNet152), loaded
into the project's ResNet encoder (`backbone.ResNetFeatures`).

    load(features, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")

Accepted files: the legacy HDF5 weight files Keras publishes (with or without the classifier), a legacy whole-model
`.h5` (`model.save("m.h5")`), and Keras 3 `.weights.h5` files of an application model (`model.save_weights`).

The two networks compute the same function: `ResNetFeatures` pads its stem as keras.applications does, its layers
correspond by name (`conv{s + 2}_block{b}_{i}_conv` = `v2_stack_{s}_block{b}_{i}_conv`), and the applications'
convolution biases, each followed by a batch norm, are folded into that norm's moving mean (BN(conv(x) + b) with mean
m equals BN(conv(x)) with mean m - b; in training mode the batch mean absorbs b either way).
"""

import os
import re

import h5py
import keras
import numpy as np

APPLICATIONS = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152"}
_CLASSIFIER = "predictions"  # the 1000-class layer of include_top files; the encoder has no use for it


def _ours(name):
  """applications layer name -> ResNetFeatures (keras-cv) layer name."""
  match = re.fullmatch(r"conv(\d)_(block\d+_\d_(?:conv|bn))", name)
  return f"v2_stack_{int(match.group(1)) - 2}_{match.group(2)}" if match else name


def _read_legacy_h5(group):
  """{layer name: [arrays]} of a legacy Keras HDF5 weights group (attrs layer_names / weight_names)."""
  weights = {}
  for layer in group.attrs["layer_names"]:
    layer = layer.decode() if isinstance(layer, bytes) else layer
    names = group[layer].attrs.get("weight_names", [])
    if len(names):
      weights[layer] = [np.asarray(group[layer][n.decode() if isinstance(n, bytes) else n]) for n in names]
  return weights


def _read_keras3(path, architecture):
  """{layer name: [arrays]} of a Keras 3 `.weights.h5` file saved from the keras.applications model."""
  errors = []
  for include_top in (False, True):
    model = getattr(keras.applications, APPLICATIONS[architecture])(weights=None, include_top=include_top,
                                                                     input_shape=(None, None, 3) if not include_top
                                                                     else None)
    try:
      model.load_weights(path)
    except (ValueError, KeyError) as e:
      errors.append(f"{type(e).__name__}: {e}")
      continue
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
  raise ValueError(f"{path}: not keras.applications.{APPLICATIONS[architecture]} weights, with or without the "
                   f"classifier ({'; '.join(errors)}).")


def read(path, architecture):
  """The weights of a keras.applications ResNet file, {applications layer name: [arrays]} (classifier dropped).

  Raises:
    FileNotFoundError: naming `path`.
    ValueError: naming `path` when it is not an HDF5 file or not weights of that architecture.
  """
  if architecture not in APPLICATIONS:
    raise ValueError(f"Weight files of keras.applications exist for {sorted(APPLICATIONS)}; the backbone is "
                     f"{architecture!r}.")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No weights file {path} (expected a keras.applications {APPLICATIONS[architecture]} "
                            ".h5 or .weights.h5 file).")
  try:
    with h5py.File(path, "r") as f:
      group = f["model_weights"] if "model_weights" in f else f
      legacy = "layer_names" in group.attrs
      weights = _read_legacy_h5(group) if legacy else None
  except OSError as e:
    raise ValueError(f"{path}: not an HDF5 weights file ({e}).") from None
  if weights is None:
    weights = _read_keras3(path, architecture)
  weights.pop(_CLASSIFIER, None)
  return weights


def load(features, path):
  """Sets every weight of `features` (a built `backbone.ResNetFeatures`) from the keras.applications file `path`.

  Raises:
    FileNotFoundError, ValueError: naming `path` and, for a mismatch, the first layer (in network order) whose name or
      shapes differ.
  """
  weights = {_ours(name): (name, list(arrays)) for name, arrays in read(path, features.architecture).items()}
  for ours_name, (name, arrays) in weights.items():
    if ours_name.endswith("_conv") and len(arrays) == 2:  # kernel, bias: fold the bias into the next BN's mean
      norm_name = ours_name[:-len("conv")] + "bn"
      if norm_name not in weights:
        raise ValueError(f"{path}: layer {name} has a bias but no batch norm after it; not a "
                         "keras.applications ResNet file.")
      weights[norm_name][1][2] = weights[norm_name][1][2] - arrays.pop()  # gamma, beta, moving mean, variance
  layers = [layer for layer in features.network.layers if layer.weights]
  description = (f"the {features.architecture} backbone (blocks {features.stackwise_num_blocks}, filters "
                 f"{features.stackwise_num_filters})")
  unused = set(weights) - {layer.name for layer in layers}
  if unused:
    first = next(name for name, _ in weights.values() if _ours(name) in unused)
    raise ValueError(f"{path}: layer {first} of the file has no counterpart in {description}.")
  for layer in layers:
    if layer.name not in weights:
      raise ValueError(f"{path}: no weights for layer {layer.name} of {description}; the file's layers are those of "
                       f"keras.applications.{APPLICATIONS[features.architecture]}.")
    name, arrays = weights[layer.name]
    expected = [tuple(w.shape) for w in layer.get_weights()]
    if expected != [tuple(a.shape) for a in arrays]:
      raise ValueError(f"{path}: layer {name} has weights of shapes {[tuple(a.shape) for a in arrays]}; the "
                       f"backbone's {layer.name} needs {expected}.")
    layer.set_weights(arrays)
