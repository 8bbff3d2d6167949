"""Tests of the RegNeRF model: losses, schedules, prior, distribution."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from regnerf_tf import configs, errors, losses, model as model_lib, sampling
from regnerf_tf import objective, renderer

TINY = {"model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
        "model.net_width_viewdirs": 8, "model.num_samples": 8,
        "model.max_deg_point": 6, "train.batch_size": 32,
        "train.patch_batch_size": 32, "reg.patch_size": 4,
        "train.max_steps": 100, "reg.depth_tv_decay_steps": 20,
        "reg.depth_tv_weight_start": 400.0,
        "reg.anneal_steps": 10, "train.lr_delay_steps": 5}


def tiny_config(**extra):
  return configs.get_preset("dtu3_small", **{**TINY, **extra})


def make_rays(n, seed, near=0.5, far=3.5):
  rng = np.random.default_rng(seed)
  d = np.concatenate([rng.normal(scale=0.2, size=(n, 2)), np.ones((n, 1))], -1)
  d = d.astype(np.float32)
  return {"origins": np.zeros((n, 3), np.float32), "directions": d,
          "viewdirs": d / np.linalg.norm(d, axis=-1, keepdims=True),
          "radii": np.full((n, 1), 0.002, np.float32),
          "near": np.full((n, 1), near, np.float32),
          "far": np.full((n, 1), far, np.float32)}


def make_batch(n=32, patches=32, seed=0):
  rng = np.random.default_rng(seed + 100)
  batch = {"rays": make_rays(n, seed),
           "rgb": rng.uniform(0.2, 0.8, size=(n, 3)).astype(np.float32)}
  if patches:
    batch["patch_rays"] = make_rays(patches, seed + 1)
  return batch


def test_train_step_lowers_the_colour_loss_on_a_constant_target():
  cfg = tiny_config(**{"train.lr_init": 5e-3, "train.lr_final": 5e-3,
                       "train.lr_delay_steps": 0})
  batch = make_batch()
  batch["rgb"] = np.full_like(batch["rgb"], 0.8)
  model = model_lib.build_model(cfg)
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  history = model.fit(ds, steps_per_epoch=40, epochs=2, verbose=0).history
  assert all(np.isfinite(v).all() for v in history.values())
  first = model_lib.RegNeRF(cfg)
  start = float(losses.color_loss(first(batch["rays"])["rgb"], batch["rgb"]))
  end = float(losses.color_loss(model(batch["rays"])["rgb"], batch["rgb"]))
  assert end < 0.25 * start
  assert int(model.optimizer.iterations) == 80


def test_logged_terms_follow_schedules_from_the_optimizer_step():
  cfg = tiny_config()
  model = model_lib.build_model(cfg)
  batch = make_batch()
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)  # builds the optimizer
  model.optimizer.iterations.assign(4)  # the next step is step 5
  logs = model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0).history
  near, far = sampling.anneal_near_far(0.5, 3.5, 5, 10, 0.5, 0.5)
  assert logs["near"][0] == pytest.approx(float(near), rel=1e-5)
  assert logs["far"][0] == pytest.approx(float(far), rel=1e-5)
  assert logs["tv_weight"][0] == pytest.approx(
      float(losses.depth_tv_weight(5, 400.0, 0.1, 20)), rel=1e-5)
  assert int(model.optimizer.iterations) == 5
  lr = model.optimizer.learning_rate  # schedule(iterations) = release step 6
  assert float(lr) == pytest.approx(
      float(losses.log_linear_lr(6, 2e-3, 2e-5, 100, 5, 0.01)), rel=1e-5)


def _loss_and_recomputed(cfg, patch_samples=None):
  """compute_losses' total at step 7, and the same total recomputed from
  renders of the batch (patches with ``patch_samples`` intervals per level);
  also the observed and the patch renders."""
  model = model_lib.RegNeRF(cfg)
  batch = {k: (tf.nest.map_structure(tf.constant, v)) for k, v in
           make_batch().items()}
  seed = tf.constant([3, 4], tf.int64)
  step = tf.constant(7, tf.int64)
  terms = model.compute_losses(batch, step, seed)
  ray_seed, patch_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  rays = objective.anneal(batch["rays"], step, cfg.reg)
  outs = model.render_rays(rays, True, ray_seed)
  prays = objective.anneal(batch["patch_rays"], step, cfg.reg)
  pouts = model.render_rays(prays, True, patch_seed, num_samples=patch_samples)
  c = [float(losses.color_loss(o["rgb"], batch["rgb"])) for o in outs]
  tv = [float(losses.depth_tv(tf.reshape(o["depth"], [-1, 4, 4]),
                              tf.reshape(o["acc"], [-1, 4, 4]))) for o in pouts]
  w = float(losses.depth_tv_weight(7, 400.0, 0.1, 20))
  expected = c[1] + 0.1 * c[0] + w * tv[1] + 0.1 * w * tv[0]
  return model, float(terms["loss"]), expected, outs, pouts


def test_compute_losses_composition():
  model, loss, expected, _, _ = _loss_and_recomputed(tiny_config())
  assert loss == pytest.approx(expected, rel=1e-5)
  w = float(losses.depth_tv_weight(7, 400.0, 0.1, 20))
  # release_compat: the coarse TV weight is a constant 0.1 (P6).
  compat = model_lib.RegNeRF(tiny_config(release_compat=True))
  compat.set_weights(model.get_weights())
  fine_w, coarse_w = compat.tv_weights(7)
  assert float(coarse_w) == pytest.approx(0.1)
  assert float(fine_w) == pytest.approx(w)


def test_patch_samples_render_the_patches_with_fewer_samples():
  # reg.patch_samples = 4: the depth-smoothness term is the one of patches
  # rendered with 4 intervals per level; the observed rays keep 8.
  _, loss, expected, outs, pouts = _loss_and_recomputed(
      tiny_config(**{"reg.patch_samples": 4}), patch_samples=4)
  assert [o["t_vals"].shape[-1] for o in outs] == [9, 9]
  assert [o["t_vals"].shape[-1] for o in pouts] == [5, 5]
  assert loss == pytest.approx(expected, rel=1e-5)
  # The default config's loss differs (its patches have 8 intervals).
  _, default_loss, _, _, _ = _loss_and_recomputed(tiny_config())
  assert abs(default_loss - loss) > 1e-6 * abs(loss)
  with pytest.raises(errors.ConfigError, match="patch_samples"):
    tiny_config(**{"reg.patch_samples": 1})


@keras.saving.register_keras_serializable(package="regnerf_tf_tests")
class QuadraticPrior(keras.layers.Layer):
  """Test double: NLL = Σ (patch − centre)² per patch, with a variable."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.centre = self.add_weight(shape=(), initializer=keras.initializers.Constant(0.9),
                                  name="centre")

  def patch_nll(self, patches):
    return tf.reduce_sum(tf.square(patches - self.centre), axis=[1, 2, 3])


