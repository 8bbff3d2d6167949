"""Tests of regnerf_tf.camera: conventions, radii, NDC, pose utilities."""

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import camera


def _random_rotation(rng):
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] = -q[:, 0]
  return q


def test_opencv_pixel_ray_projects_back_to_the_pixel():
  rng = np.random.default_rng(0)
  k = camera.intrinsic_matrix(300.0, 310.0, 200.0, 150.0)
  rot = _random_rotation(rng)
  centre = rng.normal(size=3)
  c2w = np.concatenate([rot, centre[:, None]], 1)
  px = np.array([0.0, 17.0, 399.0])
  py = np.array([0.0, 123.0, 299.0])
  o, d, v = camera.pixels_to_rays(px, py, np.linalg.inv(k), c2w, "opencv")
  o, d, v = o.numpy(), d.numpy(), v.numpy()
  np.testing.assert_allclose(o, np.broadcast_to(centre, o.shape), atol=1e-6)
  # A point along the ray, projected with K[R|t], lands on the pixel centre.
  point = o + 2.5 * d
  cam = (point - centre) @ rot  # world → camera (R^T (p - c))
  np.testing.assert_allclose(cam[:, 2], 2.5, rtol=1e-5)  # unnormalised: z = t
  proj = cam @ k.T
  np.testing.assert_allclose(proj[:, 0] / proj[:, 2], px + 0.5, atol=1e-3)
  np.testing.assert_allclose(proj[:, 1] / proj[:, 2], py + 0.5, atol=1e-3)
  np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(v, d / np.linalg.norm(d, axis=-1, keepdims=True),
                             atol=1e-6)


def test_opengl_directions_match_forward_facing_formula():
  w, h, f = 8, 6, 5.0
  k = camera.intrinsic_matrix(f, f, w / 2, h / 2)
  x, y = camera.pixel_grid(h, w)
  _, d, _ = camera.pixels_to_rays(x, y, np.linalg.inv(k), np.eye(4)[:3],
                                  "opengl")
  xs, ys = np.meshgrid(np.arange(w), np.arange(h))
  expected = np.stack([(xs - w / 2 + 0.5) / f, -(ys - h / 2 + 0.5) / f,
                       -np.ones_like(xs, dtype=float)], -1)
  np.testing.assert_allclose(d.numpy(), expected, atol=1e-6)


def test_pixel_radii_are_vertical_neighbour_spacing_times_two_over_sqrt12():
  f = 4.0
  k = camera.intrinsic_matrix(f, f, 2.0, 2.0)
  x, y = camera.pixel_grid(4, 5)
  _, d, _ = camera.pixels_to_rays(x, y, np.linalg.inv(k), np.eye(4)[:3],
                                  "opencv")
  radii = camera.pixel_radii(d).numpy()
  assert radii.shape == (4, 5, 1)
  # Directions on a z = 1 plane: neighbours are exactly 1/f apart.
  np.testing.assert_allclose(radii, (1 / f) * 2 / np.sqrt(12), rtol=1e-5)


def test_shift_origins_to_plane_keeps_rays_and_lands_on_plane():
  o = tf.constant([[0.1, 0.2, -1.3], [1.0, -2.0, 0.7]])
  d = tf.constant([[0.3, -0.1, 1.0], [0.0, 0.5, -2.0]])
  shifted = camera.shift_origins_to_plane(o, d, 0.0).numpy()
  np.testing.assert_allclose(shifted[:, 2], 0.0, atol=1e-6)
  # The shift is along the ray: (shifted - o) is parallel to d.
  cross = np.cross(shifted - o.numpy(), d.numpy())
  np.testing.assert_allclose(cross, 0.0, atol=1e-6)


def _ndc_of_point(p, focal, w, h, near):
  return np.stack([-2 * focal / w * p[..., 0] / p[..., 2],
                   -2 * focal / h * p[..., 1] / p[..., 2],
                   1 + 2 * near / p[..., 2]], -1)


