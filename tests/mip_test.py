"""Tests of regnerf_tf.mip against closed forms and Monte-Carlo estimates."""

import math

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import mip


def _sample_conical_frustum(rng, origin, direction, radius, t0, t1, n):
  """Uniform samples inside a conical frustum (independent of the code under test).

  The cross-section at parameter t is a disk of radius ``radius·t`` around
  o + t·d, perpendicular to d, so the volume density of t is ∝ t².
  """
  u = rng.uniform(size=n)
  t = np.cbrt(t0**3 + u * (t1**3 - t0**3))  # inverse CDF of a t² density
  d_hat = direction / np.linalg.norm(direction)
  a = np.cross(d_hat, [1.0, 0.0, 0.0])
  if np.linalg.norm(a) < 1e-3:
    a = np.cross(d_hat, [0.0, 1.0, 0.0])
  a /= np.linalg.norm(a)
  b = np.cross(d_hat, a)
  r = radius * t * np.sqrt(rng.uniform(size=n))
  phi = rng.uniform(0, 2 * np.pi, size=n)
  return (origin + t[:, None] * direction
          + (r * np.cos(phi))[:, None] * a + (r * np.sin(phi))[:, None] * b)


@pytest.mark.parametrize("t0,t1,radius", [(0.5, 0.7, 0.05), (1.0, 3.0, 0.2),
                                          (2.0, 2.05, 0.01)])
def test_cone_gaussian_matches_monte_carlo(t0, t1, radius):
  rng = np.random.default_rng(0)
  origin = np.array([0.3, -0.2, 0.1])
  direction = np.array([0.4, -0.7, 1.3])  # unnormalised on purpose
  pts = _sample_conical_frustum(rng, origin, direction, radius, t0, t1, 400_000)
  means, covs = mip.cast_rays(
      tf.constant([[t0, t1]], tf.float32), tf.constant([origin], tf.float32),
      tf.constant([direction], tf.float32), tf.constant([[radius]], tf.float32),
      "cone")
  np.testing.assert_allclose(means.numpy()[0, 0], pts.mean(0), atol=3e-3)
  np.testing.assert_allclose(covs.numpy()[0, 0], pts.var(0),
                             rtol=0.02, atol=1e-6)


def test_cylinder_gaussian_matches_monte_carlo():
  rng = np.random.default_rng(1)
  n = 400_000
  t0, t1, radius = 0.2, 0.6, 0.03
  origin = np.zeros(3)
  direction = np.array([0.0, 0.6, -0.8]) * 2.0
  t = rng.uniform(t0, t1, size=n)
  d_hat = direction / np.linalg.norm(direction)
  a = np.array([1.0, 0.0, 0.0])
  b = np.cross(d_hat, a)
  r = radius * np.sqrt(rng.uniform(size=n))
  phi = rng.uniform(0, 2 * np.pi, size=n)
  pts = (t[:, None] * direction + (r * np.cos(phi))[:, None] * a
         + (r * np.sin(phi))[:, None] * b)
  means, covs = mip.cast_rays(
      tf.constant([[t0, t1]], tf.float32), tf.constant([origin], tf.float32),
      tf.constant([direction], tf.float32), tf.constant([[radius]], tf.float32),
      "cylinder")
  np.testing.assert_allclose(means.numpy()[0, 0], pts.mean(0), atol=2e-3)
  np.testing.assert_allclose(covs.numpy()[0, 0], pts.var(0), rtol=0.02,
                             atol=1e-6)


def test_stable_and_textbook_cone_forms_agree_for_wide_intervals():
  d = tf.constant([[0.3, 0.1, 1.0]])
  t = tf.constant([[0.5, 0.9, 1.6, 3.5]])
  r = tf.constant([[0.02]])
  m1, c1 = mip.conical_frustum_to_gaussian(d, t[:, :-1], t[:, 1:], r, True)
  m2, c2 = mip.conical_frustum_to_gaussian(d, t[:, :-1], t[:, 1:], r, False)
  np.testing.assert_allclose(m1.numpy(), m2.numpy(), rtol=1e-5)
  np.testing.assert_allclose(c1.numpy(), c2.numpy(), rtol=1e-3)


def test_stable_cone_form_is_accurate_where_textbook_form_cancels():
  # Closed form in float64 for a thin interval far from the apex.
  t0, t1, r = float(np.float32(1000.0)), float(np.float32(1000.001)), 0.01
  mu, hw = (t0 + t1) / 2, (t1 - t0) / 2
  t_var64 = hw**2 / 3 - (4 / 15) * hw**4 * (12 * mu**2 - hw**2) / (3 * mu**2 + hw**2)**2
  d = tf.constant([[0.0, 0.0, 1.0]])
  _, cov = mip.conical_frustum_to_gaussian(
      d, tf.constant([[t0]]), tf.constant([[t1]]), tf.constant([[r]]), True)
  np.testing.assert_allclose(cov.numpy()[0, 0, 2], t_var64, rtol=1e-2)
  _, cov_naive = mip.conical_frustum_to_gaussian(
      d, tf.constant([[t0]]), tf.constant([[t1]]), tf.constant([[r]]), False)
  naive_err = abs(float(cov_naive[0, 0, 2]) - t_var64)
  assert naive_err > 10 * abs(float(cov[0, 0, 2]) - t_var64)


