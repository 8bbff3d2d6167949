"""Shared pytest setup: quiet TensorFlow, TensorFlow Keras backend, clean policies."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_dtype_policy():
  """Tests that switch to mixed precision must not leak it into others."""
  yield
  keras.mixed_precision.set_global_policy("float32")
