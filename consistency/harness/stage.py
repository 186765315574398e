"""The stage interface: what a training stage gives the training loop, and the stage registry.

A stage owns its models, data and losses; the loop (`trainer.py`) owns distribution, optimization, checkpoints,
summaries and evaluation. Each model issue (depth_motion, segmentation, consistency, efc) adds one stage.
"""

import abc

_REGISTRY = {}


def register(name):
  """Class decorator: makes a `Stage` subclass available as `--stages=<name>`."""
  def decorator(cls):
    if name in _REGISTRY:
      raise ValueError(f"Stage {name!r} is registered twice.")
    cls.name = name
    _REGISTRY[name] = cls
    return cls
  return decorator


def get(name):
  if name not in _REGISTRY:
    raise ValueError(f"Unknown stage {name!r}. Registered stages: {sorted(_REGISTRY)}.")
  return _REGISTRY[name]


def registered():
  return sorted(_REGISTRY)


class Stage(abc.ABC):
  """One training stage. Subclasses implement the abstract methods; the defaults cover the rest.

  Every method that builds TensorFlow objects is called inside the distribution strategy's scope.
  """
  name = None

  def __init__(self, config):
    self.config = config

  @abc.abstractmethod
  def build_models(self):
    """dict name -> built keras.Model (variables created). Names are the checkpoint's attribute names."""

  def trainable_models(self):
    """Names of the models the optimizer updates (default: all); the others are frozen."""
    return None

  def initial_checkpoints(self):
    """(part, checkpoint prefix or directory) pairs: where models start when the stage is not resuming, e.g. a
    segmenter from an earlier stage. Every variable of each part must be restored. --warm_start overrides a part."""
    return ()

  @abc.abstractmethod
  def train_dataset(self, start_step):
    """tf.data.Dataset of global batches (the loop splits them over replicas), infinite, positioned so that a run
    resumed at `start_step` sees the batches an uninterrupted run would."""

  def eval_dataset(self):
    """Finite tf.data.Dataset of global batches for evaluation, or None."""
    return None

  def preflight(self):
    """Checks, before any stage of the run trains, what this stage needs that exists already: its settings and its
    data (both datasets built, which indexes their splits, and the first batch of each decoded).

    Stages add their own checks (e.g. image sizes that suit their networks) and call this. It must not need the
    outputs of earlier stages, which do not exist yet.

    Raises:
      ValueError, OSError or datasets.labels.DataError naming the problem; tf.errors.OpError from a file that fails
      to decode.
    """
    for dataset in (self.train_dataset(0), self.eval_dataset()):
      if dataset is not None:
        for _ in dataset.take(1):
          pass

  @abc.abstractmethod
  def compute_losses(self, models, batch, step, training=True):
    """(losses, outputs): dict name -> weighted float32 scalar (cast model outputs to float32 before the loss under
    mixed precision), each the mean over this replica's batch (the loop
    sums them into `total` and scales for the global batch), and dict of tensors for image summaries."""

  def eval_step(self, models, batch):
    """dict name -> tensor of additive statistics of one batch (summed over batches and replicas). Only called when
    `eval_dataset()` is not None."""
    return {}

  def eval_result(self, totals):
    """metrics dict (JSON-serialisable) from the summed `eval_step` statistics (NumPy)."""
    return {}

  def summary_images(self, batch, outputs):
    """dict name -> [N, H, W, 3] images (float in [0, 1] or uint8) for TensorBoard; default none."""
    return {}

  def batch_size_of(self, batch):
    """Examples in a (global or local) batch."""
    first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return first.shape[0]
