"""FreeNeRF's frequency and occlusion regularisers, their logs and presets."""

import dataclasses
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import configs, layers, losses, mip, model as model_lib
from regnerf_tf import data, optimization, scenes, training
from regnerf_tf.cli import train as train_cli
from tests import training_test
from tests.model_test import make_batch, make_rays
from tests.render_cli_test import _run_cli

NEW_PRESETS = ("dtu3_freenerf", "llff3_freenerf", "dtu3_combined",
               "llff3_combined", "dtu3_small_freenerf", "llff3_small_freenerf",
               "dtu3_small_combined", "llff3_small_combined",
               "dtu3_cpu_freenerf", "llff3_cpu_freenerf", "dtu3_cpu_combined",
               "llff3_cpu_combined")
TINY = {"model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
        "model.net_width_viewdirs": 8, "model.num_samples": 8,
        "model.max_deg_point": 6, "train.batch_size": 64,
        "train.log_every": 1, "train.checkpoint_every": 2,
        "train.max_steps": 6}


def reference_mask(length, t, end):
  """The rule, written out feature by feature over [identity, sin, cos]."""
  if t >= end:
    return np.ones(length, np.float32)
  identity = length % 6 == 3
  degrees = (length - 3 * identity) // 6
  groups = degrees + identity
  ptr = min(groups * t / end + 1, groups)
  whole = int(ptr)
  value = np.zeros(groups)
  value[:whole] = 1.0
  if whole < groups:
    value[whole] = ptr - whole
  value = np.clip(value, 1e-8, 1 - 1e-8)
  mask = np.empty(length)
  for f in range(length):
    if identity and f < 3:
      mask[f] = value[0]
    else:
      j = f - 3 * identity  # index into the sin block, then the cos block
      mask[f] = value[(j % (3 * degrees)) // 3 + identity]
  return mask.astype(np.float32)


def tiny_freenerf(name="dtu3_small_freenerf", **extra):
  return configs.get_preset(name, **{**TINY, **extra})


# --- the frequency mask -------------------------------------------------------

@pytest.mark.parametrize("length", [27, 99, 12])
def test_mask_values_start_middle_end_and_monotonic(length):
  end = 8
  for t in (0, 1, 4, 7, 8, 50):  # start, middle (t = T/2), end and after
    np.testing.assert_allclose(mip.freq_reg_mask(length, t, end).numpy(),
                               reference_mask(length, t, end), rtol=1e-6,
                               atol=0, err_msg=f"t={t}")
  start = mip.freq_reg_mask(length, 0, end).numpy()
  if length % 6 == 3:  # identity only
    np.testing.assert_array_equal(start[:3], 1.0)
    np.testing.assert_array_equal(start[3:], np.float32(1e-8))
  np.testing.assert_array_equal(mip.freq_reg_mask(length, 8, end).numpy(), 1.0)
  masks = np.stack([mip.freq_reg_mask(length, t, end).numpy()
                    for t in range(12)])
  assert np.all(np.diff(masks, axis=0) >= 0)
  # T = 0 (frequency regularisation off): always all ones.
  np.testing.assert_array_equal(mip.freq_reg_mask(length, 0, 0).numpy(), 1.0)
  with pytest.raises(ValueError, match="multiple of 3"):
    mip.freq_reg_mask(10, 0, 8)


def _spy(monkeypatch, layer, samples=(4, 5)):
  """Records the inputs of ``layer``'s calls, as [*samples, features] (the
  MLP's layers see the samples flattened to rows)."""
  seen = []
  original = layer.call

  def call(inputs, *args, **kwargs):
    seen.append(inputs.numpy().reshape(*samples, -1))
    return original(inputs, *args, **kwargs)

  monkeypatch.setattr(layer, "call", call)
  return seen


def test_first_dense_layer_sees_only_open_frequencies(monkeypatch):
  mlp = layers.MipNerfMLP(net_depth=3, net_width=8, skip_layer=0,
                          net_width_viewdirs=4, max_deg_point=4, deg_view=2,
                          append_mean_to_ipe=True, freq_reg_end=10)
  assert mlp.point_features == 27 and mlp.view_features == 15
  rng = np.random.default_rng(0)
  means = tf.constant(rng.normal(size=(4, 5, 3)), tf.float32)
  covs = tf.constant(rng.uniform(0, 0.01, size=(4, 5, 3)), tf.float32)
  viewdirs = tf.constant(rng.normal(size=(4, 3)), tf.float32)
  trunk = _spy(monkeypatch, mlp.trunk[0])
  skip = _spy(monkeypatch, mlp.trunk[1])
  view = _spy(monkeypatch, mlp.view_layers[0])
  full = mip.integrated_pos_enc(means, covs, 0, 4).numpy()  # 96-style, no mean
  deg0 = mip.integrated_pos_enc(means, covs, 0, 1).numpy()  # sin, cos of l = 0
  view_full = mip.pos_enc(viewdirs, 0, 2).numpy()

  mlp(means, covs, viewdirs, step=tf.constant(0, tf.int64))
  x = trunk[-1]
  np.testing.assert_allclose(x[..., :3], means.numpy())
  assert np.abs(x[..., 3:]).max() <= 1e-8 * np.abs(full).max()
  np.testing.assert_array_equal(skip[-1][..., -27:], x)  # the skip input too
  v = view[-1][..., -15:]
  np.testing.assert_allclose(v[:, 0, :3], viewdirs.numpy())
  assert np.abs(v[..., 3:]).max() <= 1e-8

  # Step 2 of 10: point groups 5·2/10 + 1 = 2 → identity and degree 0 open;
  # view groups 3·2/10 + 1 = 1.6 → identity open, degree 0 at 0.6.
  mlp(means, covs, viewdirs, step=tf.constant(2, tf.int64))
  x = trunk[-1]
  np.testing.assert_allclose(x[..., 3:6], deg0[..., :3], rtol=1e-6)  # sin l=0
  np.testing.assert_allclose(x[..., 15:18], deg0[..., 3:], rtol=1e-6)  # cos
  closed = np.concatenate([x[..., 6:15], x[..., 18:]], -1)
  assert np.abs(closed).max() <= 1e-8
  v = view[-1][:, 0, -15:]
  np.testing.assert_allclose(v[:, :3], viewdirs.numpy())
  np.testing.assert_allclose(v[:, 3:6], 0.6 * view_full[:, 3:6], rtol=1e-5)
  np.testing.assert_allclose(v[:, 9:12], 0.6 * view_full[:, 9:12], rtol=1e-5)
  assert np.abs(v[:, 6:9]).max() <= 1e-8 and np.abs(v[:, 12:]).max() <= 1e-8

  # No step (evaluation) and t >= T: the unmasked encoding, the same outputs.
  plain = mlp(means, covs, viewdirs)
  np.testing.assert_allclose(trunk[-1][..., 3:], full)
  late = mlp(means, covs, viewdirs, step=tf.constant(10, tf.int64))
  for a, b in zip(plain, late):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_mlp_config_round_trip_and_mean_changes_only_the_input():
  kwargs = dict(net_depth=2, net_width=8, skip_layer=0, net_width_viewdirs=4)
  mlp = layers.MipNerfMLP(append_mean_to_ipe=True, freq_reg_end=7, **kwargs)
  mlp.build()
  config = mlp.get_config()
  assert config["append_mean_to_ipe"] and config["freq_reg_end"] == 7
  clone = layers.MipNerfMLP.from_config(config)
  assert clone.get_config() == config
  assert mlp.trunk[0].kernel.shape == (99, 8)
  assert mlp.trunk[1].kernel.shape == (8 + 99, 8)
  plain = layers.MipNerfMLP(**kwargs)
  plain.build()
  assert plain.trunk[0].kernel.shape == (96, 8)
  assert not plain.get_config()["append_mean_to_ipe"]
  assert layers.IntegratedPositionalEncoding(0, 16, append_identity=True
                                             ).compute_output_shape(
                                                 (2, 3)) == (2, 99)
  with pytest.raises(ValueError, match="freq_reg_end"):
    layers.MipNerfMLP(freq_reg_end=-1, **kwargs)


def test_model_renders_unmasked_at_evaluation_and_after_the_end():
  cfg = tiny_freenerf(**{"train.randomized": False,
                         "model.density_noise": 0.0})
  model = model_lib.RegNeRF(cfg)
  rays = make_rays(16, 3)
  early = tf.constant(1, tf.int64)
  evaluation = model.render_rays(rays, training=False, step=early)[-1]["rgb"]
  np.testing.assert_array_equal(evaluation.numpy(), model(rays)["rgb"].numpy())
  masked = model.render_rays(rays, training=True, step=early)[-1]["rgb"]
  assert not np.allclose(masked.numpy(), evaluation.numpy())
  end = tf.constant(cfg.freq_reg_end_step, tf.int64)
  after = model.render_rays(rays, training=True, step=end)[-1]["rgb"]
  np.testing.assert_array_equal(after.numpy(), evaluation.numpy())


def test_logged_mask_fraction_follows_optimizer_iterations():
  cfg = tiny_freenerf(**{"train.max_steps": 100})  # T = 90
  model = model_lib.build_model(cfg)
  ds = tf.data.Dataset.from_tensors(make_batch(64, 0)).repeat()
  logs = model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0).history
  length = model.mlp.point_features
  assert logs["freq_mask_fraction"][0] == pytest.approx(
      reference_mask(length, 1, 90).mean(), rel=1e-5)
  model.optimizer.iterations.assign(44)  # as after a restore: next is step 45
  logs = model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0).history
  assert logs["freq_mask_fraction"][0] == pytest.approx(
      reference_mask(length, 45, 90).mean(), rel=1e-5)
  assert 0 < logs["occlusion"][0] and np.isfinite(logs["loss"][0])


