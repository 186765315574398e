"""Learning-rate schedules and optimizers (built from the TrainConfig)."""

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="consistency")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `peak`, then constant, polynomial (EFC's poly) or cosine decay to `end` at `total_steps`."""

  def __init__(self, peak, total_steps, kind="constant", end=0.0, power=0.9, warmup_steps=0):
    self.peak = peak
    self.total_steps = total_steps
    self.kind = kind
    self.end = end
    self.power = power
    self.warmup_steps = warmup_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
    progress = tf.clip_by_value((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
    if self.kind == "polynomial":
      lr = (self.peak - self.end) * tf.pow(1.0 - progress, self.power) + self.end
    elif self.kind == "cosine":
      lr = self.end + 0.5 * (self.peak - self.end) * (1.0 + tf.cos(math.pi * progress))
    else:
      lr = tf.constant(self.peak, tf.float32)
    if self.warmup_steps > 0:
      lr = tf.where(step < self.warmup_steps, self.peak * (step + 1.0) / self.warmup_steps, lr)
    return lr

  def get_config(self):
    return {"peak": self.peak, "total_steps": self.total_steps, "kind": self.kind, "end": self.end,
            "power": self.power, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="consistency")
class FusedAdam(keras.optimizers.Adam):
  """Keras Adam whose update of a dense gradient is TensorFlow's fused kernel (`ResourceApplyAdam`): one pass over a
  variable and its two moments instead of a dozen element-wise ops. The same arithmetic as keras.optimizers.Adam
  (m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)), the same
  slots, so checkpoints are interchangeable. AMSGrad and sparse gradients take Keras's own update.
  """

  def update_step(self, gradient, variable, learning_rate):
    if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable, learning_rate)
    dtype = variable.dtype
    local_step = tf.cast(self.iterations + 1, dtype)
    index = self._get_variable_index(variable)
    handle = (variable.value if isinstance(variable, keras.Variable) else variable).handle
    return tf.raw_ops.ResourceApplyAdam(
        var=handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
        beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
        beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step), lr=tf.cast(learning_rate, dtype),
        beta1=tf.cast(self.beta_1, dtype), beta2=tf.cast(self.beta_2, dtype), epsilon=tf.cast(self.epsilon, dtype),
        grad=tf.cast(gradient, dtype), use_locking=False)


def create_optimizer(config):
  """Adam or SGD with momentum, with the configured schedule and decoupled weight decay.

  Gradient clipping is not configured here: the training step clips the all-reduced gradient (Keras would clip each
  replica's partial gradient before aggregating).
  """
  schedule = WarmupDecay(config.learning_rate, config.train_steps, config.lr_schedule, config.lr_end,
                         config.lr_power, config.warmup_steps)
  weight_decay = config.weight_decay or None
  if config.optimizer == "sgd":
    optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum, weight_decay=weight_decay)
  else:
    optimizer = FusedAdam(schedule, beta_1=config.momentum, weight_decay=weight_decay)
  if config.mixed_precision == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer
