"""The tf.data clip pipeline: clips of frames with a frame gap, sparse labels, augmentation, batching.

Every training stage reads one batch dictionary (see docs/concepts.md):
  image       [B, T, H, W, 3] float32 in [0, 1]
  intrinsics  [B, 3, 3]        K at the working resolution (after augmentation)
  label       [B, T, H, W] int32, labels.IGNORE_LABEL where a frame is unlabeled
  has_label   [B, T] bool      the frame's label is kept (label-fraction selection)
  depth       [B, T, H, W] float32 metres, 0 = missing          } ground truth, with include_ground_truth;
  pose        [B, T, 4, 4] float32 camera-to-world              } a source without depth gives zeros (missing),
                                                                } one without poses NaN (unknown)
  scene_index [B] int32, frame_id [B, T] int64                  where the clip came from
T is the clip length (2 for pairs, 3 for triplets). Frames t and t + 1 of a clip are `gap` frames apart in the
scene, gap fixed or uniform in a range per clip (EFC samples 1..5).

Labels are kept on a deterministic, seeded fraction of the frames that have labels (`select_labelled_frames`; in
a Cityscapes snippet only the 20th frame has one): the others are unlabeled and reach the model only through the
unsupervised terms. `labelled_frames` streams just the labelled frames (T = 1) for the supervised term.

Every file is checked as it is decoded (`scannet.load_frame`): a bad file ends the iteration with a
`tf.errors.InvalidArgumentError` naming it, which `labels.data_error_from` turns into a `DataError`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from datasets import augment as augment_lib
from datasets import labels as labels_lib
from datasets.readers import scannet


@dataclasses.dataclass(frozen=True)
class ClipConfig:
  """How clips are cut, labelled, augmented and batched.

  Attributes:
    height, width: working resolution.
    clip_length: frames per clip (>= 1).
    min_gap, max_gap: frame gap between consecutive clip frames, drawn uniformly in [min_gap, max_gap] per clip
      (equal for a fixed gap), in frames of the scene's export.
    label_fraction: fraction of all frames whose labels are kept, in (0, 1].
    label_seed: seed of the labelled-frame selection (independent of the shuffling seed).
    batch_size: clips per batch (the global batch; tf.distribute splits it).
    shuffle_buffer: clip starts shuffled in a buffer of this size (training).
    augment: augmentation settings, or None for none.
    include_ground_truth: also emit depth and pose.
    seed: seed of shuffling, gap sampling and augmentation.
  """
  height: int = 128
  width: int = 160
  clip_length: int = 2
  min_gap: int = 1
  max_gap: int = 1
  label_fraction: float = 1.0
  label_seed: int = 0
  batch_size: int = 8
  shuffle_buffer: int = 2048
  augment: augment_lib.AugmentConfig | None = augment_lib.AugmentConfig()
  include_ground_truth: bool = True
  seed: int = 0

  def __post_init__(self):
    for name in ("height", "width", "clip_length", "min_gap", "batch_size", "shuffle_buffer"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
    if self.max_gap < self.min_gap:
      raise ValueError(f"max_gap must be >= min_gap. Received: min_gap={self.min_gap}, max_gap={self.max_gap}")
    if not 0.0 < self.label_fraction <= 1.0:
      raise ValueError(f"label_fraction must be in (0, 1]. Received: label_fraction={self.label_fraction}")


def select_labelled_frames(scenes, fraction, seed):
  """Which frames keep their labels: exactly round(fraction * n) of the n frames with a label (at least one).

  The choice is a seeded permutation of all (scene, frame) pairs in a canonical order, so it is deterministic, does
  not depend on the order `scenes` are given in, and is nested: a smaller fraction keeps a subset of a larger one.

  Args:
    scenes: `scannet.SceneIndex` list.
    fraction: in (0, 1].
    seed: int.

  Returns:
    A set of (scene name, frame id).
  """
  candidates = sorted((scene.name, int(frame_id)) for scene in scenes for frame_id in scene.labelled_frame_ids())
  if not candidates:
    return set()
  count = max(1, int(round(fraction * len(candidates))))
  order = np.random.default_rng(seed).permutation(len(candidates))
  return {candidates[i] for i in order[:count]}


def _frame_table(scenes, labelled):
  """All frames of all scenes as flat columns, plus each frame's last index within its scene."""
  columns = {key: [] for key in ("color_path", "depth_path", "label_path", "pose", "frame_id", "scene_index",
                                 "scene_end", "intrinsics", "label_offset", "label_default", "crop")}
  tables, offset, total = [], 0, 0
  for scene_index, scene in enumerate(scenes):
    table = scene.frame_table()
    n = scene.num_frames
    label_table = scene.label_table if scene.label_table is not None else labels_lib.NYU40_TO_CLASS
    tables.append(np.asarray(label_table, np.int32))
    kept = np.array([(scene.name, int(f)) in labelled for f in scene.frame_ids], bool)
    columns["label_path"].append(np.where(kept, table["label_path"], ""))
    for key in ("color_path", "depth_path", "pose", "frame_id", "intrinsics", "label_default", "crop"):
      columns[key].append(table[key])
    columns["scene_index"].append(np.full(n, scene_index, np.int32))
    columns["scene_end"].append(np.full(n, total + n - 1, np.int64))
    columns["label_offset"].append(np.full(n, offset, np.int64))
    offset += len(label_table)
    total += n
  frames = {key: np.concatenate(value) for key, value in columns.items()}
  frames["label_size"] = np.concatenate([np.full(s.num_frames, len(t), np.int64) for s, t in zip(scenes, tables)])
  return frames, np.concatenate(tables)


