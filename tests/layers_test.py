"""Tests of the Keras layers: shapes, parameter count, policies, config."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import layers, mip


def _inputs(rays=4, samples=5, seed=0):
  rng = np.random.default_rng(seed)
  means = tf.constant(rng.normal(size=(rays, samples, 3)), tf.float32)
  covs = tf.constant(rng.uniform(0, 0.01, size=(rays, samples, 3)), tf.float32)
  viewdirs = tf.constant(rng.normal(size=(rays, 3)), tf.float32)
  return means, covs, viewdirs


def test_default_mlp_shapes_and_parameter_count():
  mlp = layers.MipNerfMLP()
  rgb, density = mlp(*_inputs())
  assert rgb.shape == (4, 5, 3) and density.shape == (4, 5)
  assert mlp.count_params() == 612_740
  # The skip connection: trunk layer 5 takes 256 + 96 inputs.
  assert mlp.trunk[5].kernel.shape == (352, 256)
  assert mlp.trunk[4].kernel.shape == (256, 256)
  assert mlp.view_layers[0].kernel.shape == (256 + 27, 128)


def test_output_ranges_and_density_bias():
  mlp = layers.MipNerfMLP(net_depth=2, net_width=16, skip_layer=0,
                          net_width_viewdirs=8)
  rgb, density = mlp(*_inputs())
  assert np.all(rgb.numpy() >= -0.001) and np.all(rgb.numpy() <= 1.001)
  assert np.all(density.numpy() > 0)
  # With zeroed density head the output is softplus(bias).
  mlp.density_layer.kernel.assign(tf.zeros_like(mlp.density_layer.kernel))
  _, density = mlp(*_inputs())
  np.testing.assert_allclose(density.numpy(), np.log1p(np.exp(-1.0)), rtol=1e-6)


def test_mlp_matches_an_independent_forward_pass():
  mlp = layers.MipNerfMLP(net_depth=3, net_width=8, skip_layer=1,
                          net_width_viewdirs=4, max_deg_point=4, deg_view=2)
  means, covs, viewdirs = _inputs(2, 3)
  rgb, density = mlp(means, covs, viewdirs)
  w = [v.numpy() for v in mlp.weights]
  enc = mip.integrated_pos_enc(means, covs, 0, 4).numpy()
  relu = lambda x: np.maximum(x, 0)
  x = relu(enc @ w[0] + w[1])
  x = relu(x @ w[2] + w[3])
  x = np.concatenate([x, enc], -1)
  x = relu(x @ w[4] + w[5])
  raw_density = (x @ w[6] + w[7])[..., 0]
  bottleneck = x @ w[8] + w[9]
  view = mip.pos_enc(viewdirs, 0, 2).numpy()
  h = np.concatenate([bottleneck, np.broadcast_to(view[:, None], (2, 3, 15))], -1)
  h = relu(h @ w[10] + w[11])
  raw_rgb = h @ w[12] + w[13]
  np.testing.assert_allclose(density.numpy(), np.log1p(np.exp(raw_density - 1)),
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(
      rgb.numpy(), 1 / (1 + np.exp(-raw_rgb)) * 1.002 - 0.001, rtol=1e-4,
      atol=1e-6)


def test_density_noise_modes():
  kwargs = dict(net_depth=2, net_width=8, skip_layer=None, net_width_viewdirs=4,
                density_noise=1.0)
  mlp_sample = layers.MipNerfMLP(density_noise_mode="per_sample", **kwargs)
  mlp_scalar = layers.MipNerfMLP(density_noise_mode="scalar", **kwargs)
  x = _inputs(64, 16)
  mlp_scalar(*x)
  mlp_sample(*x)
  mlp_sample.set_weights(mlp_scalar.get_weights())
  inv_softplus = lambda y: np.log(np.expm1(y))
  _, clean = mlp_sample(*x)
  _, noisy = mlp_sample(*x, training=True, seed=tf.constant([1, 2]))
  _, noisy2 = mlp_sample(*x, training=True, seed=tf.constant([1, 2]))
  _, scalar = mlp_scalar(*x, training=True, seed=tf.constant([1, 2]))
  np.testing.assert_array_equal(noisy.numpy(), noisy2.numpy())  # seeded
  diff_sample = inv_softplus(noisy.numpy()) - inv_softplus(clean.numpy())
  diff_scalar = inv_softplus(scalar.numpy()) - inv_softplus(clean.numpy())
  assert diff_sample.std() == pytest.approx(1.0, abs=0.1)  # i.i.d. N(0, 1)
  assert diff_scalar.std() < 1e-3  # one shared draw
  assert abs(diff_scalar.mean()) > 1e-4
  # Evaluation is deterministic; training with noise demands a seed.
  _, again = mlp_sample(*x, training=False)
  np.testing.assert_array_equal(again.numpy(), clean.numpy())
  with pytest.raises(ValueError, match="seed"):
    mlp_sample(*x, training=True)


def test_get_config_round_trip_and_serialization():
  mlp = layers.MipNerfMLP(net_depth=3, net_width=16, skip_layer=1,
                          net_width_viewdirs=8, density_noise=0.5,
                          density_noise_mode="scalar", rgb_padding=0.002)
  x = _inputs()
  out = mlp(*x)
  config = mlp.get_config()
  json.dumps(config)  # plain JSON types only
  clone = layers.MipNerfMLP.from_config(config)
  assert clone.get_config() == config
  clone(*x)
  clone.set_weights(mlp.get_weights())
  np.testing.assert_allclose(clone(*x)[0].numpy(), out[0].numpy(), atol=1e-6)
  restored = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(mlp))
  assert isinstance(restored, layers.MipNerfMLP)
  assert restored.get_config() == config


def test_mixed_bfloat16_policy_keeps_encoding_and_outputs_float32():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  mlp = layers.MipNerfMLP(net_depth=3, net_width=32, skip_layer=1,
                          net_width_viewdirs=16)
  x = _inputs(8, 6)
  rgb, density = mlp(*x)
  assert rgb.dtype == tf.float32 and density.dtype == tf.float32
  assert mlp.trunk[0].kernel.dtype == "float32"
  assert mlp.trunk[0].compute_dtype == "bfloat16"
  assert mlp.encoder.compute_dtype == "float32"
  # Same weights in float32: outputs agree to bfloat16 precision.
  keras.mixed_precision.set_global_policy("float32")
  ref = layers.MipNerfMLP.from_config({**mlp.get_config(), "dtype": "float32"})
  ref(*x)
  ref.set_weights(mlp.get_weights())
  rgb32, density32 = ref(*x)
  np.testing.assert_allclose(rgb.numpy(), rgb32.numpy(), atol=0.03)
  np.testing.assert_allclose(density.numpy(), density32.numpy(), rtol=0.1,
                             atol=0.05)


def test_gradients_reach_every_weight():
  mlp = layers.MipNerfMLP(net_depth=3, net_width=8, skip_layer=1,
                          net_width_viewdirs=4)
  x = _inputs()
  with tf.GradientTape() as tape:
    rgb, density = mlp(*x, training=True)
    loss = tf.reduce_sum(rgb) + tf.reduce_sum(density)
  grads = tape.gradient(loss, mlp.trainable_variables)
  assert len(grads) == len(mlp.trainable_variables) == 14
  assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


@pytest.mark.parametrize("kwargs,match", [
    ({"net_depth": 0}, "net_depth"),
    ({"skip_layer": 7}, "skip_layer"),
    ({"density_noise": -1.0}, "density_noise"),
    ({"density_noise_mode": "global"}, "density_noise_mode"),
])
def test_invalid_configuration_is_rejected(kwargs, match):
  with pytest.raises(ValueError, match=match):
    layers.MipNerfMLP(**kwargs)


def test_ipe_layer():
  enc = layers.IntegratedPositionalEncoding(0, 16)
  means, covs, _ = _inputs()
  out = enc(means, covs)
  assert out.shape == (4, 5, 96)
  np.testing.assert_allclose(out.numpy(),
                             mip.integrated_pos_enc(means, covs).numpy())
  assert enc.compute_output_shape((4, 5, 3)) == (4, 5, 96)
  with pytest.raises(ValueError, match="min_deg"):
    layers.IntegratedPositionalEncoding(5, 2)


def test_seeded_initialisation_is_reproducible():
  a = layers.MipNerfMLP(net_depth=2, net_width=8, skip_layer=None,
                        net_width_viewdirs=4, seed=5)
  b = layers.MipNerfMLP(net_depth=2, net_width=8, skip_layer=None,
                        net_width_viewdirs=4, seed=5)
  c = layers.MipNerfMLP(net_depth=2, net_width=8, skip_layer=None,
                        net_width_viewdirs=4, seed=6)
  for mlp in (a, b, c):
    mlp.build()
  for wa, wb, wc in zip(a.get_weights(), b.get_weights(), c.get_weights()):
    np.testing.assert_array_equal(wa, wb)
    if wa.ndim == 2:
      assert not np.allclose(wa, wc)
  # Layers do not share a kernel initialisation.
  assert not np.allclose(a.trunk[1].kernel.numpy(), a.bottleneck.kernel.numpy()[:8, :8])
