"""Tests of the RealNVP patch flow: bijectivity, log-det, init, variables."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf.flows import realnvp


def _flow(patch_size: int = 2, num_couplings: int = 4, hidden_units: int = 16,
          seed: int = 0, scale: float = 0.3) -> realnvp.PatchFlow:
  """A small flow with random weights (zero-initialised last layers too)."""
  flow = realnvp.PatchFlow(patch_size, num_couplings, hidden_units,
                           num_hidden_layers=2, log_scale_bound=2.0)
  flow.build()
  rng = np.random.default_rng(seed)
  flow.set_weights([scale * rng.standard_normal(w.shape).astype(np.float32)
                    for w in flow.get_weights()])
  return flow


def _patches(n: int, patch_size: int, seed: int = 1) -> tf.Tensor:
  rng = np.random.default_rng(seed)
  return tf.constant(rng.uniform(0.02, 0.98, (n, patch_size, patch_size, 3)),
                     tf.float32)


def _logit(x: tf.Tensor, alpha: float) -> tf.Tensor:
  s = alpha + (1.0 - 2.0 * alpha) * x
  return tf.math.log(s / (1.0 - s))


def test_permutations_alternate_complementary_halves():
  size = 4
  dim = size * size * 3
  perms = [realnvp.coupling_permutation(size, i, mask_seed=3) for i in range(8)]
  for perm in perms:
    np.testing.assert_array_equal(np.sort(perm), np.arange(dim))
  # Consecutive couplings condition on complementary halves.
  for a, b in zip(perms[0::2], perms[1::2]):
    assert set(a[:dim // 2]).isdisjoint(b[:dim // 2])
  # The first is the spatial checkerboard (all channels of even (r + c) pixels).
  rows, cols, _ = np.unravel_index(perms[0][:dim // 2], (size, size, 3))
  assert np.all((rows + cols) % 2 == 0)
  # The random splits differ from the checkerboard and are seeded.
  assert set(perms[2][:dim // 2]) != set(perms[0][:dim // 2])
  np.testing.assert_array_equal(
      perms[2], realnvp.coupling_permutation(size, 2, mask_seed=3))


def test_forward_inverse_round_trip():
  flow = _flow(patch_size=4)
  x = _patches(8, 4)
  z = flow.inverse(x)
  assert z.shape == (8, 48)
  # Non-trivial: the random couplings move z away from the plain logit.
  assert float(tf.reduce_max(tf.abs(z - tf.reshape(_logit(x, 0.05), [8, 48])))
              ) > 0.1
  np.testing.assert_allclose(flow.forward(z).numpy(), x.numpy(), atol=1e-4)
  # z → x → z loses a little precision where the sigmoid saturates.
  z2 = 0.5 * tf.random.stateless_normal([5, 48], seed=[1, 2])
  np.testing.assert_allclose(flow.inverse(flow.forward(z2)).numpy(),
                             z2.numpy(), atol=1e-3)


@pytest.mark.parametrize("patch_size", [2, 4])
def test_log_det_matches_autodiff_jacobian(patch_size):
  flow = _flow(patch_size=patch_size, seed=patch_size)
  dim = patch_size * patch_size * 3
  x = _patches(3, patch_size, seed=patch_size)
  x_flat = tf.reshape(x, [3, dim])
  with tf.GradientTape() as tape:
    tape.watch(x_flat)
    z = flow.inverse(tf.reshape(x_flat, x.shape))
  jac = tape.batch_jacobian(z, x_flat)  # [3, D, D]
  _, expected = np.linalg.slogdet(jac.numpy().astype(np.float64))
  ildj = flow.bijector.inverse_log_det_jacobian(x, event_ndims=3)
  np.testing.assert_allclose(ildj.numpy(), expected, rtol=1e-4, atol=1e-3)
  # log_prob = standard normal log-density of z + log|det dz/dx|.
  base = -0.5 * np.sum(z.numpy() ** 2, -1) - 0.5 * dim * math.log(2 * math.pi)
  np.testing.assert_allclose(flow.log_prob(x).numpy(), base + expected,
                             rtol=1e-4, atol=1e-3)


def test_identity_at_initialisation():
  flow = realnvp.PatchFlow(patch_size=2, num_couplings=4, hidden_units=8)
  x = _patches(6, 2)
  y = tf.reshape(_logit(x, flow.alpha), [6, 12])
  np.testing.assert_allclose(flow.inverse(x).numpy(), y.numpy(), atol=1e-5)
  for layer in flow.couplings:
    shift, log_scale = layer(tf.random.normal([5, 6]))
    assert float(tf.reduce_max(tf.abs(shift))) == 0.0
    assert float(tf.reduce_max(tf.abs(log_scale))) == 0.0
  _, logit_log_det = realnvp.logit_preprocess(x, flow.alpha)
  expected = (-0.5 * tf.reduce_sum(y ** 2, -1) - 6 * math.log(2 * math.pi)
              + logit_log_det)
  np.testing.assert_allclose(flow.log_prob(x).numpy(), expected.numpy(),
                             rtol=1e-5, atol=1e-4)


def test_log_scale_is_bounded():
  layer = realnvp.CouplingNetwork(output_units=6, hidden_units=8,
                                  log_scale_bound=1.5)
  layer.build((None, 6))
  rng = np.random.default_rng(0)
  layer.set_weights([50.0 * rng.standard_normal(w.shape).astype(np.float32)
                     for w in layer.get_weights()])
  _, log_scale = layer(tf.random.normal([64, 6], seed=1) * 10.0)
  assert float(tf.reduce_max(tf.abs(log_scale))) <= 1.5
  assert float(tf.reduce_max(tf.abs(log_scale))) > 1.0


def test_keras_tracks_every_variable_the_gradient_touches():
  flow = _flow(patch_size=2, num_couplings=3)
  x = _patches(4, 2)
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(flow.log_prob(x))
  watched = {id(v) for v in tape.watched_variables()}
  tracked = {id(v.value) for v in flow.trainable_variables}
  # 3 couplings × 3 dense layers × (kernel, bias).
  assert len(tracked) == 3 * 3 * 2
  assert watched == tracked
  grads = tape.gradient(loss, flow.trainable_variables)
  assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
             for g in grads)
  assert not flow.non_trainable_variables


def test_float32_under_mixed_bfloat16_policy():
  reference = _flow(patch_size=2)
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  flow = realnvp.PatchFlow(patch_size=2, num_couplings=4, hidden_units=16)
  flow.build()
  flow.set_weights(reference.get_weights())
  assert all(v.dtype == "float32" for v in flow.weights)
  x = _patches(5, 2)
  log_prob = flow.log_prob(x)
  assert log_prob.dtype == tf.float32
  np.testing.assert_allclose(log_prob.numpy(), reference.log_prob(x).numpy(),
                             rtol=1e-6, atol=1e-5)


def test_bad_input_raises_value_error():
  flow = _flow(patch_size=2)
  with pytest.raises(ValueError,
                     match=r"Expected patches of shape \[\.\.\., 2, 2, 3\]"):
    flow.log_prob(tf.zeros([3, 4, 4, 3]))
  with pytest.raises(ValueError, match=r"Expected patches of shape"):
    flow.log_prob(tf.zeros([3, 2, 2]))
  with pytest.raises(ValueError,
                     match=r"Expected latents of shape \[\.\.\., 12\]"):
    flow.forward(tf.zeros([3, 11]))
  with pytest.raises(ValueError, match="patch_size"):
    realnvp.PatchFlow(patch_size=1)


def test_sample_is_seeded_and_in_range():
  flow = _flow(patch_size=2, scale=0.05)
  a = flow.sample(16, seed=(3, 4))
  b = flow.sample(16, seed=(3, 4))
  assert a.shape == (16, 2, 2, 3)
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  limit = flow.alpha / (1 - 2 * flow.alpha)
  assert float(tf.reduce_min(a)) >= -limit
  assert float(tf.reduce_max(a)) <= 1 + limit
  assert not np.array_equal(a.numpy(), flow.sample(16, seed=(3, 5)).numpy())
  assert np.all(np.isfinite(flow.log_prob(a).numpy()))


def test_bits_per_dim_of_identity_flow_on_uniform_noise_is_known():
  # Sanity of the units: the logit preprocessing alone, integrated against
  # uniform noise, gives a finite number above the uniform's 8 bits/dim.
  flow = realnvp.PatchFlow(patch_size=2, num_couplings=2, hidden_units=4)
  x = tf.random.stateless_uniform([4000, 2, 2, 3], seed=[0, 1])
  bpd = float(tf.reduce_mean(flow.bits_per_dim(x)))
  assert 8.0 < bpd < 9.0
  nats = float(tf.reduce_mean(flow.nll_per_dim(x)))
  assert bpd == pytest.approx(nats / math.log(2) + 8, rel=1e-6)