def _scene_table(scenes):
  """Per-scene columns that `scannet.load_frame` checks every file against: sizes and the files that set them."""
  return {
      "color_size": np.array([s.color_size for s in scenes], np.int32),
      "depth_size": np.array([s.depth_size or (0, 0) for s in scenes], np.int32),
      "first_color_path": np.array([s.color_paths[0] for s in scenes], dtype=object).astype(str),
      "first_depth_path": np.array([s.depth_paths[0] if s.has_depth else "" for s in scenes], dtype=object).astype(str),
  }


class ClipSource:
  """Frames of a list of scenes, cut into clips and loaded by TensorFlow ops (see the module docstring)."""

  def __init__(self, scenes, config):
    if not scenes:
      raise ValueError("No scenes given to the clip pipeline.")
    self.scenes = list(scenes)
    self.config = config
    self.labelled = select_labelled_frames(self.scenes, config.label_fraction, config.label_seed)
    frames, label_tables = _frame_table(self.scenes, self.labelled)
    self.num_frames = len(frames["frame_id"])
    self._frames = {key: tf.constant(value) for key, value in frames.items()}
    self._label_tables = tf.constant(label_tables)
    self._scenes = {key: tf.constant(value) for key, value in _scene_table(self.scenes).items()}
    span = (config.clip_length - 1) * config.min_gap
    self.clip_starts = np.flatnonzero(np.arange(self.num_frames) + span <= frames["scene_end"]).astype(np.int64)
    if self.clip_starts.size == 0:
      longest = max(s.num_frames for s in self.scenes)
      raise ValueError(f"No scene is long enough for clips of {config.clip_length} frames with gap >= "
                       f"{config.min_gap} (needs {span + 1} frames; the longest scene has {longest}).")

  def _clip_indices(self, start, seed):
    """[T] frame indices of the clip starting at `start`, gap drawn in [min_gap, the largest that fits, max_gap]."""
    config = self.config
    if config.clip_length == 1:
      return start[tf.newaxis]
    room = (tf.gather(self._frames["scene_end"], start) - start) // (config.clip_length - 1)
    max_gap = tf.minimum(tf.cast(config.max_gap, tf.int64), room)
    gap = tf.random.stateless_uniform([], seed, config.min_gap, max_gap + 1, dtype=tf.int64)
    return start + gap * tf.range(config.clip_length, dtype=tf.int64)

  def _load_frame(self, index):
    frames = self._frames
    offset, size = frames["label_offset"][index], frames["label_size"][index]
    scene = {key: value[frames["scene_index"][index]] for key, value in self._scenes.items()}
    frame = scannet.load_frame(
        frames["color_path"][index], frames["depth_path"][index], frames["label_path"][index],
        intrinsics=frames["intrinsics"][index], size=(self.config.height, self.config.width),
        label_table=self._label_tables[offset:offset + size], label_default=frames["label_default"][index],
        crop=frames["crop"][index], **scene)
    frame["pose"] = frames["pose"][index]
    return frame

  def load_clip(self, indices, seed=None):
    """The clip dict (unbatched) of the frames at flat `indices` [T]; augmented when `seed` is given."""
    config = self.config
    loaded = [self._load_frame(indices[t]) for t in range(config.clip_length)]
    clip = {key: tf.stack([frame[key] for frame in loaded]) for key in ("image", "label", "has_label", "depth", "pose")}
    clip["intrinsics"] = loaded[0]["intrinsics"]  # one camera per scene
    clip["scene_index"] = tf.gather(self._frames["scene_index"], indices[0])
    clip["frame_id"] = tf.gather(self._frames["frame_id"], indices)
    if seed is not None and config.augment is not None:
      clip = augment_lib.augment_clip(clip, seed, config.augment)
    if not config.include_ground_truth:
      del clip["depth"], clip["pose"]
    return clip

  def dataset(self, training=True, starts=None, skip_batches=0):
    """Batched clips. Training: shuffled, repeated forever, augmented. Otherwise: every clip once, in order.

    Args:
      training: see above.
      starts: optional flat frame indices to start clips at (default: every valid start).
      skip_batches: start the stream this many batches in, without loading the skipped clips: a run resumed at
        step s passes s and sees exactly the batches an uninterrupted run would.
    """
    config = self.config
    starts = self.clip_starts if starts is None else np.asarray(starts, np.int64)
    ds = tf.data.Dataset.from_tensor_slices(starts)
    if training:
      ds = ds.shuffle(min(config.shuffle_buffer, len(starts)), seed=config.seed, reshuffle_each_iteration=True)
      ds = ds.repeat()
    # One stateless seed per example (its position in the stream): reproducible, and independent of parallelism.
    ds = ds.enumerate()
    if skip_batches:
      ds = ds.skip(skip_batches * config.batch_size)
    # The loading code has no Python control flow on tensors, so autograph (which tf.data applies to every map
    # function, converting each function it calls) only costs seconds of tracing per pipeline.
    load = tf.autograph.experimental.do_not_convert(lambda i, start: self._clip_from_start(i, start, training))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(config.batch_size, drop_remainder=training)
    return ds.prefetch(tf.data.AUTOTUNE)

  def _clip_from_start(self, position, start, training):
    seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(self.config.seed, tf.int64), position]), 2)
    indices = self._clip_indices(start, seeds[0]) if training else self._fixed_gap_indices(start)
    return self.load_clip(indices, seeds[1] if training else None)

  def _fixed_gap_indices(self, start):
    return start + self.config.min_gap * tf.range(self.config.clip_length, dtype=tf.int64)

  def labelled_starts(self):
    """Flat indices of the frames whose labels are kept."""
    return np.flatnonzero(self._frames["label_path"].numpy() != b"").astype(np.int64)


def clips(scenes, config, training=True, skip_batches=0):
  """Batched clips of `scenes` (a `scannet.SceneIndex` list); see `ClipSource.dataset`."""
  return ClipSource(scenes, config).dataset(training, skip_batches=skip_batches)


def labelled_frames(scenes, config, training=True, skip_batches=0):
  """Batched single labelled frames (T = 1) for the supervised term, same dictionary as `clips`."""
  source = ClipSource(scenes, dataclasses.replace(config, clip_length=1, min_gap=1, max_gap=1))
  starts = source.labelled_starts()
  if starts.size == 0:
    raise ValueError("No labelled frames: the scenes have no label/ or label-filt/ folders.")
  return source.dataset(training, starts=starts, skip_batches=skip_batches)
