"""Tests for regnerf-render (and regnerf-export) on a tiny trained run."""

from __future__ import annotations

import json
import os

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags

from regnerf_tf import configs, export, fast_render, scenes, training, video
from regnerf_tf import rays as rays_lib
from regnerf_tf.cli import export as export_cli
from regnerf_tf.cli import render as render_cli

FLAGS = flags.FLAGS
HEIGHT, WIDTH = 24, 32


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  cfg = configs.get_preset("demo_small", **{
      "model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
      "model.num_samples": 8, "train.max_steps": 2, "train.batch_size": 64,
      "train.patch_batch_size": 64, "train.render_chunk": 256})
  workdir = str(tmp_path_factory.mktemp("run"))
  scene = scenes.synthetic_scene(height=HEIGHT, width=WIDTH)
  training.train(cfg, scene.train, workdir, verbose=False)
  return workdir


def _run_cli(module, argv):
  """Defines ``module``'s flags, parses ``argv``, runs main, removes flags."""
  before = set(FLAGS)
  module.define_flags()
  added = set(FLAGS) - before
  try:
    FLAGS(["prog"] + argv)
    return module.main([])
  finally:
    FLAGS.unparse_flags()
    for name in added:
      delattr(FLAGS, name)


def _gif_frames(path):
  return iio.imread(path, index=None)


def test_render_cli_writes_gif(run_dir, tmp_path):
  output = str(tmp_path / "video.gif")
  assert _run_cli(render_cli, [
      f"--workdir={run_dir}", f"--output={output}", "--synthetic",
      "--frames=4", "--scale=0.25", "--chunk=128", "--quiet"]) == 0
  frames = _gif_frames(output)
  # synthetic_scene() is 60×80; ×0.25 → 15×20, colour | depth → 15×40,
  # padded to an even height.
  assert frames.shape[:3] == (4, 16, 40)
  assert sorted(os.listdir(tmp_path)) == ["video.gif"]


def test_render_video_mp4_and_json_path(run_dir, tmp_path):
  pytest.importorskip("imageio_ffmpeg")
  model = training.load_run(run_dir)
  scene = scenes.synthetic_scene(height=HEIGHT, width=WIDTH)
  poses = np.asarray(scene.test[0]["scene_camtoworlds"][:3], np.float64)
  path_file = tmp_path / "path.json"
  path_file.write_text(json.dumps(poses.tolist()))
  output = str(tmp_path / "video.mp4")
  result = video.render_video(model, scene, output, path=str(path_file),
                                   chunk=200, verbose=False)
  assert result["frames"] == 3
  reader = imageio.get_reader(output)
  try:
    assert reader.count_frames() == 3
    assert reader.get_meta_data()["size"] == (2 * WIDTH, HEIGHT)
  finally:
    reader.close()


def test_render_cli_rejects_bad_arguments(run_dir, tmp_path):
  with pytest.raises(app.UsageError, match="exactly one of"):
    _run_cli(render_cli, [f"--workdir={run_dir}",
                          f"--output={tmp_path / 'v.gif'}"])
  with pytest.raises(app.UsageError, match=".mp4"):
    _run_cli(render_cli, [f"--workdir={run_dir}", "--synthetic",
                          f"--output={tmp_path / 'v.avi'}"])
  with pytest.raises(app.UsageError, match="JSON file"):
    _run_cli(render_cli, [f"--workdir={run_dir}", "--synthetic",
                          f"--output={tmp_path / 'v.gif'}",
                          f"--path={tmp_path / 'missing.json'}"])


def test_colorize_and_depth_range():
  colours = video.colorize(np.array([0.0, 0.5, 1.0, -3.0, 7.0, np.nan]))
  assert colours.dtype == np.uint8 and colours.shape == (6, 3)
  np.testing.assert_array_equal(colours[3], colours[0])  # clipped below
  np.testing.assert_array_equal(colours[4], colours[2])  # clipped above
  assert colours[2].sum() > colours[0].sum()  # dark → bright
  lo, hi = video.depth_range([np.linspace(0, 1, 101), np.array([np.inf])])
  assert lo == pytest.approx(0.01) and hi == pytest.approx(0.99)
  assert video.depth_range([np.full(4, 2.0)])[1] > 2.0