def test_appearance_term_uses_the_frozen_prior():
  prior = QuadraticPrior()
  cfg = tiny_config(**{"reg.appearance_weight": 0.5})
  with pytest.raises(ValueError, match="patch prior"):
    model_lib.RegNeRF(cfg)
  model = model_lib.build_model(cfg, patch_prior=prior)
  batch = {k: tf.nest.map_structure(tf.constant, v) for k, v in make_batch().items()}
  seed = tf.constant([1, 2], tf.int64)
  terms = model.compute_losses(batch, tf.constant(3, tf.int64), seed)
  _, patch_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  prays = objective.anneal(batch["patch_rays"], tf.constant(3, tf.int64),
                          model.config.reg)
  patches = tf.reshape(model.render_rays(prays, True, patch_seed)[-1]["rgb"],
                       [-1, 4, 4, 3])
  expected = float(tf.reduce_mean(prior.patch_nll(patches)))
  assert float(terms["appearance"]) == pytest.approx(expected, rel=1e-5)
  before = [v.numpy().copy() for v in model.mlp.weights]
  ds = tf.data.Dataset.from_tensors(make_batch()).repeat()
  model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)
  assert float(prior.centre) == pytest.approx(0.9)  # prior untouched
  assert not prior.trainable
  assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, model.mlp.weights))
  assert all(v is not prior.centre for v in model.trainable_variables)


