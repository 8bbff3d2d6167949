"""Cameras and rays: pose utilities (NumPy) and pixel-to-ray math (TensorFlow).

Two camera conventions occur in RegNeRF's data:

* ``"opencv"`` (DTU): camera x right, y down, z forward; a pixel's camera-space
  direction is ``K^-1 [x + 0.5, y + 0.5, 1]`` (z component exactly 1).
* ``"opengl"`` (LLFF, Blender): camera x right, y up, z backward; the direction is
  ``((x + 0.5 - cx) / fx, -(y + 0.5 - cy) / fy, -1)``.

Directions are never normalised: volume rendering scales interval lengths by
``||d||`` and mip-NeRF's cone radius is per unit of ``t`` along the unnormalised
direction (reference pitfall P8).

Pose utilities work on camera-to-world matrices ``[..., 3, 4]`` (or ``[..., 4, 4]``)
in NumPy float64: they run once per scene while loading data. Ray generation is
TensorFlow so that it runs inside ``tf.data`` and inside exported SavedModels; it
accepts NumPy arrays too.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from regnerf_tf import errors

CONVENTIONS = ("opencv", "opengl")

# A uniform distribution of width 1 has standard deviation 1/sqrt(12); mip-NeRF
# scales the pixel spacing by 2/sqrt(12) to get the cone's base radius.
RADIUS_SCALE = 2.0 / math.sqrt(12.0)


# ----------------------------------------------------------------------------
# Pose utilities (NumPy, float64).
# ----------------------------------------------------------------------------


def normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
  """Unit vectors along ``axis``. Shape preserved; raises on zero-length vectors."""
  x = np.asarray(x, dtype=np.float64)
  norm = np.linalg.norm(x, axis=axis, keepdims=True)
  if np.any(norm == 0):
    raise errors.InputError("normalize() received a zero-length vector; cannot define "
                     "a direction. Check for duplicate camera positions.")
  return x / norm


def look_at(direction: np.ndarray, up: np.ndarray,
            position: np.ndarray) -> np.ndarray:
  """Camera-to-world pose whose z axis points along ``direction``.

  z = normalise(direction); x = normalise(up × z); y = normalise(z × x).
  The same construction serves both conventions: for OpenCV cameras pass the
  viewing direction and the mean camera y axis (pointing down); for OpenGL cameras
  pass position − target (z points backward) and the mean y axis (pointing up).

  Args:
    direction: [..., 3] the desired camera z axis (need not be unit length).
    up: [..., 3] an approximate camera y axis.
    position: [..., 3] the camera centre.

  Returns:
    [..., 3, 4] camera-to-world matrices ``[x y z position]``.
  """
  direction, up, position = np.broadcast_arrays(
      np.asarray(direction, np.float64), np.asarray(up, np.float64),
      np.asarray(position, np.float64))
  z = normalize(direction)
  x = normalize(np.cross(up, z))
  y = normalize(np.cross(z, x))
  return np.stack([x, y, z, position], axis=-1)


def to_homogeneous(poses: np.ndarray) -> np.ndarray:
  """[..., 3, 4] or [..., 4, 4] poses → [..., 4, 4] with last row [0, 0, 0, 1]."""
  poses = np.asarray(poses, np.float64)
  if poses.shape[-2:] == (4, 4):
    return poses
  if poses.shape[-2:] != (3, 4):
    raise errors.InputError(f"Expected poses of shape [..., 3, 4] or [..., 4, 4]; "
                     f"received {poses.shape}.")
  bottom = np.broadcast_to(np.array([0, 0, 0, 1], np.float64),
                           poses.shape[:-2] + (1, 4))
  return np.concatenate([poses, bottom], axis=-2)


def _check_poses(poses: np.ndarray, name: str = "poses") -> np.ndarray:
  poses = np.asarray(poses, np.float64)
  if poses.ndim != 3 or poses.shape[-2:] not in ((3, 4), (4, 4)):
    raise errors.InputError(f"Expected {name} of shape [N, 3, 4] or [N, 4, 4]; "
                     f"received {poses.shape}.")
  if poses.shape[0] == 0:
    raise errors.InputError(f"{name} is empty; at least one camera is needed.")
  if not np.all(np.isfinite(poses)):
    raise errors.InputError(f"{name} contains NaN or infinite values; check the "
                     "camera files of the scene.")
  return poses[:, :3, :4]


def average_pose(poses: np.ndarray) -> np.ndarray:
  """The "average" camera of a set of poses.

  Position = mean camera centre, z axis = normalised mean z axis, up = mean y
  axis, assembled with :func:`look_at`.

  Args:
    poses: [N, 3, 4] (or [N, 4, 4]) camera-to-world matrices.

  Returns:
    [3, 4] camera-to-world matrix.
  """
  poses = _check_poses(poses)
  position = poses[:, :, 3].mean(0)
  z_axis = poses[:, :, 2].mean(0)
  up = poses[:, :, 1].mean(0)
  return look_at(z_axis, up, position)


def recenter_poses(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Left-multiplies every pose by the inverse of the average pose.

  After this the average camera is the identity.

  Args:
    poses: [N, 3, 4] (or [N, 4, 4]) camera-to-world matrices.

  Returns:
    (recentred [N, 3, 4] poses, the [4, 4] world transform that was applied).
  """
  poses = _check_poses(poses)
  transform = np.linalg.inv(to_homogeneous(average_pose(poses)))
  return (transform @ to_homogeneous(poses))[:, :3, :4], transform


