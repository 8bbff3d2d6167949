"""The benchmark scripts' own arithmetic: FLOP counts, method configs, the
cheap curve PSNR and the results table."""

import numpy as np
import pytest

from benchmarks import profile, quality, speed
from regnerf_tf import configs, evaluation, model as model_lib, scenes


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


def test_train_flops_count_patch_samples():
  config = configs.get_preset("llff3", **{"train.batch_size": 1024,
                                          "train.patch_batch_size": 4096,
                                          "reg.patch_samples": 0})
  mlp = model_lib.RegNeRF(config).mlp
  colour, density = 2 * _llff3_macs(True), 2 * _llff3_macs(False)
  assert not config.appearance_enabled  # no loss uses the patches' colour
  full = 3 * 2 * 128 * (1024 * colour + 4096 * density)
  assert speed.train_flops_per_step(mlp, config) == full
  half = config.replace(**{"reg.patch_samples": 64,
                           "reg.appearance_weight": 1e-4})
  assert half.appearance_enabled  # the appearance term: patches in colour
  assert speed.train_flops_per_step(mlp, half) == \
      3 * 2 * (128 * 1024 * colour + 64 * 4096 * colour)


def _variant(share_train, share_render):
  return {"preset": "p", "precision": "float32", "xla": "false",
          "step_seconds_median": 1.0, "observed_rays_per_sec": 1.0,
          "patch_rays_per_sec": 4.0, "rays_per_sec": 5.0,
          "render_rays_per_sec": 10.0, "render_fast_rays_per_sec": 20.0,
          "peak_rss_gb": 1.0, "train_share_of_limit": share_train,
          "render_share_of_limit": share_render,
          "mlp_forward_flops_per_sample": 1e6,
          "mlp_forward_flops_per_sample_density_only": 8e5,
          "train_flops_per_step": 1e12, "render_flops_per_ray": 1e8}


def test_speed_table_names_workloads_above_the_matmul_limit():
  report = {"matmul_gflops": {"native": {"float32": 100.0}}, "variants": [
      _variant(0.8, 0.9)]}
  assert "Above the matmul limit" not in speed.table(report)
  report["variants"].append(dict(_variant(1.1, 0.5), xla="true"))
  report["variants"].append(dict(_variant(0.5, 1.2), isa="AVX2",
                                 threads="2:1"))
  text = speed.table(report)
  assert "Above the matmul limit" in text and "p float32 xla=true;" in text
  assert "p float32 xla=false isa=AVX2 threads=2:1" in text
  assert "| p | float32 | false | AVX2 | 2:1 | 1.00 |" in text


def test_speed_skipped_variant_row_and_table():
  skipped = {"preset": "p", "precision": "mixed_bfloat16", "xla": "false",
             "isa": "AVX2", "threads": "default", "skipped": "no bfloat16"}
  assert speed._row(skipped).endswith("skipped (no bfloat16)")
  text = speed.table({"matmul_gflops": {"AVX2": {"float32": 50.0}},
                      "variants": [skipped]})
  assert "| p | mixed_bfloat16 | false | AVX2 | default | skipped |" in text
  assert "isa=AVX2: float32 50 GFLOP/s" in text
  assert "Overrides" not in text
  assert "Overrides: reg.patch_samples=16" in speed.table(
      {"matmul_gflops": {}, "variants": [],
       "overrides": ["reg.patch_samples=16"]})


