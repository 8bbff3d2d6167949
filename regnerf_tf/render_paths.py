"""Camera paths for videos (reference §6.4).

* :func:`dtu_spiral`: object-centric spiral for OpenCV cameras (DTU). Radii =
  60th percentile of |camera centre| per axis (in the frame of the average
  pose, which is the identity for recentred DTU poses); for θ in
  linspace(0, 4π, n, endpoint excluded) the offset is
  radii ⊙ (cos θ, −sin θ, −sin(θ/2)), the position c2w_avg·[offset, 1], and the
  camera looks at the focus point of all optical axes with the mean camera y
  axis as "up".
* :func:`llff_spiral`: NeRF's forward-facing spiral for OpenGL cameras (LLFF).
  Radii = 90th percentile, same θ schedule; every camera looks at
  c2w_avg·[0, 0, −focal_depth, 1].
* :func:`orbit`: object-centric path for Blender-style (OpenGL) scenes: axes are
  flipped to OpenCV with diag(1, −1, −1) on the rotation, :func:`dtu_spiral` is
  applied, and the result flipped back.
* :func:`path_from_json`: a user-supplied list of 3×4 or 4×4 matrices.

Every function returns float64 camera-to-world matrices [n, 3, 4] in the same
axes as its input.
"""

from __future__ import annotations

import json
import os

import numpy as np

from regnerf_tf import errors
from regnerf_tf import camera

_FLIP_YZ = np.diag([1.0, -1.0, -1.0])
DEFAULT_FRAMES = 240


def _angles(n_frames: int) -> np.ndarray:
  if int(n_frames) < 1:
    raise errors.InputError(f"n_frames must be >= 1; received {n_frames}.")
  return np.linspace(0.0, 4.0 * np.pi, int(n_frames), endpoint=False)


def _spiral_positions(c2w_avg: np.ndarray, radii: np.ndarray,
                      n_frames: int) -> np.ndarray:
  theta = _angles(n_frames)
  offsets = radii * np.stack(
      [np.cos(theta), -np.sin(theta), -np.sin(0.5 * theta)], axis=-1)
  return camera.from_average_frame(c2w_avg, offsets)


def _spiral_frame(camtoworlds, n_frames: int, percentile: float):
  """(poses, average pose, up, spiral positions) shared by both spirals."""
  poses, c2w_avg, up = camera.average_frame(camtoworlds)
  radii = camera.centre_extents(poses, c2w_avg, percentile)
  return poses, c2w_avg, up, _spiral_positions(c2w_avg, radii, n_frames)


def dtu_spiral(camtoworlds: np.ndarray, n_frames: int = DEFAULT_FRAMES,
               percentile: float = 60.0) -> np.ndarray:
  """Spiral around the average camera, looking at the focus point (OpenCV).

  Args:
    camtoworlds: [N, 3, 4] (or [N, 4, 4]) OpenCV camera-to-world matrices of
      all cameras of the scene.
    n_frames: number of poses.
    percentile: percentile of |camera centre| giving the spiral radii.

  Returns:
    [n_frames, 3, 4] float64 camera-to-world matrices.
  """
  poses, _, up, positions = _spiral_frame(camtoworlds, n_frames, percentile)
  return camera.look_at(camera.focus_point(poses) - positions, up, positions)


def llff_spiral(camtoworlds: np.ndarray, bounds: np.ndarray,
                n_frames: int = DEFAULT_FRAMES,
                percentile: float = 90.0) -> np.ndarray:
  """NeRF's forward-facing spiral (OpenGL cameras).

  Args:
    camtoworlds: [N, 3, 4] (or [N, 4, 4]) OpenGL camera-to-world matrices.
    bounds: [N, 2] near/far depth bounds of the cameras (same scale).
    n_frames: number of poses.
    percentile: percentile of |camera centre| giving the spiral radii.

  Returns:
    [n_frames, 3, 4] float64 camera-to-world matrices.
  """
  _, c2w_avg, up, positions = _spiral_frame(camtoworlds, n_frames, percentile)
  lookat = camera.forward_focus(c2w_avg, bounds)
  return camera.look_at(positions - lookat, up, positions)


def orbit(camtoworlds: np.ndarray, n_frames: int = DEFAULT_FRAMES,
          percentile: float = 60.0) -> np.ndarray:
  """Object-centric spiral for OpenGL (Blender-style) cameras.

  Args:
    camtoworlds: [N, 3, 4] (or [N, 4, 4]) OpenGL camera-to-world matrices.
    n_frames: number of poses.
    percentile: as in :func:`dtu_spiral`.

  Returns:
    [n_frames, 3, 4] float64 OpenGL camera-to-world matrices.
  """
  poses = camera.check_poses(camtoworlds, "camtoworlds").copy()
  poses[:, :, :3] = poses[:, :, :3] @ _FLIP_YZ
  path = dtu_spiral(poses, n_frames, percentile)
  path[:, :, :3] = path[:, :, :3] @ _FLIP_YZ
  return path


