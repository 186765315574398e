"""NAS-FPN decoder (Ghiasi et al. 2019) with the Model Garden defaults, as a Keras 3 layer.

The decoder turns backbone levels {3: C3, 4: C4, 5: C5} into a pyramid {3: P3, ..., 7: P7} of `filters` channels.
Input projection: each backbone level in 3..7 gets a 1x1 conv + BN when its channel count is not `filters`; missing
P6, P7 are max-pooled (stride 2) from the level below. Then `num_repeats` repeats (each with its own weights) of the
seven merging cells of `NASFPN_CELLS`; each cell resamples its two inputs to its level, merges them (sum or global
attention), adds the unused earlier nodes of its level when it is an output cell, and ends with ReLU -> 3x3 conv ->
BN. The last five nodes are the new P3..P7.

Spatial sizes. Level l has size ceil(size(l - 1) / 2), what stride-2 'SAME' convolutions and pools produce, so any
input size works. Downsampling by 2^d is d max-pools of size 2, stride 2 (padding 'SAME'); upsampling by 2^d repeats
each pixel 2^d times (nearest neighbour) and crops to the target node's exact size. When sizes are divisible (inputs
divisible by 2^7) this is exactly Model Garden's single max-pool of stride 2^d and nearest upsampling x 2^d. When
they are not, coarse pixel j covers fine pixels [j 2^d, (j + 1) 2^d) in both directions, so the crop puts every
coarse pixel back where its pooling window came from (a stretching resize would shift them by up to half a coarse
pixel), and the global max of a map survives every resampling.
"""

import dataclasses

import keras
import tensorflow as tf

MIN_LEVEL = 3
MAX_LEVEL = 7
LEVELS = tuple(range(MIN_LEVEL, MAX_LEVEL + 1))
COMBINE_OPS = ("attention", "sum")


@dataclasses.dataclass(frozen=True)
class CellSpec:
  """One merging cell as found by the architecture search.

  Attributes:
    level: the pyramid level of the cell's output node.
    combine: "attention" (global attention) or "sum".
    inputs: indices of the two input nodes; nodes 0..4 are P3..P7 of the repeat's input, cell i appends node 5 + i.
    is_output: whether the cell's node is one of the repeat's outputs.
  """
  level: int
  combine: str
  inputs: tuple[int, int]
  is_output: bool


# The searched NAS-FPN cells (Ghiasi et al. 2019; Model Garden's NASFPN_BLOCK_SPECS).
NASFPN_CELLS = (
    CellSpec(4, "attention", (1, 3), False),   # node 5: P4 from P4, P6
    CellSpec(4, "sum", (1, 5), False),         # node 6: P4
    CellSpec(3, "sum", (0, 6), True),          # node 7: output P3
    CellSpec(4, "sum", (6, 7), True),          # node 8: output P4
    CellSpec(5, "attention", (7, 8), True),    # node 9: output P5
    CellSpec(7, "attention", (6, 9), True),    # node 10: output P7
    CellSpec(6, "attention", (9, 10), True),   # node 11: output P6
)


@dataclasses.dataclass(frozen=True)
class Node:
  """A node that a cell appends to the graph of one repeat.

  Attributes:
    index: the node's index (the repeat's inputs P3..P7 are nodes 0..4).
    level: its pyramid level.
    combine: "attention" or "sum".
    inputs: the two merged nodes; for attention (A, B) with A the one from the coarser level (the first on a tie),
      giving A + B * sigmoid(global max of A).
    extra_inputs: earlier nodes of the same level that fed nothing so far, added in because this is an output cell.
  """
  index: int
  level: int
  combine: str
  inputs: tuple[int, int]
  extra_inputs: tuple[int, ...]


def cell_graph(cells=NASFPN_CELLS):
  """The wiring of one NAS-FPN repeat: which nodes feed which.

  Args:
    cells: the merging cells, a sequence of `CellSpec`.

  Returns:
    (nodes, outputs): `nodes` is a tuple of `Node`, one per cell; `outputs` maps each level 3..7 to the index of the
    node that becomes that level of the repeat's output (the last five nodes).

  Raises:
    ValueError: when a cell reads a node that does not exist yet, names an unknown op or level, or the last five nodes
      do not cover levels 3..7 once each.
  """
  levels = list(LEVELS)
  uses = [0] * len(levels)
  nodes = []
  for cell in cells:
    index = len(levels)
    if cell.combine not in COMBINE_OPS:
      raise ValueError(f"Cell {index}: combine must be one of {COMBINE_OPS}. Received: {cell.combine!r}")
    if cell.level not in LEVELS:
      raise ValueError(f"Cell {index}: level must be in {LEVELS}. Received: {cell.level}")
    for j in cell.inputs:
      if not 0 <= j < index:
        raise ValueError(f"Cell {index} reads node {j}, but only nodes 0..{index - 1} exist.")
      uses[j] += 1
    first, second = cell.inputs
    if cell.combine == "attention" and levels[second] > levels[first]:
      first, second = second, first
    extra = []
    if cell.is_output:
      for j, (level, count) in enumerate(zip(levels, uses)):
        if count == 0 and level == cell.level:
          uses[j] += 1
          extra.append(j)
    nodes.append(Node(index, cell.level, cell.combine, (first, second), tuple(extra)))
    levels.append(cell.level)
    uses.append(0)
  outputs = {levels[i]: i for i in range(len(levels) - len(LEVELS), len(levels))}
  if sorted(outputs) != list(LEVELS):
    raise ValueError(f"The last {len(LEVELS)} nodes must cover levels {LEVELS} once each. Received levels: "
                     f"{levels[-len(LEVELS):]}")
  return tuple(nodes), outputs