def rescale_poses(poses: np.ndarray) -> tuple[np.ndarray, float]:
  """Divides camera translations by their largest absolute component.

  Afterwards every coordinate of every camera centre lies in [-1, 1] (DTU).

  Args:
    poses: [N, 3, 4] camera-to-world matrices.

  Returns:
    (rescaled [N, 3, 4] poses, the scale factor that multiplied translations).
  """
  poses = _check_poses(poses).copy()
  largest = np.max(np.abs(poses[:, :, 3]))
  if largest == 0:
    raise errors.InputError("All camera centres are at the origin; cannot rescale.")
  poses[:, :, 3] /= largest
  return poses, 1.0 / largest


def focus_point(poses: np.ndarray) -> np.ndarray:
  """Least-squares point nearest to all optical axes.

  Minimises Σ_k ||(I − z_k z_kᵀ)(p − c_k)||², with c_k the camera centres and z_k
  the unit optical axes (camera z columns).

  Args:
    poses: [N, 3, 4] camera-to-world matrices.

  Returns:
    [3] point. Raises if all axes are parallel (no unique solution).
  """
  poses = _check_poses(poses)
  axes = normalize(poses[:, :, 2])
  centres = poses[:, :, 3]
  projectors = np.eye(3) - axes[:, :, None] * axes[:, None, :]
  lhs = projectors.sum(0)
  rhs = (projectors @ centres[:, :, None]).sum(0)[:, 0]
  if np.linalg.cond(lhs) > 1e12:
    raise errors.InputError("The optical axes are (nearly) parallel; no focus point "
                     "exists. Forward-facing scenes use a focal depth instead.")
  return np.linalg.solve(lhs, rhs)


# ----------------------------------------------------------------------------
# Intrinsics.
# ----------------------------------------------------------------------------


def intrinsic_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
  """[3, 3] pinhole camera matrix K (pixel coordinates, OpenCV layout)."""
  return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], np.float64)