_EXAMPLE = "[[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], ...]"
ROTATION_TOLERANCE = 1e-3


def _camera_matrix(path: str, i: int, item) -> np.ndarray:
  """Camera ``i`` of a path file as a float64 [3, 4] matrix, checked."""
  where = f"{path}: camera {i}"
  try:
    shape = np.asarray(item, dtype=object).shape
  except ValueError:  # ragged nesting
    shape = "ragged rows"
  if not isinstance(item, list):
    shape = f"of a {type(item).__name__}, not a list of rows"
  if shape not in ((3, 4), (4, 4)):
    raise errors.InputError(
        f"{where} has shape {list(shape) if isinstance(shape, tuple) else shape}"
        f"; expected 3×4 or 4×4 (a list of rows, e.g. {_EXAMPLE}).")
  cells = np.asarray(item, dtype=object)
  bad = [x for x in cells.flat
         if isinstance(x, bool) or not isinstance(x, (int, float))]
  if bad:
    raise errors.InputError(
        f"{where} is not a numeric matrix: every entry must be a number; "
        f"received {bad[0]!r} ({type(bad[0]).__name__}).")
  try:
    matrix = cells.astype(np.float64)
  except OverflowError:  # an integer beyond the float range
    matrix = np.full(cells.shape, np.inf)
  if not np.all(np.isfinite(matrix)):
    raise errors.InputError(f"{where} contains NaN or infinite values; every "
                            "entry must be a finite number.")
  if matrix.shape == (4, 4) and not np.allclose(matrix[3], [0, 0, 0, 1]):
    raise errors.InputError(f"{where} is 4×4 but its last row is "
                            f"{matrix[3].tolist()}, not [0, 0, 0, 1]; use "
                            "[0, 0, 0, 1] or give 3×4 matrices.")
  rotation = matrix[:3, :3]
  error = np.abs(rotation.T @ rotation - np.eye(3)).max()
  det = np.linalg.det(rotation)
  if error > ROTATION_TOLERANCE or abs(det - 1.0) > ROTATION_TOLERANCE:
    raise errors.InputError(
        f"{where}: the left 3×3 block must be a rotation (orthonormal "
        f"columns, determinant +1, within {ROTATION_TOLERANCE}); received "
        f"max |RᵀR − I| = {error:.3g}, det = {det:.4g}. Remove scale, shear "
        "or reflections from the camera-to-world matrix.")
  return matrix[:3]


def path_from_json(path: str) -> np.ndarray:
  """Reads a camera path: a JSON list of 3×4 or 4×4 camera-to-world matrices.

  The matrices must use the axes of the scene's records (OpenCV for DTU,
  OpenGL for LLFF and Blender) and its world frame (after the loader's
  recentring / rescaling); their left 3×3 block must be a rotation.

  Args:
    path: JSON file, e.g. ``[[[1,0,0,0],[0,1,0,0],[0,0,1,0]], ...]``.

  Returns:
    [n, 3, 4] float64 camera-to-world matrices.

  Raises:
    errors.MissingFileError: no such file.
    errors.InputError: naming the problem (invalid JSON, not a list, a matrix
      with the wrong shape, non-numeric or non-finite entries, a 4×4 matrix
      whose last row is not [0, 0, 0, 1], a 3×3 block that is not a rotation).
  """
  if not os.path.isfile(path):
    raise errors.MissingFileError(
        f"Camera path file {path} does not exist (or is not a file); give a "
        f"JSON file of camera-to-world matrices, e.g. {_EXAMPLE}.")
  try:
    with open(path, encoding="utf-8") as f:
      payload = json.load(f)
  except (ValueError, RecursionError) as e:  # incl. JSON and UTF-8 errors
    raise errors.InputError(
        f"{path} is not valid JSON: {e}. Write a JSON list of 3×4 or 4×4 "
        f"camera-to-world matrices, e.g. {_EXAMPLE}.") from None
  if not isinstance(payload, list):
    raise errors.InputError(f"{path} must hold a JSON list of 3×4 or 4×4 "
                            f"camera-to-world matrices; found a "
                            f"{type(payload).__name__}. Write e.g. "
                            f"{_EXAMPLE}.")
  if not payload:
    raise errors.InputError(f"{path} holds an empty list; at least one camera "
                            f"is needed, e.g. {_EXAMPLE}.")
  return np.stack([_camera_matrix(path, i, item)
                   for i, item in enumerate(payload)])
