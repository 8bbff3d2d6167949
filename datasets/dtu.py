"""DTU scans: the official layout (Rectified + Calibration/cal18) and the
IDR/NeuS layout (cameras.npz / cameras_sphere.npz); projection matrices split
into K [R | t] by an RQ decomposition (reference §1, pitfalls P12, P14, P20).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from regnerf_tf import camera
from regnerf_tf import errors
from regnerf_tf import scene_kinds
from regnerf_tf.datasets import image_ops
from regnerf_tf.datasets import orientation
from regnerf_tf.datasets import splits
from regnerf_tf.datasets.files import (
    Record,
    _binarise_mask,
    _check_one_size,
    _check_rotations,
    _exists,
    _fit_to_size,
    _ignored_note,
    _isdir,
    _join,
    _list_images,
    _listdir,
    _read_bytes,
    _real_array,
    _record,
    _scale_intrinsics,
    _turned_views,
    _views_to_read,
    load_npz,
    read_image)


DTU_CALIBRATION_SIZE = (1200, 1600)  # (H, W) the DTU cameras are calibrated at.


# The DTU kind's fixed bounds, in the normalised frame this reader writes.
DTU_NEAR, DTU_FAR = scene_kinds.DTU.near, scene_kinds.DTU.far


DTU_IMAGE_PATTERN = "rect_{:03d}_3_r5000.png"


DTU_CAMERA_PATTERN = "pos_{:03d}.txt"


DTU_CAMERA_FILES = ("cameras.npz", "cameras_sphere.npz")


MAX_SKEW = 0.1  # |K[0, 1] / K[0, 0]| of a decomposed DTU projection.


MAX_ASPECT = 2.0  # fy / fx of a decomposed DTU projection within [1/2, 2].


def decompose_projection(projection: np.ndarray,
                         what: str = "The projection matrix"
                         ) -> tuple[np.ndarray, np.ndarray]:
  """Splits a projection matrix P = K [R | t] (OpenCV convention).

  Args:
    projection: [3, 4] (or [4, 4], last row ignored) world → pixel projection.
    what: how error messages name the matrix (e.g. its file).

  Returns:
    (K [3, 3] with K[2, 2] = 1 and positive focal lengths, camera-to-world
    [3, 4] = [Rᵀ | C] with C the camera centre), float64.

  Raises:
    errors.InputError: P is not finite, its 3×3 part is singular, or K is not
      a pinhole camera (|skew| > MAX_SKEW·fx or fy/fx outside
      [1/MAX_ASPECT, MAX_ASPECT]). A reflected or scaled P is accepted: P is
      homogeneous, so −P and s·P are the same camera.
  """
  projection = _real_array(projection, what, ((3, 4), (4, 4)))[:3]
  left = projection[:, :3]
  det = np.linalg.det(left)
  if not abs(det) >= 1e-12 * max(1.0, np.abs(left).max() ** 3):
    raise errors.InputError(f"{what} has a singular 3×3 part (det = {det:.3g}); "
                            "expected P = K[R|t] with invertible K R.")
  if det < 0:  # P is defined up to scale; choose the sign with det(R) = +1.
    projection = -projection
    left = -left
  k, rotation = camera.rq_decomposition(left)
  k = k / k[2, 2]
  centre = -np.linalg.solve(left, projection[:, 3])
  c2w = np.concatenate([rotation.T, centre[:, None]], axis=1)
  _real_array(c2w, f"The camera decomposed from {what}")
  _check_rotations(c2w[None, :, :3],
                   lambda _: f"{what} (after the RQ decomposition into K[R|t])")
  skew, aspect = k[0, 1] / k[0, 0], k[1, 1] / k[0, 0]
  if abs(skew) > MAX_SKEW or not 1 / MAX_ASPECT <= aspect <= MAX_ASPECT:
    raise errors.InputError(
        f"{what} decomposes to intrinsics with skew/fx = {skew:.3g} and fy/fx = "
        f"{aspect:.3g}; expected a pinhole camera with |skew/fx| ≤ {MAX_SKEW} and "
        f"fy/fx in [{1 / MAX_ASPECT}, {MAX_ASPECT}] (the 3×3 part of P is "
        "sheared). Check that the file holds P = K[R|t].")
  return k, c2w


def _dtu_records(name: str, projections: np.ndarray,
                 camera_label: Callable[[int], str],
                 image_path: Callable[[int], str],
                 mask_path: Callable[[int], str | None],
                 factor: int, resize: str, views: Sequence[int] | None,
                 exif: str = "auto") -> list[Record]:
  """Records of a DTU scan from its [N, 3, 4] projections (1600×1200 pixels).

  ``camera_label(i)`` names projection i in error messages.
  """
  num = projections.shape[0]
  ks, poses = zip(*(decompose_projection(p, camera_label(i))
                    for i, p in enumerate(projections)))
  ks, poses = np.stack(ks), np.stack(poses)
  paths = [image_path(i) for i in range(num)]
  tags, readings, shown = _turned_views(
      paths, DTU_CALIBRATION_SIZE, exif,
      f"the DTU camera ({camera_label(0)}, calibrated at 1600×1200)")
  shown_size = _check_one_size(paths, shown, tags)
  grids = set()
  for i in range(num):
    if readings[i] == "stored" and tags[i] != 1:
      ks[i], poses[i] = orientation.turn_camera(
          ks[i], poses[i], tags[i], DTU_CALIBRATION_SIZE, "opencv")
    grids.add(orientation.displayed_size(DTU_CALIBRATION_SIZE, tags[i])
              if readings[i] == "stored" else DTU_CALIBRATION_SIZE)
  if len(grids) > 1:
    raise errors.InputError(
        f"The images of {name} carry EXIF orientation tags that turn some "
        "cameras to portrait and leave others in landscape, yet all images "
        "are displayed at one size; expected one orientation for all views. "
        "Choose exif='displayed' or exif='stored' explicitly.")
  calibration = grids.pop()
  poses, recentre = camera.recenter_poses(poses)
  poses, scale = camera.rescale_poses(poses)
  world_transform = np.diag([scale, scale, scale, 1.0]) @ recentre

  target = (calibration[0] // factor, calibration[1] // factor)
  views = _views_to_read(views, num)
  # The output size is fixed by the first image that is read: files at or below
  # the target resolution are used as they are, larger ones are downsampled by
  # the integer factor that reaches the target.
  probe_path = image_path(views[0] if views else 0)
  if shown_size[1] > target[1]:
    size = target
  else:
    size = shown_size
  pixel_scale = size[1] / calibration[1]
  if abs(size[0] / calibration[0] - pixel_scale) > 1e-6:
    raise errors.InputError(f"{probe_path} gives DTU images of {size[1]}×{size[0]} "
                            "pixels as displayed; expected the aspect of the "
                            f"{calibration[1]}×{calibration[0]} calibration "
                            "(e.g. 400×300).")
  ks = _scale_intrinsics(ks, pixel_scale)
  bounds = np.tile(np.array([[DTU_NEAR, DTU_FAR]]), (num, 1))

  records = []
  for i in views:
    path = image_path(i)
    image = read_image(path)
    if image.shape[-1] < 3:
      raise errors.InputError(f"{path} has {image.shape[-1]} channel(s); expected RGB.")
    image = image_ops.to_uint8(_fit_to_size(image[..., :3], size, resize, path))
    mpath = mask_path(i)
    if mpath is not None:
      mask = _fit_to_size(_binarise_mask(read_image(mpath))[..., None], size,
                          resize, mpath)
      mask = image_ops.to_uint8(mask * 255.0)
    else:
      mask = np.full(size + (1,), 255, np.uint8)
    records.append(_record(
        image=image, mask=mask, has_mask=mpath is not None, camtoworld=poses[i],
        intrinsics=ks[i], near=DTU_NEAR, far=DTU_FAR, scene=name, view_index=i,
        file_name=path.rsplit("/", 1)[-1], kind=scene_kinds.DTU.name, scene_camtoworlds=poses,
        scene_intrinsics=ks, scene_bounds=bounds,
        world_transform=world_transform))
  return records


def _first_existing(candidates: Sequence[str]) -> str | None:
  for c in candidates:
    if _exists(c):
      return c
  return None


def _parent(path: str, levels: int = 1) -> str:
  path = str(path).rstrip("/")
  for _ in range(levels):
    path = path.rsplit("/", 1)[0] if "/" in path else "."
  return path


def dtu_mask_candidates(mask_root: str, scan: str, index: int) -> list[str]:
  """Mask files RegNeRF's layout may use for 0-based view ``index`` (P12)."""
  return [_join(mask_root, scan, "mask", f"{index:03d}.png"),
          _join(mask_root, scan, f"{index:03d}.png")]


