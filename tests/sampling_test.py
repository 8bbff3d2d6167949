"""Tests of regnerf_tf.sampling: fenceposts, resampling, annealing."""

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import sampling


def test_deterministic_fenceposts_are_linspace():
  t = sampling.stratified_fenceposts(tf.constant([[0.5]]), tf.constant([[3.5]]),
                                     6, randomized=False)
  np.testing.assert_allclose(t.numpy()[0], np.linspace(0.5, 3.5, 7), rtol=1e-6)


def test_lindisp_fenceposts_are_linear_in_disparity():
  t = sampling.stratified_fenceposts(tf.constant([[1.0]]), tf.constant([[4.0]]),
                                     4, randomized=False, lindisp=True).numpy()[0]
  np.testing.assert_allclose(1 / t, np.linspace(1.0, 0.25, 5), rtol=1e-6)


def test_jittered_fenceposts_stay_between_neighbour_midpoints():
  near = tf.fill([500, 1], 0.5)
  far = tf.fill([500, 1], 3.5)
  t = sampling.stratified_fenceposts(near, far, 8, randomized=True,
                                     seed=[3, 4]).numpy()
  grid = np.linspace(0.5, 3.5, 9)
  mids = 0.5 * (grid[1:] + grid[:-1])
  lower = np.concatenate([[0.5], mids])
  upper = np.concatenate([mids, [3.5]])
  assert np.all(t >= lower - 1e-6) and np.all(t <= upper + 1e-6)
  assert np.all(np.diff(t, axis=-1) >= 0)
  # Roughly uniform inside each stratum: mean near the stratum centre.
  np.testing.assert_allclose(t.mean(0), 0.5 * (lower + upper), atol=0.03)
  # Same seed, same draw; different seed, different draw.
  t2 = sampling.stratified_fenceposts(near, far, 8, True, seed=[3, 4]).numpy()
  t3 = sampling.stratified_fenceposts(near, far, 8, True, seed=[3, 5]).numpy()
  np.testing.assert_array_equal(t, t2)
  assert not np.allclose(t, t3)


def test_randomized_sampling_without_seed_is_refused():
  with pytest.raises(ValueError, match="seed"):
    sampling.stratified_fenceposts(tf.zeros([1, 1]), tf.ones([1, 1]), 4, True)


def test_blur_pool_closed_form():
  w = tf.constant([[0.0, 1.0, 0.0, 0.0, 2.0]])
  out = sampling.blur_pool_weights(w, padding=0.0).numpy()[0]
  # padded [0,0,1,0,0,2,2] → max pairs [0,1,1,0,2,2] → means [.5,1,.5,1,2]
  np.testing.assert_allclose(out, [0.5, 1.0, 0.5, 1.0, 2.0])
  np.testing.assert_allclose(
      sampling.blur_pool_weights(w, 0.01).numpy()[0], out + 0.01)


def test_inverse_cdf_follows_the_histogram():
  bins = tf.constant([[0.0, 1.0, 2.0, 3.0]])
  weights = tf.constant([[0.0, 3.0, 1.0]])
  s = sampling.sample_piecewise_constant_pdf(
      tf.tile(bins, [2000, 1]), tf.tile(weights, [2000, 1]), 16, True,
      seed=[0, 1]).numpy()
  assert s.min() >= 1.0 - 1e-6  # nothing in the empty first bin
  frac_second = np.mean(s < 2.0)
  assert frac_second == pytest.approx(0.75, abs=0.02)
  # Within a bin the density is flat.
  in_second = s[s < 2.0]
  assert np.mean(in_second < 1.5) == pytest.approx(0.5, abs=0.02)


def test_deterministic_inverse_cdf_on_uniform_weights_is_linspace():
  bins = tf.constant([np.linspace(2.0, 6.0, 5)], tf.float32)
  s = sampling.sample_piecewise_constant_pdf(bins, tf.ones([1, 4]), 9, False)
  np.testing.assert_allclose(s.numpy()[0],
                             2.0 + 4.0 * np.linspace(0, 1 - 1.19e-7, 9),
                             atol=1e-5)


@pytest.mark.parametrize("randomized", [False, True])
def test_resampled_t_values_sorted_and_inside_range(randomized):
  rng = np.random.default_rng(0)
  near, far = 0.5, 3.5
  t = sampling.stratified_fenceposts(tf.fill([64, 1], near), tf.fill([64, 1], far),
                                     32, randomized=True, seed=[1, 1])
  weights = rng.exponential(size=(64, 32)).astype(np.float32)
  weights[:8] = 0.0  # empty rays fall back to uniform sampling
  weights[8:16, :20] = 0.0  # mass concentrated at the back
  new_t = sampling.resample_along_rays(t, tf.constant(weights), randomized,
                                       seed=[2, 2] if randomized else None)
  new_t = new_t.numpy()
  assert new_t.shape == (64, 33)
  assert np.all(np.diff(new_t, axis=-1) >= 0)
  assert np.all(new_t >= t.numpy()[:, :1] - 1e-6)
  assert np.all(new_t <= t.numpy()[:, -1:] + 1e-6)
  # Concentrated weights pull the samples towards the back of the ray.
  assert np.median(new_t[8:16]) > np.median(new_t[16:])


