"""Tests of the unobserved-pose bank and the patch-ray stream."""

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import camera, configs, data, synthetic, unobserved
from regnerf_tf import rays as rays_lib


@pytest.fixture(scope="module")
def records():
  return synthetic.make_records(6, 24, 32)


def test_blender_pose_bank_looks_at_the_object(records):
  cams = data.scene_cameras(records)
  bank = unobserved.pose_bank("blender", cams["camtoworlds"], cams["bounds"],
                              64, seed=0, focus_jitter=0.0)
  assert bank.shape == (64, 3, 4) and bank.dtype == np.float32
  # OpenGL: the camera looks along −z; the scene's cameras all look at the
  # origin, so the focus point is the origin.
  to_origin = camera.normalize(-bank[:, :, 3].astype(np.float64))
  cos = np.sum(to_origin * -bank[:, :, 2], -1)
  np.testing.assert_allclose(cos, 1.0, atol=1e-4)
  again = unobserved.pose_bank("blender", cams["camtoworlds"], cams["bounds"],
                               64, seed=0, focus_jitter=0.0)
  np.testing.assert_array_equal(bank, again)
  with pytest.raises(ValueError, match="kind"):
    unobserved.pose_bank("colmap", cams["camtoworlds"], None, 4, 0)


def test_patch_rays_are_windows_of_full_view_rays(records):
  cams = data.scene_cameras(records)
  bank = unobserved.pose_bank("blender", cams["camtoworlds"], cams["bounds"],
                              1, seed=3)
  k = cams["intrinsics"][0]
  s, p = 4, 5
  ds = unobserved.make_patch_dataset(bank, k, 24, 32, "blender", s, p, seed=7,
                                     near=1.5, far=6.0)
  patch = next(iter(ds))
  assert patch["origins"].shape == (p * s * s, 3)
  full = rays_lib.view_rays(bank[0], k, 24, 32, "blender", 1.5, 6.0)
  dirs = full["directions"].numpy()
  patch_dirs = patch["directions"].numpy().reshape(p, s, s, 3)
  for i in range(p):
    # Locate the patch's top-left pixel, then compare the whole window.
    dist = np.linalg.norm(dirs - patch_dirs[i, 0, 0], axis=-1)
    y0, x0 = np.unravel_index(np.argmin(dist), dist.shape)
    assert dist[y0, x0] < 1e-5
    for key in ("origins", "directions", "viewdirs", "radii", "near", "far"):
      window = full[key].numpy()[y0:y0 + s, x0:x0 + s]
      np.testing.assert_allclose(
          patch[key].numpy().reshape(p, s, s, -1)[i], window, atol=1e-5)


def test_patch_stream_is_a_function_of_the_step(records):
  cams = data.scene_cameras(records)
  bank = unobserved.pose_bank("blender", cams["camtoworlds"], cams["bounds"],
                              16, seed=3)
  k = cams["intrinsics"][0]
  make = lambda start: unobserved.make_patch_dataset(
      bank, k, 24, 32, "blender", 4, 2, seed=1, near=1.5, far=6.0,
      start_step=start)
  from_zero = list(make(0).take(4))
  from_two = list(make(2).take(2))
  for a, b in zip(from_zero[2:], from_two):
    np.testing.assert_array_equal(a["origins"].numpy(), b["origins"].numpy())
  assert not np.allclose(from_zero[0]["directions"], from_zero[1]["directions"])
  with pytest.raises(ValueError, match="patch_size"):
    unobserved.make_patch_dataset(bank, k, 24, 32, "blender", 30, 2, 0, 1.5, 6.0)


def test_scene_patch_dataset_follows_the_config(records):
  cfg = configs.get_preset("dtu3_small", **{"reg.patch_size": 4,
                                            "train.patch_batch_size": 32,
                                            "train.n_random_poses": 7})
  ds, bank = unobserved.scene_patch_dataset(data.scene_cameras(records),
                                            "blender", 24, 32, cfg)
  assert bank.shape == (7, 3, 4)
  assert next(iter(ds))["origins"].shape == (32, 3)


def test_llff_release_compat_keeps_one_pose():
  compat = configs.get_preset("llff3", release_compat=True)
  rng = np.random.default_rng(0)
  poses = np.stack([np.concatenate([np.eye(3), rng.normal(scale=0.1, size=(3, 1))], 1)
                    for _ in range(5)])
  cams = {"camtoworlds": poses,
          "intrinsics": np.tile(camera.intrinsic_matrix(20, 20, 16, 12), (5, 1, 1)),
          "bounds": np.tile([[2.0, 20.0]], (5, 1))}
  _, bank = unobserved.scene_patch_dataset(cams, "llff", 24, 32, compat)
  assert bank.shape == (1, 3, 4)
  _, bank = unobserved.scene_patch_dataset(
      cams, "llff", 24, 32, configs.get_preset("llff3", **{"train.n_random_poses": 50}))
  assert bank.shape == (50, 3, 4)
