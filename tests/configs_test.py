"""Tests of regnerf_tf.configs: presets carry the reference values; validation."""

import json

import pytest

from regnerf_tf import configs, errors


def test_release_presets_hold_reference_values():
  dtu3 = configs.get_preset("dtu3")
  assert dtu3.train.max_steps == 43945
  assert configs.get_preset("dtu6").train.max_steps == 87891
  assert configs.get_preset("dtu9").train.max_steps == 131836
  assert configs.get_preset("llff3").train.max_steps == 69768
  assert configs.get_preset("llff6").train.max_steps == 139535
  assert configs.get_preset("llff9").train.max_steps == 209303
  assert (dtu3.data.dataset, dtu3.model.ray_shape) == ("dtu", "cone")
  assert (dtu3.reg.anneal_steps, dtu3.reg.anneal_start_fraction,
          dtu3.reg.anneal_mid_fraction) == (256, 0.5, 0.5)
  assert configs.get_preset("dtu9").reg.anneal_steps == 0
  llff3 = configs.get_preset("llff3")
  assert llff3.data.dataset == "llff"
  assert llff3.model.ray_shape == "cylinder"
  assert (llff3.reg.anneal_steps, llff3.reg.anneal_start_fraction,
          llff3.reg.anneal_mid_fraction) == (512, 1e-4, 1.0)
  assert configs.get_preset("llff9").reg.anneal_steps == 0
  for cfg in (dtu3, llff3):
    t, r, m = cfg.train, cfg.reg, cfg.model
    assert (t.lr_init, t.lr_final, t.lr_delay_steps, t.lr_delay_mult) == (
        2e-3, 2e-5, 512, 0.01)
    assert (t.grad_clip_value, t.grad_clip_norm) == (0.1, 0.1)
    assert (t.batch_size, t.patch_batch_size, r.patch_size) == (4096, 4096, 8)
    assert (r.depth_tv_weight_start, r.depth_tv_weight_end,
            r.depth_tv_decay_steps, r.coarse_loss_mult) == (400.0, 0.1, 512, 0.1)
    assert (m.num_samples, m.num_levels, m.density_noise, m.density_bias) == (
        128, 2, 1.0, -1.0)
    assert t.n_random_poses == 10000 and t.seed == 20200823
  # Patch rays with half the samples (RESULTS.md, "Cheaper patch rays"), the
  # one departure from the release's values besides the corrected quirks.
  for name in ("dtu3", "dtu6", "dtu9", "llff3", "llff6", "llff9"):
    cfg = configs.get_preset(name)
    assert cfg.reg.patch_samples * 2 == cfg.model.num_samples == 128
  for name in ("llff3_cpu", "dtu3_cpu", "llff3_small", "demo_small"):
    assert configs.get_preset(name).reg.patch_samples == 0


def test_patch_samples_above_the_model_samples_are_refused():
  with pytest.raises(errors.ConfigError) as e:
    configs.get_preset("llff3", **{"model.num_samples": 32})
  message = str(e.value)
  assert "patch_samples" in message and "model.num_samples = 32" in message
  assert "reg.patch_samples=16" in message and "Received: patch_samples=64" in message
  cfg = configs.get_preset("llff3", **{"model.num_samples": 32,
                                       "reg.patch_samples": 16})
  assert (cfg.model.num_samples, cfg.reg.patch_samples) == (32, 16)
  assert configs.get_preset("llff3", **{"model.num_samples": 32,
                                        "reg.patch_samples": 0}).reg.patch_samples == 0


def test_baselines_turn_regularisers_off():
  for name in ("dtu3_mipnerf", "llff3_mipnerf", "dtu3_small_mipnerf"):
    cfg = configs.get_preset(name)
    assert not cfg.uses_patches and cfg.reg.anneal_steps == 0
    assert cfg.train.grad_clip_norm == 0 and cfg.train.lr_delay_steps == 0
  assert configs.get_preset("dtu3_mipnerf").train.lr_init == 5e-4


def test_release_compat_switches_the_quirks():
  llff = configs.get_preset("llff3")
  compat = configs.get_preset("llff3", release_compat=True)
  assert llff.depth_tv_enabled and not compat.depth_tv_enabled
  assert llff.effective_n_random_poses == 10000
  assert compat.effective_n_random_poses == 1
  assert llff.density_noise_mode == "per_sample"
  assert compat.density_noise_mode == "scalar"
  assert configs.get_preset("dtu3", release_compat=True).depth_tv_enabled


def test_overrides_and_json_round_trip():
  cfg = configs.get_preset("dtu3", **{"train.batch_size": 1024,
                                      "model.num_samples": 64})
  assert cfg.train.batch_size == 1024 and cfg.model.num_samples == 64
  assert cfg.train.max_steps == 43945  # untouched fields kept
  again = configs.Config.from_json(cfg.to_json())
  assert again == cfg
  json.loads(cfg.to_json())
  assert configs.parse_override("train.lr_init=1e-3") == ("train.lr_init", 1e-3)
  assert configs.parse_override("model.ray_shape=cylinder") == (
      "model.ray_shape", "cylinder")
  assert configs.parse_override("release_compat=true") == ("release_compat", True)


@pytest.mark.parametrize("override,match", [
    ({"train.batch_size": 0}, "batch_size"),
    ({"train.batch_size": "many"}, "batch_size"),
    ({"model.ray_shape": "sphere"}, "ray_shape"),
    ({"data.n_views": 0}, "n_views"),
    ({"reg.anneal_start_fraction": 1.5}, "anneal_start_fraction"),
    ({"train.patch_batch_size": 100}, "patch_batch_size"),
    ({"model.skip_layer": 9}, "skip_layer"),
    ({"train.bogus": 1}, "bogus"),
    ({"nonsense": 1}, "nonsense"),
    ({"model.precision": "float16"}, "precision"),
])
def test_invalid_values_name_the_field(override, match):
  with pytest.raises(ValueError, match=match):
    configs.get_preset("dtu3", **override)


def test_unknown_preset():
  with pytest.raises(ValueError, match="dtu3"):
    configs.get_preset("dtu4")


@pytest.mark.parametrize("key", sorted(configs.REMOVED_FIELDS))
def test_removed_fields_are_refused_with_the_reason(key):
  """Fields that were checked and never read: setting one now is an error."""
  section, field = key.split(".")
  with pytest.raises(errors.ConfigError) as e:
    configs.parse_override(f"{key}=1")
  assert f"'{key}' was removed" in str(e.value)
  assert configs.REMOVED_FIELDS[key] in str(e.value)
  with pytest.raises(errors.ConfigError, match="was removed"):
    configs.get_preset("dtu3", **{key: 1})
  with pytest.raises(errors.ConfigError, match="was removed"):
    configs.Config.from_dict({section: {field: 1}})


def test_configs_saved_by_earlier_versions_still_load():
  """A run folder's config.json with the removed fields reads as the same
  config (they had no effect), and a Keras model config too."""
  config = configs.get_preset("llff3_small")
  old = config.to_dict()
  old["data"].update({"near": 0.0, "far": 1.0, "ndc": True, "factor": 8})
  assert configs.Config.from_json(json.dumps(old)) == config
  assert configs.Config.from_saved(old) == config
  assert "near" in old["data"]  # the caller's dict is left as it was