def read_dtu(scan_dir: str, *, calibration_dir: str | None = None,
             mask_root: str | None = None, factor: int = 4,
             resize: str = "release", views: Sequence[int] | None = None,
             num_images: int = splits.DTU_NUM_IMAGES,
             exif: str = "auto") -> list[Record]:
  """Reads a scan in the official DTU layout (as RegNeRF's release does).

  Args:
    scan_dir: ``.../Rectified/scan<N>`` holding ``rect_{i:03d}_3_r5000.png``
      for i = 1..49.
    calibration_dir: folder with ``pos_{i:03d}.txt``; default: the first of
      ``<scan_dir>/../../Calibration/cal18`` and ``<scan_dir>/../Calibration/cal18``
      that exists.
    mask_root: folder with ``<scan>/[mask/]{i:03d}.png`` (RegNeRF's
      ``idrmasks``); default: ``idrmasks`` or ``submission_data/idrmasks`` next
      to ``Rectified``, if present. Views without a mask file get
      ``has_mask = False``.
    factor: downsampling relative to 1600×1200 (4 → 400×300).
    resize: "release" (centre-2×2 bilinear, pitfall P1) or "area".
    views: 0-based view indices to load images for (default: all).
    num_images: cameras used (and normalised over); the release uses 49.
    exif: which pixels the cameras describe for images with an EXIF
      orientation tag (see :mod:`regnerf_tf.datasets.orientation`).

  Returns:
    One record per requested view (see the module docstring).
  """
  scan_dir = str(scan_dir).rstrip("/")
  scan = scan_dir.rsplit("/", 1)[-1]
  if calibration_dir is None:
    tried = [_join(_parent(scan_dir, 2), "Calibration", "cal18"),
             _join(_parent(scan_dir, 1), "Calibration", "cal18")]
    calibration_dir = _first_existing(tried)
    if calibration_dir is None:
      raise errors.MissingFileError(
          f"No DTU calibration found for {scan_dir}: looked for "
          f"{' and '.join(tried)} (files pos_001.txt..pos_049.txt). Download "
          "the DTU SampleSet (SampleSet/MVS Data/Calibration/cal18) and place "
          "Calibration/ next to Rectified/, or pass calibration_dir.")
  if mask_root is None:
    base = _parent(scan_dir, 2)
    mask_root = _first_existing([_join(base, "idrmasks"),
                                 _join(base, "submission_data", "idrmasks")])
  missing = []
  projections = []
  for i in range(1, num_images + 1):
    image_file = _join(scan_dir, DTU_IMAGE_PATTERN.format(i))
    camera_file = _join(calibration_dir, DTU_CAMERA_PATTERN.format(i))
    if not _exists(image_file):
      missing.append(image_file)
    if not _exists(camera_file):
      missing.append(camera_file)
      continue
    text = _read_bytes(camera_file).decode("utf-8", errors="replace")
    try:
      p = np.array([float(v) for v in text.split()], np.float64)
    except ValueError as e:
      raise errors.InputError(f"{camera_file} is not a list of numbers ({e}); expected "
                       "a 3×4 projection matrix as text.") from e
    if p.size != 12:
      raise errors.InputError(f"{camera_file} holds {p.size} numbers; expected 12 (a "
                       "3×4 projection matrix).")
    projections.append(_real_array(p.reshape(3, 4), camera_file))
  if missing:
    shown = "\n  ".join(missing[:6])
    raise errors.MissingFileError(
        f"The DTU scan {scan_dir} is incomplete: {len(missing)} expected file(s) "
        f"are missing, e.g.\n  {shown}\nExpected images "
        f"{DTU_IMAGE_PATTERN.format(1)}..{DTU_IMAGE_PATTERN.format(num_images)} "
        f"(light condition 3) and cameras pos_001.txt..pos_{num_images:03d}.txt.")

  def mask_path(i: int) -> str | None:
    if mask_root is None:
      return None
    return _first_existing(dtu_mask_candidates(mask_root, scan, i))

  def camera_label(i: int) -> str:
    return _join(calibration_dir, DTU_CAMERA_PATTERN.format(i + 1))

  return _dtu_records(scan, np.stack(projections), camera_label,
                      lambda i: _join(scan_dir, DTU_IMAGE_PATTERN.format(i + 1)),
                      mask_path, factor, resize, views, exif)


