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

from regnerf_tf import configs, scenes, training, video
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


def test_export_cli(run_dir, tmp_path):
  output = str(tmp_path / "exported")
  assert _run_cli(export_cli, [f"--workdir={run_dir}", f"--output={output}",
                               "--synthetic", "--chunk=256", "--quiet"]) == 0
  loaded = tf.saved_model.load(output)
  record = scenes.synthetic_scene(height=HEIGHT, width=WIDTH).test[0]
  out = loaded.signatures["render_image"](
      camtoworld=tf.constant(record["camtoworld"], tf.float32),
      intrinsics=tf.constant(record["intrinsics"], tf.float32),
      height=tf.constant(HEIGHT), width=tf.constant(WIDTH))
  model = training.load_run(run_dir)
  from regnerf_tf import data  # pylint: disable=import-outside-toplevel
  rays = rays_lib.view_rays(record["camtoworld"], record["intrinsics"], HEIGHT,
                        WIDTH, "blender", record["near"], record["far"])
  ref = model.render_chunked(rays, 256)
  np.testing.assert_allclose(out["image"].numpy(), ref["rgb"].numpy(),
                             atol=1e-5)
  np.testing.assert_allclose(out["depth"].numpy(), ref["depth"].numpy(),
                             atol=1e-5)
