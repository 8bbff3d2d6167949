"""Tests for regnerf_tf.render_paths (reference §6.4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regnerf_tf import camera, render_paths, scene_kinds


def _object_cameras(n: int = 12, seed: int = 0) -> tuple[np.ndarray,
                                                           np.ndarray]:
  """OpenCV cameras on a cap around (0, 0, 2), looking at it, recentred."""
  rng = np.random.default_rng(seed)
  target = np.array([0.0, 0.0, 2.0])
  angles = rng.uniform(-0.5, 0.5, size=(n, 2))
  positions = np.stack([2.0 * np.sin(angles[:, 0]),
                        2.0 * np.sin(angles[:, 1]),
                        2.0 - 2.0 * np.cos(angles[:, 0]) * np.cos(
                            angles[:, 1])], -1)
  poses = camera.look_at(target - positions, np.array([0.0, 1.0, 0.0]),
                         positions)
  poses, _ = camera.recenter_poses(poses)
  return poses, camera.focus_point(poses)


def _forward_cameras(n: int = 10, seed: int = 1) -> np.ndarray:
  """OpenGL forward-facing cameras on a small plane, looking along −z."""
  rng = np.random.default_rng(seed)
  positions = np.concatenate([rng.uniform(-0.3, 0.3, size=(n, 2)),
                              rng.uniform(-0.05, 0.05, size=(n, 1))], -1)
  rot = np.broadcast_to(np.eye(3), (n, 3, 3))
  return np.concatenate([rot, positions[:, :, None]], -1)


def _unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_dtu_spiral_looks_at_focus_and_circles_average_pose():
  poses, focus = _object_cameras()
  path = render_paths.dtu_spiral(poses, n_frames=40)
  assert path.shape == (40, 3, 4)
  positions = path[:, :, 3]
  # Every camera's z axis (OpenCV: forward) points at the focus point.
  np.testing.assert_allclose(path[:, :, 2], _unit(focus - positions),
                             atol=1e-9)
  # Rotations are orthonormal and right-handed.
  rot = path[:, :, :3]
  np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2),
                             np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
  np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)
  # Two full turns around the average camera (the identity after recentring):
  # the positions average to its centre and stay within the radii.
  avg = camera.average_pose(poses)
  np.testing.assert_allclose(positions.mean(0), avg[:, 3], atol=1e-9)
  radii = np.percentile(np.abs(poses[:, :, 3]), 60, axis=0)
  assert np.all(np.abs(positions - avg[:, 3]) <= radii + 1e-9)
  # θ = 0: offset (r_x, 0, 0).
  np.testing.assert_allclose(positions[0], avg[:, 3] + avg[:, :3] @ [
      radii[0], 0, 0], atol=1e-9)


def test_llff_spiral_looks_at_focal_depth():
  poses = _forward_cameras()
  bounds = np.tile([[1.0, 10.0]], (len(poses), 1))
  path = render_paths.llff_spiral(poses, bounds, n_frames=24)
  assert path.shape == (24, 3, 4)
  avg = camera.to_homogeneous(camera.average_pose(poses))
  depth = camera.llff_focal_depth(bounds)
  lookat = (avg @ [0, 0, -depth, 1])[:3]
  # OpenGL: the camera looks along −z, so z points from the look-at point.
  np.testing.assert_allclose(path[:, :, 2], _unit(path[:, :, 3] - lookat),
                             atol=1e-9)
  np.testing.assert_allclose(path[:, :, 3].mean(0), avg[:3, 3], atol=1e-9)
  # Up stays close to the mean camera y.
  assert np.all(path[:, 1, 1] > 0.95)


def test_orbit_is_flipped_dtu_spiral():
  opencv, focus = _object_cameras()
  opengl = opencv.copy()
  opengl[:, :, :3] = opencv[:, :, :3] @ np.diag([1.0, -1.0, -1.0])
  path = render_paths.orbit(opengl, n_frames=16)
  assert path.shape == (16, 3, 4)
  # OpenGL: −z points at the focus point.
  np.testing.assert_allclose(-path[:, :, 2], _unit(focus - path[:, :, 3]),
                             atol=1e-9)
  np.testing.assert_allclose(path[:, :, 3],
                             render_paths.dtu_spiral(opencv, 16)[:, :, 3],
                             atol=1e-12)


def test_kind_render_paths_and_counts():
  poses, _ = _object_cameras()
  for n in (1, 7, 240):
    assert scene_kinds.DTU.render_path(poses, n_frames=n).shape == (n, 3, 4)
  np.testing.assert_array_equal(
      scene_kinds.get("dtu").render_path(poses, None, 9),
      render_paths.dtu_spiral(poses, 9))
  np.testing.assert_array_equal(
      scene_kinds.BLENDER.render_path(poses, None, 9),
      render_paths.orbit(poses, 9))
  with pytest.raises(ValueError, match="bounds"):
    scene_kinds.LLFF.render_path(_forward_cameras(), None, 5)
  with pytest.raises(ValueError, match="kind"):
    scene_kinds.get("nerf")
  with pytest.raises(ValueError, match="n_frames"):
    render_paths.dtu_spiral(poses, 0)
  with pytest.raises(ValueError, match=r"\[N, 3, 4\]"):
    render_paths.dtu_spiral(poses[0])


def test_path_from_json_reads_3x4_and_4x4(tmp_path):
  poses, _ = _object_cameras(3)
  items = [poses[0].tolist(), camera.to_homogeneous(poses[1]).tolist(),
           poses[2].tolist()]
  f = tmp_path / "path.json"
  f.write_text(json.dumps(items))
  np.testing.assert_allclose(render_paths.path_from_json(str(f)), poses)


@pytest.mark.parametrize("payload, message", [
    ("{not json", "not valid JSON"),
    ('{"poses": []}', "JSON list"),
    ("[]", "empty"),
    ("[[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]", r"camera 0 has shape \[3, 3\]"),
    ('[[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, "a"]]]', "not a numeric"),
    ("[[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, NaN]]]", "NaN"),
    ("[[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 2]]]",
     "last row"),
])
def test_path_from_json_errors(tmp_path, payload, message):
  f = tmp_path / "bad.json"
  f.write_text(payload)
  with pytest.raises(ValueError, match=message):
    render_paths.path_from_json(str(f))


def test_path_from_json_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    render_paths.path_from_json(str(tmp_path / "nope.json"))
