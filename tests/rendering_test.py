"""Tests of regnerf_tf.rendering against closed forms."""

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import rendering


def _slab_setup(sigma, a, b, n, direction):
  """Fenceposts on [0, 4] with density sigma on [a, b] (aligned), 0 elsewhere."""
  t = np.linspace(0.0, 4.0, n + 1)
  mids = 0.5 * (t[1:] + t[:-1])
  density = np.where((mids > a) & (mids < b), sigma, 0.0)
  return (tf.constant(t[None], tf.float32), tf.constant(density[None], tf.float32),
          tf.constant([direction], tf.float32))


@pytest.mark.parametrize("sigma", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("direction", [[0.0, 0.0, 1.0], [0.6, 0.8, 1.5]])
def test_constant_density_slab_matches_closed_form(sigma, direction):
  a, b = 1.0, 2.5
  t, density, d = _slab_setup(sigma, a, b, 400, direction)
  color = np.array([0.2, 0.5, 0.9], np.float32)
  rgb = tf.broadcast_to(color, [1, 400, 3])
  out = rendering.volumetric_rendering(rgb, density, t, d)
  length = (b - a) * np.linalg.norm(direction)
  acc = 1.0 - np.exp(-sigma * length)
  assert float(out["acc"][0]) == pytest.approx(acc, rel=1e-5)
  np.testing.assert_allclose(out["rgb"].numpy()[0], color * acc, rtol=1e-5)
  # Expected depth of an exponential truncated to the slab (continuous form);
  # the discrete midpoint rule differs by O(interval²).
  k = sigma * np.linalg.norm(direction)
  mean_offset = 1.0 / k - length / np.linalg.norm(direction) * np.exp(
      -k * (b - a)) / (1.0 - np.exp(-k * (b - a)))
  assert float(out["depth"][0]) == pytest.approx(a + mean_offset, abs=2e-3)


def test_white_background_adds_missing_opacity():
  t, density, d = _slab_setup(0.7, 1.0, 2.0, 50, [0.0, 0.0, 1.0])
  rgb = tf.zeros([1, 50, 3])
  black = rendering.volumetric_rendering(rgb, density, t, d, False)
  white = rendering.volumetric_rendering(rgb, density, t, d, True)
  np.testing.assert_allclose(white["rgb"].numpy() - black["rgb"].numpy(),
                             np.broadcast_to(1.0 - black["acc"].numpy()[:, None], (1, 3)), atol=1e-6)


def test_weights_sum_to_at_most_one_and_transmittance_decreases():
  rng = np.random.default_rng(0)
  density = rng.exponential(scale=3.0, size=(32, 64)).astype(np.float32)
  density[:4] *= 1e6
  t = np.sort(rng.uniform(0.0, 2.0, size=(32, 65)), axis=-1).astype(np.float32)
  d = rng.normal(size=(32, 3)).astype(np.float32)
  weights, alpha, trans = rendering.compute_alpha_weights(density, t, d)
  weights = weights.numpy()
  assert np.all(weights >= 0)
  assert np.all(weights.sum(-1) <= 1.0 + 1e-5)
  assert np.all(np.diff(trans.numpy(), axis=-1) <= 1e-7)
  assert np.all((alpha.numpy() >= 0) & (alpha.numpy() <= 1))


def test_depth_is_clamped_to_sampled_range_for_empty_rays():
  t = tf.constant([[0.5, 1.0, 2.0, 3.5]])
  weights = tf.zeros([1, 3])
  depth = rendering.expected_depth(weights, t)
  assert float(depth[0]) == pytest.approx(0.5)
  # A single opaque sample puts the depth at its interval midpoint.
  depth = rendering.expected_depth(tf.constant([[0.0, 1.0, 0.0]]), t)
  assert float(depth[0]) == pytest.approx(1.5)


@pytest.mark.parametrize("log_density", [-8.0, -2.0, 0.0, 3.0, 8.0])
def test_rendering_values_and_gradients_finite_at_extreme_densities(log_density):
  density = tf.Variable(tf.fill([4, 16], 10.0**log_density))
  rgb = tf.Variable(tf.fill([4, 16, 3], 0.5))
  t = tf.constant(np.tile(np.linspace(0.0, 1.0, 17), (4, 1)), tf.float32)
  d = tf.constant([[0.0, 0.0, 1.0]] * 4)
  with tf.GradientTape() as tape:
    out = rendering.volumetric_rendering(rgb, density, t, d)
    loss = (tf.reduce_sum(out["rgb"]) + tf.reduce_sum(out["depth"])
            + tf.reduce_sum(out["acc"]))
  grads = tape.gradient(loss, [density, rgb])
  for value in list(out.values()) + grads:
    assert np.all(np.isfinite(value.numpy()))
