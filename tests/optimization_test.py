"""Tests of the step mechanics on a loss whose gradients are known."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from regnerf_tf import configs, optimization


def _quadratic(w):
  """Loss: mean over rows of ½‖x·w − y‖², gradient mean of xᵀ(x·w − y)."""

  def loss_fn(batch, seed):
    del seed
    residual = tf.matmul(batch["x"], w) - batch["y"]
    loss = 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(residual), -1))
    mse = tf.reduce_mean(tf.square(residual))
    return {"loss": loss, "psnr": -10.0 * tf.math.log(mse) / tf.math.log(10.0),
            "psnr_coarse": -10.0 * tf.math.log(mse) / tf.math.log(10.0)}

  return loss_fn


def test_micro_batches_average_to_the_batch_gradient():
  rng = np.random.default_rng(0)
  w = tf.Variable(rng.normal(size=(3, 2)).astype(np.float32))
  batch = {"x": tf.constant(rng.normal(size=(8, 3)), tf.float32),
           "y": tf.constant(rng.normal(size=(8, 2)), tf.float32)}
  x, y = batch["x"].numpy(), batch["y"].numpy()
  expected = x.T @ (x @ w.numpy() - y) / len(x)  # closed form
  optimizer = keras.optimizers.SGD()
  seed = tf.constant([1, 2], tf.int64)
  loss_fn = _quadratic(w)
  whole, terms = optimization.batch_gradients(loss_fn, optimizer, [w], batch,
                                              seed, num_replicas=1)
  np.testing.assert_allclose(whole[0].numpy(), expected, rtol=1e-5)
  parts, part_terms = optimization.batch_gradients(
      loss_fn, optimizer, [w], batch, seed, num_replicas=1, parts=4,
      keys=list(terms))
  np.testing.assert_allclose(parts[0].numpy(), expected, rtol=1e-5)
  # Loss terms are means of the parts; PSNR is of the mean squared error.
  np.testing.assert_allclose(part_terms["loss"].numpy(),
                             terms["loss"].numpy(), rtol=1e-5)
  np.testing.assert_allclose(part_terms["psnr"].numpy(),
                             terms["psnr"].numpy(), rtol=1e-5)
  halved, _ = optimization.batch_gradients(loss_fn, optimizer, [w], batch,
                                           seed, num_replicas=2)
  np.testing.assert_allclose(halved[0].numpy(), expected / 2, rtol=1e-5)
  with pytest.raises(ValueError, match="keys"):
    optimization.batch_gradients(loss_fn, optimizer, [w], batch, seed, 1,
                                 parts=2)


def test_clipping_and_the_finite_flag():
  train = configs.Config().train  # the release's clipping: 0.1 and 0.1
  assert train.grad_clip_value == 0.1 and train.grad_clip_norm == 0.1
  big = [tf.constant([3.0, 4.0]) * 1e3]
  clipped, norm, finite = optimization.reduce_and_clip(
      big, tf.constant(1.0), train, num_replicas=1)
  assert bool(finite)
  # By value to [0.1, 0.1] (norm 0.1·√2), then by norm to 0.1.
  np.testing.assert_allclose(float(norm), 0.1 * np.sqrt(2), rtol=1e-5)
  np.testing.assert_allclose(clipped[0].numpy(), [0.1 / np.sqrt(2)] * 2,
                             rtol=1e-4)
  _, _, finite = optimization.reduce_and_clip(big, tf.constant(np.inf), train,
                                              1)
  assert not bool(finite)
  _, _, finite = optimization.reduce_and_clip([tf.constant([np.nan, 1.0])],
                                              tf.constant(1.0), train, 1)
  assert not bool(finite)


def test_skipped_step_only_advances_the_counter():
  w = tf.Variable([1.0, 2.0])
  optimizer = keras.optimizers.SGD(learning_rate=0.5)
  optimizer.build([w])
  optimization.apply_if_finite(optimizer, tf.constant(False),
                               [tf.constant([1.0, 1.0])], [w])
  np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
  assert int(optimizer.iterations) == 1
  optimization.apply_if_finite(optimizer, tf.constant(True),
                               [tf.constant([1.0, 1.0])], [w])
  np.testing.assert_allclose(w.numpy(), [0.5, 1.5])
  assert int(optimizer.iterations) == 2


def test_step_seeds_are_stateless_and_distinct():
  seeds = {(step, replica): tuple(optimization.step_seed(7, step,
                                                         replica).numpy())
           for step in (1, 2, 3) for replica in (0, 1)}
  assert len(set(seeds.values())) == len(seeds)
  assert tuple(optimization.step_seed(7, 2, 1).numpy()) == seeds[(2, 1)]
  assert tuple(optimization.step_seed(8, 2, 1).numpy()) != seeds[(2, 1)]