def test_speed_isa_caps_and_thread_settings(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2 --xla_foo=1")
  assert speed.isa_env("native") == {}
  assert speed.isa_env("avx2") == {
      "ONEDNN_MAX_CPU_ISA": "AVX2",
      "XLA_FLAGS": "--xla_foo=1 --xla_cpu_max_isa=AVX2"}
  with pytest.raises(speed.app.UsageError, match="AVX512_CORE"):
    speed.isa_env("avx3")
  assert speed.parse_threads("default") == (0, 0)
  assert speed.parse_threads("2:1") == (2, 1)
  for bad in ("2", "0:1", "a:b", "1:2:3"):
    with pytest.raises(speed.app.UsageError, match="INTRA:INTER"):
      speed.parse_threads(bad)


def test_speed_cost_table_rows():
  cost = {"cost_preset": "llff3_cpu",
          "renders": [{"rays": 100, "exact_seconds": 2.0, "fast_seconds": 1.0}],
          "steps": [{"observed_rays": 8, "patch_rays": 32,
                     "step_seconds": 0.5}]}
  lines = speed.cost_table(cost)
  assert "| 100 | 2.00 | 1.00 | 50 | 100 |" in lines
  assert "| 8 + 32 | 0.500 | 80 |" in lines
  assert speed.cost_table(None) == []


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
  expected = evaluation.evaluate_views(model, scene.test[:2])["mean_psnr"]
  assert quality.curve_psnr(model, scene.test[:2], stride=1) == \
      pytest.approx(expected, abs=1e-3)
  coarse = quality.curve_psnr(model, scene.test[:2], stride=4)
  assert np.isfinite(coarse) and coarse != pytest.approx(expected, abs=1e-6)


def _row(method, n_views, psnr, curve=(), masked=None):
  row = {"method": method, "label": quality.LABELS[method], "preset": "p",
         "n_views": n_views, "train_views": list(range(n_views)),
         "steps": 20, "psnr": psnr, "ssim": psnr / 40, "lpips": None,
         "curve_views": 3,
         "curve": [{"step": s, "psnr": v} for s, v in curve]}
  if masked is not None:
    row.update(masked_psnr=masked, masked_ssim=0.5)
  return row


def _results(rows):
  return {"scene": "fern", "kind": "llff", "protocol": "long",
          "resolution": [252, 189], "test_views": 3,
          "lpips_status": "LPIPS unavailable", "results": rows}


def test_results_table_reports_the_gain_over_the_baseline():
  table = quality.markdown(_results([
      _row("mipnerf", 3, 15.0, [(10, 14.0), (20, 15.5)]),
      _row("regnerf", 3, 17.5, [(10, 16.0)])]))
  assert ("| RegNeRF (full: + flow prior) | 3 | 20 | 17.50 | +2.50 dB | "
          "0.438 | 16.00 (10) |") in table
  assert "| 20 | 15.50 | – |" in table
  assert "Ablation" not in table and "Data efficiency" not in table


def test_ablation_table_is_relative_to_full_regnerf():
  table = quality.markdown(_results([
      _row("mipnerf", 3, 15.0, masked=12.0),
      _row("regnerf", 3, 18.0, masked=16.0),
      _row("regnerf_noanneal", 3, 17.25, masked=15.0)]))
  part = table.split("### Ablation (3 views)")[1]
  assert "| RegNeRF without annealing | 3 | 20 | 17.25 | -0.75 dB |" in part
  assert "| 15.00 | -1.00 dB |" in part  # masked Δ
  assert "| mip-NeRF (baseline) | 3 | 20 | 15.00 | -3.00 dB |" in part


@pytest.mark.parametrize("points,target,expected", [
    ([(3, 15.0), (6, 18.0), (9, 20.0)], 19.0, 7.5),
    ([(9, 20.0), (3, 15.0), (6, 18.0)], 16.0, 4.0),  # order does not matter
    ([(3, 15.0), (6, 18.0)], 15.0, 3.0),
    ([(3, 15.0), (6, 18.0)], 14.0, 3.0),
    ([(3, 15.0), (6, 18.0)], 18.5, None),
    ([(3, 15.0), (6, 14.0), (9, 17.0)], 16.0, 8.0),  # the first crossing
])
def test_views_to_match_interpolates_linearly(points, target, expected):
  got = quality.views_to_match(points, target)
  assert got == (None if expected is None else pytest.approx(expected))


def test_data_efficiency_needs_two_view_counts():
  rows = [_row("mipnerf", 3, 15.0), _row("regnerf", 3, 18.0)]
  assert quality.data_efficiency(rows) is None
  rows += [_row("mipnerf", 6, 17.0), _row("mipnerf", 9, 19.0)]
  eff = quality.data_efficiency(rows)
  assert eff["views"] == [3, 6, 9]
  assert eff["mipnerf_views_to_match"] == pytest.approx(7.5)
  table = quality.markdown(_results(rows))
  assert "mip-NeRF needs 7.5 views" in table and "150 % more" in table


def test_merge_results_keeps_earlier_rows_and_flattens_means(tmp_path):
  scene = scenes.Scene("fern", "llff",
                       [{"view_index": 1, "image": np.zeros((4, 6, 3))}],
                       [{}, {}])
  def summary(method, n, psnr):
    return {"method": method, "label": method, "preset": "p", "n_views": n,
            "train_views": list(range(n)), "steps": 5,
            "appearance_weight": 0.0, "curve_views": 2, "curve": [],
            "mean": {"psnr": psnr, "ssim": 0.3, "masked_psnr": psnr - 1,
                     "masked_ssim": 0.2}}
  path = str(tmp_path / "results.json")
  first = quality.merge_results(path, scene, [summary("regnerf", 3, 18.0)],
                                "long", 2, "no lpips")
  quality.atomic.write_json(path, first)
  merged = quality.merge_results(
      path, scene, [summary("mipnerf", 3, 15.0), summary("mipnerf", 6, 19.0)],
      "long", 2, "no lpips")
  assert [(r["method"], r["n_views"]) for r in merged["results"]] == [
      ("mipnerf", 3), ("regnerf", 3), ("mipnerf", 6)]
  row = merged["results"][1]
  assert (row["psnr"], row["masked_psnr"], row["lpips"]) == (18.0, 17.0, None)
  assert merged["resolution"] == [6, 4] and merged["test_views"] == 2
  assert merged["mipnerf_views_to_match_regnerf_3view"] == pytest.approx(
      3 + 3 * 3 / 4)


def test_a_results_file_holds_one_variant(tmp_path):
  """Rows made with other --overrides or at another resolution are refused,
  not merged under the same method names; the variant is recorded."""
  from regnerf_tf import errors  # pylint: disable=import-outside-toplevel
  scene = scenes.Scene("fern", "llff",
                       [{"view_index": 1, "image": np.zeros((4, 6, 3))}], [{}])
  def summary(method, psnr):
    return {"method": method, "label": quality.LABELS[method], "preset": "p",
            "n_views": 3, "train_views": [1], "steps": 5,
            "appearance_weight": 0.0, "curve_views": 1, "curve": [],
            "mean": {"psnr": psnr, "ssim": 0.3}}
  variant = quality.variant_overrides(
      ["reg.patch_samples=16", "train.seed=7", "model.num_samples=24"])
  # The seed names a row, not a variant; the rest in a stable order.
  assert variant == {"model.num_samples": 24, "reg.patch_samples": 16}
  path = str(tmp_path / "results.json")
  first = quality.merge_results(path, scene, [summary("regnerf_tv", 16.0)],
                                "long", 4, "ok", overrides=variant)
  assert first["overrides"] == variant
  assert first["results"][0]["overrides"] == variant
  assert ("Overrides of every method's preset: model.num_samples=24, "
          "reg.patch_samples=16") in quality.markdown(first)
  quality.atomic.write_json(path, first)
  # The same variant merges.
  again = quality.merge_results(path, scene, [summary("mipnerf", 14.0)],
                                "long", 4, "ok", overrides=dict(variant))
  assert [r["method"] for r in again["results"]] == ["mipnerf", "regnerf_tv"]
  with pytest.raises(errors.InputError, match=(
      r"overrides model\.num_samples=24, reg\.patch_samples=16, this run's "
      r"with none\..*own --results folder")):
    quality.merge_results(path, scene, [summary("regnerf_tv", 15.0)],
                          "long", 4, "ok")
  bigger = scenes.Scene("fern", "llff",
                        [{"view_index": 1, "image": np.zeros((8, 12, 3))}], [{}])
  with pytest.raises(errors.InputError, match=(
      r"1/4 resolution \(6×4\), this run's at 1/2 \(12×8\)")):
    quality.merge_results(path, bigger,
                          [summary("regnerf_tv", 15.0)], "long", 2, "ok",
                          overrides=variant)
  # A file written before overrides were recorded holds runs without any.
  old = {k: v for k, v in first.items() if k != "overrides"}
  old["results"] = [{k: v for k, v in r.items() if k != "overrides"}
                    for r in first["results"]]
  quality.atomic.write_json(path, old)
  assert quality.merge_results(path, scene, [summary("mipnerf", 14.0)],
                               "long", 4, "ok")["overrides"] == {}
  with pytest.raises(errors.InputError, match="made with overrides none"):
    quality.merge_results(path, scene, [summary("mipnerf", 14.0)],
                          "long", 4, "ok", overrides=variant)


def test_publish_after_each_method_merges_runs_of_separate_invocations(
    tmp_path, monkeypatch):
  """Two invocations, one method each: results.json holds both rows and the
  contact sheet shows both methods' renderings, read from their run folders."""
  import imageio.v3 as iio
  gt = np.full((4, 6, 3), 200, np.uint8)
  scene = scenes.Scene("fern", "llff",
                       [{"view_index": 1, "image": gt}],
                       [{"view_index": 0, "image": gt}])
  output, results_dir = str(tmp_path / "runs"), str(tmp_path / "results")
  for method in ("mipnerf", "regnerf"):
    folder = tmp_path / "runs" / "long" / "fern" / "3view" / method / "eval"
    folder.mkdir(parents=True)
    iio.imwrite(folder / "000_rgb.png", gt)
    iio.imwrite(folder / "000_depth.png", gt[..., 0])
  sheets = []
  real_sheet = quality.plots.contact_sheet
  monkeypatch.setattr(quality.plots, "contact_sheet",
                      lambda *a, methods, **k: sheets.append(list(methods))
                      or real_sheet(*a, methods=methods, **k))
  def summary(method, psnr):
    return {"method": method, "label": quality.LABELS[method], "preset": "p",
            "n_views": 3, "train_views": [1], "steps": 5,
            "appearance_weight": 0.0, "curve_views": 1,
            "curve": [{"step": 5, "psnr": psnr}],
            "mean": {"psnr": psnr, "ssim": 0.3}}
  kwargs = dict(results_dir=results_dir, output=output, protocol="long",
                factor=2, lpips_status="no lpips")
  _, first = quality.publish(scene, summary("mipnerf", 15.0), **kwargs)
  table, second = quality.publish(scene, summary("regnerf", 17.0), **kwargs)
  out = tmp_path / "results" / "long" / "fern"
  rows = quality.json.loads((out / "results.json").read_text())["results"]
  assert [(r["method"], r["psnr"]) for r in rows] == [("mipnerf", 15.0),
                                                      ("regnerf", 17.0)]
  assert "+2.00 dB" in table and (out / "results.md").read_text() == table
  assert str(out / "contact_sheet.png") in first + second
  assert sheets == [["mipnerf"], ["mipnerf", "regnerf"]]


def test_ablation_configs_switch_off_one_component_each():
  full = quality.make_config("regnerf", "dtu", 100, 1e-4)
  noanneal = quality.make_config("regnerf_noanneal", "dtu", 100, 1e-4)
  nodepth = quality.make_config("regnerf_nodepth", "dtu", 100, 1e-4)
  assert full.reg.anneal_steps > 0 and noanneal.reg.anneal_steps == 0
  assert not nodepth.depth_tv_enabled and full.depth_tv_enabled
  for cfg in (noanneal, nodepth):
    assert cfg.reg.appearance_weight == 1e-4
    assert cfg.model == full.model and cfg.train == full.train
  assert noanneal.reg.depth_tv_weight_end == full.reg.depth_tv_weight_end
  assert nodepth.reg.anneal_steps == full.reg.anneal_steps


@pytest.mark.parametrize("kind", ["dtu", "llff"])
def test_optimizer_only_row_is_mipnerf_with_regnerfs_schedule(kind):
  """regnerf_noreg differs from mip-NeRF only in the optimizer settings and
  from full RegNeRF only in the regularisers."""
  noreg = quality.make_config("regnerf_noreg", kind, 100, 1e-4)
  base = quality.make_config("mipnerf", kind, 100, 1e-4)
  full = quality.make_config("regnerf", kind, 100, 1e-4)
  assert not noreg.uses_patches and not noreg.depth_tv_enabled
  assert noreg.reg.anneal_steps == 0 and noreg.reg.appearance_weight == 0.0
  assert noreg.model == base.model == full.model
  schedule = ("grad_clip_norm", "grad_clip_value", "lr_delay_steps",
              "lr_delay_mult")
  for field in schedule:
    assert getattr(noreg.train, field) == getattr(full.train, field), field
  assert any(getattr(noreg.train, f) != getattr(base.train, f)
             for f in schedule)
  same = ("max_steps", "batch_size", "lr_init", "lr_final", "seed")
  for field in same:
    assert getattr(noreg.train, field) == getattr(base.train, field), field
  assert "regnerf_noreg" in quality.ABLATION


def test_view_counts_and_blender_scenes_get_their_data_settings():
  nine = quality.make_config("regnerf", "llff", 100, 1e-4, n_views=9)
  assert nine.data.n_views == 9 and nine.reg.anneal_steps == 0
  six = quality.make_config("regnerf", "llff", 100, 1e-4, n_views=6)
  assert six.reg.anneal_steps > 0
  lego = quality.make_config("mipnerf", "blender", 100, 1e-4)
  assert lego.data.dataset == "blender"
  assert lego.model == quality.make_config("mipnerf", "dtu", 100, 1e-4).model
  with pytest.raises(quality.app.UsageError, match="supported kinds"):
    quality.make_config("mipnerf", "tanks", 100, 1e-4)


def test_protocols_share_one_network_and_differ_in_budget():
  assert quality.PROTOCOLS["long"].steps > 5 * configs.get_preset(
      "llff3_cpu").train.max_steps
  # The cheaper variant differs in the budget only, so its rows compare.
  long, quarter = quality.PROTOCOLS["long"], quality.PROTOCOLS["long_quarter"]
  assert quarter.downsample == long.downsample
  assert quarter.steps < long.steps
  assert quality.PROTOCOLS["long"].curve_views == 0  # every test view


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


def test_result_rows_say_which_renderer_scored_them():
  summary = {"method": "regnerf", "label": quality.LABELS["regnerf"],
             "preset": "p", "n_views": 3, "train_views": [0, 1, 2],
             "steps": 20, "appearance_weight": 0.0, "curve": [],
             "mean": {"psnr": 20.0, "ssim": 0.5}}
  # Summaries written before the fast path existed were scored exactly.
  assert quality.result_row(summary)["renderer"] == "exact"
  summary["renderer"] = {"renderer": "fast", "precision": "bfloat16"}
  assert quality.result_row(summary)["renderer"] == "fast"


def test_speed_overrides_reach_the_config(monkeypatch):
  import types
  monkeypatch.setattr(speed, "FLAGS", types.SimpleNamespace(
      override=["reg.patch_samples=16", "model.precision=float32"],
      batch_size=256, patch_batch_size=1024, micro_batches=2))
  config = speed.config_for("llff3", "mixed_bfloat16", False)
  assert config.reg.patch_samples == 16
  # The benchmark's own flags win over an override of the same field.
  assert config.model.precision == "mixed_bfloat16"
  assert config.train.batch_size == 256 and config.train.micro_batches == 2


def test_a_run_folder_of_another_config_is_refused_not_reported(tmp_path):
  """A finished run must not be taken for a variant's result (nor an
  unfinished one continued with the variant's config)."""
  from regnerf_tf import atomic, errors  # pylint: disable=import-outside-toplevel
  scene = scenes.Scene("scan24", "dtu", [{"view_index": i} for i in range(3)],
                       [])
  settings = {"steps": 40, "curve_every": 20, "curve_views": 0,
              "appearance_weight": 0.0, "overrides": []}
  config = quality.make_config("mipnerf", "dtu", 40, 0.0, n_views=3)
  workdir = tmp_path / "mipnerf"
  workdir.mkdir()
  atomic.write_bytes(str(workdir / "config.json"), config.to_json().encode())
  atomic.write_json(str(workdir / "summary.json"), {"method": "mipnerf",
                                                    "mean": {"psnr": 14.0}})
  # The same config: the finished summary is the result.
  assert quality.run_method("mipnerf", scene, str(tmp_path), None, "",
                            settings)["mean"]["psnr"] == 14.0
  with pytest.raises(errors.InputError, match=(
      r"holds a mipnerf run with another config \(reg\.patch_samples"
      r".*own --output and --results")):
    quality.run_method("mipnerf", scene, str(tmp_path), None, "",
                       dict(settings, overrides=["reg.patch_samples=4"]))
  # Another seed is a run of its own, in its own folder: the default seed's
  # summary is not taken for it.
  seeded = tmp_path / "mipnerf-seed7"
  seeded.mkdir()
  atomic.write_bytes(str(seeded / "config.json"),
                     config.replace(**{"train.seed": 7}).to_json().encode())
  atomic.write_json(str(seeded / "summary.json"), {"method": "mipnerf",
                                                   "mean": {"psnr": 12.0}})
  for how in ({"seed": 7}, {"settings": dict(settings,
                                              overrides=["train.seed=7"])}):
    got = quality.run_method("mipnerf", scene, str(tmp_path), None, "",
                             how.get("settings", settings), how.get("seed"))
    assert (got["mean"]["psnr"], got["seed"], got["run"]) == (
        12.0, 7, "mipnerf-seed7")
  # Another step budget is another config too.
  with pytest.raises(errors.InputError, match=r"train\.max_steps: 40 in the "
                     r"run, 80 now"):
    quality.run_method("mipnerf", scene, str(tmp_path), None, "",
                       dict(settings, steps=80))


def _seed_row(method, seed, psnr, curve, n_views=3, **extra):
  return {"method": method, "label": method, "preset": "p", "seed": seed,
          "run": method, "n_views": n_views, "train_views": [0],
          "steps": 40, "psnr": psnr, "ssim": psnr / 100, "lpips": None,
          "curve": [{"step": s, "psnr": p} for s, p in curve], **extra}


def test_mean_rows_average_each_method_over_its_seeds():
  rows = [_seed_row("mipnerf", 1, 14.0, [(20, 13.0), (40, 14.0)],
                    masked_psnr=15.0),
          _seed_row("regnerf", 1, 16.0, [(20, 15.0)]),
          _seed_row("mipnerf", 7, 12.0, [(20, 11.0), (40, 12.5), (60, 12.0)],
                    masked_psnr=13.0)]
  means = quality.mean_rows(rows)
  assert [r["method"] for r in means] == ["mipnerf", "regnerf"]
  mip, reg = means
  assert (mip["seeds"], mip["psnr_per_seed"]) == ([1, 7], [14.0, 12.0])
  assert mip["psnr"] == pytest.approx(13.0)
  assert mip["masked_psnr"] == pytest.approx(14.0)
  assert mip["ssim"] == pytest.approx(0.13) and mip["lpips"] is None
  # The curve: the mean at the steps both seeds recorded.
  assert mip["curve"] == [{"step": 20, "psnr": pytest.approx(12.0)},
                          {"step": 40, "psnr": pytest.approx(13.25)}]
  assert reg == dict(rows[1], seeds=[1], psnr_per_seed=[16.0])


def test_results_of_two_seeds_report_means_and_each_seed(tmp_path):
  scene = scenes.Scene("scan24", "dtu",
                       [{"view_index": 1, "image": np.zeros((4, 6, 3))}],
                       [{}])
  default = quality.preset_seed("mipnerf", "dtu")
  assert quality.run_name("mipnerf", default, "dtu") == "mipnerf"
  assert quality.run_name("mipnerf", 7, "dtu") == "mipnerf-seed7"
  path = str(tmp_path / "results.json")
  # A row written before seeds were recorded is the presets' seed's row.
  old = {k: v for k, v in _seed_row("mipnerf", None, 13.0, []).items()
         if k not in ("seed", "run")}
  quality.atomic.write_json(path, {"results": [old]})
  def summary(method, seed, psnr):
    return {"method": method, "label": quality.LABELS[method], "preset": "p",
            "seed": seed, "run": quality.run_name(method, seed, "dtu"),
            "n_views": 3, "train_views": [1], "steps": 40,
            "appearance_weight": 0.0, "curve_views": 1,
            "curve": [{"step": 40, "psnr": psnr}],
            "mean": {"psnr": psnr, "ssim": 0.5}}
  merged = quality.merge_results(
      path, scene, [summary("mipnerf", default, 14.0),
                    summary("mipnerf", 7, 12.0),
                    summary("regnerf", default, 16.0),
                    summary("regnerf", 7, 15.0)], "long_quarter", 4, "none")
  assert [(r["method"], r["seed"], r["psnr"]) for r in merged["results"]] == [
      ("mipnerf", default, 14.0), ("mipnerf", 7, 12.0),
      ("regnerf", default, 16.0), ("regnerf", 7, 15.0)]
  assert [(r["method"], r["psnr"]) for r in merged["means"]] == [
      ("mipnerf", 13.0), ("regnerf", 15.5)]
  table = quality.markdown(merged)
  assert "Each row is the mean over the seeds" in table
  assert f"| 15.50 | +2.50 dB |" in table
  assert f"{default}: 16.00, 7: 15.00" in table