def test_ndc_near_plane_to_minus_one_and_infinity_to_plus_one():
  focal, w, h, near = 40.0, 64, 48, 1.0
  rng = np.random.default_rng(3)
  origins = rng.normal(scale=0.1, size=(10, 3))
  directions = np.concatenate([rng.normal(scale=0.3, size=(10, 2)),
                               -np.ones((10, 1))], -1)
  o_ndc, d_ndc = camera.convert_to_ndc(origins, directions, focal, w, h, near)
  o_ndc, d_ndc = o_ndc.numpy().astype(np.float64), d_ndc.numpy()
  np.testing.assert_allclose(o_ndc[:, 2], -1.0, atol=1e-6)
  np.testing.assert_allclose((o_ndc + d_ndc)[:, 2], 1.0, atol=1e-6)
  # Every world point on the ray beyond the near plane maps onto the NDC
  # segment o_ndc + s·d_ndc, s ∈ [0, 1], with s = 1 − near/|z|-ish ordering.
  t_world = (-near - origins[:, 2]) / directions[:, 2] + np.array(
      [0.5, 2.0, 10.0, 100.0, 1.0, 3.0, 7.0, 0.1, 50.0, 5.0])
  p = origins + t_world[:, None] * directions
  p_ndc = _ndc_of_point(p, focal, w, h, near)
  s = (p_ndc[:, 2] - o_ndc[:, 2]) / d_ndc[:, 2]
  assert np.all((s > 0) & (s < 1))
  np.testing.assert_allclose(o_ndc + s[:, None] * d_ndc, p_ndc, atol=1e-4)


def test_ndc_radii_from_origin_spacing():
  o = np.zeros((3, 4, 3), np.float32)
  o[..., 0] = np.arange(4)[None, :] * 0.2   # column spacing 0.2
  o[..., 1] = np.arange(3)[:, None] * 0.4   # row spacing 0.4
  radii = camera.ndc_radii(o).numpy()
  np.testing.assert_allclose(radii, 0.5 * (0.2 + 0.4) * 2 / np.sqrt(12),
                             rtol=1e-5)


def test_look_at_builds_orthonormal_pose_looking_along_direction():
  pose = camera.look_at([1.0, 2.0, 3.0], [0.0, -1.0, 0.0], [4.0, 5.0, 6.0])
  rot = pose[:, :3]
  np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
  np.testing.assert_allclose(rot[:, 2], np.array([1, 2, 3]) / np.sqrt(14))
  np.testing.assert_allclose(pose[:, 3], [4.0, 5.0, 6.0])
  assert rot[:, 1] @ np.array([0.0, -1.0, 0.0]) > 0  # y follows "up"


def test_recenter_makes_average_pose_identity_and_preserves_relative_poses():
  rng = np.random.default_rng(4)
  base = _random_rotation(rng)
  poses = []
  for _ in range(6):
    rot = base @ camera.look_at(rng.normal(scale=0.1, size=3) + [0, 0, 1],
                                [0, 1, 0], [0, 0, 0])[:, :3]
    poses.append(np.concatenate([rot, rng.normal(size=(3, 1)) + 5], 1))
  poses = np.stack(poses)
  recentred, transform = camera.recenter_poses(poses)
  np.testing.assert_allclose(camera.average_pose(recentred),
                             np.eye(4)[:3], atol=1e-9)
  np.testing.assert_allclose(recentred[:, :, 3].mean(0), 0.0, atol=1e-9)
  # Relative transforms between cameras are unchanged (a rigid world motion).
  h0 = camera.to_homogeneous(poses)
  h1 = camera.to_homogeneous(recentred)
  np.testing.assert_allclose(np.linalg.inv(h1[0]) @ h1[3],
                             np.linalg.inv(h0[0]) @ h0[3], atol=1e-9)
  np.testing.assert_allclose(transform @ h0[2], h1[2], atol=1e-9)


def test_rescale_puts_all_centres_in_unit_box():
  poses = np.tile(np.eye(4)[:3], (3, 1, 1))
  poses[:, :, 3] = [[1.0, -4.0, 2.0], [0.5, 0.5, 0.5], [-2.0, 3.0, 0.0]]
  scaled, scale = camera.rescale_poses(poses)
  assert scale == pytest.approx(0.25)
  assert np.max(np.abs(scaled[:, :, 3])) == pytest.approx(1.0)
  np.testing.assert_allclose(scaled[:, :, :3], poses[:, :, :3])


def test_focus_point_of_cameras_looking_at_a_common_point():
  rng = np.random.default_rng(5)
  target = np.array([0.3, -0.2, 2.0])
  poses = []
  for _ in range(8):
    centre = rng.normal(size=3)
    poses.append(camera.look_at(target - centre, [0, -1, 0], centre))
  np.testing.assert_allclose(camera.focus_point(np.stack(poses)), target,
                             atol=1e-9)


def test_bad_inputs_raise_with_a_message():
  with pytest.raises(ValueError, match="convention"):
    camera.pixels_to_rays([0.0], [0.0], np.eye(3), np.eye(4)[:3], "blender")
  with pytest.raises(ValueError, match=r"\[N, 3, 4\]"):
    camera.average_pose(np.zeros((3, 3)))
  bad = np.tile(np.eye(4)[:3], (2, 1, 1))
  bad[0, 0, 3] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    camera.recenter_poses(bad)
  with pytest.raises(ValueError, match="parallel"):
    camera.focus_point(np.tile(np.eye(4)[:3], (3, 1, 1)))


