"""NAS-FPN: the cell graph, its wiring in the layer, the merge and resampling ops, shapes and config round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segmentation import nasfpn

# Expected wiring of one repeat, written out by hand from the lineage facts:
# index: (level, op, (A, B) with A the coarser input for attention, unused same-level nodes added in).
EXPECTED_NODES = {
    5: (4, "attention", (3, 1), ()),     # P6 (coarser) gates P4
    6: (4, "sum", (1, 5), ()),
    7: (3, "sum", (0, 6), ()),           # output P3
    8: (4, "sum", (6, 7), ()),           # output P4
    9: (5, "attention", (8, 7), (2,)),   # output P5; input P5 (node 2) fed nothing so far: added in
    10: (7, "attention", (9, 6), (4,)),  # output P7; input P7 (node 4) added in
    11: (6, "attention", (10, 9), ()),   # output P6; input P6 (node 3) already fed node 5
}


def _ceil_sizes(height, width, levels):
  return {level: (-(-height // 2**level), -(-width // 2**level)) for level in levels}


def test_cell_graph_matches_the_hand_written_wiring():
  nodes, outputs = nasfpn.cell_graph()
  assert {n.index: (n.level, n.combine, n.inputs, n.extra_inputs) for n in nodes} == EXPECTED_NODES
  assert outputs == {3: 7, 4: 8, 5: 9, 6: 11, 7: 10}


def test_cell_graph_rejects_bad_cells():
  with pytest.raises(ValueError, match="reads node 6"):
    nasfpn.cell_graph((nasfpn.CellSpec(4, "sum", (1, 6), False),))
  with pytest.raises(ValueError, match="combine"):
    nasfpn.cell_graph((nasfpn.CellSpec(4, "product", (1, 2), False),))


def test_layer_wiring_by_gradient_reachability():
  """With all five inputs given and one repeat, each output depends on exactly the inputs the graph says.

  Reachability (a gradient that is None or not) is structural: it does not depend on the weights.
  """
  layer = nasfpn.NasFpn(filters=4, num_repeats=1)
  sizes = _ceil_sizes(64, 96, nasfpn.LEVELS)
  inputs = {level: tf.random.normal([1, h, w, 4]) for level, (h, w) in sizes.items()}
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(inputs)
    totals = {level: tf.reduce_sum(x) for level, x in layer(inputs, training=False).items()}
  expected = {3: {3, 4, 6}, 4: {3, 4, 6}, 5: {3, 4, 5, 6}, 6: {3, 4, 5, 6, 7}, 7: {3, 4, 5, 6, 7}}
  assert sorted(totals) == sorted(expected)
  for level, total in totals.items():
    grads = tape.gradient(total, inputs)
    assert {lvl for lvl, g in grads.items() if g is not None} == expected[level], level


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (128, 160), (100, 150)])
def test_output_levels_and_strides(size):
  layer = nasfpn.NasFpn(filters=16, num_repeats=1)
  channels = {3: 12, 4: 16, 5: 20}  # P3, P5 need a projection, P4 does not
  inputs = {level: tf.random.normal([2, h, w, channels[level]])
            for level, (h, w) in _ceil_sizes(*size, (3, 4, 5)).items()}
  outputs = layer(inputs, training=False)
  expected = {level: (2, h, w, 16) for level, (h, w) in _ceil_sizes(*size, nasfpn.LEVELS).items()}
  assert {level: tuple(x.shape) for level, x in outputs.items()} == expected
  assert layer.compute_output_shape({level: x.shape for level, x in inputs.items()}) == expected
  # Unknown spatial sizes at trace time give the same result.
  spec = {level: tf.TensorSpec([None, None, None, c]) for level, c in channels.items()}
  graph = tf.function(lambda f: layer(f, training=False), input_signature=[spec])
  for level, x in graph(inputs).items():
    np.testing.assert_allclose(x, outputs[level], atol=1e-5)


def test_weight_count_projections_and_separate_repeats():
  filters, repeats = 8, 2
  layer = nasfpn.NasFpn(filters=filters, num_repeats=repeats)
  layer.build({3: (None, None, None, 8), 4: (None, None, None, 5), 5: (None, None, None, 8)})
  projection = 5 * filters + filters + 4 * filters          # only P4: 1x1 conv with bias + BN
  cell = 9 * filters * filters + filters + 4 * filters      # 3x3 conv with bias + BN
  assert layer.count_params() == projection + repeats * 7 * cell


def test_missing_levels_are_an_error():
  with pytest.raises(ValueError, match="without gaps"):
    nasfpn.NasFpn(filters=8).build({3: (None, 8, 8, 8), 5: (None, 2, 2, 8)})


def test_global_attention_hand_computed():
  coarse = np.array([[[1.0, -4.0], [-2.0, -1.0]], [[0.0, -3.0], [3.0, -5.0]]], np.float32)[None]  # [1, 2, 2, 2]
  fine = np.full([1, 2, 2, 2], 2.0, np.float32)
  # Channel 0: max 3; channel 1: max -1.
  gate = np.array([1 / (1 + np.exp(-3.0)), 1 / (1 + np.exp(1.0))], np.float32)
  np.testing.assert_allclose(nasfpn.global_attention(coarse, fine), coarse + 2.0 * gate, rtol=1e-6)


def test_downsample_hand_computed():
  x = np.arange(15, dtype=np.float32).reshape(1, 3, 5, 1)
  # 2x2 windows anchored top-left: rows {0,1}, {2}; columns {0,1}, {2,3}, {4}.
  np.testing.assert_array_equal(nasfpn.downsample(x, 1)[0, ..., 0], [[6, 8, 9], [11, 13, 14]])
  np.testing.assert_array_equal(nasfpn.downsample(x, 2)[0, ..., 0], [[13, 14]])
  # Divisible sizes: the same as Model Garden's single max-pool of stride 2^d.
  y = tf.random.normal([2, 8, 16, 3])
  np.testing.assert_array_equal(nasfpn.downsample(y, 2), tf.nn.max_pool2d(y, 4, 4, "SAME"))


def test_upsample_nearest_hand_computed():
  x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)[None, ..., None]
  np.testing.assert_array_equal(nasfpn.upsample_nearest(x, 1)[0, ..., 0],
                                [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
  np.testing.assert_array_equal(nasfpn.upsample_nearest(x, 1, (3, 3))[0, ..., 0], [[1, 1, 2], [1, 1, 2], [3, 3, 4]])
  np.testing.assert_array_equal(nasfpn.upsample_nearest(x, 2, (5, 6))[0, ..., 0],
                                [[1, 1, 1, 1, 2, 2]] * 4 + [[3, 3, 3, 3, 4, 4]])
  # Divisible sizes: the same as nearest resizing by 2^d.
  y = tf.random.normal([2, 3, 5, 4])
  np.testing.assert_array_equal(nasfpn.upsample_nearest(y, 2), tf.image.resize(y, [12, 20], "nearest"))


def test_resample_round_trip_of_levels():
  x = tf.random.normal([1, 12, 20, 2])
  down = nasfpn.resample(x, 3, 6)                    # 12x20 -> 2x3 (ceil)
  assert tuple(down.shape) == (1, 2, 3, 2)
  up = nasfpn.resample(down, 6, 3, (12, 20))
  assert tuple(up.shape) == (1, 12, 20, 2)
  # Every coarse pixel comes back over the fine pixels it was pooled from, so the global max survives.
  np.testing.assert_array_equal(tf.reduce_max(up, [1, 2]), tf.reduce_max(x, [1, 2]))
  assert np.all(up.numpy() >= x.numpy())
  assert nasfpn.resample(x, 4, 4) is x


def test_config_round_trip_with_non_default_arguments():
  layer = nasfpn.NasFpn(filters=24, num_repeats=3, norm_momentum=0.9, norm_epsilon=1e-4, sync_batch_norm=True,
                        name="my_fpn")
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert type(restored) is nasfpn.NasFpn
  assert restored.get_config() == layer.get_config()
  for key, value in dict(filters=24, num_repeats=3, norm_momentum=0.9, norm_epsilon=1e-4, sync_batch_norm=True,
                         name="my_fpn").items():
    assert getattr(restored, key) == value, key
