"""The per-video intrinsics table: initial K, gradients per video, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from depth_motion import intrinsics_table


def test_initial_intrinsics_are_centred_with_mean_size_focal_length():
  table = intrinsics_table.IntrinsicsTable(3, (128, 160))
  fx, fy, cx, cy = (v.numpy() for v in geometry.intrinsics_params(table(tf.constant([0, 2]))))
  np.testing.assert_allclose(fx, [144.0, 144.0])
  np.testing.assert_allclose(fy, [144.0, 144.0])
  np.testing.assert_allclose(cx, [79.5, 79.5])  # (W - 1) / 2: the centre with pixel centres at integers
  np.testing.assert_allclose(cy, [63.5, 63.5])


def test_gradients_reach_only_the_rows_of_the_videos_seen():
  table = intrinsics_table.IntrinsicsTable(3, (32, 32))
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(table(tf.constant([1, 1])))
  gradient = tf.convert_to_tensor(tape.gradient(loss, table.params)).numpy()
  assert np.all(gradient[[0, 2]] == 0) and np.all(gradient[1] != 0)


def test_round_trip_through_keras_serialization():
  table = intrinsics_table.IntrinsicsTable(2, (64, 96))
  table(tf.constant([0]))
  table.params.assign([[1.1, 0.9, 0.4, 0.6], [1.0, 1.0, 0.5, 0.5]])
  clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(table))
  clone(tf.constant([0]))
  clone.set_weights(table.get_weights())
  np.testing.assert_allclose(clone(tf.constant([0, 1])).numpy(), table(tf.constant([0, 1])).numpy())
  with pytest.raises(ValueError, match="num_videos"):
    intrinsics_table.IntrinsicsTable(0, (64, 96))