def test_appearance_hinge_ignores_patches_below_the_floor():
  prior = QuadraticPrior()
  batch = {k: tf.nest.map_structure(tf.constant, v) for k, v in make_batch().items()}
  seed = tf.constant([1, 2], tf.int64)
  plain = model_lib.build_model(tiny_config(**{"reg.appearance_weight": 0.5}),
                                patch_prior=prior)
  _, patch_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  prays = objective.anneal(batch["patch_rays"], tf.constant(3, tf.int64),
                          plain.config.reg)
  patches = tf.reshape(plain.render_rays(prays, True, patch_seed)[-1]["rgb"],
                       [-1, 4, 4, 3])
  nll = prior.patch_nll(patches).numpy()
  floor = float(np.median(nll))  # half the patches lie below it
  hinged = model_lib.build_model(
      tiny_config(**{"reg.appearance_weight": 0.5, "reg.appearance_hinge": True,
                     "reg.appearance_nll_floor": floor}), patch_prior=prior)
  hinged.mlp.set_weights(plain.mlp.get_weights())
  terms = hinged.compute_losses(batch, tf.constant(3, tf.int64), seed)
  expected = np.mean(np.maximum(nll - floor, 0.0))
  assert 0 < expected < np.mean(np.abs(nll - floor))  # some patches hinge off
  assert float(terms["appearance"]) == pytest.approx(expected, rel=1e-5)
  # Every patch below the floor: no term, no gradient from the prior.
  none = model_lib.build_model(
      tiny_config(**{"reg.appearance_weight": 0.5, "reg.appearance_hinge": True,
                     "reg.appearance_nll_floor": float(nll.max()) + 1.0}),
      patch_prior=prior)
  none.mlp.set_weights(plain.mlp.get_weights())
  assert float(none.compute_losses(batch, tf.constant(3, tf.int64),
                                   seed)["appearance"]) == 0.0


def test_deterministic_evaluation_and_chunked_rendering():
  model = model_lib.RegNeRF(tiny_config())
  rays = make_rays(50, 9)
  a = model(rays)
  b = model.render_chunked(rays, chunk=16)
  for k in ("rgb", "depth", "acc"):
    np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=1e-6)
  img = {k: v.reshape(5, 10, -1) for k, v in rays.items()}
  c = model.render_chunked(img, chunk=16)
  assert c["rgb"].shape == (5, 10, 3) and c["depth"].shape == (5, 10)
  with pytest.raises(ValueError, match="radii"):
    model({k: v for k, v in rays.items() if k != "radii"})


@pytest.mark.parametrize("n,branches,expected", [
    (1024, 2, [0, 512, 1024]), (1024, 1, [0, 1024]), (1000, 3, [0, 333, 666, 1000]),
    (511, 2, [0, 511]), (512, 2, [0, 256, 512]), (300, 4, [0, 300]),
    (4096, 8, [512 * i for i in range(9)]), (1, 2, [0, 1])])
def test_branch_bounds_cut_nearly_equal_parts_of_a_minimum_size(n, branches,
                                                                expected):
  cuts = renderer.branch_bounds(n, branches)
  assert cuts == expected
  sizes = np.diff(cuts)
  assert len(sizes) == 1 or sizes.min() >= renderer.MIN_BRANCH_RAYS
  assert sizes.max() - sizes.min() <= 1


def test_side_by_side_parts_render_the_same_rays_as_one_piece(monkeypatch):
  model = model_lib.RegNeRF(tiny_config(**{"train.render_chunk": 1024}))
  rays = make_rays(1500, 4)  # a full chunk and a short piece of 476 rays
  branches = [1]
  monkeypatch.setattr(model_lib.machine, "render_branches",
                      lambda setting=0: branches[0])
  one = model.render_chunked(rays)
  branches[0] = 2
  seen = []
  fn = model._render_fn
  object.__setattr__(model, "_compiled_render",
                     lambda parts: seen.append(
                         [int(p["origins"].shape[0]) for p in parts])
                     or fn(parts))
  two = model.render_chunked(rays)
  # 1024 rays in two parts; the 476 left are padded to 1024 and split too.
  assert seen == [[512, 512], [512, 512]]
  for k in ("rgb", "depth", "acc"):
    assert two[k].shape == one[k].shape
    np.testing.assert_allclose(two[k].numpy(), one[k].numpy(), atol=1e-5)


def test_chunked_rendering_of_no_rays_gives_empty_outputs():
  model = model_lib.RegNeRF(tiny_config())
  rays = {k: v[:0].reshape(0, 5, v.shape[-1]) for k, v in make_rays(4, 1).items()}
  out = model.render_chunked(rays)
  assert out["rgb"].shape == (0, 5, 3)
  assert out["depth"].shape == out["acc"].shape == (0, 5)


