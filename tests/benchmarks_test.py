"""The benchmark scripts' own arithmetic: FLOP counts, method configs, the
cheap curve PSNR and the results table."""

import numpy as np
import pytest

from benchmarks import profile, quality, speed
from regnerf_tf import configs, model as model_lib, scenes, training


def _llff3_macs(colour: bool) -> int:
  """Multiply-accumulates of mip-NeRF's MLP, layer by layer (by hand)."""
  ipe, width, view = 96, 256, 27
  trunk = ipe * width + 4 * width * width + (width + ipe) * width \
      + 2 * width * width  # 8 layers, the input re-enters after the 5th
  density = width * 1
  colour_branch = width * width + (width + view) * 128 + 128 * 3
  return trunk + density + (colour_branch if colour else 0)


def test_flops_per_sample_follow_the_layer_shapes():
  mlp = model_lib.RegNeRF(configs.get_preset("llff3")).mlp
  assert speed.mlp_flops_per_sample(mlp) == 2 * _llff3_macs(True)
  assert speed.mlp_flops_per_sample(mlp, density_only=True) == \
      2 * _llff3_macs(False)
  # A rendered ray: 128 coarse samples without colour, 128 fine with it.
  assert speed.render_flops_per_ray(mlp, configs.get_preset("llff3")) == \
      128 * 2 * (_llff3_macs(False) + _llff3_macs(True))


@pytest.mark.parametrize("method,preset,weight", [
    ("mipnerf", "llff3_cpu_mipnerf", 0.0),
    ("regnerf_tv", "llff3_cpu", 0.0),
    ("regnerf", "llff3_cpu", 1e-4),
    ("freenerf", "llff3_cpu_freenerf", 0.0),
    ("combined", "llff3_cpu_combined", 1e-4),
])
def test_quality_methods_share_budget_and_seed(method, preset, weight):
  config = quality.make_config(method, "llff", 250, 1e-4)
  assert config.name == preset
  assert config.train.max_steps == 250
  assert config.train.checkpoint_every == 250
  assert config.reg.appearance_weight == weight
  assert config.train.seed == configs.get_preset("llff3_cpu").train.seed
  # 0 steps: the protocol preset's own budget.
  default = quality.make_config(method, "llff", 0, 1e-4)
  assert default.train.max_steps == configs.get_preset(preset).train.max_steps


@pytest.mark.parametrize("kind", ["dtu", "llff"])
def test_protocol_presets_differ_only_in_the_regularisers(kind):
  base = configs.get_preset(f"{kind}3_cpu_mipnerf")
  reg = configs.get_preset(f"{kind}3_cpu")
  assert base.model == reg.model  # same network, encoding and samples
  assert base.data == reg.data
  for field in ("max_steps", "batch_size", "lr_init", "lr_final", "seed"):
    assert getattr(base.train, field) == getattr(reg.train, field), field
  assert not base.uses_patches and not base.depth_tv_enabled
  assert base.reg.anneal_steps == 0
  assert reg.uses_patches and reg.depth_tv_enabled and reg.reg.anneal_steps > 0
  assert (reg.model.net_depth, reg.model.net_width) == (6, 128)


def test_curve_psnr_at_stride_one_is_the_full_image_psnr():
  scene = scenes.synthetic_scene(height=12, width=16)
  cfg = configs.get_preset("demo_small", **{"model.net_depth": 2,
                                            "model.net_width": 16,
                                            "model.skip_layer": 0})
  model = model_lib.build_model(cfg)
  expected = training.evaluate_views(model, scene.test[:2])["mean_psnr"]
  assert quality.curve_psnr(model, scene.test[:2], stride=1) == \
      pytest.approx(expected, abs=1e-3)
  coarse = quality.curve_psnr(model, scene.test[:2], stride=4)
  assert np.isfinite(coarse) and coarse != pytest.approx(expected, abs=1e-6)


def test_results_table_reports_the_gain_over_the_baseline():
  scene = scenes.Scene("fern", "llff", [{"view_index": 1}], [{}, {}, {}])
  results = [
      {"method": "mipnerf", "label": "base", "preset": "a",
       "mean": {"psnr": 15.0, "ssim": 0.4},
       "curve": [{"step": 10, "psnr": 14.0}, {"step": 20, "psnr": 15.5}]},
      {"method": "regnerf", "label": "full", "preset": "b",
       "mean": {"psnr": 17.5, "ssim": 0.5},
       "curve": [{"step": 10, "psnr": 16.0}]},
  ]
  table = quality.markdown(scene, results, 20, 3)
  assert "| full | `b` | 17.50 | +2.50 dB | 0.500 | 16.00 (10) |" in table
  assert "| 20 | 15.50 | – |" in table


def test_profile_op_types_come_from_tensorflow_op_events():
  assert profile.op_type("mlp/dense_1/MatMul:_MklMatMul") == "_MklMatMul"
  assert profile.op_type("StatefulPartitionedCall/a/mul_1:Mul") == "Mul"
  assert profile.op_type("ExecutorState::Process") is None
  assert profile.op_type("KernelAndDeviceFunc::Run") is None
  assert profile.op_type("Iterator::Root::Prefetch") is None
  assert profile.op_type("no op here") is None


def test_profile_self_time_subtracts_nested_events():
  # parent [0, 100) holds a [10, 30) and b [40, 90), b holds c [50, 60);
  # d [100, 105) follows on the same thread.
  events = [("parent", 0, 100), ("b", 40, 50), ("a", 10, 20), ("c", 50, 10),
            ("d", 100, 5)]
  got = dict(profile.self_times(events))
  assert got == {"parent": 30, "a": 20, "b": 40, "c": 10, "d": 5}
  assert sum(got.values()) == 105  # the thread's busy time, counted once