def global_attention(coarse, fine):
  """NAS-FPN's global-attention merge: coarse + fine * sigmoid(max over H, W of coarse).

  Args:
    coarse: [B, H, W, C], the input from the coarser level, already resampled to the output level.
    fine: [B, H, W, C], the other input, already resampled.

  Returns:
    [B, H, W, C].
  """
  gate = tf.sigmoid(tf.reduce_max(coarse, axis=[1, 2], keepdims=True))
  return coarse + fine * gate


def downsample(x, factor_log2):
  """Max-pools [B, H, W, C] by 2^factor_log2 (repeated 2x2, stride 2, 'SAME'): [B, ceil(H/2^d), ceil(W/2^d), C]."""
  for _ in range(factor_log2):
    x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="SAME")
  return x


def upsample_nearest(x, factor_log2, size=None):
  """Nearest-neighbour upsampling of [B, H, W, C] by 2^factor_log2, cropped to `size`.

  Args:
    x: [B, H, W, C].
    factor_log2: d, the upsampling factor is 2^d.
    size: optional (height, width), ints or an int32 tensor, at most (H 2^d, W 2^d); the result keeps its top-left
      part (see the module docstring).

  Returns:
    [B, H 2^d, W 2^d, C], or [B, height, width, C] with `size`.
  """
  if factor_log2 > 0:
    scale = 2**factor_log2
    shape = tf.shape(x)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    x = tf.broadcast_to(x[:, :, tf.newaxis, :, tf.newaxis, :], [batch, height, scale, width, scale, channels])
    x = tf.reshape(x, [batch, height * scale, width * scale, channels])
  if size is not None:
    x = x[:, :size[0], :size[1], :]
  return x


def resample(x, from_level, to_level, size=None):
  """Moves a [B, H, W, C] map from `from_level` to `to_level`: max-pool down, nearest up cropped to `size`."""
  if to_level > from_level:
    return downsample(x, to_level - from_level)
  if to_level < from_level:
    return upsample_nearest(x, from_level - to_level, size)
  return x


