"""Shared pytest setup: quiet TensorFlow, TensorFlow Keras backend, clean policies."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so that MirroredStrategy tests run on one CPU. This
# must happen before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
try:
  tf.config.set_logical_device_configuration(
      _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # devices already initialised by an earlier import
  pass


@pytest.fixture(autouse=True)
def _reset_dtype_policy():
  """Tests that switch to mixed precision must not leak it into others."""
  yield
  keras.mixed_precision.set_global_policy("float32")
