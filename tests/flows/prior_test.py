"""Tests of saving/loading priors, the shipped default and the appearance loss."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import flows
from regnerf_tf.flows import patches
from regnerf_tf.flows import prior as prior_lib
from regnerf_tf.flows import realnvp


def _random_flow(patch_size: int = 4, seed: int = 0) -> realnvp.PatchFlow:
  flow = realnvp.PatchFlow(patch_size, num_couplings=4, hidden_units=16)
  flow.build()
  rng = np.random.default_rng(seed)
  flow.set_weights([0.1 * rng.standard_normal(w.shape).astype(np.float32)
                    for w in flow.get_weights()])
  return flow


def _uniform(n: int, size: int, seed: int = 0) -> tf.Tensor:
  return tf.random.stateless_uniform([n, size, size, 3], seed=[seed, 9])


@pytest.fixture(scope="module")
def default_prior():
  return flows.load_default_prior()


@pytest.fixture(scope="module")
def natural_patches():
  """Dequantised 8×8 patches from the held-out rows of skimage photos."""
  images = patches.load_skimage_photos(("chelsea", "coffee"))
  bank = patches.make_patch_bank(images, 8, num_train=1, num_heldout=512,
                                 holdout_fraction=0.2, scales=(1.0,), seed=7)
  return patches.dequantize_fixed(bank.heldout, seed=5)


def test_save_load_round_trip_gives_identical_log_prob(tmp_path):
  flow = _random_flow()
  x = _uniform(8, 4)
  json_path, weights_path = flows.save_prior(flow, str(tmp_path / "p"),
                                             {"note": "test"})
  assert json_path.endswith("p.json") and weights_path.endswith("p.weights.h5")
  for path in (tmp_path / "p", json_path, weights_path):
    loaded = flows.load_prior(str(path))
    np.testing.assert_array_equal(loaded.log_prob(x).numpy(),
                                  flow.log_prob(x).numpy())
    assert not loaded.trainable_variables
  assert prior_lib.read_prior_record(json_path)["training"] == {"note": "test"}
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
  # The Keras-native format works as well (registered, full get_config).
  flow.save(str(tmp_path / "flow.keras"))
  restored = keras.saving.load_model(str(tmp_path / "flow.keras"))
  assert restored.get_config() == flow.get_config()
  np.testing.assert_array_equal(restored.log_prob(x).numpy(),
                                flow.log_prob(x).numpy())


def test_load_prior_errors_are_clear(tmp_path):
  with pytest.raises(FileNotFoundError, match="Expected a prior config file"):
    flows.load_prior(str(tmp_path / "missing"))
  json_path, weights_path = flows.save_prior(_random_flow(), str(tmp_path / "p"))
  os.remove(weights_path)
  with pytest.raises(FileNotFoundError, match="Expected the prior weights"):
    flows.load_prior(json_path)
  with open(weights_path, "wb") as f:
    f.write(b"this is not an HDF5 file")
  with pytest.raises(ValueError, match="corrupt"):
    flows.load_prior(json_path)
  # Weights of another architecture.
  flows.save_prior(_random_flow(patch_size=2), str(tmp_path / "small"))
  os.replace(str(tmp_path / "small.weights.h5"), weights_path)
  with pytest.raises(ValueError, match="another architecture|corrupt"):
    flows.load_prior(json_path)
  with open(json_path, "w") as f:
    f.write("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    flows.load_prior(json_path)
  with open(json_path, "w") as f:
    json.dump({"format": "something else"}, f)
  with pytest.raises(ValueError, match="patch prior config"):
    flows.load_prior(json_path)


def test_default_prior_is_small_and_frozen(default_prior):
  _, weights_path = prior_lib.prior_paths(prior_lib.DEFAULT_PRIOR_STEM)
  assert os.path.getsize(weights_path) < 5_000_000
  assert default_prior.patch_size == 8
  assert not default_prior.trainable_variables
  record = prior_lib.read_prior_record(prior_lib.DEFAULT_PRIOR_STEM)
  assert record["training"]["command"].startswith("regnerf-train-prior")


def test_default_prior_prefers_natural_patches(default_prior, natural_patches):
  natural = float(tf.reduce_mean(default_prior.bits_per_dim(natural_patches)))
  noise = float(tf.reduce_mean(default_prior.bits_per_dim(
      _uniform(512, 8))))
  # Shuffle the 64 pixels of every patch (colours of each pixel kept).
  rng = np.random.default_rng(0)
  x = natural_patches.numpy().reshape(-1, 64, 3)
  shuffled = np.stack([p[rng.permutation(64)] for p in x]).reshape(-1, 8, 8, 3)
  shuffled_bpd = float(tf.reduce_mean(default_prior.bits_per_dim(shuffled)))
  assert natural < 5.0
  assert natural < shuffled_bpd - 1.0
  assert natural < noise - 3.0
  # Per patch, not just on average.
  per_patch = default_prior.log_prob(natural_patches).numpy()
  per_shuffled = default_prior.log_prob(shuffled).numpy()
  assert np.mean(per_patch > per_shuffled) > 0.9


def test_default_prior_beats_diagonal_gaussian():
  from regnerf_tf.flows import evaluate_prior
  r = evaluate_prior.evaluate(max_train_patches=20_000)
  assert r["prior"] < r["diag_gaussian_logit"] - 1.0
  assert r["prior"] < r["diag_gaussian_pixels"] - 1.0
  assert r["diag_gaussian_logit"] < r["uniform"]


def test_appearance_loss_trains_patches_not_the_prior(default_prior,
                                                      natural_patches):
  loss_fn = flows.AppearanceLoss(default_prior)
  before = [w.numpy().copy() for w in default_prior.weights]
  rendered = tf.Variable(natural_patches[:4] * 0.9 + 0.05)
  optimizer = keras.optimizers.Adam(1e-2)
  with tf.GradientTape() as tape:
    loss = loss_fn(rendered)
  assert loss.shape == () and loss.dtype == tf.float32
  assert [id(v) for v in tape.watched_variables()] == [id(rendered)]
  grad = tape.gradient(loss, rendered)
  assert np.all(np.isfinite(grad.numpy()))
  assert float(tf.reduce_max(tf.abs(grad))) > 0
  start = rendered.numpy().copy()
  optimizer.apply([grad], [rendered])
  assert not np.array_equal(rendered.numpy(), start)
  for w, b in zip(default_prior.weights, before):
    np.testing.assert_array_equal(w.numpy(), b)
  # Natural patches cost less than noise, in nats per dimension.
  assert float(loss_fn(natural_patches)) < float(loss_fn(_uniform(64, 8))) - 2
  # An optimizer step over the prior's own variables finds none to train.
  assert not default_prior.trainable_weights


def test_appearance_loss_freezes_a_trainable_prior():
  flow = _random_flow(patch_size=4)
  assert flow.trainable_variables
  loss_fn = flows.AppearanceLoss(flow)
  assert not flow.trainable_variables
  before = [w.numpy().copy() for w in flow.weights]
  rendered = tf.Variable(_uniform(3, 4, seed=2))
  optimizer = keras.optimizers.SGD(1.0)
  for _ in range(2):
    with tf.GradientTape() as tape:
      loss = loss_fn(rendered)
    optimizer.apply(tape.gradient(loss, [rendered]), [rendered])
  for w, b in zip(flow.weights, before):
    np.testing.assert_array_equal(w.numpy(), b)


def test_appearance_loss_inside_tf_function_and_overshoot(default_prior):
  loss_fn = flows.AppearanceLoss(default_prior)
  x = tf.Variable(tf.concat([_uniform(2, 8) * 1.04 - 0.02], 0))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = loss_fn(x)
    return loss, tape.gradient(loss, x)

  loss, grad = step()
  assert np.isfinite(float(loss))
  assert np.all(np.isfinite(grad.numpy()))
  with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
    x.assign(tf.fill(x.shape, float("nan")))
    step()


def test_appearance_loss_bad_input(default_prior):
  loss_fn = flows.AppearanceLoss(default_prior)
  with pytest.raises(ValueError,
                     match=r"Expected rendered patches of shape \[P, 8, 8, 3\]"):
    loss_fn(tf.zeros([4, 4, 4, 3]))
  with pytest.raises(ValueError, match=r"\[P, 8, 8, 3\]"):
    loss_fn(tf.zeros([8, 8, 3]))
  nan = np.full((2, 8, 8, 3), 0.5, np.float32)
  nan[1, 3, 3, 1] = np.nan
  with pytest.raises(ValueError, match="Expected finite rendered patches"):
    loss_fn(nan)
  with pytest.raises(ValueError, match="Expected float patches"):
    loss_fn(tf.zeros([2, 8, 8, 3], tf.int32))
  with pytest.raises(ValueError, match="clip_margin"):
    flows.AppearanceLoss(default_prior, clip_margin=0.2)