def conv_initializer():
  """Model Garden's convolution initialiser: VarianceScaling(scale 2, fan_out, untruncated normal)."""
  return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def level_shapes(input_shape, channels):
  """{level: shape} of an encoder's levels for an input of `input_shape` [B, H, W, C]: level l has stride 2^l
  (ceil(H / 2^l) rows) and `channels[l]` channels; unknown sizes stay None."""
  batch, height, width = input_shape[0], input_shape[1], input_shape[2]
  return {level: (batch, None if height is None else -(-height // 2**level),
                  None if width is None else -(-width // 2**level), c) for level, c in channels.items()}


def level_dict(features, name="features"):
  """{level: value} with int levels, from a dict whose keys may be ints or their strings (JSON round trips)."""
  if not isinstance(features, dict):
    raise ValueError(f"{name} must be a dict {{level: tensor}}. Received: {type(features).__name__}")
  return {int(level): value for level, value in features.items()}


@keras.saving.register_keras_serializable(package="segmentation")
class NasFpn(keras.layers.Layer):
  """The NAS-FPN decoder: backbone levels -> pyramid P3..P7 (see the module docstring).

  Call arguments:
    features: {level: [B, H_l, W_l, C_l]}, backbone levels. It must hold level 3 and every level from 3 up to its
      highest (at most 7); levels below 3 are ignored.
    training: BN mode.

  Returns:
    {3: [B, H_3, W_3, filters], ..., 7: [B, H_7, W_7, filters]}, with H_l = ceil(H_{l-1} / 2) above the inputs.
  """

  def __init__(self, filters=256, num_repeats=5, norm_momentum=0.99, norm_epsilon=1e-3, sync_batch_norm=False,
               **kwargs):
    """Creates the decoder.

    Args:
      filters: channels of every pyramid level.
      num_repeats: merging-cell repeats (7 cells each, separate weights).
      norm_momentum: batch-norm moving-average momentum.
      norm_epsilon: batch-norm epsilon.
      sync_batch_norm: synchronise batch statistics across replicas under tf.distribute.
      **kwargs: keras.layers.Layer arguments (name, dtype, ...).
    """
    super().__init__(**kwargs)
    if filters < 1 or num_repeats < 1:
      raise ValueError(f"filters and num_repeats must be >= 1. Received: filters={filters}, "
                       f"num_repeats={num_repeats}")
    self.filters = filters
    self.num_repeats = num_repeats
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.sync_batch_norm = sync_batch_norm
    self._nodes, self._outputs = cell_graph()

  def _conv_norm(self, kernel_size, name):
    conv = keras.layers.Conv2D(self.filters, kernel_size, padding="same", kernel_initializer=conv_initializer(),
                               name=f"{name}_conv")
    norm = keras.layers.BatchNormalization(momentum=self.norm_momentum, epsilon=self.norm_epsilon,
                                           synchronized=self.sync_batch_norm, name=f"{name}_bn")
    # Keras 3 lists are invisible to tf.train.Checkpoint; as attributes too, the layers are saved in checkpoints.
    setattr(self, conv.name, conv)
    setattr(self, norm.name, norm)
    return conv, norm

  def build(self, input_shape):
    shapes = level_dict(input_shape, "input_shape")
    levels = sorted(level for level in shapes if level >= MIN_LEVEL)
    expected = list(range(MIN_LEVEL, (levels[-1] if levels else MIN_LEVEL) + 1))
    if not levels or levels != expected or levels[-1] > MAX_LEVEL:
      raise ValueError(f"NasFpn needs backbone levels {MIN_LEVEL}..L with L <= {MAX_LEVEL}, without gaps. "
                       f"Received levels: {sorted(shapes)}")
    self._input_levels = tuple(levels)
    # Input projections, one slot per level 3..7 (None: no projection). A 1x1 conv + BN brings a backbone level to
    # `filters` channels; levels that are max-pooled from the one below already have them.
    self._projection_levels = tuple(level for level in levels if shapes[level][-1] != self.filters)
    self._projection_convs, self._projection_norms = [], []
    for level in self._projection_levels:
      conv, norm = self._conv_norm(1, f"input_p{level}")
      conv.build(tuple(shapes[level]))
      norm.build(tuple(shapes[level][:-1]) + (self.filters,))
      self._projection_convs.append(conv)
      self._projection_norms.append(norm)
    node_shape = (None, None, None, self.filters)
    self._cell_convs, self._cell_norms = [], []
    for repeat in range(self.num_repeats):
      for node in self._nodes:
        conv, norm = self._conv_norm(3, f"repeat{repeat}_node{node.index}")
        conv.build(node_shape)
        norm.build(node_shape)
        self._cell_convs.append(conv)
        self._cell_norms.append(norm)

  def call(self, features, training=None):
    features = level_dict(features)
    nodes = []
    for level in LEVELS:
      if level in self._input_levels:
        x = features[level]
        if level in self._projection_levels:
          k = self._projection_levels.index(level)
          x = self._projection_norms[k](self._projection_convs[k](x), training=training)
      else:
        x = downsample(nodes[-1], 1)
      nodes.append(x)
    sizes = {level: tf.shape(node)[1:3] for level, node in zip(LEVELS, nodes)}
    for repeat in range(self.num_repeats):
      nodes = self._repeat(repeat, nodes, sizes, training)
    return dict(zip(LEVELS, nodes))

  def _repeat(self, repeat, inputs, sizes, training):
    """One repeat of the seven cells: [P3..P7] -> [P3..P7]."""
    nodes, levels = list(inputs), list(LEVELS)
    for k, node in enumerate(self._nodes):
      a, b = (resample(nodes[j], levels[j], node.level, sizes[node.level]) for j in node.inputs)
      x = global_attention(a, b) if node.combine == "attention" else a + b
      for j in node.extra_inputs:
        x = x + nodes[j]
      x = tf.nn.relu(x)
      i = repeat * len(self._nodes) + k
      x = self._cell_norms[i](self._cell_convs[i](x), training=training)
      nodes.append(x)
      levels.append(node.level)
    return [nodes[self._outputs[level]] for level in LEVELS]

  def compute_output_shape(self, input_shape):
    shapes = level_dict(input_shape, "input_shape")
    batch = shapes[MIN_LEVEL][0]
    height, width = shapes[MIN_LEVEL][1], shapes[MIN_LEVEL][2]
    result = {}
    for level in LEVELS:
      result[level] = (batch, height, width, self.filters)
      height = None if height is None else -(-height // 2)
      width = None if width is None else -(-width // 2)
    return result

  def get_config(self):
    config = super().get_config()
    config.update({
        "filters": self.filters,
        "num_repeats": self.num_repeats,
        "norm_momentum": self.norm_momentum,
        "norm_epsilon": self.norm_epsilon,
        "sync_batch_norm": self.sync_batch_norm,
    })
    return config
