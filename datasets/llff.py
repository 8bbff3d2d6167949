"""LLFF scenes: ``poses_bounds.npy`` with ``images_<factor>/`` or ``images/``
(reference §1.3): the axis fix, LLFF's scaling by 1 / (0.75 · min bound) and
recentring, and the pairing of rows with image files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from regnerf_tf import camera
from regnerf_tf import errors
from regnerf_tf import scene_kinds
from regnerf_tf.datasets import colmap
from regnerf_tf.datasets import image_ops
from regnerf_tf.datasets import orientation
from regnerf_tf.datasets.files import (
    Record,
    _check_one_size,
    _check_rotations,
    _check_same_size,
    _exists,
    _ignored_note,
    _isdir,
    _join,
    _list_images,
    _real_array,
    _record,
    _turned_views,
    _views_to_read,
    load_npy,
    read_image)


def load_poses_bounds(path: str) -> np.ndarray:
  """Reads and validates an LLFF ``poses_bounds.npy``: float64 [N, 17].

  Raises ``InputError`` unless every row holds a finite rotation (orthonormal,
  det +1), positive H, W and focal length, and bounds 0 < near < far.
  """
  data = _real_array(load_npy(path), path)
  if data.ndim != 2 or data.shape[1] != 17 or data.shape[0] == 0:
    raise errors.InputError(f"{path} has shape {data.shape}; expected [N, 17] "
                     "(3×5 pose-and-hwf plus 2 depth bounds per image, N ≥ 1).")
  raw = data[:, :15].reshape(-1, 3, 5)
  _check_rotations(raw[:, :, :3], lambda i: f"Row {i} of {path}")
  bad = np.flatnonzero(np.any(raw[:, :, 4] <= 0, axis=1))
  if bad.size:
    raise errors.InputError(f"Row {bad[0]} of {path} has [H, W, focal] = "
                            f"{raw[bad[0], :, 4].tolist()}; expected positive "
                            "numbers. Re-run LLFF's imgs2poses.py.")
  near, far = data[:, 15], data[:, 16]
  bad = np.flatnonzero((near <= 0) | (far <= near))
  if bad.size:
    raise errors.InputError(f"Row {bad[0]} of {path} has depth bounds near = "
                            f"{near[bad[0]]:.6g}, far = {far[bad[0]]:.6g}; expected "
                            f"0 < near < far ({bad.size} row(s) affected). "
                            "Re-run LLFF's imgs2poses.py.")
  return data


def _llff_files(scene_dir: str, factor: int) -> tuple[str, str, int]:
  """(poses_bounds.npy, image folder, factor still to downsample by)."""
  poses_file = _join(scene_dir, "poses_bounds.npy")
  for image_dir, downsample_by in ((f"images_{factor}", 1), ("images", factor)):
    if _isdir(_join(scene_dir, image_dir)):
      break
  else:
    image_dir = None
  if not _exists(poses_file) or image_dir is None:
    raise errors.MissingFileError(
        f"{scene_dir} is not an LLFF scene: expected poses_bounds.npy (found: "
        f"{_exists(poses_file)}) and images_{factor}/ or images/ (found: "
        f"{image_dir is not None}). Run LLFF's imgs2poses.py (COLMAP) to "
        "create poses_bounds.npy.")
  return poses_file, _join(scene_dir, image_dir), downsample_by


def llff_num_views(scene_dir: str, factor: int = 8) -> int:
  """Number of views of an LLFF scene (its files checked as by read_llff)."""
  poses_file, _, _ = _llff_files(str(scene_dir).rstrip("/"), factor)
  return len(load_poses_bounds(poses_file))


def _llff_frame(poses: np.ndarray, bounds: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """LLFF's normalisation of OpenGL cameras [N, 3, 4] with bounds [N, 2].

  Translations and bounds are scaled by 1 / (0.75 · the smallest near bound)
  and the poses recentred on their average. Returns (poses, bounds,
  world_transform [4, 4] from the source frame).
  """
  scale = 1.0 / (0.75 * bounds.min())
  poses = np.array(poses, np.float64)
  poses[:, :, 3] *= scale
  poses, recentre = camera.recenter_poses(poses)
  return poses, bounds * scale, recentre @ np.diag([scale, scale, scale, 1.0])


def _order_from_colmap(scene_dir: str, centres: np.ndarray
                       ) -> Callable[[list[str], list[str]],
                                     tuple[str | None, str]]:
  """A ``settle`` for :func:`_list_images` from the COLMAP model, if any.

  LLFF's imgs2poses.py leaves ``sparse/0/`` next to the images and copies each
  COLMAP camera centre into column 3 of its row; the order whose names give
  the rows' centres (within 1e-4 of the scene's extent) is the pairing.
  """
  def settle(text: list[str], number: list[str]) -> tuple[str | None, str]:
    path = colmap.find_images_file(scene_dir)
    if path is None:
      return None, ""
    by_stem = {image.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]: image.centre
               for image in colmap.read_images(path)}
    extent = max(1e-12, float(np.ptp(centres, axis=0).max()))

    def fits(names: list[str]) -> bool:
      stems = [n.rsplit(".", 1)[0] for n in names]
      if any(s not in by_stem for s in stems):
        return False
      found = np.stack([by_stem[s] for s in stems])
      return bool(np.abs(found - centres).max() <= 1e-4 * extent)

    orders = [o for o, names in (("text", text), ("number", number))
              if fits(names)]
    if len(orders) == 1:
      return orders[0], ""
    return None, (f" The COLMAP model {path} did not settle it: its camera "
                  f"centres match {'both orders' if orders else 'neither order'}"
                  " of the names.")
  return settle


def read_llff(scene_dir: str, *, factor: int = 8, resize: str = "area",
              views: Sequence[int] | None = None, image_order: str = "auto",
              exif: str = "auto") -> list[Record]:
  """Reads an LLFF scene (reference §1.3).

  Args:
    scene_dir: folder with ``poses_bounds.npy`` and ``images_<factor>/``; if
      that folder is missing, ``images/`` is downsampled by ``factor`` here.
    factor: downsampling relative to the resolution in ``poses_bounds.npy``.
    resize: filter used only when downsampling ``images/`` ("area" or "release").
    views: 0-based view indices to load images for (default: all).
    image_order: how rows of ``poses_bounds.npy`` pair with image files:
      "auto" (text order; when it differs from number order, the COLMAP
      model in ``sparse/0/`` decides if it matches one order, else refused),
      "text" or "number" (see :func:`_list_images`).
    exif: which pixels the poses describe for photos with an EXIF
      orientation tag: "auto", "stored" or "displayed" (see
      :mod:`regnerf_tf.datasets.orientation`).

  Returns:
    One record per requested view; ``near``/``far`` are the view's scaled
    bounds; images as displayed, cameras to match.
  """
  scene_dir = str(scene_dir).rstrip("/")
  poses_file, image_dir, downsample_by = _llff_files(scene_dir, factor)
  data = load_poses_bounds(poses_file)
  names, ignored = _list_images(
      image_dir, image_order, "poses_bounds.npy",
      _order_from_colmap(scene_dir, data[:, :15].reshape(-1, 3, 5)[:, :, 3]))
  if len(names) != data.shape[0]:
    raise errors.InputError(
        f"{scene_dir}: {len(names)} images in {image_dir.rsplit('/', 1)[-1]}/"
        f"{_ignored_note(ignored)} but {data.shape[0]} rows in "
        "poses_bounds.npy; expected one row per image in sorted filename "
        "order. Remove extra files or re-run COLMAP/LLFF's imgs2poses.py.")
  num = data.shape[0]
  paths = [_join(image_dir, n) for n in names]
  raw = data[:, :15].reshape(-1, 3, 5)
  bounds = data[:, 15:17]
  full_h, full_w, focal = raw[0, :, 4]
  tags, readings, shown = _turned_views(paths, (full_h, full_w), exif,
                                        poses_file)
  size = _check_one_size(paths, [(h // downsample_by, w // downsample_by)
                                 for h, w in shown], tags)
  # [down, right, back] → [right, up, back] (OpenGL).
  poses = np.stack([raw[:, :, 1], -raw[:, :, 0], raw[:, :, 2], raw[:, :, 3]], -1)
  ks = np.zeros((num, 3, 3))
  for i in range(num):
    turned = readings[i] == "stored" and tags[i] != 1
    grid = (orientation.displayed_size(size, tags[i]) if turned else size)
    pixel_scale = grid[1] / full_w  # (``size`` is the displayed grid)
    if abs(grid[0] / full_h - pixel_scale) > 0.01 * pixel_scale:
      exif_note = (f" ({orientation.describe(paths[i], tags[i])}; its camera "
                   f"read as describing the {readings[i]} pixels)"
                   if tags[i] != 1 else "")
      raise errors.InputError(
          f"Images of {scene_dir} are {grid[1]}×{grid[0]}{exif_note}, which "
          f"is not a scaled copy of the {full_w:.0f}×{full_h:.0f} in "
          "poses_bounds.npy; expected the same aspect ratio.")
    f = focal * pixel_scale
    ks[i] = camera.intrinsic_matrix(f, f, grid[1] / 2.0, grid[0] / 2.0)
    if turned:
      ks[i], poses[i] = orientation.turn_camera(ks[i], poses[i], tags[i], grid,
                                                "opengl")
  poses, bounds, world_transform = _llff_frame(poses, bounds)

  records = []
  name = scene_dir.rsplit("/", 1)[-1]
  for i in _views_to_read(views, num):
    image = read_image(paths[i])
    if image.shape[-1] < 3:
      raise errors.InputError(f"{paths[i]} has {image.shape[-1]} channel(s); "
                              "expected RGB.")
    image = image[..., :3]
    if downsample_by > 1:
      image = image_ops.to_uint8(image_ops.downsample(image, downsample_by, resize))
    _check_same_size(paths[i], image, size)
    records.append(_record(
        image=image, has_mask=False, camtoworld=poses[i], intrinsics=ks[i],
        near=bounds[i, 0], far=bounds[i, 1], scene=name, view_index=i,
        file_name=names[i], kind=scene_kinds.LLFF.name, scene_camtoworlds=poses,
        scene_intrinsics=ks, scene_bounds=bounds,
        world_transform=world_transform))
  return records