# --- the occlusion term -------------------------------------------------------

def test_occlusion_loss_closed_form_and_background_prior():
  density = np.zeros((2, 8), np.float32)
  density[:, :5] = 1.0  # 5 dense samples in front of each camera
  occ = lambda *a, **k: float(losses.occlusion_loss(density, *a, **k))
  assert occ(None, 3) == pytest.approx(2 * 3 / 16)
  assert occ(None, 0) == 0.0
  assert occ(None, 20) == pytest.approx(2 * 5 / 16)
  rgb = np.full((2, 8, 3), 0.5, np.float32)
  rgb[0, 3] = 1.0  # white, dense, within both ranges: counted
  rgb[0, 6] = 0.0  # black but empty: adds nothing
  rgb[1, 4] = 0.005  # black and dense: counted only if wb_range > 4
  rgb[1, 1] = 1.0  # white but already within K: counted once
  rgb[1, 2] = [0.98, 0.99, 1.0]  # channel mean 0.99, not > 0.99
  assert occ(rgb, 3, True, 4) == pytest.approx((4 + 3) / 16)
  assert occ(rgb, 3, True, 15) == pytest.approx((4 + 4) / 16)
  assert occ(rgb, 3, False, 15) == pytest.approx(6 / 16)
  with pytest.raises(ValueError, match="rgb"):
    losses.occlusion_loss(density, None, 3, True, 15)
  d = tf.Variable(density)
  c = tf.Variable(rgb)
  with tf.GradientTape(persistent=True) as tape:
    value = losses.occlusion_loss(d, c, 3, True, 15)
  expected = np.zeros((2, 8), np.float32)
  expected[:, :3] = 1.0
  expected[0, 3] = expected[1, 4] = 1.0
  expected[0, 6] = 1.0  # the mask, not the density, decides the gradient
  np.testing.assert_allclose(tape.gradient(value, d).numpy(), expected / 16)
  assert tape.gradient(value, c) is None


