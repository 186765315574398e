"""A tiny linear-regression stage: the training loop's own test subject (fast, exact, deterministic).

Example i of the stream is x_i ~ N(0, I) in R^16 (a stateless function of (seed, i)) and y_i = x_i . w* + 0.5;
batch k holds examples k*B .. k*B + B - 1, so a run resumed at step s sees exactly the batches an uninterrupted run
sees. The model is one Dense unit; the loss is the mean squared error; evaluation reports the MSE on 64 held-out
examples. Image summaries show x as a 4x4 picture.
"""

import keras
import tensorflow as tf

from consistency.harness import stage as stage_lib

FEATURES = 16
EVAL_EXAMPLES = 64
_EVAL_OFFSET = 2**40  # evaluation examples come from a disjoint index range


def _true_weights():
  return tf.linspace(-1.0, 1.0, FEATURES)[:, tf.newaxis]


@stage_lib.register("toy_regression")
class ToyRegression(stage_lib.Stage):
  """Fits y = x . w* + 0.5 with one Dense unit."""

  def build_models(self):
    model = keras.Sequential([keras.Input([FEATURES]), keras.layers.Dense(1, name="dense")], name="regressor")
    return {"regressor": model}

  def _example(self, index):
    x = tf.random.stateless_normal([FEATURES], tf.stack([tf.constant(self.config.seed, tf.int64), index]))
    return {"x": x, "y": tf.matmul(x[tf.newaxis], _true_weights())[0] + 0.5}

  def train_dataset(self, start_step):
    batch = self.config.batch_size
    ds = tf.data.Dataset.range(start_step * batch, 2**62).map(self._example)
    return ds.batch(batch, drop_remainder=True)

  def eval_dataset(self):
    ds = tf.data.Dataset.range(_EVAL_OFFSET, _EVAL_OFFSET + EVAL_EXAMPLES).map(self._example)
    return ds.batch(self.config.batch_size)

  def _predict(self, models, x, training):
    # Under a mixed-precision policy the model computes in float16/bfloat16; losses stay float32.
    return tf.cast(models["regressor"](x, training=training), tf.float32)

  def compute_losses(self, models, batch, step, training=True):
    prediction = self._predict(models, batch["x"], training)
    return {"mse": tf.reduce_mean(tf.square(prediction - batch["y"]))}, {"x": batch["x"]}

  def eval_step(self, models, batch):
    prediction = self._predict(models, batch["x"], False)
    return {"squared_error": tf.reduce_sum(tf.square(prediction - batch["y"])),
            "count": tf.cast(tf.shape(batch["x"])[0], tf.float32)}

  def eval_result(self, totals):
    return {"mse": float(totals["squared_error"] / totals["count"]), "examples": int(totals["count"])}

  def summary_images(self, batch, outputs):
    x = tf.reshape(outputs["x"][:4], [-1, 4, 4, 1])
    return {"inputs": tf.tile(tf.sigmoid(x), [1, 1, 1, 3])}
