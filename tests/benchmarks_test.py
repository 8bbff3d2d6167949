"""The benchmark scripts' own arithmetic: FLOP counts, method configs, the
cheap curve PSNR and the results table."""

import numpy as np
import pytest

from benchmarks import quality, speed
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


@pytest.mark.parametrize("method,preset,weight", [
    ("mipnerf", "llff3_small_mipnerf", 0.0),
    ("regnerf_tv", "llff3_small", 0.0),
    ("regnerf", "llff3_small", 1e-4),
    ("freenerf", "llff3_small_freenerf", 0.0),
    ("combined", "llff3_small_combined", 1e-4),
])
def test_quality_methods_share_budget_and_seed(method, preset, weight):
  config = quality.make_config(method, "llff", 300, 1e-4)
  assert config.name == preset
  assert config.train.max_steps == 300
  assert config.train.checkpoint_every == 300
  assert config.reg.appearance_weight == weight
  assert config.train.seed == configs.get_preset("llff3_small").train.seed


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
