"""regnerf-eval: renders held-out views of a run and writes metrics + images."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from regnerf_tf import configs, evaluation, lpips_net, metrics, scenes, training


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  scene = scenes.synthetic_scene(height=48, width=64)  # AlexNet LPIPS needs ≥ 48 px
  cfg = configs.get_preset("demo_small", **{
      "model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
      "model.num_samples": 8, "train.max_steps": 2, "train.batch_size": 64,
      "train.patch_batch_size": 64, "train.log_every": 1})
  workdir = tmp_path_factory.mktemp("run")
  training.train(cfg, scene.train, str(workdir), verbose=False)
  return workdir, scene


def test_eval_writes_metrics_and_images(run, tmp_path):
  workdir, scene = run
  model = training.load_run(str(workdir))
  lpips = lpips_net.LPIPS.random("alex", seed=0)
  out = tmp_path / "eval"
  report = evaluation.evaluate_run(model, scene.test[:3], str(out), lpips, "ok")
  saved = json.loads((out / "metrics.json").read_text())
  assert saved == json.loads(json.dumps(report))
  assert saved["ssim_data_range"] == 1.0 and saved["step"] == 2
  per_image = saved["per_image"]
  assert [r["view_index"] for r in per_image] == [
      int(r["view_index"]) for r in scene.test[:3]]
  assert saved["mean"]["psnr"] == pytest.approx(
      np.mean([r["psnr"] for r in per_image]))
  assert saved["mean"]["avg_error"] == pytest.approx(
      np.mean([r["avg_error"] for r in per_image]))
  assert all(r["lpips"] >= 0 for r in per_image)
  for r in per_image:
    for kind in ("rgb", "depth", "acc"):
      image = iio.imread(out / f"{r['view_index']:03d}_{kind}.png")
      assert image.shape[:2] == (48, 64)
  # The saved colour image scores (up to 8-bit rounding) what was reported.
  first = per_image[0]["view_index"]
  rendered = iio.imread(out / f"{first:03d}_rgb.png").astype(np.float32) / 255
  target = scene.test[0]["image"].astype(np.float32) / 255
  assert metrics.psnr(rendered, target) == pytest.approx(per_image[0]["psnr"],
                                                         abs=0.05)


def test_eval_without_lpips_weights_says_why(run, tmp_path):
  workdir, scene = run
  model = training.load_run(str(workdir))
  lpips, status = evaluation.load_lpips(str(tmp_path / "missing.npz"), "vgg")
  assert lpips is None and "weights not found" in status
  report = evaluation.evaluate_run(model, scene.test[:1], str(tmp_path / "e"),
                                 lpips, status, ssim_data_range=2.0)
  assert report["mean"]["lpips"] is None
  assert "LPIPS unavailable" in report["mean"]["lpips_status"]
  assert report["ssim_data_range"] == 2.0
  assert not np.isnan(report["mean"]["psnr"])
