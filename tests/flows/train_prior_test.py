"""Tests of training: fit lowers held-out NLL; the CLI writes, resumes, fails clearly."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import flows
from regnerf_tf.flows import patches
from regnerf_tf.flows import realnvp
from regnerf_tf.flows import train_prior

FLAGS = train_prior.FLAGS


@pytest.fixture(scope="module", autouse=True)
def _flags():
  """train_prior's flags exist for this module's tests only."""
  before = set(FLAGS)
  train_prior.define_flags()
  added = set(FLAGS) - before
  yield
  FLAGS.unparse_flags()
  for name in added:
    delattr(FLAGS, name)


@pytest.fixture(scope="module")
def small_bank():
  images = patches.load_skimage_photos(("astronaut", "coffee"))
  return patches.make_patch_bank(images, patch_size=4, num_train=20_000,
                                 num_heldout=1_000, scales=(0.5,), seed=0)


def test_short_fit_lowers_heldout_nll(small_bank):
  heldout = patches.dequantize_fixed(small_bank.heldout, seed=1)
  model = train_prior.make_model(
      dict(patch_size=4, num_couplings=4, hidden_units=32), total_steps=150,
      learning_rate=3e-3, jit_compile=False, seed=0)
  before = realnvp.mean_bits_per_dim(model, heldout)
  history = model.fit(
      patches.train_dataset(small_bank.train, 64, seed=0, start_step=0,
                            end_step=150), shuffle=False, verbose=0)
  after = model.evaluate(tf.data.Dataset.from_tensor_slices(heldout).batch(500),
                         verbose=0, return_dict=True)
  assert after["bits_per_dim"] == pytest.approx(
      realnvp.mean_bits_per_dim(model, heldout), abs=1e-3)
  assert np.isfinite(history.history["nll"][-1])
  assert after["bits_per_dim"] < before - 1.0


def _train(tmp_path, name: str, *extra: str) -> dict:
  argv = ["regnerf-train-prior", f"--output={tmp_path / name}",
          "--patch_size=4", "--num_couplings=2", "--hidden_units=16",
          "--steps=6", "--steps_per_epoch=2", "--batch_size=32",
          "--num_train_patches=2000", "--num_heldout_patches=200",
          "--scales=0.5", "--nojit_compile", "--verbose=0", *extra]
  FLAGS.unparse_flags()
  FLAGS(argv)
  try:
    return train_prior.train(" ".join(argv))
  finally:
    FLAGS.unparse_flags()


class _Killed(Exception):
  pass


def test_cli_writes_a_loadable_prior_and_resumes_exactly(tmp_path, monkeypatch):
  meta = _train(tmp_path, "full")
  assert meta["steps"] == 6 and np.isfinite(meta["heldout_bits_per_dim"])
  assert meta["command"].startswith("regnerf-train-prior --output=")
  full = flows.load_prior(str(tmp_path / "full"))
  assert full.patch_size == 4
  assert not os.path.exists(tmp_path / "full.ckpt")  # Removed when done.

  # Kill the second run right after its first checkpoint...
  real_save = train_prior._Checkpointer.save
  def save_then_die(self, model, state):
    real_save(self, model, state)
    raise _Killed()
  monkeypatch.setattr(train_prior._Checkpointer, "save", save_then_die)
  with pytest.raises(_Killed):
    _train(tmp_path, "resumed")
  assert os.path.exists(tmp_path / "resumed.ckpt" / "ckpt.keras")
  assert not os.path.exists(tmp_path / "resumed.json")
  monkeypatch.setattr(train_prior._Checkpointer, "save", real_save)
  # ... and rerun it: same result as the uninterrupted run.
  _train(tmp_path, "resumed")
  resumed = flows.load_prior(str(tmp_path / "resumed"))
  x = tf.random.stateless_uniform([16, 4, 4, 3], seed=[0, 3])
  np.testing.assert_allclose(resumed.log_prob(x).numpy(),
                             full.log_prob(x).numpy(), rtol=1e-5, atol=1e-4)
  # A checkpoint of a different run is refused, not silently reused.
  monkeypatch.setattr(train_prior._Checkpointer, "save", save_then_die)
  with pytest.raises(_Killed):
    _train(tmp_path, "other")
  monkeypatch.setattr(train_prior._Checkpointer, "save", real_save)
  with pytest.raises(ValueError, match="other settings"):
    _train(tmp_path, "other", "--seed=1")


def test_cli_source_errors(tmp_path):
  with pytest.raises(ValueError, match="--source=folder needs --folder"):
    _train(tmp_path, "x", "--source=folder")
  with pytest.raises(FileNotFoundError, match="Expected a folder of images"):
    _train(tmp_path, "x", "--source=folder", f"--folder={tmp_path / 'nope'}")
  with pytest.raises(ValueError, match="--source=tfds needs --tfds_name"):
    _train(tmp_path, "x", "--source=tfds")


def test_cli_trains_on_a_folder(tmp_path):
  import imageio.v3 as iio
  folder = tmp_path / "imgs"
  folder.mkdir()
  for i, im in enumerate(patches.load_skimage_photos(("chelsea",))):
    iio.imwrite(folder / f"{i}.png", im[::2, ::2])
  meta = _train(tmp_path, "folder_prior", "--source=folder",
                f"--folder={folder}", "--scales=1")
  assert meta["data"]["source"] == "folder"
  assert flows.load_prior(str(tmp_path / "folder_prior")).patch_size == 4