def test_ipe_with_zero_variance_equals_plain_pe():
  x = tf.random.stateless_uniform([7, 3], seed=[1, 2], minval=-3, maxval=3)
  ipe = mip.integrated_pos_enc(x, tf.zeros_like(x), 0, 16)
  pe = mip.pos_enc(x, 0, 16, append_identity=False)
  assert ipe.shape == (7, 96)
  np.testing.assert_allclose(ipe.numpy(), pe.numpy(), atol=1e-6)


def test_ipe_matches_monte_carlo_expectation_of_sin():
  rng = np.random.default_rng(2)
  mean = np.array([0.3, -1.2, 0.7])
  var = np.array([0.01, 0.2, 0.003])
  samples = rng.normal(mean, np.sqrt(var), size=(1_000_000, 3))
  ipe = mip.integrated_pos_enc(tf.constant(mean[None], tf.float32),
                               tf.constant(var[None], tf.float32), 0, 4).numpy()[0]
  expected = []
  for fn in (np.sin, np.cos):
    for l in range(4):
      expected.append(fn(samples * 2.0**l).mean(0))
  expected = np.concatenate(expected)
  np.testing.assert_allclose(ipe, expected, atol=3e-3)


def test_ipe_layout_sines_then_cosines_degree_major():
  mean = tf.constant([[0.1, 0.2, 0.3]])
  enc = mip.integrated_pos_enc(mean, tf.zeros_like(mean), 0, 2).numpy()[0]
  expected = np.concatenate([np.sin([0.1, 0.2, 0.3]), np.sin([0.2, 0.4, 0.6]),
                             np.cos([0.1, 0.2, 0.3]), np.cos([0.2, 0.4, 0.6])])
  np.testing.assert_allclose(enc, expected, atol=1e-6)


def test_view_direction_encoding_has_27_features_identity_first():
  v = tf.constant([[0.0, 0.6, 0.8]])
  enc = mip.pos_enc(v, 0, 4, append_identity=True).numpy()[0]
  assert enc.shape == (27,)
  np.testing.assert_allclose(enc[:3], [0.0, 0.6, 0.8])
  np.testing.assert_allclose(enc[3:6], np.sin([0.0, 0.6, 0.8]), atol=1e-6)
  np.testing.assert_allclose(enc[15 + 9:27], np.cos(8 * np.array([0.0, 0.6, 0.8])),
                             atol=1e-5)


def test_safe_sin_reduces_only_large_arguments():
  x = tf.constant([0.1, -2.0, 1e4, -3e5], tf.float32)
  np.testing.assert_allclose(mip.safe_sin(x)[:2].numpy(), np.sin([0.1, -2.0]),
                             atol=1e-7)
  big = np.array([1e4, -3e5], np.float32).astype(np.float64)
  np.testing.assert_allclose(mip.safe_sin(x)[2:].numpy(), np.sin(big), atol=2e-2)


@pytest.mark.parametrize("log_scale", [-6.0, -3.0, 0.0, 2.0, 4.0])
@pytest.mark.parametrize("ray_shape", ["cone", "cylinder"])
def test_cast_and_encode_finite_values_and_gradients(log_scale, ray_shape):
  scale = 10.0**log_scale
  t = tf.Variable(scale * tf.constant([[0.5, 0.5 + 1e-6, 1.0, 3.5]]))
  o = tf.Variable(scale * tf.constant([[0.1, 0.2, -0.3]]))
  d = tf.Variable(tf.constant([[0.2, -0.1, 1.0]]))
  r = tf.Variable(scale * tf.constant([[1e-3]]))
  with tf.GradientTape() as tape:
    means, covs = mip.cast_rays(t, o, d, r, ray_shape)
    enc = mip.integrated_pos_enc(means, covs)
    loss = tf.reduce_sum(enc)
  grads = tape.gradient(loss, [t, o, d, r])
  for value in [means, covs, enc] + grads:
    assert np.all(np.isfinite(value.numpy()))
  assert np.all(covs.numpy() >= -1e-6 * scale**2)


def test_cast_rays_rejects_unknown_shape():
  with pytest.raises(ValueError, match="ray_shape"):
    mip.cast_rays(tf.zeros([1, 3]), tf.zeros([1, 3]), tf.ones([1, 3]),
                  tf.ones([1, 1]), "sphere")


def test_lift_gaussian_perpendicular_variance_is_direction_length_free():
  # r_var is a world-space variance across the ray, whatever ||d||.
  for scale in (1.0, 5.0):
    d = tf.constant([[0.0, 0.0, scale]])
    _, cov = mip.lift_gaussian(d, tf.constant([[1.0]]), tf.constant([[0.0]]),
                               tf.constant([[0.25]]))
    np.testing.assert_allclose(cov.numpy()[0, 0], [0.25, 0.25, 0.0], atol=1e-7)
  assert math.isclose(float(mip.expected_sin(tf.constant(0.5), tf.constant(0.0))),
                      math.sin(0.5), rel_tol=1e-6)
