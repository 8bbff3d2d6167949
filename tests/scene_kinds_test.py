"""Tests of the scene-kind records: the one place kind-dependent facts live."""

import dataclasses

import numpy as np
import pytest

from regnerf_tf import configs, data, scene_kinds, scenes, synthetic, unobserved
from regnerf_tf import rays as rays_lib
from regnerf_tf.datasets import readers

_FLIP = np.diag([1.0, -1.0, -1.0])


@pytest.fixture(scope="module")
def records():
  return synthetic.make_records(6, 24, 32)


def test_get_accepts_the_forms_a_record_holds():
  for kind in scene_kinds.KINDS.values():
    assert scene_kinds.get(kind.name) is kind
    assert scene_kinds.get(kind.name.encode()) is kind
    assert scene_kinds.get(np.array(kind.name.encode())) is kind
    assert scene_kinds.get(kind) is kind
  with pytest.raises(ValueError) as e:
    scene_kinds.get("colmap")
  message = str(e.value)
  for name in scene_kinds.NAMES:  # names every kind, and what a layout is
    assert repr(name) in message
  assert "layout" in message


def test_fixed_bounds_are_the_rays_bounds(records):
  r = records[0]
  for kind in (scene_kinds.DTU, scene_kinds.LLFF):
    rays = rays_lib.view_rays(r["camtoworld"], r["intrinsics"], 24, 32,
                              kind.name, near=9.0, far=10.0)
    np.testing.assert_array_equal(rays["near"].numpy(), kind.near)
    np.testing.assert_array_equal(rays["far"].numpy(), kind.far)
    assert kind.ray_bounds(9.0, 10.0) == (kind.near, kind.far)
  assert scene_kinds.BLENDER.ray_bounds(1.5, 6.0) == (1.5, 6.0)
  with pytest.raises(ValueError, match="near and far"):
    scene_kinds.BLENDER.ray_bounds()
  with pytest.raises(ValueError, match="near and far"):
    rays_lib.view_rays(r["camtoworld"], r["intrinsics"], 24, 32, "blender")


def test_patch_bounds_are_the_widest_camera_bounds():
  bounds = np.array([[1.0, 4.0], [0.5, 3.0], [2.0, 7.0]])
  assert scene_kinds.BLENDER.patch_bounds(bounds) == (0.5, 7.0)
  assert scene_kinds.DTU.patch_bounds(bounds) == (None, None)
  assert scene_kinds.LLFF.patch_bounds(bounds) == (None, None)


def test_opengl_object_sampler_is_the_opencv_one_in_flipped_axes(records):
  cams = data.scene_cameras(records)
  gl = cams["camtoworlds"].astype(np.float64)
  cv = gl.copy()
  cv[:, :, :3] = gl[:, :, :3] @ _FLIP
  from_gl = scene_kinds.BLENDER.sample_poses(gl, None, 16,
                                             np.random.default_rng(5))
  from_cv = scene_kinds.DTU.sample_poses(cv, None, 16,
                                         np.random.default_rng(5))
  from_cv[:, :, :3] = from_cv[:, :, :3] @ _FLIP
  np.testing.assert_allclose(from_gl, from_cv, atol=1e-12)


def test_forward_facing_sampler_needs_bounds(records):
  cams = data.scene_cameras(records)
  with pytest.raises(ValueError, match="bounds"):
    scene_kinds.LLFF.sample_poses(cams["camtoworlds"], None, 4,
                                  np.random.default_rng(0))


def test_config_family_follows_the_kind():
  assert configs.DATASETS == scene_kinds.NAMES
  llff = configs.get_preset("llff3_cpu")
  dtu = configs.get_preset("dtu3_cpu")
  llff.check_scene_kind("llff")
  dtu.check_scene_kind("dtu")
  dtu.check_scene_kind("blender")  # the object-centred family
  with pytest.raises(ValueError, match="llff3"):
    dtu.check_scene_kind("llff")
  with pytest.raises(ValueError, match="dtu3"):
    llff.check_scene_kind(b"blender")
  with pytest.raises(ValueError, match="dataset"):
    configs.get_preset("dtu3_cpu", **{"data.dataset": "custom"})


def test_every_folder_layout_has_a_canonical_split():
  # Blender folders carry their own train/test files; every other layout
  # the readers detect gets the split of the dataset it comes from.
  assert set(scenes.CANONICAL_SPLITS) == set(readers.FORMATS) - {"blender"}
  train, test = scenes.CANONICAL_SPLITS["colmap"]
  assert train(20, 3) == [1, 10, 19] and test(20) == [0, 8, 16]


def test_a_new_kind_is_one_record(records, monkeypatch):
  """A kind added in this module alone works through rays, the pose bank,
  render paths, the training stream and the config check: the scene of
  ``records`` with OpenCV cameras (a kind that is not one of the three)
  gives the same rays as the original OpenGL "blender" one."""
  opencv_world = dataclasses.replace(
      scene_kinds.BLENDER, name="opencv_world", convention="opencv",
      pose_sampler=scene_kinds.DTU.pose_sampler)
  monkeypatch.setitem(scene_kinds.KINDS, "opencv_world", opencv_world)
  converted = []
  for r in records:
    c2w = np.asarray(r["camtoworld"], np.float64).copy()
    c2w[:, :3] = c2w[:, :3] @ _FLIP
    scene_c2w = np.asarray(r["scene_camtoworlds"], np.float64).copy()
    scene_c2w[:, :, :3] = scene_c2w[:, :, :3] @ _FLIP
    converted.append(dict(r, kind="opencv_world",
                          camtoworld=c2w.astype(np.float32),
                          scene_camtoworlds=scene_c2w.astype(np.float32)))
  r, c = records[0], converted[0]
  gl = rays_lib.view_rays(r["camtoworld"], r["intrinsics"], 24, 32, "blender",
                          r["near"], r["far"])
  cv = rays_lib.view_rays(c["camtoworld"], c["intrinsics"], 24, 32,
                          "opencv_world", c["near"], c["far"])
  for field in rays_lib.RAY_FIELDS:
    np.testing.assert_allclose(cv[field].numpy(), gl[field].numpy(),
                               atol=1e-5, err_msg=field)
  cams = data.scene_cameras(converted)
  bank = unobserved.pose_bank("opencv_world", cams["camtoworlds"],
                              cams["bounds"], 8, seed=0, focus_jitter=0.0)
  # OpenCV cameras look along +z: at the origin, which all cameras face.
  to_origin = -bank[:, :, 3] / np.linalg.norm(bank[:, :, 3], axis=-1,
                                               keepdims=True)
  np.testing.assert_allclose(np.sum(to_origin * bank[:, :, 2], -1), 1.0,
                             atol=1e-4)
  path = scene_kinds.get("opencv_world").render_path(cams["camtoworlds"],
                                                     None, 5)
  assert path.shape == (5, 3, 4)
  config = configs.get_preset("demo_small", **{
      "train.batch_size": 8, "train.patch_batch_size": 16,
      "reg.patch_size": 2, "train.max_steps": 2})
  batch = next(iter(data.training_stream(converted, config)))
  assert batch["rays"]["origins"].shape == (8, 3)
  assert batch["patch_rays"]["origins"].shape == (16, 3)
  np.testing.assert_array_equal(batch["patch_rays"]["near"].numpy(),
                                cams["bounds"][:, 0].min())