@pytest.mark.parametrize("exact", [False, True])
def test_export_cli(run_dir, tmp_path, exact):
  output = str(tmp_path / "exported")
  assert _run_cli(export_cli, [f"--workdir={run_dir}", f"--output={output}",
                               "--synthetic", "--chunk=256", "--quiet",
                               "--precision=float32"][:5 if exact else 6]
                  + (["--exact"] if exact else [])) == 0
  loaded = tf.saved_model.load(output)
  scene = scenes.synthetic_scene(height=HEIGHT, width=WIDTH)
  record = scene.test[0]
  out = loaded.signatures["render_image"](
      camtoworld=tf.constant(record["camtoworld"], tf.float32),
      intrinsics=tf.constant(record["intrinsics"], tf.float32),
      height=tf.constant(HEIGHT), width=tf.constant(WIDTH))
  model = training.load_run(run_dir)
  rays = rays_lib.view_rays(record["camtoworld"], record["intrinsics"], HEIGHT,
                        WIDTH, "blender", record["near"], record["far"])
  with open(os.path.join(output, export.METADATA)) as f:
    renderer = json.load(f)["renderer"]
  if exact:
    assert renderer == {"renderer": "exact"}
    ref = model.render_chunked(rays, 256)
  else:  # the fast path, with the grid baked from the same training views
    assert renderer["renderer"] == "fast"
    assert renderer["precision"] == "float32"
    ref = fast_render.FastRenderer.for_records(
        model, scene.train, fast_render.FastOptions(precision="float32")
    ).render_chunked(rays, 256)
  np.testing.assert_allclose(out["image"].numpy(), ref["rgb"].numpy(),
                             atol=1e-5)
  np.testing.assert_allclose(out["depth"].numpy(), ref["depth"].numpy(),
                             atol=1e-5)


def test_render_cli_says_which_renderer(run_dir, tmp_path, capsys):
  output = str(tmp_path / "video.gif")
  base = [f"--workdir={run_dir}", f"--output={output}", "--synthetic",
          "--frames=2", "--scale=0.25", "--chunk=128"]
  assert _run_cli(render_cli, base + ["--precision=float32"]) == 0
  assert "Rendering with the fast renderer (" in capsys.readouterr().out
  assert _run_cli(render_cli, base + ["--exact"]) == 0
  assert "Rendering with the exact renderer" in capsys.readouterr().out
  # Settings of the fast path make no sense with --exact: refused, not ignored.
  with pytest.raises(app.UsageError, match="--render_samples and --precision"):
    _run_cli(render_cli, base + ["--exact", "--render_samples=4"])


def test_eval_cli_fast_flag_records_the_renderer(run_dir, tmp_path):
  from regnerf_tf.cli import eval as eval_cli  # pylint: disable=import-outside-toplevel
  reports = {}
  for extra in ([], ["--fast", "--precision=float32"]):
    out = tmp_path / ("fast" if extra else "exact")
    assert _run_cli(eval_cli, [f"--workdir={run_dir}", "--synthetic",
                               f"--output_dir={out}", "--max_views=2",
                               "--chunk=256"] + extra) == 0
    reports[bool(extra)] = json.loads((out / "metrics.json").read_text())
  assert reports[False]["renderer"] == {"renderer": "exact"}
  fast = reports[True]["renderer"]
  assert fast["renderer"] == "fast" and fast["precision"] == "float32"
  assert 0 < fast["samples_per_ray"] <= fast["exact_samples_per_ray"]
  # The fast path moves PSNR by little on the same checkpoint.
  assert abs(reports[True]["mean"]["psnr"]
             - reports[False]["mean"]["psnr"]) < 0.1