def test_graph_chunks_in_parts_render_the_same_rays():
  model = model_lib.RegNeRF(tiny_config())
  rays = {k: tf.constant(v) for k, v in make_rays(1500, 5).items()}
  calls = []

  def render(part):
    calls.append(part["origins"].shape[0])
    return model.render_rays(part, training=False, coarse_rgb=False)[-1]

  outs = [tf.function(lambda r, b=b: renderer.render_in_chunks(
      render, r, 1024, branches=b))(rays) for b in (1, 2)]
  assert calls == [1024, 512, 512]  # traced once per part of a chunk
  for k in ("rgb", "depth", "acc"):
    assert outs[1][k].shape == outs[0][k].shape == (1500,) + (
        (3,) if k == "rgb" else ())
    np.testing.assert_allclose(outs[1][k].numpy(), outs[0][k].numpy(),
                               atol=1e-5)


def test_get_config_round_trip():
  model = model_lib.RegNeRF(tiny_config())
  clone = model_lib.RegNeRF.from_config(model.get_config())
  assert clone.config == model.config


def _fit_weights(strategy, cfg, batches, steps):
  model = model_lib.build_model(cfg, strategy=strategy)
  ds = tf.data.Dataset.from_tensor_slices(batches)
  history = model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0).history
  return [v.numpy() for v in model.mlp.weights], history


def test_mirrored_strategy_step_equals_single_device_step():
  devices = tf.config.list_logical_devices("CPU")
  if len(devices) < 2:
    pytest.skip("needs two logical CPU devices (set up in conftest)")
  # No clipping, so that the logged gradient norm reveals any scaling error
  # (Adam's update alone is nearly invariant to the gradient's scale).
  cfg = tiny_config(**{"train.randomized": False, "model.density_noise": 0.0,
                       "train.batch_size": 32, "train.patch_batch_size": 32,
                       "train.grad_clip_value": 0.0,
                       "train.grad_clip_norm": 0.0})
  steps = 3
  per_step = [make_batch(32, 32, seed=s) for s in range(steps)]
  stacked = tf.nest.map_structure(lambda *xs: np.stack(xs), *per_step)
  keras.utils.set_random_seed(0)
  single, h1 = _fit_weights(tf.distribute.get_strategy(), cfg, stacked, steps)
  keras.utils.set_random_seed(0)
  mirrored = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
  double, h2 = _fit_weights(mirrored, cfg, stacked, steps)
  for a, b in zip(single, double):
    np.testing.assert_allclose(a, b, atol=1e-5)
  for key in ("loss", "color_loss", "depth_tv", "grad_norm"):
    assert h1[key][0] == pytest.approx(h2[key][0], rel=1e-5, abs=1e-6)


def test_training_with_the_shipped_flow_prior_leaves_it_unchanged():
  from regnerf_tf import flows
  cfg = tiny_config(**{"reg.appearance_weight": 1e-2, "reg.patch_size": 8,
                       "train.patch_batch_size": 128})
  prior = flows.load_default_prior()
  before = [w.numpy().copy() for w in prior.weights]
  model = model_lib.build_model(cfg, patch_prior=prior)
  assert not any(w is v for w in prior.weights for v in model.weights)
  batch = make_batch(32, 128)
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  logs = model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0).history
  assert np.isfinite(logs["appearance"][0]) and logs["appearance"][0] != 0.0
  for b, w in zip(before, prior.weights):
    np.testing.assert_array_equal(b, w.numpy())
  with pytest.raises(ValueError, match="patch_size"):
    model_lib.RegNeRF(tiny_config(**{"reg.appearance_weight": 1.0}),
                      patch_prior=prior)


def test_micro_batches_give_the_update_of_the_whole_batch():
  # Deterministic sampling, so that only the split differs.
  base = {"train.randomized": False, "model.density_noise": 0.0,
          "train.batch_size": 32, "train.patch_batch_size": 32,
          "reg.patch_size": 4}
  batches = [make_batch(32, 32, seed=s) for s in range(2)]
  stacked = tf.nest.map_structure(lambda *xs: np.stack(xs), *batches)
  results = {}
  for parts in (1, 2):
    cfg = tiny_config(**{**base, "train.micro_batches": parts})
    results[parts] = _fit_weights(tf.distribute.get_strategy(), cfg, stacked, 2)
  (w1, h1), (w2, h2) = results[1], results[2]
  for a, b in zip(w1, w2):
    np.testing.assert_allclose(a, b, atol=2e-6)
  for key in ("loss", "color_loss", "psnr", "psnr_coarse", "depth_tv",
              "grad_norm"):
    assert h1[key][0] == pytest.approx(h2[key][0], rel=1e-4), key


