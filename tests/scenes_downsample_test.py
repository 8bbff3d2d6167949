"""scenes.downsample: box-filtered images and masks, cameras that still hit
the centres of the new pixels."""

import numpy as np
import pytest

from regnerf_tf import data as data_lib, errors, scenes
from regnerf_tf import rays as rays_lib


def _scene_with_mask():
  scene = scenes.synthetic_scene(height=24, width=32)
  record = scene.train[0]
  mask = np.zeros((24, 32, 1), np.uint8)
  mask[4:12, 6:20] = 255  # block-aligned for factor 2 at the top/left edge
  mask[4:12, 5] = 255     # a column that covers only half of factor-2 blocks
  record["mask"] = mask
  return scene


@pytest.mark.parametrize("factor", [2, 4])
def test_images_are_block_means_and_rays_pass_block_centres(factor):
  scene = _scene_with_mask()
  small = scenes.downsample(scene, factor)
  assert len(small.train) == len(scene.train)
  assert len(small.test) == len(scene.test)
  before, after = scene.train[0], small.train[0]
  h, w = 24 // factor, 32 // factor
  assert after["image"].shape == (h, w, 3) and after["image"].dtype == np.uint8
  blocks = before["image"].astype(np.float64).reshape(h, factor, w, factor, 3)
  np.testing.assert_array_equal(after["image"],
                                np.round(blocks.mean((1, 3))).astype(np.uint8))
  # Mask: 255 exactly where the whole block is object.
  mblocks = before["mask"].reshape(h, factor, w, factor)
  full = np.all(mblocks == 255, axis=(1, 3))
  np.testing.assert_array_equal(after["mask"][..., 0] == 255, full)
  # Camera directions are affine in pixel coordinates, so the ray through a
  # new pixel's centre is the mean of the rays through its block's pixels.
  rays = rays_lib.view_rays(before["camtoworld"], before["intrinsics"], 24, 32,
                            "blender", before["near"], before["far"])
  small_rays = rays_lib.view_rays(after["camtoworld"], after["intrinsics"], h,
                                  w, "blender", after["near"], after["far"])
  d = rays["directions"].numpy().reshape(h, factor, w, factor, 3).mean((1, 3))
  np.testing.assert_allclose(small_rays["directions"].numpy(), d, atol=1e-5)
  np.testing.assert_allclose(after["scene_intrinsics"][:, :2],
                             before["scene_intrinsics"][:, :2] / factor,
                             rtol=1e-6)
  np.testing.assert_array_equal(after["camtoworld"], before["camtoworld"])
  # The input scene is not modified.
  assert scene.train[0]["image"].shape == (24, 32, 3)


def test_factor_one_returns_the_scene_unchanged():
  scene = scenes.synthetic_scene(height=12, width=16)
  assert scenes.downsample(scene, 1) is scene


@pytest.mark.parametrize("factor", [0, -2, 1.5, "2", True])
def test_bad_factors_are_rejected(factor):
  scene = scenes.synthetic_scene(height=12, width=16)
  with pytest.raises(errors.InputError, match="positive integer"):
    scenes.downsample(scene, factor)


def test_too_small_a_result_is_rejected():
  scene = scenes.synthetic_scene(height=12, width=16)
  with pytest.raises(errors.InputError, match="less than 3×3"):
    scenes.downsample(scene, 5)


def test_records_without_masks_stay_without_masks():
  scene = scenes.synthetic_scene(height=12, width=16)
  for record in scene.train + scene.test:
    del record["mask"]  # as LLFF records
  small = scenes.downsample(scene, 2)
  assert all("mask" not in r for r in small.train + small.test)
  assert small.train[0]["image"].shape == (6, 8, 3)