def _object_scene(rng, n=12):
  target = np.array([0.1, -0.1, 1.2])
  poses = []
  for _ in range(n):
    centre = rng.normal(scale=0.5, size=3) * [1, 1, 0.2]
    poses.append(camera.look_at(target - centre, [0, 1, 0], centre))
  return np.stack(poses), target


def test_object_pose_sampler_box_and_focus():
  rng = np.random.default_rng(6)
  poses, target = _object_scene(rng)
  poses, transform = camera.recenter_poses(poses)
  target = (transform @ np.append(target, 1.0))[:3]
  sampled = camera.sample_poses_around_object(
      poses, 500, np.random.default_rng(0), focus_jitter=0.0)
  assert sampled.shape == (500, 3, 4)
  rot = sampled[:, :, :3]
  np.testing.assert_allclose(np.einsum("nji,njk->nik", rot, rot),
                             np.broadcast_to(np.eye(3), (500, 3, 3)), atol=1e-9)
  # Average pose is the identity after recentring: positions lie in the box.
  half = np.max(np.abs(poses[:, :, 3]), 0)
  assert np.all(np.abs(sampled[:, :, 3]) <= half + 1e-9)
  # Box filled: the extremes come close to the half-extents.
  assert np.all(np.abs(sampled[:, :, 3]).max(0) > 0.9 * half)
  # Without jitter, every optical axis passes through the focus point.
  to_target = camera.normalize(target - sampled[:, :, 3])
  np.testing.assert_allclose(np.sum(to_target * rot[:, :, 2], -1), 1.0,
                             atol=1e-6)
  jittered = camera.sample_poses_around_object(
      poses, 500, np.random.default_rng(0), focus_jitter=0.125)
  cos = np.sum(camera.normalize(target - jittered[:, :, 3])
               * jittered[:, :, 2], -1)
  assert cos.min() < 0.9999 and cos.mean() > 0.9


def test_forward_facing_sampler_looks_at_focal_point():
  rng = np.random.default_rng(7)
  poses = np.stack([np.concatenate([np.eye(3), rng.normal(scale=0.1, size=(3, 1))], 1)
                    for _ in range(10)])
  poses, _ = camera.recenter_poses(poses)
  bounds = np.tile([[2.0, 20.0]], (10, 1))
  depth = camera.llff_focal_depth(bounds)
  assert depth == pytest.approx(1 / (0.25 / 1.8 + 0.75 / 100.0))
  sampled = camera.sample_forward_facing_poses(poses, bounds, 200,
                                               np.random.default_rng(1))
  lookat = np.array([0.0, 0.0, -depth])
  # OpenGL: the camera looks along −z.
  to_target = camera.normalize(lookat - sampled[:, :, 3])
  np.testing.assert_allclose(np.sum(to_target * -sampled[:, :, 2], -1), 1.0,
                             atol=1e-9)
  half = np.max(np.abs(poses[:, :, 3]), 0)
  assert np.all(np.abs(sampled[:, :, 3]) <= half + 1e-9)
  assert np.all(sampled[:, 1, 1] > 0.9)  # y stays close to the cameras' up
  with pytest.raises(ValueError, match="bounds"):
    camera.llff_focal_depth(np.array([[0.0, 1.0]]))


def test_pose_samplers_do_not_depend_on_the_world_frame():
  """Moving the whole scene rigidly moves the sampled poses with it."""
  rng = np.random.default_rng(8)
  poses, _ = _object_scene(rng)
  motion = camera.to_homogeneous(camera.look_at([0.3, -0.2, 1.0], [0, 1, 0],
                                                [4.0, -2.0, 7.0]))
  moved = (motion @ camera.to_homogeneous(poses))[:, :3]
  # (The look-at jitter is drawn in world axes, so it is switched off here.)
  a = camera.sample_poses_around_object(poses, 50, np.random.default_rng(0),
                                        focus_jitter=0.0)
  b = camera.sample_poses_around_object(moved, 50, np.random.default_rng(0),
                                        focus_jitter=0.0)
  np.testing.assert_allclose((motion @ camera.to_homogeneous(a))[:, :3], b,
                             atol=1e-6)
  bounds = np.tile([[1.0, 10.0]], (len(poses), 1))
  a = camera.sample_forward_facing_poses(poses, bounds, 50,
                                         np.random.default_rng(0))
  b = camera.sample_forward_facing_poses(moved, bounds, 50,
                                         np.random.default_rng(0))
  np.testing.assert_allclose((motion @ camera.to_homogeneous(a))[:, :3], b,
                             atol=1e-6)
