"""Tests of regnerf_tf.losses against closed forms and the release's numbers."""

import math

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import losses


def test_color_loss_sums_channels_and_averages_rays():
  pred = tf.constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
  target = tf.constant([[0.5, 0.5, 0.5], [1.0, 1.0, 0.0]])
  # ray 0: 3·0.25 = 0.75; ray 1: 1.0 → mean 0.875 (3× the element-wise MSE).
  assert float(losses.color_loss(pred, target)) == pytest.approx(0.875)
  mse = float(tf.reduce_mean(tf.square(pred - target)))
  assert float(losses.color_loss(pred, target)) == pytest.approx(3 * mse)


def test_psnr_of_known_mse():
  assert float(losses.mse_to_psnr(0.01)) == pytest.approx(20.0, rel=1e-6)
  assert float(losses.mse_to_psnr(1e-3)) == pytest.approx(30.0, rel=1e-6)


def test_depth_tv_closed_form_and_weighting():
  # A ramp along x with slope 1: each of the (S-1)² terms is 1² + 0².
  s = 4
  depth = np.tile(np.arange(s, dtype=np.float32)[None, :], (s, 1))[None]
  assert float(losses.depth_tv(depth)) == pytest.approx(1.0)
  assert float(losses.depth_tv(depth + depth.transpose(0, 2, 1))) == pytest.approx(2.0)
  assert float(losses.depth_tv(np.full((2, s, s), 3.0, np.float32))) == 0.0
  acc = np.zeros((1, s, s), np.float32)
  acc[0, 0, 0] = 1.0  # only the top-left term counts, with weight 2·1
  value = losses.depth_tv(depth, acc, acc_weighting=2.0)
  assert float(value) == pytest.approx(2.0 / (s - 1) ** 2)
  # No gradient flows into the accumulation weights.
  acc_var = tf.Variable(acc)
  depth_var = tf.Variable(depth)
  with tf.GradientTape(persistent=True) as tape:
    v = losses.depth_tv(depth_var, acc_var, 1.0)
  assert tape.gradient(v, acc_var) is None
  assert tape.gradient(v, depth_var) is not None


def test_depth_tv_weight_schedule():
  w = lambda step: float(losses.depth_tv_weight(step, 400.0, 0.1, 512))
  assert w(0) == pytest.approx(400.0)
  assert w(1) == pytest.approx(400.0 - 399.9 / 512)
  assert w(256) == pytest.approx(200.05)
  assert w(512) == pytest.approx(0.1)
  assert w(10_000) == pytest.approx(0.1)
  assert float(losses.depth_tv_weight(5, 400.0, 0.1, 0)) == pytest.approx(0.1)


def test_learning_rate_matches_release_sanity_values():
  lr = lambda step: float(losses.log_linear_lr(step, 2e-3, 2e-5, 43945, 512, 0.01))
  assert lr(1) == pytest.approx(2.6e-5, rel=0.02)
  assert lr(100) == pytest.approx(6.1e-4, rel=0.02)
  assert lr(256) == pytest.approx(1.38e-3, rel=0.02)
  assert lr(512) == pytest.approx(1.90e-3, rel=0.02)
  assert lr(43945) == pytest.approx(2e-5, rel=1e-4)
  schedule = losses.LogLinearSchedule(2e-3, 2e-5, 43945, 512, 0.01)
  assert float(schedule(0)) == pytest.approx(lr(1))  # Keras counts from 0
  clone = losses.LogLinearSchedule.from_config(schedule.get_config())
  assert float(clone(99)) == pytest.approx(lr(100))


def test_gradient_clipping_value_then_norm():
  grads = [tf.constant([0.5, -0.05]), None, tf.constant([[0.2, 0.0]])]
  clipped, norm = losses.clip_gradients(grads, 0.1, 0.1)
  # Value clip: [0.1, -0.05], [0.1, 0]; global norm √(0.01+0.0025+0.01) = 0.15.
  expected_norm = math.sqrt(0.0225)
  assert float(norm) == pytest.approx(expected_norm, rel=1e-5)
  scale = 0.1 / expected_norm
  np.testing.assert_allclose(clipped[0].numpy(), np.array([0.1, -0.05]) * scale,
                             rtol=1e-5)
  assert clipped[1] is None
  small, _ = losses.clip_gradients([tf.constant([0.01])], 0.1, 0.1)
  np.testing.assert_allclose(small[0].numpy(), [0.01], rtol=1e-5)
  untouched, _ = losses.clip_gradients([tf.constant([5.0])], 0.0, 0.0)
  np.testing.assert_allclose(untouched[0].numpy(), [5.0])