# --- training: logs, TensorBoard, resume --------------------------------------

@pytest.fixture(scope="module")
def scene():
  return scenes.synthetic_scene(height=24, width=32)


def _capture_weights(monkeypatch, before_step, interrupt_at=None):
  """Patches fit: records the MLP weights before each step (1-based)."""
  import keras  # pylint: disable=import-outside-toplevel

  class Capture(keras.callbacks.Callback):

    def on_train_batch_begin(self, batch, logs=None):
      step = training.current_step(self.model) + 1
      before_step[step] = [w.numpy() for w in self.model.mlp.weights]

  original = keras.Model.fit

  def fit(self, *args, **kwargs):
    extra = [Capture()]
    if interrupt_at:
      extra.append(training_test._Interrupt(interrupt_at))
    kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + extra
    return original(self, *args, **kwargs)

  monkeypatch.setattr(keras.Model, "fit", fit)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, scene):
  cfg = tiny_freenerf()
  workdir = str(tmp_path_factory.mktemp("full"))
  weights = {}
  with pytest.MonkeyPatch.context() as mp:
    _capture_weights(mp, weights)
    training.train(cfg, scene.train, workdir, verbose=False)
  return cfg, workdir, weights


def test_both_terms_reach_tensorboard_with_the_expected_values(full_run, scene):
  cfg, workdir, weights = full_run
  assert cfg.freq_reg_end_step == 5  # ⌊0.9 · 6⌋
  logged = training_test.tensorboard_scalars(workdir)
  model = model_lib.RegNeRF(cfg)
  length = model.mlp.point_features
  for step in range(1, 7):
    assert logged["freq_mask_fraction"][step] == pytest.approx(
        reference_mask(length, step, 5).mean(), rel=1e-5)
    # The occlusion term recomputed from the weights before the step, the
    # step's batch and its seed.
    model.mlp.set_weights(weights[step])
    batch = next(iter(data.training_stream(scene.train, cfg,
                                           start_step=step - 1)))
    terms = model.compute_losses(batch, tf.constant(step, tf.int64),
                                 optimization.step_seed(
                                     model.config.train.seed, step, 0))
    assert logged["occlusion"][step] == pytest.approx(
        float(terms["occlusion"]), rel=1e-4)
    assert logged["loss"][step] == pytest.approx(float(terms["loss"]),
                                                 rel=1e-4)
  assert logged["freq_mask_fraction"][1] < logged["freq_mask_fraction"][4] < 1
  assert logged["freq_mask_fraction"][5] == 1.0
  assert min(logged["occlusion"].values()) > 0


