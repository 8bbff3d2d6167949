"""The first promised use: plain Keras compile/fit on a TFDS split."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import regnerf_tf
import regnerf_tf.datasets  # noqa: F401  (registers the builders)
from regnerf_tf import configs, data, errors, losses, model as model_lib
from tests import training_test

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCAN24 = SHARED / "dtu" / "scan24"

pytestmark = pytest.mark.skipif(not SCAN24.is_dir(),
                                reason=f"shared DTU scan24 not found at {SCAN24}")

TINY = {**training_test.TINY, "train.max_steps": 3, "train.lr_delay_steps": 0,
        "reg.anneal_steps": 2}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
  """``tfds.load('dtu_sparse/3view', split='scan24_train')`` from the shared
  scan24, as a user who has the DTU download would write it."""
  data_dir = tmp_path_factory.mktemp("tfds")
  return tfds.load("dtu_sparse/3view", split="scan24_train",
                   data_dir=str(data_dir),
                   download_and_prepare_kwargs={
                       "download_config": tfds.download.DownloadConfig(
                           manual_dir=str(SCAN24.parent))})


def test_plain_compile_and_fit_on_a_tfds_split_trains_regnerf(split):
  config = configs.get_preset("dtu3_small", **TINY)
  model = model_lib.RegNeRF(config)
  model.compile()
  history = model.fit(data.training_stream(split, config), verbose=0).history
  # One epoch is the whole schedule: max_steps batches, then the stream ends.
  assert int(model.optimizer.iterations) == config.train.max_steps
  # The unobserved-view patches reached the loss: depth smoothness is on.
  assert history["depth_tv"][-1] > 0.0
  assert history["tv_weight"][-1] > 0.0
  # compile() took the config's schedule, not Keras' default optimizer.
  schedule = model.optimizer.learning_rate
  assert isinstance(model.optimizer, regnerf_tf.model.keras.optimizers.Adam)
  expected = losses.LogLinearSchedule(
      config.train.lr_init, config.train.lr_final, config.train.max_steps,
      config.train.lr_delay_steps, config.train.lr_delay_mult)
  assert float(schedule) == pytest.approx(
      float(expected(config.train.max_steps)), rel=1e-6)


def test_the_stream_follows_the_config(split):
  config = configs.get_preset("dtu3_small", **TINY)
  stream = data.training_stream(split, config)
  assert int(stream.cardinality()) == config.train.max_steps
  batch = next(iter(stream))
  assert batch["rgb"].shape == (config.train.batch_size, 3)
  assert batch["rays"]["origins"].shape == (config.train.batch_size, 3)
  assert batch["patch_rays"]["origins"].shape == (
      config.train.patch_batch_size, 3)
  resumed = data.training_stream(split, config, start_step=1)
  assert int(resumed.cardinality()) == config.train.max_steps - 1
  # Batch s depends on (seed, s) only: the resumed stream's first batch is
  # the full stream's second.
  second = list(stream.take(2))[1]
  np.testing.assert_array_equal(next(iter(resumed))["rgb"], second["rgb"])
  np.testing.assert_array_equal(
      next(iter(resumed))["patch_rays"]["directions"],
      second["patch_rays"]["directions"])
  endless = data.training_stream(split, config, endless=True)
  assert int(endless.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
  mipnerf = configs.get_preset("dtu3_small_mipnerf", **TINY)
  assert "patch_rays" not in next(iter(data.training_stream(split, mipnerf)))
  with pytest.raises(errors.InputError, match="leaves no batches"):
    data.training_stream(split, config, start_step=3)


def test_raw_view_records_in_fit_name_the_call_that_converts_them(split):
  config = configs.get_preset("dtu3_small", **TINY)
  model = model_lib.RegNeRF(config)
  model.compile()
  with pytest.raises(errors.InputError, match=r"data\.training_stream"):
    model.fit(split.batch(1), steps_per_epoch=1, verbose=0)
  # Observed rays without the patches the config needs: refused, not a run
  # whose depth term is silently zero.
  rays_only = data.make_train_dataset(split, batch_size=64)
  with pytest.raises(errors.InputError, match="patch_rays"):
    model.fit(rays_only, steps_per_epoch=1, verbose=0)
  with pytest.raises(errors.InputError, match="own losses"):
    model.compile(loss="mse")
