"""Tests of the synthetic scene: exact geometry, records the pipeline accepts."""

import numpy as np
import pytest

from regnerf_tf import data, synthetic
from regnerf_tf import rays as rays_lib


@pytest.fixture(scope="module")
def records():
  return synthetic.make_records(5, 30, 40)


def test_records_have_reader_fields(records):
  views = data.load_views(records)
  assert views["images"].shape == (5, 30, 40, 3)
  assert views["kind"] == "blender"
  cams = data.scene_cameras(records)
  assert cams["camtoworlds"].shape == (5, 3, 4)
  for r in records:
    rot = r["camtoworld"][:, :3].astype(np.float64)
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-5)
    assert np.all(np.isfinite(r["depth"]))
    assert 1.5 < r["depth"].min() and r["depth"].max() < 6.0


def test_depth_along_pipeline_rays_hits_the_surfaces(records):
  scene = synthetic.SyntheticScene()
  for r in records:
    rays = rays_lib.view_rays(r["camtoworld"], r["intrinsics"], 30, 40, "blender",
                          r["near"], r["far"])
    points = (rays["origins"].numpy()
              + r["depth"][..., None] * rays["directions"].numpy())
    on_sphere = np.abs(np.linalg.norm(points, axis=-1) - scene.sphere_radius)
    on_card = np.abs(points[..., 2] - scene.card_centre[2])
    on_wall = np.abs(points[..., 2] - scene.wall_z)
    assert np.all(np.minimum(np.minimum(on_sphere, on_card), on_wall) < 1e-3)
    assert np.mean(on_sphere < 1e-3) > 0.1  # the sphere is in view


def test_centre_pixel_sees_the_sphere_front():
  scene = synthetic.SyntheticScene()
  pose = scene.cameras(1, max_angle_deg=0.0)[0]
  k = np.array([[50.0, 0, 20.0], [0, 50.0, 15.0], [0, 0, 1]])
  rgb, depth = scene.render(pose, k, 30, 40)
  assert depth[15, 20] == pytest.approx(
      scene.camera_distance - scene.sphere_radius, abs=2e-3)
  assert rgb.min() >= 0.0 and rgb.max() <= 1.0