def test_resampling_blocks_gradients():
  t = tf.Variable(tf.constant([np.linspace(0.0, 1.0, 9)], tf.float32))
  w = tf.Variable(tf.ones([1, 8]))
  with tf.GradientTape(persistent=True) as tape:
    new_t = sampling.resample_along_rays(t, w, False)
    loss = tf.reduce_sum(new_t)
  assert tape.gradient(loss, w) is None and tape.gradient(loss, t) is None
  with tf.GradientTape() as tape:
    loss2 = tf.reduce_sum(sampling.resample_along_rays(t, w, False,
                                                       stop_grad=False))
  assert tape.gradient(loss2, w) is not None


def test_resampling_finite_for_extreme_weights():
  t = tf.constant([np.linspace(0.0, 1.0, 9)] * 4, tf.float32)
  w = tf.constant([[0.0] * 8, [1e30] * 8, [1e-30] * 8,
                   [0, 0, 0, 1e20, 0, 0, 0, 0]], tf.float32)
  for randomized in (False, True):
    out = sampling.resample_along_rays(t, w, randomized, seed=[5, 5]).numpy()
    assert np.all(np.isfinite(out))
    assert np.all(np.diff(out, axis=-1) >= 0)


def test_release_annealing_dtu_values():
  # DTU 3-view: N = 256, p = 0.5, m = 0.5 on [0.5, 3.5].
  def at(step):
    n, f = sampling.anneal_near_far(0.5, 3.5, step, 256, 0.5, 0.5, "release")
    return float(n), float(f)
  assert at(0) == pytest.approx((1.25, 2.75))
  assert at(1) == pytest.approx((1.25 - 0.75 / 256, 2.75 + 0.75 / 256))
  assert at(128) == pytest.approx((0.875, 3.125))
  assert at(256) == pytest.approx((0.5, 3.5))
  assert at(10_000) == pytest.approx((0.5, 3.5))


def test_release_annealing_llff_values_sweep_from_infinity():
  # LLFF 3-view: N = 512, p = 1e-4, m = 1 in NDC [0, 1].
  n0, f0 = sampling.anneal_near_far(0.0, 1.0, 0, 512, 1e-4, 1.0, "release")
  assert float(n0) == pytest.approx(0.9999) and float(f0) == pytest.approx(1.0)
  n1, f1 = sampling.anneal_near_far(0.0, 1.0, 256, 512, 1e-4, 1.0, "release")
  assert float(n1) == pytest.approx(1 - (1e-4 + (1 - 1e-4) * 0.5))
  assert float(f1) == pytest.approx(1.0)
  n2, _ = sampling.anneal_near_far(0.0, 1.0, 512, 512, 1e-4, 1.0, "release")
  assert float(n2) == pytest.approx(0.0, abs=1e-7)


def test_paper_annealing_clamps_progress_from_below():
  def at(step):
    n, f = sampling.anneal_near_far(0.5, 3.5, step, 256, 0.5, 0.5, "paper")
    return float(n), float(f)
  assert at(0) == pytest.approx((1.25, 2.75))
  assert at(128) == pytest.approx((1.25, 2.75))  # η = max(0.5, 0.5)
  assert at(192) == pytest.approx((2.0 - 1.5 * 0.75, 2.0 + 1.5 * 0.75))
  assert at(256) == pytest.approx((0.5, 3.5))


def test_annealing_disabled_and_validated():
  n, f = sampling.anneal_near_far(0.5, 3.5, 3, 0, 0.5)
  assert (float(n), float(f)) == (0.5, 3.5)
  with pytest.raises(ValueError, match="mode"):
    sampling.anneal_near_far(0.5, 3.5, 3, 10, 0.5, mode="cosine")


def test_annealing_accepts_tensor_step_in_tf_function():
  @tf.function
  def fn(step):
    return sampling.anneal_near_far(tf.fill([2, 1], 0.5), tf.fill([2, 1], 3.5),
                                    step, 256, 0.5)
  n, f = fn(tf.constant(64, tf.int64))
  np.testing.assert_allclose(n.numpy(), 1.25 - 0.75 * 0.25)
  np.testing.assert_allclose(f.numpy(), 2.75 + 0.75 * 0.25)
