"""Latency of the exported SavedModel next to the Keras segmenter it was exported from, on the same uint8 images.

    python -m benchmarks.export_latency [--backbone=resnet50] [--batches=1,4] [--height=128] [--width=160] \\
        [--repeats=10] [--report=PATH]

Builds the segmenter (random weights; latency does not depend on them), writes its serving SavedModel with
`segmentation.export.save_serving_model` (input size = the benchmark size, so the serving resizes are identities),
reloads it with `tf.saved_model.load`, and times, per batch size, the median of --repeats calls (taking
turns, so that the load of a shared machine hits all four alike) of:
  Keras eager        model(images / 255, training=False)["logits"]
  Keras tf.function  the same call under tf.function (traced once per shape)
  Keras + serving    under tf.function, the serving computation in Python: uint8 -> [0, 1], resize, model, resize,
                     softmax, argmax (what the SavedModel does)
  SavedModel         signatures["serving_default"](images=uint8) -> class_ids, probabilities
and prints a markdown table with the SavedModel / Keras + serving ratio (about 1 means the export adds nothing).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402
from segmentation import export  # noqa: E402
from segmentation import segmenter  # noqa: E402

_BACKBONE = flags.DEFINE_enum("backbone", "resnet50", ["resnet18", "resnet50"],
                              "Backbone of the default segmenter config (NAS-FPN 256 x 5, head 128).")
_BATCHES = flags.DEFINE_list("batches", ["1", "4"], "Batch sizes to time.")
_HEIGHT = flags.DEFINE_integer("height", 128, "Image height (also the model input size).")
_WIDTH = flags.DEFINE_integer("width", 160, "Image width (also the model input size).")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls per measurement (the median is reported).")
_REPORT = flags.DEFINE_string("report", "", "Markdown report path ('' to only print).")


def _interleaved_medians(fns, repeats, warmup=2):
  """Median seconds of each of `fns`, called in turn in every round, so a shared machine's load hits all alike."""
  for _ in range(warmup):
    for fn in fns:
      tf.nest.map_structure(np.asarray, fn())
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, fn_times in zip(fns, times):
      start = time.perf_counter()
      tf.nest.map_structure(np.asarray, fn())  # to NumPy, so asynchronous work is included
      fn_times.append(time.perf_counter() - start)
  return [float(np.median(t)) for t in times]


def main(argv):
  del argv
  size = (_HEIGHT.value, _WIDTH.value)
  config = segmenter.SegmenterConfig(backbone=_BACKBONE.value)
  model = segmenter.build_segmenter(config)

  @tf.function
  def keras_forward(x):
    return model(x, training=False)["logits"]

  @tf.function
  def keras_serving(images):
    x = tf.image.resize(tf.cast(images, tf.float32) / 255.0, size, method="bilinear")
    logits = tf.image.resize(model(x, training=False)["logits"], tf.shape(images)[1:3], method="bilinear")
    return {"class_ids": tf.argmax(logits, -1, output_type=tf.int32), "probabilities": tf.nn.softmax(logits)}

  with tempfile.TemporaryDirectory() as tmp:
    path = export.save_serving_model(model, size, os.path.join(tmp, "saved_model"))
    serve = tf.saved_model.load(path).signatures[export.SIGNATURE_KEY]
    header = ["batch", "Keras eager ms", "Keras tf.function ms", "Keras + serving ops ms", "SavedModel ms",
              "SavedModel / Keras + serving", "SavedModel ms per image"]
    rows = []
    for batch in (int(b) for b in _BATCHES.value):
      images = tf.constant(np.random.default_rng(batch).integers(0, 256, (batch, *size, 3), dtype=np.uint8))
      floats = tf.cast(images, tf.float32) / 255.0
      times = _interleaved_medians([
          lambda: model(floats, training=False)["logits"],
          lambda: keras_forward(floats),
          lambda: keras_serving(images),
          lambda: serve(images=images)], _REPEATS.value)
      saved = serve(images=images)
      reference = keras_serving(images)
      np.testing.assert_allclose(saved["probabilities"], reference["probabilities"], atol=1e-4)
      row = [str(batch)] + [f"{1000 * t:.0f}" for t in times] + [f"{times[3] / times[2]:.2f}",
                                                                f"{1000 * times[3] / batch:.0f}"]
      rows.append(row)
      print(" | ".join(row), flush=True)
  timing.write_report(_REPORT.value, "Exported segmenter latency", [
      f"{_BACKBONE.value} segmenter (NAS-FPN 256 x 5, head 128), random weights, uint8 images {size[0]}x{size[1]} "
      f"(= the model input size), median of {_REPEATS.value} calls after 2 warm-up calls, the four calls taking turns "
      f"(`python -m benchmarks.export_latency --backbone={_BACKBONE.value} --repeats={_REPEATS.value}`).",
      timing.markdown_table(header, rows)])


if __name__ == "__main__":
  app.run(main)
