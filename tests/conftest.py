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


# Where `regnerf-lpips-weights` put the real weights on this machine (read by
# the tests that compare against them); every other test sees an empty cache,
# so no test depends on what a developer has downloaded.
from regnerf_tf import lpips_weights as _lpips_weights  # noqa: E402

_REAL_LPIPS_CACHE = _lpips_weights.cache_dir()


@pytest.fixture
def real_lpips_cache():
  """The cache folder as it was before the tests emptied it."""
  return _REAL_LPIPS_CACHE


@pytest.fixture(autouse=True)
def _empty_weight_cache(tmp_path_factory, monkeypatch):
  monkeypatch.setenv(_lpips_weights.CACHE_ENV,
                     str(tmp_path_factory.getbasetemp() / "empty_cache"))


@pytest.fixture(autouse=True)
def _reset_dtype_policy():
  """Tests that switch to mixed precision must not leak it into others."""
  yield
  keras.mixed_precision.set_global_policy("float32")