def rq_decomposition(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """matrix [3, 3] = upper @ orthogonal, upper with a positive diagonal."""
  flip = np.eye(3)[::-1]
  q, r = np.linalg.qr((flip @ matrix).T)
  upper = flip @ r.T @ flip
  ortho = flip @ q.T
  signs = np.diag(np.where(np.diag(upper) < 0, -1.0, 1.0))
  return upper @ signs, signs @ ortho


# ----------------------------------------------------------------------------
# Pixel → ray (TensorFlow).
# ----------------------------------------------------------------------------


def pixel_grid(height: int, width: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Integer pixel coordinates of an image, row-major.

  Returns:
    (x, y), each float32 [height, width]; x is the column, y the row.
  """
  x, y = tf.meshgrid(tf.range(width, dtype=tf.float32),
                     tf.range(height, dtype=tf.float32), indexing="xy")
  return x, y


def pixels_to_rays(pix_x, pix_y, pixtocam, camtoworld, convention: str
                   ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Rays through pixel centres.

  Pixel (x, y) has its centre at (x + 0.5, y + 0.5). The camera-space direction
  is ``K^-1 [x + 0.5, y + 0.5, 1]``; for ``"opengl"`` its y and z are negated
  (camera looks along −z with y up), for ``"opencv"`` it is used as is.

  Args:
    pix_x: [...] pixel column indices (float).
    pix_y: [...] pixel row indices (float), same shape as ``pix_x``.
    pixtocam: [3, 3] or [..., 3, 3] inverse intrinsics ``K^-1``.
    camtoworld: [3, 4] or [..., 3, 4] camera-to-world matrix.
    convention: "opencv" or "opengl".

  Returns:
    origins [..., 3], directions [..., 3] (unnormalised), viewdirs [..., 3]
    (unit length).
  """
  if convention not in CONVENTIONS:
    raise errors.InputError(f"convention must be one of {CONVENTIONS}; "
                     f"received {convention!r}.")
  pix_x = tf.convert_to_tensor(pix_x, tf.float32)
  pix_y = tf.convert_to_tensor(pix_y, tf.float32)
  pixtocam = tf.convert_to_tensor(pixtocam, tf.float32)
  camtoworld = tf.convert_to_tensor(camtoworld, tf.float32)
  pix = tf.stack([pix_x + 0.5, pix_y + 0.5, tf.ones_like(pix_x)], axis=-1)
  cam_dirs = tf.linalg.matvec(pixtocam, pix)
  if convention == "opengl":
    cam_dirs = cam_dirs * tf.constant([1.0, -1.0, -1.0])
  directions = tf.linalg.matvec(camtoworld[..., :3, :3], cam_dirs)
  origins = tf.broadcast_to(camtoworld[..., :3, 3], tf.shape(directions))
  viewdirs = directions / tf.norm(directions, axis=-1, keepdims=True)
  return origins, directions, viewdirs


def pixel_radii(directions) -> tf.Tensor:
  """Cone base radii from the spacing of neighbouring ray directions.

  The distance between the (unnormalised) directions of pixel (y, x) and
  (y + 1, x), times 2/√12; the last row takes the spacing between rows H − 3
  and H − 2 (as the release does: it repeats the second-to-last entry of the
  spacing array).

  Args:
    directions: [..., H, W, 3] with H ≥ 2.

  Returns:
    [..., H, W, 1] radii per unit of t.
  """
  directions = tf.convert_to_tensor(directions, tf.float32)
  spacing = tf.norm(directions[..., :-1, :, :] - directions[..., 1:, :, :],
                    axis=-1, keepdims=True)
  spacing = tf.concat([spacing, spacing[..., -2:-1, :, :]], axis=-3)
  return spacing * RADIUS_SCALE


def shift_origins_to_plane(origins, directions, plane_z: float = 0.0
                           ) -> tf.Tensor:
  """Slides every origin along its ray to the world plane z = ``plane_z``.

  DTU rays start on the plane z = 0 so that near/far (0.5/3.5) are measured from
  it (reference §1.2, pitfall P7).

  Args:
    origins: [..., 3].
    directions: [..., 3] with non-zero z component.

  Returns:
    [..., 3] shifted origins.
  """
  origins = tf.convert_to_tensor(origins, tf.float32)
  directions = tf.convert_to_tensor(directions, tf.float32)
  t = (plane_z - origins[..., 2:3]) / directions[..., 2:3]
  return origins + t * directions


def convert_to_ndc(origins, directions, focal, width, height,
                   near: float = 1.0) -> tuple[tf.Tensor, tf.Tensor]:
  """Maps forward-facing (OpenGL, looking along −z) rays to NDC.

  Each origin is first moved along its ray to the plane z = −near. In NDC the
  near plane is z = −1 and infinity z = +1; t ∈ [0, 1] along the returned
  (unnormalised) direction spans near plane to infinity.

  Args:
    origins: [..., 3] world origins.
    directions: [..., 3] world directions with negative z component.
    focal: focal length in pixels (scalar).
    width, height: image size in pixels.
    near: distance of the near plane.

  Returns:
    (ndc_origins [..., 3], ndc_directions [..., 3]).
  """
  origins = tf.convert_to_tensor(origins, tf.float32)
  directions = tf.convert_to_tensor(directions, tf.float32)
  focal = tf.cast(focal, tf.float32)
  width = tf.cast(width, tf.float32)
  height = tf.cast(height, tf.float32)
  t = -(near + origins[..., 2]) / directions[..., 2]
  origins = origins + t[..., None] * directions
  ox, oy, oz = tf.unstack(origins, axis=-1)
  dx, dy, dz = tf.unstack(directions, axis=-1)
  sx = -2.0 * focal / width
  sy = -2.0 * focal / height
  o_ndc = tf.stack([sx * ox / oz, sy * oy / oz, 1.0 + 2.0 * near / oz], -1)
  inf_ndc = tf.stack([sx * dx / dz, sy * dy / dz, tf.ones_like(dz)], -1)
  return o_ndc, inf_ndc - o_ndc


def ndc_radii(ndc_origins) -> tf.Tensor:
  """Cylinder radii in NDC from the spacing of neighbouring NDC origins.

  Mean of the distances to the next pixel along rows and along columns (the last
  row/column takes the spacing between indices −3 and −2, as the release does),
  times 2/√12.

  Args:
    ndc_origins: [..., H, W, 3] with H, W ≥ 2.

  Returns:
    [..., H, W, 1].
  """
  o = tf.convert_to_tensor(ndc_origins, tf.float32)
  dy = tf.norm(o[..., :-1, :, :] - o[..., 1:, :, :], axis=-1, keepdims=True)
  dy = tf.concat([dy, dy[..., -2:-1, :, :]], axis=-3)
  dx = tf.norm(o[..., :, :-1, :] - o[..., :, 1:, :], axis=-1, keepdims=True)
  dx = tf.concat([dx, dx[..., :, -2:-1, :]], axis=-2)
  return 0.5 * (dx + dy) * RADIUS_SCALE


# ----------------------------------------------------------------------------
# Unobserved poses (RegNeRF §4.1): numpy, sampled once per scene.
# ----------------------------------------------------------------------------


def check_poses(poses: np.ndarray, name: str = "poses") -> np.ndarray:
  """Validates camera-to-world matrices; returns them as float64 [N, 3, 4]."""
  return _check_poses(poses, name)


def centre_extents(poses: np.ndarray, c2w_avg: np.ndarray,
                   percentile: float = 100.0) -> np.ndarray:
  """Per-axis percentile of |camera centre| in the frame of the average pose.

  For recentred poses (DTU, LLFF after loading) the average pose is the
  identity and the 100th percentile is the release's sampling box; the frame
  change keeps it right for poses that were not recentred too.

  Args:
    poses: [N, 3, 4]; c2w_avg: [4, 4] average pose.

  Returns:
    [3] extents.
  """
  local = (np.linalg.inv(c2w_avg) @ to_homogeneous(poses))[:, :3, 3]
  return np.percentile(np.abs(local), percentile, axis=0)


def average_frame(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                              np.ndarray]:
  """(validated poses [N, 3, 4], average pose [4, 4], mean camera y axis [3])."""
  poses = _check_poses(poses)
  return poses, to_homogeneous(average_pose(poses)), poses[:, :, 1].mean(0)


def from_average_frame(c2w_avg: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """Points given in the average pose's frame [n, 3] → world [n, 3]."""
  return offsets @ c2w_avg[:3, :3].T + c2w_avg[:3, 3]


def _sampling_box(poses: np.ndarray, n: int):
  """(checked poses, average pose [4, 4], mean up [3], half-extents [3] of the
  camera centres in the average pose's frame) for sampling ``n`` poses."""
  if n < 1:
    raise errors.InputError(f"n must be >= 1; received {n}.")
  poses, c2w_avg, up = average_frame(poses)
  return poses, c2w_avg, up, centre_extents(poses, c2w_avg)


def sample_poses_around_object(poses: np.ndarray, n: int,
                               rng: np.random.Generator,
                               radius: float = 1.0,
                               focus_jitter: float = 0.125) -> np.ndarray:
  """Unobserved poses for object-centric scenes (DTU; OpenCV cameras).

  Positions are uniform in the box spanned by the camera centres
  (half-extents = per-axis max |centre| in the frame of the average pose,
  scaled by ``radius``), placed in that frame; every camera looks at the
  focus point of all optical axes plus N(0, focus_jitter²) jitter per
  coordinate, with the mean camera y axis as "up".

  Args:
    poses: [N, 3, 4] camera-to-world matrices of all views (after recentring).
    n: number of poses.
    rng: NumPy generator.
    radius: scale of the box.
    focus_jitter: std of the look-at point jitter.

  Returns:
    [n, 3, 4] float64 poses.
  """
  poses, c2w_avg, up, half = _sampling_box(poses, n)
  focus = focus_point(poses)
  offsets = half * (2.0 * radius * (rng.uniform(size=(n, 3)) - 0.5))
  positions = from_average_frame(c2w_avg, offsets)
  targets = focus + rng.normal(scale=focus_jitter, size=(n, 3))
  return look_at(targets - positions, up, positions)


def llff_focal_depth(bounds: np.ndarray) -> float:
  """Focus depth of a forward-facing capture from its near/far bounds [N, 2]."""
  bounds = np.asarray(bounds, np.float64)
  if bounds.ndim != 2 or bounds.shape[1] != 2 or not np.all(bounds > 0):
    raise errors.InputError("bounds must be [N, 2] positive near/far depths; "
                     f"received shape {bounds.shape}.")
  close, far = 0.9 * bounds.min(), 5.0 * bounds.max()
  return 1.0 / (0.25 / close + 0.75 / far)


def forward_focus(c2w_avg: np.ndarray, bounds: np.ndarray) -> np.ndarray:
  """The point ``focal_depth`` in front of the average OpenGL camera [3]."""
  depth = llff_focal_depth(bounds)
  return (c2w_avg @ np.array([0.0, 0.0, -depth, 1.0]))[:3]


def sample_forward_facing_poses(poses: np.ndarray, bounds: np.ndarray, n: int,
                                rng: np.random.Generator,
                                radius: float = 1.0) -> np.ndarray:
  """Unobserved poses for forward-facing scenes (LLFF; OpenGL cameras).

  Positions are uniform in the box of the camera centres (frame of the
  average pose); every camera looks at the point ``focal_depth`` in front of
  the average camera (:func:`llff_focal_depth`).

  Args:
    poses: [N, 3, 4] camera-to-world matrices of all views (scaled, recentred).
    bounds: [N, 2] near/far depth bounds (scaled like the poses).
    n: number of poses (the release keeps only one: see ``release_compat``).
    rng: NumPy generator.
    radius: scale of the box.

  Returns:
    [n, 3, 4] float64 poses.
  """
  poses, c2w_avg, up, half = _sampling_box(poses, n)
  lookat = forward_focus(c2w_avg, bounds)
  offsets = half * radius * rng.uniform(-1.0, 1.0, size=(n, 3))
  positions = from_average_frame(c2w_avg, offsets)
  return look_at(positions - lookat, up, positions)