def test_micro_batches_must_divide_the_batch():
  with pytest.raises(ValueError, match="micro_batches"):
    tiny_config(**{"train.micro_batches": 3})
  with pytest.raises(ValueError, match="whole patches"):
    tiny_config(**{"train.micro_batches": 4, "train.batch_size": 64,
                   "train.patch_batch_size": 32})


def test_density_only_skips_colour_but_keeps_density():
  mlp = model_lib.RegNeRF(tiny_config()).mlp
  rng = np.random.default_rng(0)
  means = tf.constant(rng.normal(size=(4, 5, 3)), tf.float32)
  covs = tf.fill([4, 5, 3], 1e-3)
  viewdirs = tf.math.l2_normalize(tf.constant(rng.normal(size=(4, 3)),
                                              tf.float32), -1)
  rgb, density = mlp(means, covs, viewdirs)
  zero_rgb, same_density = mlp(means, covs, viewdirs, density_only=True)
  np.testing.assert_array_equal(density.numpy(), same_density.numpy())
  np.testing.assert_array_equal(zero_rgb.numpy(), np.zeros_like(rgb.numpy()))
  assert float(tf.reduce_max(rgb)) > 0


def test_rendering_skips_coarse_colour_without_changing_the_image():
  model = model_lib.RegNeRF(tiny_config())
  rays = make_rays(40, 11)
  full = model.render_rays(rays)
  lean = model.render_rays(rays, coarse_rgb=False)
  for k in ("rgb", "depth", "acc", "weights", "t_vals"):
    np.testing.assert_array_equal(lean[-1][k].numpy(), full[-1][k].numpy())
  np.testing.assert_array_equal(lean[0]["weights"].numpy(),
                                full[0]["weights"].numpy())
  assert float(tf.reduce_max(full[0]["rgb"])) > 0
  np.testing.assert_array_equal(lean[0]["rgb"].numpy(), 0.0)
  out = model(rays)  # what evaluation and export render
  np.testing.assert_array_equal(out["rgb"].numpy(), full[-1]["rgb"].numpy())


def test_mlp_keeps_the_leading_shape_of_its_samples():
  mlp = model_lib.RegNeRF(tiny_config()).mlp
  rng = np.random.default_rng(3)
  means = tf.constant(rng.normal(size=(2, 3, 4, 3)), tf.float32)
  covs = tf.fill([2, 3, 4, 3], 1e-3)
  viewdirs = tf.math.l2_normalize(tf.constant(rng.normal(size=(2, 3, 3)),
                                              tf.float32), -1)
  rgb, density = mlp(means, covs, viewdirs)
  assert rgb.shape == (2, 3, 4, 3) and density.shape == (2, 3, 4)
  # Each ray's samples depend only on that ray: rendering a sub-batch gives
  # the same values.
  rgb1, density1 = mlp(means[1:, 2:], covs[1:, 2:], viewdirs[1:, 2:])
  np.testing.assert_allclose(rgb1.numpy(), rgb[1:, 2:].numpy(), atol=1e-6)
  np.testing.assert_allclose(density1.numpy(), density[1:, 2:].numpy(),
                             atol=1e-6)


@pytest.mark.parametrize("n,chunk,expected", [
    (469, 32768, 1024),      # a curve view at stride 4: one bucket, not a chunk
    (1024, 32768, 1024), (1025, 32768, 2048), (20000, 32768, 32768),
    (32768, 32768, 32768), (10, 16, 16), (3000, 4096, 4096)])
def test_short_pieces_are_padded_to_the_smallest_bucket(n, chunk, expected):
  assert renderer.padded_chunk(n, chunk) == expected


def test_chunked_rendering_pads_short_pieces_to_a_bucket(monkeypatch):
  model = model_lib.RegNeRF(tiny_config())
  rays = make_rays(50, 9)
  full = model.render_chunked(rays, chunk=64)
  seen = []
  fn = model._render_fn
  object.__setattr__(model, "_compiled_render",
                     lambda parts: seen.append(
                         sum(int(p["origins"].shape[0]) for p in parts))
                     or fn(parts))
  small = model.render_chunked(rays, chunk=4096)  # 50 rays: one short piece
  assert seen == [renderer.padded_chunk(50, 4096)] == [1024]
  for k in ("rgb", "depth", "acc"):
    np.testing.assert_allclose(small[k].numpy(), full[k].numpy(), atol=1e-6)