def test_resuming_mid_schedule_gives_the_same_mask(full_run, scene, tmp_path,
                                                   monkeypatch):
  cfg, reference, _ = full_run
  work = str(tmp_path)
  _capture_weights(monkeypatch, {}, interrupt_at=3)
  with pytest.raises(KeyboardInterrupt):
    training.train(cfg, scene.train, work, verbose=False)
  monkeypatch.undo()
  assert int(training_test.checkpoint_arrays(work)["step"]) == 2
  training.train(cfg, scene.train, work, verbose=False)
  want = training_test.tensorboard_scalars(reference)
  got = training_test.tensorboard_scalars(work)
  for step in range(3, 7):  # the steps after the restore
    for tag in ("freq_mask_fraction", "occlusion"):
      assert got[tag][step] == pytest.approx(want[tag][step], rel=1e-4), (
          tag, step)


# --- presets and the CLI ------------------------------------------------------

def test_presets_hold_freenerf_values_and_leave_the_others_alone():
  for name in configs.preset_names():
    if name in NEW_PRESETS:
      continue
    cfg = configs.get_preset(name)
    assert not cfg.reg.freq_reg and cfg.reg.occlusion_weight == 0
    assert not cfg.model.append_mean_to_ipe and cfg.freq_reg_end_step == 0
  dtu, llff = (configs.get_preset(f"{d}3_freenerf") for d in ("dtu", "llff"))
  assert (dtu.freq_reg_end_step, llff.freq_reg_end_step) == (39550, 62791)
  for cfg, k, wb in ((dtu, 10, True), (llff, 20, False)):
    base = configs.get_preset(cfg.name.replace("_freenerf", ""))
    assert cfg.model.append_mean_to_ipe and cfg.reg.freq_reg
    assert (cfg.reg.occlusion_weight, cfg.reg.occlusion_range,
            cfg.reg.occlusion_wb_prior) == (0.01, k, wb)
    assert not cfg.uses_patches and cfg.reg.anneal_steps == 0
    assert cfg.train == dataclasses.replace(base.train, patch_batch_size=0)
    combined = configs.get_preset(cfg.name.replace("freenerf", "combined"))
    assert combined.depth_tv_enabled and combined.appearance_enabled
    assert combined.reg.appearance_weight == 1e-4
    assert combined.reg.anneal_steps == base.reg.anneal_steps
    assert combined.train == base.train
    assert (combined.reg.occlusion_range, combined.reg.freq_reg) == (k, True)
  small, small_base = (configs.get_preset(n) for n in ("dtu3_small_combined",
                                                       "dtu3_small"))
  assert small.model == dataclasses.replace(small_base.model,
                                            append_mean_to_ipe=True)
  assert small.train == small_base.train and small.appearance_enabled
  off = configs.get_preset("dtu3_combined", **{"reg.freq_reg": False,
                                               "reg.occlusion_weight": 0.0})
  model = model_lib.RegNeRF(off.replace(**TINY,
                                        **{"reg.appearance_weight": 0.0}))
  assert "occlusion" not in model._trackers
  assert "freq_mask_fraction" not in model._trackers