def _idr_folder(scan_dir: str, stems: Sequence[str]) -> str | None:
  """The full-resolution folder if present, else the first downscaled copy."""
  names = set(_listdir(scan_dir))
  for stem in stems:
    if stem in names and _isdir(_join(scan_dir, stem)):
      return stem
  pattern = re.compile(r"^(%s)_(\d+)$" % "|".join(stems))
  scaled = sorted((int(m.group(2)), n) for n in names
                  if (m := pattern.match(n)) and _isdir(_join(scan_dir, n)))
  return scaled[0][1] if scaled else None


def read_dtu_idr(scan_dir: str, *, factor: int = 4, resize: str = "release",
                 views: Sequence[int] | None = None,
                 num_images: int = splits.DTU_NUM_IMAGES,
                 use_masks: bool = True, image_order: str = "auto",
                 exif: str = "auto") -> list[Record]:
  """Reads a DTU scan in the IDR/NeuS layout.

  ``world_mat_i`` of ``cameras.npz`` / ``cameras_sphere.npz`` is the projection of
  view i in DTU world units (equal to ``pos_{i+1:03d}.txt``); ``scale_mat_i`` is
  not needed because poses are recentred and rescaled anyway.

  Args:
    scan_dir: folder with the camera file, ``image/`` or ``images/`` (or a
      downscaled copy such as ``images_4/``) and optionally ``mask/``
      (or ``mask_4/``).
    factor, resize, views, num_images: as for :func:`read_dtu`.
    use_masks: read the mask folder if there is one.
    image_order: how cameras pair with image files (see :func:`read_llff`).
    exif: as for :func:`read_dtu`.

  Returns:
    One record per requested view.
  """
  scan_dir = str(scan_dir).rstrip("/")
  camera_file = _first_existing([_join(scan_dir, n) for n in DTU_CAMERA_FILES])
  image_dir = _idr_folder(scan_dir, ("image", "images"))
  if camera_file is None or image_dir is None:
    raise errors.MissingFileError(
        f"{scan_dir} is not a DTU scan in IDR/NeuS layout: expected "
        f"{' or '.join(DTU_CAMERA_FILES)} (found: {camera_file is not None}) and "
        f"an image folder image/, images/ or images_<k>/ (found: "
        f"{image_dir is not None}).")
  cams = load_npz(camera_file)
  count = 0
  while f"world_mat_{count}" in cams:
    count += 1
  if count == 0:
    raise errors.InputError(f"{camera_file} has no world_mat_0; expected keys "
                     "world_mat_0..world_mat_<N-1> (IDR/NeuS convention).")
  rows = camera_file.rsplit("/", 1)[-1]
  image_names, ignored = _list_images(_join(scan_dir, image_dir), image_order,
                                      rows)
  if len(image_names) != count:
    raise errors.InputError(
        f"{scan_dir}: {len(image_names)} images in {image_dir}/"
        f"{_ignored_note(ignored)} but {count} "
        f"cameras (world_mat_*) in {camera_file.rsplit('/', 1)[-1]}; expected one "
        "camera per image. Remove extra images or use the matching camera file.")
  mask_dir = None
  mask_names: list[str] = []
  if use_masks:
    suffix = image_dir.split("_", 1)[1] if "_" in image_dir else None
    stems = ([f"mask_{suffix}", f"masks_{suffix}"] if suffix else []) + ["mask", "masks"]
    mask_dir = next((s for s in stems if _isdir(_join(scan_dir, s))), None)
    if mask_dir is None:
      mask_dir = _idr_folder(scan_dir, ("mask", "masks"))
    if mask_dir is not None:
      mask_names, ignored = _list_images(_join(scan_dir, mask_dir),
                                         image_order, rows)
      if len(mask_names) != count:
        raise errors.InputError(
            f"{scan_dir}: {len(mask_names)} masks in {mask_dir}/"
            f"{_ignored_note(ignored)} but {count} "
            "images; expected one mask per image (or no mask folder).")
  num = min(count, num_images)

  def camera_label(i: int) -> str:
    return f"world_mat_{i} in {camera_file}"

  projections = [_real_array(cams[f"world_mat_{i}"], camera_label(i),
                             ((4, 4), (3, 4)))[:3] for i in range(num)]

  def mask_path(i: int) -> str | None:
    return _join(scan_dir, mask_dir, mask_names[i]) if mask_dir else None

  return _dtu_records(scan_dir.rsplit("/", 1)[-1], np.stack(projections),
                      camera_label,
                      lambda i: _join(scan_dir, image_dir, image_names[i]),
                      mask_path, factor, resize, views, exif)
