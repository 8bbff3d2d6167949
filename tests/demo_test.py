"""The demo runs end to end and writes its results (tiny budget)."""

import json

import numpy as np
import pytest

from regnerf_tf.cli import demo


@pytest.mark.large
def test_demo_writes_results_and_renders(tmp_path):
  overrides = ["model.net_depth=2", "model.net_width=16", "model.skip_layer=0",
               "model.num_samples=8", "train.batch_size=64",
               "train.patch_batch_size=64", "train.log_every=2",
               "train.checkpoint_every=2"]
  results = demo.run_demo(str(tmp_path), "demo_small", 4, overrides, 2,
                          verbose=False)
  saved = json.loads((tmp_path / "demo_results.json").read_text())
  assert saved == results
  assert set(saved["methods"]) == {"mip-NeRF", "RegNeRF"}
  for method in saved["methods"].values():
    assert method["steps"] == 4
    assert len(method["heldout_psnr"]) == 2
    assert np.isfinite(method["mean_heldout_psnr"])
  assert saved["input_views"] == [2, 6, 10]
  assert not set(saved["input_views"]) & set(saved["heldout_views"])
  import imageio.v3 as iio
  image = iio.imread(tmp_path / "heldout_renders.png")
  assert image.shape == (3 * 60, 2 * 80, 3)
  # A second call resumes the finished runs instead of training again.
  again = demo.run_demo(str(tmp_path), "demo_small", 4, overrides, 2,
                        verbose=False)
  for label in ("mip-NeRF", "RegNeRF"):
    assert again["methods"][label]["heldout_psnr"] == saved["methods"][label]["heldout_psnr"]
  # Each run folder records its scene, so regnerf-eval etc. need only it.
  from regnerf_tf.cli import common
  for name in ("demo_small", "demo_small_mipnerf"):
    recorded = json.loads((tmp_path / name / common.SCENE_FILE).read_text())
    assert recorded["source"]["source"] == "synthetic"
    assert recorded["train_views"] == saved["input_views"]