@pytest.mark.parametrize("override,match", [
    ({"reg.freq_reg_end_fraction": 0.0}, "freq_reg_end_fraction"),
    ({"reg.freq_reg_end_fraction": 1.5}, "freq_reg_end_fraction"),
    ({"reg.occlusion_weight": -0.01}, "occlusion_weight"),
    ({"reg.occlusion_range": -1}, "occlusion_range"),
    ({"reg.occlusion_wb_range": -1}, "occlusion_wb_range"),
    ({"reg.occlusion_wb_prior": 1}, "occlusion_wb_prior"),
    ({"model.append_mean_to_ipe": "yes"}, "append_mean_to_ipe"),
])
def test_invalid_freenerf_fields_name_the_field(override, match):
  with pytest.raises(ValueError, match=match):
    configs.get_preset("dtu3_freenerf", **override)


CLI_OVERRIDES = ["model.net_depth=2", "model.net_width=16",
                 "model.skip_layer=0", "model.net_width_viewdirs=8",
                 "model.num_samples=8", "model.max_deg_point=4",
                 "train.batch_size=64", "train.n_random_poses=16"]


@pytest.mark.large
@pytest.mark.parametrize("preset", NEW_PRESETS)
def test_new_presets_train_two_steps_from_the_cli(preset, monkeypatch):
  trained = []
  original = training.train

  def train(*args, **kwargs):
    trained.append(original(*args, **kwargs))
    return trained[-1]

  monkeypatch.setattr(training, "train", train)
  overrides = list(CLI_OVERRIDES)
  if "combined" in preset:  # the shipped 8×8 prior: one patch per step
    overrides.append("train.patch_batch_size=64")
  if preset.startswith("llff"):  # a forward-facing preset needs an LLFF scene
    fern = pathlib.Path(__file__).resolve().parents[1].parent / (
        "shared/data/llff/fern")
    if not fern.is_dir():
      pytest.skip(f"{preset} needs an LLFF scene; shared fern not at {fern}")
    scene = [f"--scene_dir={fern}"]
  else:
    scene = ["--synthetic"]
  argv = [f"--preset={preset}", *scene, "--steps=2", "--quiet"] + [
      f"--override={o}" for o in overrides]
  assert _run_cli(train_cli, argv) == 0
  (model,) = trained
  assert training.current_step(model) == 2
  assert model.config.name == preset
  assert {"occlusion", "freq_mask_fraction"} <= set(model._trackers)
  if "combined" in preset:
    assert model.patch_prior is not None  # the CLI loaded the default prior

