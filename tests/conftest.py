"""Test-wide settings: quiet TensorFlow logging, deterministic seeds; the small synthetic video, rendered once."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices for the whole session (possible only before TensorFlow initialises its devices), so that
# multi-replica training is tested in-process; single-device code runs on the first one as usual.
TEST_CPU_REPLICAS = 2
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * TEST_CPU_REPLICAS)


@pytest.fixture(autouse=True)
def _seed():
  tf.random.set_seed(0)
  np.random.seed(0)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
  """root(height=64, width=64): a folder holding the small synthetic video (`tests.tiny.SYNTHETIC_SETTINGS`) rendered
  at that size, shared by the whole session (a stage renders it on first use; tests only read it)."""
  roots = {}

  def root(height=64, width=64):
    if (height, width) not in roots:
      roots[height, width] = str(tmp_path_factory.mktemp(f"synthetic_{height}x{width}"))
    return roots[height, width]

  return root
