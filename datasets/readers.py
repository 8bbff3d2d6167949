"""Scene readers: a folder on disk → one record per view.

Supported layouts (reference §1, pitfalls P12, P14, P20):

* **LLFF**: ``poses_bounds.npy`` + ``images_<factor>/`` (or ``images/``, then
  downsampled here). OpenGL cameras after the axis fix, translations and bounds
  scaled by 1 / (0.75 · min bound), poses recentred.
* **DTU, official layout**: ``Rectified/<scan>/rect_{i:03d}_3_r5000.png`` with
  ``Calibration/cal18/pos_{i:03d}.txt`` (3×4 projections) and optionally the
  RegNeRF/IDR masks ``<mask_root>/<scan>/[mask/]{i-1:03d}.png``.
* **DTU, IDR/NeuS layout**: ``cameras.npz`` or ``cameras_sphere.npz``
  (``world_mat_i``) with ``image/`` or ``images/`` (or downscaled copies such as
  ``images_4/``) and optional ``mask/`` (or ``mask_4/``).
* **Blender**: ``transforms_{train,val,test}.json``.
* **instant-ngp / nerfstudio**: ``transforms.json`` (global or per-frame
  intrinsics, k1 k2 p1 p2 distortion, OpenGL camera-to-world) with a sparse
  point cloud (``ply_file_path``, e.g. ``sparse_pc.ply``) for the bounds.
* **COLMAP**: ``sparse/0/`` (or ``sparse/``) with ``cameras``, ``images`` and
  ``points3D`` (``.bin`` or ``.txt``) next to ``images/`` (and downscaled
  ``images_<k>/``), as ``regnerf-process-data`` writes it. Forward-facing
  captures become records of kind ``"llff"``, object-centric ones of kind
  ``"blender"`` (see :func:`read_colmap`).

DTU cameras are OpenCV (z forward, y down): each projection P = K[R|t] is split
by an RQ decomposition, K divided by K[2, 2], camera-to-world = [Rᵀ | C]; the
poses of all (at most 49) cameras are recentred and rescaled so that every camera
centre lies in [-1, 1]³. Intrinsics are scaled by the ratio of the actual image
width to the 1600 pixels the cameras were calibrated at.

Every reader returns ``list[dict]`` with these fields (one dict per view, sorted
by view index):

=====================  =============  =========================================
``image``              uint8          [H, W, 3]
``mask``               uint8          [H, W, 1], 255 = object (DTU, Blender only)
``has_mask``           bool           False: ``mask`` is an all-255 placeholder
``camtoworld``         float32        [3, 4] camera-to-world
``intrinsics``         float32        [3, 3] K in pixels of ``image``
``near``, ``far``      float32        DTU 0.5/3.5; LLFF this view's scaled bounds
``scene``              str            e.g. ``"scan24"``, ``"fern"``
``view_index``         int32          0-based index within the scene
``file_name``          str            image file name
``kind``               str            ``"dtu"``, ``"llff"`` or ``"blender"``
``scene_camtoworlds``  float32        [N, 3, 4] all N cameras of the scene
``scene_intrinsics``   float32        [N, 3, 3] their intrinsics
``scene_bounds``       float32        [N, 2] their near/far
``world_transform``    float32        [4, 4] maps the source world frame to ours
=====================  =============  =========================================

All file access goes through ``tf.io.gfile`` and NumPy files are never unpickled.

Readers raise only :class:`regnerf_tf.errors.MissingFileError` (a file or
folder is absent or unreadable) and :class:`regnerf_tf.errors.InputError`
(malformed content: empty, undecodable or 0-pixel images; images or masks of
different sizes; camera values that are not finite real numbers of the expected
shape; camera-to-world rotations that are not orthonormal with det +1 within
``ROTATION_TOLERANCE``; DTU projections whose K is sheared; LLFF bounds outside
0 < near < far; as many cameras as images violated; view indices out of range;
cameras that overflow float32), each naming the file, what was expected and what
was found.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from collections.abc import Callable, Sequence
from typing import Any

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import camera
from regnerf_tf.datasets import colmap
from regnerf_tf.datasets import image_ops
from regnerf_tf.datasets import orientation
from regnerf_tf.datasets import splits

Record = dict[str, Any]

DTU_CALIBRATION_SIZE = (1200, 1600)  # (H, W) the DTU cameras are calibrated at.
DTU_NEAR, DTU_FAR = 0.5, 3.5
BLENDER_NEAR, BLENDER_FAR = 2.0, 6.0
DTU_IMAGE_PATTERN = "rect_{:03d}_3_r5000.png"
DTU_CAMERA_PATTERN = "pos_{:03d}.txt"
DTU_CAMERA_FILES = ("cameras.npz", "cameras_sphere.npz")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PNG_SIGNATURE = orientation.PNG_SIGNATURE

FORMATS = ("llff", "dtu", "dtu_idr", "blender", "colmap", "transforms")
CAPTURE_FORMATS = ("colmap", "transforms")  # layouts chosen from the cameras
LISTED_FORMATS = ("llff", "dtu_idr")  # images paired with camera rows by order


# ----------------------------------------------------------------------------
# File helpers (tf.io.gfile so that TFDS builders can use them).
# ----------------------------------------------------------------------------


def _join(*parts: str) -> str:
  return "/".join([str(parts[0]).rstrip("/")] + [str(p).strip("/") for p in parts[1:]])


def _exists(path: str) -> bool:
  return tf.io.gfile.exists(str(path))


def _isdir(path: str) -> bool:
  return tf.io.gfile.isdir(str(path))


def _read_bytes(path: str) -> bytes:
  try:
    with tf.io.gfile.GFile(str(path), "rb") as f:
      return f.read()
  except tf.errors.NotFoundError as e:
    raise errors.MissingFileError(
        f"Expected the file {path}, but it does not exist. Check that the scene "
        "folder is complete (re-download or re-extract it).") from e
  except tf.errors.OpError as e:  # Permission denied, a folder, ...
    raise errors.MissingFileError(
        f"Expected a readable file at {path}, but reading it failed "
        f"({type(e).__name__}: {e.message}). Check that it is a file and that "
        "its permissions allow reading.") from e


def _listdir(folder: str) -> list[str]:
  """Entry names of ``folder`` (without trailing slashes)."""
  try:
    return [n.rstrip("/") for n in tf.io.gfile.listdir(str(folder))]
  except tf.errors.OpError as e:
    raise errors.MissingFileError(
        f"Expected a readable folder at {folder}, but listing it failed "
        f"({type(e).__name__}: {e.message}). Check that it exists and that its "
        "permissions allow reading (chmod u+rx).") from e


def _natural_key(name: str) -> list[Any]:
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


IMAGE_ORDERS = ("auto", "text", "number")


def _short(names: Sequence[str], limit: int = 6) -> str:
  return ", ".join(names[:limit]) + (", …" if len(names) > limit else "")


def _list_images(folder: str, order: str = "auto",
                 rows: str = "the camera file",
                 settle: Callable[[list[str], list[str]], tuple[str | None, str]]
                 | None = None) -> tuple[list[str], list[str]]:
  """(image file names in ``folder`` in pose-row order, ignored entries).

  Images are files with an extension in ``IMAGE_EXTENSIONS`` (any case) whose
  name does not start with "." (macOS ``._*`` copies, hidden files); every
  other entry (``Thumbs.db``, ``.DS_Store``, text files, folders) is ignored
  and returned for error messages.

  The tools of every format here order pose rows by sorting the file names as
  text (LLFF's imgs2poses.py, IDR/NeuS). Numbers without zero padding sort
  differently as text (IMG_1, IMG_10, IMG_2) and by number (IMG_1, IMG_2,
  IMG_10); then the pairing of images with ``rows`` is ambiguous and is
  refused unless ``order`` is "text" or "number", or ``settle(text order,
  number order)`` returns the order from other evidence (else None and a note
  for the message).

  Raises:
    errors.InputError: the same view in two files (IMG_1.jpg and IMG_1.png),
      an unknown ``order``, or an ambiguous order with ``order="auto"``.
  """
  if order not in IMAGE_ORDERS:
    raise errors.InputError(f"image_order must be one of {list(IMAGE_ORDERS)}; "
                            f"received {order!r}.")
  entries = _listdir(folder)
  names = [n for n in entries
           if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
  ignored = sorted(set(entries) - set(names))
  by_stem: dict[str, list[str]] = {}
  for n in sorted(names):
    by_stem.setdefault(n.rsplit(".", 1)[0], []).append(n)
  twice = [v for v in by_stem.values() if len(v) > 1]
  if twice:
    raise errors.InputError(
        f"{folder} holds the same view in {len(twice[0])} files "
        f"({', '.join(twice[0])}; {len(twice)} name(s) affected); expected one "
        f"image per row of {rows}. Keep one format and move the other files "
        "out of the folder.")
  text = sorted(names)
  number = sorted(names, key=_natural_key)
  if order == "number":
    return number, ignored
  if order == "text" or text == number:
    return text, ignored
  note = ""
  if settle is not None:
    settled, note = settle(text, number)
    if settled is not None:
      return (text if settled == "text" else number), ignored
  first = next(i for i, (a, b) in enumerate(zip(text, number)) if a != b)
  start = max(0, first - 1)
  raise errors.InputError(
      f"The image names in {folder} carry numbers without zero padding, so "
      f"sorted as text they read {_short(text[start:], 4)} and sorted by number "
      f"{_short(number[start:], 4)}: image {first} would get another view's row "
      f"of {rows} in one of the two orders. The format's tools (LLFF's "
      "imgs2poses.py, IDR/NeuS) write rows in text order. Choose the order "
      "the rows were written in: image_order='text' (CLI --image_order=text) "
      "or image_order='number' (--image_order=number); or rename the files "
      f"with zero-padded numbers (IMG_001.jpg) in row order.{note}")


UNREAD_PHOTOS = (".heic", ".heif", ".avif", ".webp", ".dng", ".cr2", ".cr3",
                 ".nef", ".arw", ".raf", ".orf", ".rw2")


def _ignored_note(ignored: Sequence[str]) -> str:
  if not ignored:
    return ""
  note = f" (not counted as images: {_short(list(ignored))})"
  photos = [n for n in ignored if n.lower().endswith(UNREAD_PHOTOS)]
  if photos:
    note += (f"; {len(photos)} of them are HEIC/RAW/WebP photos, which are not "
             "read: convert them to JPEG or PNG (keeping their names' order)")
  return note


def list_photos(folder: str) -> tuple[list[str], list[str]]:
  """(photo file names in text order, ignored entries) of ``folder``."""
  return _list_images(folder, "text")


def ignored_note(ignored: Sequence[str]) -> str:
  """What was not counted as a photo, for messages ("" when nothing)."""
  return _ignored_note(ignored)


PROBE_BYTES = 1 << 18  # Enough for the header and EXIF block of PNG/JPEG/TIFF.


def _probe(path: str) -> tuple[int, tuple[int, int] | None]:
  """(EXIF orientation, stored (H, W) or None) from the head of the file."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  try:
    with tf.io.gfile.GFile(str(path), "rb") as f:
      head = f.read(PROBE_BYTES)
  except tf.errors.OpError:
    head = _read_bytes(path)  # Raises the error that names the file.
  size = None
  try:
    with Image.open(io.BytesIO(head)) as image:
      size = (int(image.size[1]), int(image.size[0]))
  except Exception:  # pylint: disable=broad-except
    pass  # Decoding the file reports what is wrong with it.
  return orientation.orientation_from_bytes(head), size


def _colour_space(data: bytes) -> str:
  """"RGB" unless Pillow reads ``data`` as CMYK (or another non-RGB space)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  try:
    with Image.open(io.BytesIO(data)) as image:
      return "RGB" if image.mode in ("RGBA", "RGBa", "RGBX", "RGB") else image.mode
  except Exception:  # pylint: disable=broad-except
    return "RGB"


def read_stored(path: str) -> tuple[np.ndarray, int]:
  """(pixels as stored, uint8 [H, W, C] with C in 1..4; EXIF orientation).

  16-bit images are scaled to 8 bits, 1-bit images to 0/255, CMYK images
  converted to RGB (4 channels are otherwise RGBA). Raises
  ``InputError`` naming the file if it is empty or cannot be decoded.
  """
  data = _read_bytes(path)
  if not data:
    raise errors.InputError(f"The image {path} is empty (0 bytes); expected a PNG, "
                            "JPEG or TIFF file. Re-download or replace the file.")
  if data.startswith(PNG_SIGNATURE) and len(data) >= 24:
    width, height = struct.unpack(">II", data[16:24])  # IHDR, first chunk.
    if width == 0 or height == 0:
      raise errors.InputError(f"The PNG image {path} declares {width}×{height} "
                              "pixels; expected at least 1×1. Replace the file.")
  try:
    image = np.asarray(iio.imread(data, extension="." + str(path).rsplit(".", 1)[-1].lower()))
    if image.ndim == 3 and image.shape[-1] == 4 and _colour_space(data) != "RGB":
      # CMYK (print-ready JPEGs, some scanners): 4 channels that are not RGBA.
      image = np.asarray(iio.imread(data, extension="." + str(path).rsplit(
          ".", 1)[-1].lower(), mode="RGB"))
  except Exception as e:  # imageio raises many types on corrupt data.
    raise errors.InputError(f"Could not decode the image {path} ({type(e).__name__}: "
                     f"{e}). Expected a readable PNG/JPEG/TIFF; re-download or "
                     "replace the file.") from e
  if image.dtype == np.uint16:
    image = image_ops.to_uint8(image / 257.0)
  elif image.dtype == np.bool_:
    image = image.astype(np.uint8) * 255
  elif image.dtype != np.uint8:
    raise errors.InputError(f"Image {path} has dtype {image.dtype}; expected 8- or "
                     "16-bit integer pixels.")
  if image.ndim == 2:
    image = image[:, :, None]
  if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4) or 0 in image.shape:
    raise errors.InputError(f"Image {path} has shape {image.shape}; expected [H, W] or "
                     "[H, W, C] with H, W ≥ 1 and C in 1..4.")
  return image, orientation.orientation_from_bytes(data)


def read_image(path: str) -> np.ndarray:
  """The image as displayed (its EXIF orientation applied): uint8 [H, W, C].

  See :func:`read_stored` for formats and errors.
  """
  return orientation.to_display(*read_stored(path))


def _load_numpy(path: str, archive: bool) -> Any:
  """``np.load`` of ``path`` through gfile, never unpickling."""
  data = _read_bytes(path)
  kind = "a NumPy .npz archive" if archive else "a NumPy .npy array"
  try:
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):
      with loaded:
        loaded = {k: np.asarray(loaded[k]) for k in loaded.files}
  # np.load raises many types on corrupt data (ValueError for pickles, OSError,
  # EOFError, zipfile.BadZipFile, MemoryError for headers that lie, ...).
  except Exception as e:  # pylint: disable=broad-except
    raise errors.InputError(f"Could not read {path} as {kind} without pickle "
                            f"({type(e).__name__}: {e}). Expected plain numeric "
                            "arrays (object arrays are refused).") from e
  if isinstance(loaded, dict) != archive:
    found = "a .npz archive" if isinstance(loaded, dict) else "a single .npy array"
    raise errors.InputError(f"{path} holds {found}; expected {kind}.")
  return loaded


def load_npy(path: str) -> np.ndarray:
  """``np.load`` of a .npy file through gfile, never unpickling."""
  return _load_numpy(path, archive=False)


def load_npz(path: str) -> dict[str, np.ndarray]:
  """All arrays of a .npz file through gfile, never unpickling."""
  return _load_numpy(path, archive=True)


def _real_array(value: Any, what: str,
                shapes: Sequence[tuple[int, ...]] | None = None) -> np.ndarray:
  """``value`` as a finite float64 array of one of ``shapes``, else InputError."""
  try:
    array = np.asarray(value)
  except (ValueError, TypeError, OverflowError) as e:  # Ragged nested lists.
    raise errors.InputError(f"{what} is not an array of numbers ({e}).") from e
  if array.dtype.kind not in "biuf":
    raise errors.InputError(f"{what} holds values of type {array.dtype}; expected "
                            "real numbers. Re-export the camera file.")
  if shapes is not None and array.shape not in shapes:
    raise errors.InputError(f"{what} has shape {array.shape}; expected "
                            f"{' or '.join(str(s) for s in shapes)}.")
  array = array.astype(np.float64)
  if not np.all(np.isfinite(array)):
    raise errors.InputError(f"{what} contains NaN or infinite values; expected finite "
                     "numbers. Re-export or re-download the camera file.")
  return array


ROTATION_TOLERANCE = 1e-3  # On the entries of R Rᵀ − I and on det(R) − 1.
MAX_SKEW = 0.1  # |K[0, 1] / K[0, 0]| of a decomposed DTU projection.
MAX_ASPECT = 2.0  # fy / fx of a decomposed DTU projection within [1/2, 2].


def _check_rotations(rotations: np.ndarray, label: Callable[[int], str]) -> None:
  """Each [3, 3] must be orthonormal with det +1 (within ROTATION_TOLERANCE)."""
  error = np.abs(rotations @ np.swapaxes(rotations, -1, -2) - np.eye(3)).max((-2, -1))
  det = np.linalg.det(rotations)
  bad = np.flatnonzero((error > ROTATION_TOLERANCE)
                       | (np.abs(det - 1.0) > ROTATION_TOLERANCE))
  if bad.size:
    i = int(bad[0])
    found = "a reflection" if det[i] < 0 else "scaled or sheared"
    raise errors.InputError(
        f"{label(i)}: the 3×3 rotation part of the camera-to-world matrix is "
        f"{found} (det = {det[i]:.6g}, max |R Rᵀ − I| = {error[i]:.3g}); expected "
        f"a rotation (orthonormal, det +1, within {ROTATION_TOLERANCE}). "
        f"{bad.size} camera(s) are affected; re-export the poses.")


def _check_same_size(path: str, image: np.ndarray, size: tuple[int, int]) -> None:
  if image.shape[:2] != tuple(size):
    raise errors.InputError(f"{path} is {image.shape[1]}×{image.shape[0]} pixels; "
                            f"expected {size[1]}×{size[0]} like the other images of "
                            "the scene. Resize or remove it.")


# ----------------------------------------------------------------------------
# Camera maths.
# ----------------------------------------------------------------------------


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


def _scale_intrinsics(k: np.ndarray, scale: float) -> np.ndarray:
  return np.diag([scale, scale, 1.0]) @ k


# ----------------------------------------------------------------------------
# Shared record assembly.
# ----------------------------------------------------------------------------


def _fit_to_size(image: np.ndarray, size: tuple[int, int], method: str,
                 path: str) -> np.ndarray:
  """Downsamples ``image`` by the integer factor that gives ``size`` (float64)."""
  h, w = image.shape[:2]
  factor = w // size[1] if size[1] else 0
  if factor < 1 or w != factor * size[1] or h != factor * size[0]:
    raise errors.InputError(f"{path} is {w}×{h} pixels; expected {size[1]}×{size[0]} or "
                     "an integer multiple of it (all images and masks of a scene "
                     "must have the same aspect ratio and size).")
  return image_ops.downsample(image.astype(np.float64), factor, method)


def _binarise_mask(mask: np.ndarray) -> np.ndarray:
  """Foreground = exactly 255 in the first three channels (pitfall P12). [H, W] 0/1."""
  channels = mask[..., :3] if mask.shape[-1] >= 3 else mask[..., :1]
  return np.all(channels == 255, axis=-1).astype(np.float64)


def _views_to_read(views: Sequence[int] | None, num: int) -> list[int]:
  if views is None:
    return list(range(num))
  if not all(isinstance(v, (int, np.integer)) for v in views):
    raise errors.InputError(f"Requested views {list(views)} must be integers "
                            f"(0-based view indices below {num}).")
  views = sorted(set(int(v) for v in views))
  bad = [v for v in views if not 0 <= v < num]
  if bad:
    raise errors.InputError(f"Requested views {bad} do not exist; the scene has {num} "
                     f"views (indices 0..{num - 1}).")
  return views


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
        file_name=path.rsplit("/", 1)[-1], kind="dtu", scene_camtoworlds=poses,
        scene_intrinsics=ks, scene_bounds=bounds,
        world_transform=world_transform))
  return records


CAMERA_FIELDS = ("camtoworld", "intrinsics", "scene_camtoworlds",
                 "scene_intrinsics", "scene_bounds", "world_transform")


def _record(**fields: Any) -> Record:
  """One record with float32 cameras; InputError if they do not fit float32."""
  out = dict(fields)
  for key in CAMERA_FIELDS:
    out[key] = np.asarray(out[key], np.float32)
  out["near"] = np.float32(out["near"])
  out["far"] = np.float32(out["far"])
  out["view_index"] = np.int32(out["view_index"])
  out["has_mask"] = bool(out["has_mask"])
  ks, bounds = out["scene_intrinsics"], out["scene_bounds"]
  found = [f"{key} is not finite" for key in CAMERA_FIELDS
           if not np.all(np.isfinite(out[key]))]
  if not (np.all(ks[:, 0, 0] > 0) and np.all(ks[:, 1, 1] > 0)):
    found.append("a focal length is 0")
  if not np.all((bounds[:, 0] > 0) & (bounds[:, 1] > bounds[:, 0])):
    found.append("a depth range is empty (near ≥ far)")
  if found:
    raise errors.InputError(
        f"The cameras of scene {out['scene']} (view {out['view_index']}, "
        f"{out['file_name']}) "
        f"hold extreme values: in float32, {'; '.join(found)}. Expected finite "
        "cameras with focal lengths > 0 and 0 < near < far; check the camera "
        "file for huge or tiny numbers and re-export it.")
  return out


# ----------------------------------------------------------------------------
# DTU, official layout.
# ----------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------
# DTU, IDR / NeuS layout.
# ----------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------
# LLFF.
# ----------------------------------------------------------------------------


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


def _turned_views(paths: Sequence[str], camera_hw: Sequence[float] | None,
                  exif: str, what_camera: str, optional: Sequence[int] = (),
                  ) -> tuple[list[int], list[str], list[tuple[int, int] | None]]:
  """Per view: (EXIF orientation, camera reading, displayed (H, W)).

  Reads only the head of each file. The reading is "displayed" for views
  without a tag; see :func:`orientation.resolve` for the others. Files of
  views in ``optional`` that do not exist count as untagged, size None.
  """
  orientation.check_reading(exif)
  tags, readings, shown = [], [], []
  for i, path in enumerate(paths):
    if i in optional and not _exists(path):
      tags.append(1)
      readings.append("displayed")
      shown.append(None)
      continue
    tag, stored_hw = _probe(path)
    if stored_hw is None:  # Pillow cannot read the header: decode it.
      image, tag = read_stored(path)
      stored_hw = image.shape[:2]
    reading = "displayed"
    if tag != 1:
      reading = orientation.resolve(path, tag, stored_hw, camera_hw, exif,
                                    what_camera)
    tags.append(tag)
    readings.append(reading)
    shown.append(orientation.displayed_size(stored_hw, tag))
  return tags, readings, shown


def _check_one_size(paths: Sequence[str], sizes: Sequence[tuple[int, int]],
                    tags: Sequence[int]) -> tuple[int, int]:
  """The common displayed (H, W) of a scene's images (None: not known)."""
  known = [i for i, hw in enumerate(sizes) if hw is not None]
  paths = [paths[i] for i in known]
  sizes = [sizes[i] for i in known]
  tags = [tags[i] for i in known]
  odd = [i for i, hw in enumerate(sizes) if tuple(hw) != tuple(sizes[0])]
  if odd:
    i = odd[0]
    for path in (paths[0], paths[i]):  # A broken file is named as broken.
      read_stored(path)
    note = ""
    if tags[i] != 1 or tags[0] != 1:
      note = (f" EXIF orientation tags turn them for display ({paths[0]}: "
              f"{tags[0]}, {paths[i]}: {tags[i]}); photos taken in portrait "
              "and landscape cannot share one camera grid.")
    raise errors.InputError(
        f"{paths[i]} is {sizes[i][1]}×{sizes[i][0]} pixels as displayed; "
        f"expected {sizes[0][1]}×{sizes[0][0]} like {paths[0]} "
        f"({len(odd)} image(s) differ).{note} Resize, turn or remove them.")
  return tuple(sizes[0])


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
        file_name=names[i], kind="llff", scene_camtoworlds=poses,
        scene_intrinsics=ks, scene_bounds=bounds,
        world_transform=world_transform))
  return records


# ----------------------------------------------------------------------------
# Blender.
# ----------------------------------------------------------------------------


def _parse_blender(json_file: str, scene_dir: str
                   ) -> tuple[float, np.ndarray, list[str]]:
  """(camera_angle_x, [N, 3, 4] camera-to-world, image paths) of a json file."""
  def invalid(found: str) -> errors.InputError:
    return errors.InputError(
        f"{json_file} is not a valid Blender transforms file: {found}. Expected "
        "an object with camera_angle_x (a number in (0, π)) and frames, a "
        "non-empty list of objects with file_path (a string) and "
        "transform_matrix (4×4). Re-export or re-download the scene.")

  try:
    meta = json.loads(_read_bytes(json_file).decode("utf-8"))
  except ValueError as e:  # Also UnicodeDecodeError.
    raise invalid(f"it is not UTF-8 JSON ({e})") from e
  if not isinstance(meta, dict) or not {"camera_angle_x", "frames"} <= set(meta):
    found = (f"its keys are {sorted(meta)}" if isinstance(meta, dict)
             else f"it holds a {type(meta).__name__}")
    raise invalid(found)
  angle = float(_real_array(meta["camera_angle_x"],
                            f"camera_angle_x in {json_file}", [()]))
  if not 0 < angle < math.pi:
    raise invalid(f"camera_angle_x is {angle}")
  frames = meta["frames"]
  if not isinstance(frames, list) or not frames:
    raise invalid(f"frames is {frames!r:.80}")
  poses, paths = [], []
  for i, frame in enumerate(frames):
    if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
      raise invalid(f"frames[{i}] is {frame!r:.80}")
    poses.append(_real_array(frame.get("transform_matrix"),
                             f"frames[{i}].transform_matrix in {json_file}",
                             ((4, 4), (3, 4)))[:3])
    rel = frame["file_path"]
    rel = rel[2:] if rel.startswith("./") else rel
    if not rel.lower().endswith(IMAGE_EXTENSIONS):
      rel += ".png"
    if rel.startswith("/"):  # absolute: used as it is, if it is there
      if not _exists(rel):
        raise errors.MissingFileError(
            f"frames[{i}].file_path in {json_file} is the absolute path "
            f"{frame['file_path']}, and {rel} does not exist on this machine "
            f"({len(frames)} frame(s) of the file). Expected paths relative to "
            "the scene folder (e.g. ./train/r_0): make them relative, or put "
            "the images back at those paths.")
      paths.append(rel)
    else:
      paths.append(_join(scene_dir, rel))
  poses = np.stack(poses)
  _check_rotations(poses[:, :, :3],
                   lambda i: f"frames[{i}].transform_matrix in {json_file}")
  return angle, poses, paths


def read_blender(scene_dir: str, *, split: str = "train",
                 views: Sequence[int] | None = None,
                 exif: str = "auto") -> list[Record]:
  """Reads one split of a Blender (NeRF synthetic) scene.

  The image is the RGB part of the RGBA file (not composited); ``mask`` is the
  alpha channel. View indices count frames within the split's json file.

  Args:
    scene_dir: folder with ``transforms_<split>.json``.
    split: "train", "val" or "test".
    views: 0-based frame indices to load (default: all).
    exif: which pixels the cameras describe for images with an EXIF
      orientation tag (see :mod:`regnerf_tf.datasets.orientation`); the
      format declares no image size, so "auto" refuses tagged images.
  """
  scene_dir = str(scene_dir).rstrip("/")
  json_file = _join(scene_dir, f"transforms_{split}.json")
  if not _exists(json_file):
    raise errors.MissingFileError(f"Expected {json_file} (Blender layout); it does not "
                            "exist.")
  angle, poses, paths = _parse_blender(json_file, scene_dir)
  num = len(paths)
  views = _views_to_read(views, num)
  for i in sorted(set(views) | {0}):
    if not _exists(paths[i]):
      raise errors.MissingFileError(
          f"frames[{i}].file_path in {json_file} names {paths[i]}, which does "
          "not exist. Check the scene folder is complete (re-download or "
          "re-extract it), or fix the path in the json file.")
  tags, readings, shown = _turned_views(
      paths, None, exif, json_file,
      optional=[i for i in range(num) if i not in views and i != 0])
  h, w = _check_one_size(paths, shown, tags)
  ks = np.zeros((num, 3, 3))
  for i in range(num):
    turned = readings[i] == "stored" and tags[i] != 1
    grid = orientation.displayed_size((h, w), tags[i]) if turned else (h, w)
    focal = 0.5 * grid[1] / math.tan(0.5 * angle)
    ks[i] = camera.intrinsic_matrix(focal, focal, grid[1] / 2.0, grid[0] / 2.0)
    if turned:
      ks[i], poses[i] = orientation.turn_camera(ks[i], poses[i], tags[i], grid,
                                                "opengl")
  loaded = [(i, paths[i], read_image(paths[i])) for i in views]
  bounds = np.tile(np.array([[BLENDER_NEAR, BLENDER_FAR]]), (num, 1))
  records = []
  for i, path, image in loaded:
    _check_same_size(path, image, (h, w))
    rgb = np.repeat(image[..., :1], 3, -1) if image.shape[-1] < 3 else image[..., :3]
    has_alpha = image.shape[-1] in (2, 4)
    mask = image[..., -1:] if has_alpha else np.full((h, w, 1), 255, np.uint8)
    records.append(_record(
        image=np.ascontiguousarray(rgb), mask=np.ascontiguousarray(mask),
        has_mask=has_alpha, camtoworld=poses[i], intrinsics=ks[i], near=BLENDER_NEAR,
        far=BLENDER_FAR, scene=scene_dir.rsplit("/", 1)[-1], view_index=i,
        file_name=path.rsplit("/", 1)[-1], kind="blender",
        scene_camtoworlds=poses, scene_intrinsics=ks, scene_bounds=bounds,
        world_transform=np.eye(4)))
  return records


# ----------------------------------------------------------------------------
# COLMAP.
# ----------------------------------------------------------------------------

COLMAP_KINDS = ("auto", "forward", "object")
FORWARD_SPREAD_DEGREES = 30.0  # widest view direction from the mean, "forward"
DEPTH_PERCENTILES = (0.1, 99.9)  # of the seen points' depths: near, far
OBJECT_MARGIN = 0.1  # object scenes: near × (1 − m), far × (1 + m)
MIN_POINTS_PER_VIEW = 8


def camera_layout(camtoworlds: np.ndarray) -> tuple[str, float]:
  """("forward" or "object", widest angle in degrees between a camera's view
  direction and the mean one) of OpenCV cameras [N, 3, 4].

  Forward-facing captures (LLFF) look roughly one way: every camera within
  ``FORWARD_SPREAD_DEGREES`` of the mean direction. Object-centric ones look
  at a common centre from around it.
  """
  dirs = camtoworlds[:, :, 2]
  mean = dirs.mean(axis=0)
  norm = np.linalg.norm(mean)
  if norm < 1e-6:
    return "object", 180.0
  spread = float(np.degrees(np.arccos(np.clip(dirs @ (mean / norm), -1.0,
                                              1.0))).max())
  return ("forward" if spread <= FORWARD_SPREAD_DEGREES else "object"), spread


def _colmap_image_folder(scene_dir: str, factor: int) -> tuple[str, int]:
  """(folder with the images, factor still to downsample by)."""
  if factor > 1 and _isdir(_join(scene_dir, f"images_{factor}")):
    return _join(scene_dir, f"images_{factor}"), 1
  if _isdir(_join(scene_dir, "images")):
    return _join(scene_dir, "images"), factor
  raise errors.MissingFileError(
      f"{scene_dir} holds a COLMAP model but no images/ folder (nor "
      f"images_{factor}/); expected the photos COLMAP registered in images/ "
      "next to sparse/.")


def _colmap_image_paths(image_dir: str, names: Sequence[str]) -> list[str]:
  """The file of each registered name in ``image_dir`` (a downscaled copy
  may have another extension, e.g. PNGs made from JPEGs)."""
  listed, _ = _list_images(image_dir, "text")
  by_stem: dict[str, list[str]] = {}
  for n in listed:
    by_stem.setdefault(n.rsplit(".", 1)[0], []).append(n)
  paths, missing = [], []
  for name in names:
    if _exists(_join(image_dir, name)):
      paths.append(_join(image_dir, name))
      continue
    found = by_stem.get(name.rsplit("/", 1)[-1].rsplit(".", 1)[0], [])
    if len(found) == 1:
      paths.append(_join(image_dir, found[0]))
    else:
      missing.append(name)
  if missing:
    raise errors.MissingFileError(
        f"{len(missing)} image(s) the COLMAP model registered are not in "
        f"{image_dir}: {_short(missing)}. Expected every registered image "
        "there (by name, any image extension); copy them back or recompute "
        "the model.")
  return paths


def _view_depths(model: Any, image: Any) -> np.ndarray:
  """Depths of the 3D points ``image`` sees (in front of the camera)."""
  ids = [i for i in image.point_ids.tolist() if i in model.points]
  if not ids:
    return np.zeros(0)
  points = np.stack([model.points[i] for i in ids])
  depth = (points @ image.rotation.T + image.tvec)[:, 2]
  return depth[depth > 0]


def read_colmap(scene_dir: str, *, factor: int = 1,
                views: Sequence[int] | None = None, kind: str = "auto",
                resize: str = "area", exif: str = "auto") -> list[Record]:
  """Reads a COLMAP capture: ``sparse/0/`` (or ``sparse/``) and ``images/``.

  Views are the registered images sorted by name (as text). Images are
  undistorted (SIMPLE_RADIAL, RADIAL, OPENCV) to the pinhole camera with the
  same K. Each view's near/far are the 0.1 and 99.9 percentiles of the
  depths of the 3D points it sees (as LLFF's imgs2poses.py computes them).

  Args:
    scene_dir: the capture folder.
    factor: downsampling; ``images_<factor>/`` is used when present.
    views: 0-based view indices to load images for (default: all).
    kind: "forward" (forward-facing: LLFF's normalisation and NDC rays),
      "object" (object-centric: cameras recentred and scaled into [-1, 1]³,
      records of kind "blender" with per-view bounds), or "auto" (chosen from
      the camera layout by :func:`camera_layout`).
    resize: filter used when downsampling ("area" or "release").
    exif: which pixels the cameras describe for photos with an EXIF
      orientation tag (COLMAP: the stored ones; see
      :mod:`regnerf_tf.datasets.orientation`).

  Returns:
    One record per requested view.
  """
  scene_dir = str(scene_dir).rstrip("/")
  if kind not in COLMAP_KINDS:
    raise errors.InputError(f"kind must be one of {list(COLMAP_KINDS)}; "
                            f"received {kind!r}.")
  folder = colmap.find_model(scene_dir)
  if folder is None:
    raise errors.MissingFileError(
        f"{scene_dir} holds no COLMAP model: expected sparse/0/ (or sparse/) "
        "with cameras, images and points3D (.bin or .txt). Make one with "
        "regnerf-process-data or COLMAP's mapper.")
  model = colmap.read_model(folder)
  if not model.images:
    raise errors.InputError(f"The COLMAP model in {folder} registers no image; "
                            "recompute it with more overlapping photos.")
  for image in model.images:
    cam = model.cameras[image.camera_id]
    if cam.model not in colmap.SUPPORTED_MODELS:
      raise errors.InputError(
          f"Camera {cam.camera_id} of the COLMAP model in {folder} (used by "
          f"{image.name}) is a {cam.model} camera; supported: "
          f"{', '.join(colmap.SUPPORTED_MODELS)}. Undistort the images first "
          "(colmap image_undistorter, which writes a PINHOLE model) or "
          "recompute the model with --ImageReader.camera_model OPENCV.")
  image_dir, downsample_by = _colmap_image_folder(scene_dir, factor)
  names = [image.name for image in model.images]
  paths = _colmap_image_paths(image_dir, names)
  num = len(paths)
  cams = [model.cameras[image.camera_id] for image in model.images]
  orientation.check_reading(exif)
  tags, readings, stored = [], [], []
  for path, cam in zip(paths, cams):
    tag, stored_hw = _probe(path)
    if stored_hw is None:
      pixels, tag = read_stored(path)
      stored_hw = pixels.shape[:2]
    reading = "displayed"
    if tag != 1:
      reading = orientation.resolve(path, tag, stored_hw,
                                    (cam.height, cam.width), exif,
                                    f"COLMAP camera {cam.camera_id}")
    tags.append(tag)
    readings.append(reading)
    stored.append(tuple(stored_hw))

  c2w = np.stack([image.camtoworld for image in model.images])
  ks = np.zeros((num, 3, 3))
  for i, cam in enumerate(cams):
    turned = readings[i] == "stored" and tags[i] != 1
    grid = (stored[i] if turned or tags[i] == 1
            else orientation.displayed_size(stored[i], tags[i]))
    scale = grid[1] / cam.width
    if abs(grid[0] / cam.height - scale) > 0.01 * scale:
      raise errors.InputError(
          f"{paths[i]} is {grid[1]}×{grid[0]} pixels, not a scaled copy of the "
          f"{cam.width}×{cam.height} of COLMAP camera {cam.camera_id}; "
          "expected the images the model was computed from (or copies "
          "downscaled by a whole factor).")
    ks[i] = _scale_intrinsics(cam.intrinsics, scale)
  chosen = camera_layout(c2w)[0] if kind == "auto" else kind

  bounds = np.zeros((num, 2))
  known = []
  for i, image in enumerate(model.images):
    depth = _view_depths(model, image)
    if depth.size >= MIN_POINTS_PER_VIEW:
      bounds[i] = np.percentile(depth, DEPTH_PERCENTILES)
      if bounds[i, 1] > bounds[i, 0] * (1 + 1e-6):  # else: a degenerate spread
        known.append(i)
  if not known:
    raise errors.InputError(
        f"No image of the COLMAP model in {folder} sees {MIN_POINTS_PER_VIEW} "
        "or more 3D points in front of it at different depths, so near/far "
        "cannot be estimated; "
        "the model's points3D is empty or does not belong to its images. "
        "Recompute the model.")
  for i in set(range(num)) - set(known):  # few points: the scene's range
    bounds[i] = bounds[known, 0].min(), bounds[known, 1].max()

  # Turn cameras of tagged photos with their images (before normalising, so
  # that the scene's "up" is the photos' up).
  grids = []
  for i in range(num):
    if readings[i] == "stored" and tags[i] != 1:
      ks[i], c2w[i] = orientation.turn_camera(ks[i], c2w[i], tags[i],
                                              stored[i], "opencv")
    grids.append(orientation.displayed_size(stored[i], tags[i]))
  size = _check_one_size(paths, grids, tags)
  size = (size[0] // downsample_by, size[1] // downsample_by)
  ks = _scale_intrinsics(ks, 1.0 / downsample_by)
  poses, bounds, world_transform, record_kind = _normalise_capture(
      c2w, bounds, chosen)

  records = []
  name = scene_dir.rsplit("/", 1)[-1]
  for i in _views_to_read(views, num):
    pixels, tag = read_stored(paths[i])
    if pixels.shape[-1] < 3:
      raise errors.InputError(f"{paths[i]} has {pixels.shape[-1]} channel(s); "
                              "expected RGB.")
    pixels = pixels[..., :3]
    cam = cams[i]
    coefficients = cam.distortion
    if readings[i] == "stored" or tag == 1:  # undistort, then turn
      if np.any(coefficients):
        k_file = _scale_intrinsics(cam.intrinsics, stored[i][1] / cam.width)
        pixels = colmap.undistort(pixels, k_file, coefficients)
      pixels = orientation.to_display(pixels, tag)
    else:  # the camera describes the displayed pixels
      pixels = orientation.to_display(pixels, tag)
      if np.any(coefficients):
        shown = pixels.shape[:2]
        k_file = _scale_intrinsics(cam.intrinsics, shown[1] / cam.width)
        pixels = colmap.undistort(pixels, k_file, coefficients)
    pixels = image_ops.downsample(np.asarray(pixels, np.float64),
                                  downsample_by, resize)
    image = image_ops.to_uint8(pixels)
    _check_same_size(paths[i], image, size)
    records.append(_capture_record(image, i, paths, poses, ks, bounds, name,
                                   record_kind, world_transform))
  return records


# ----------------------------------------------------------------------------
# instant-ngp / nerfstudio transforms.json.
# ----------------------------------------------------------------------------

TRANSFORMS_FILE = "transforms.json"
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL",
                  "RADIAL", "PERSPECTIVE")


def read_ply_points(path: str) -> np.ndarray:
  """[N, 3] vertex positions of a PLY file (ASCII or binary little-endian).

  Raises ``InputError`` naming the file if it is not such a PLY.
  """
  data = _read_bytes(path)
  end = data.find(b"end_header")
  if not data.startswith(b"ply") or end < 0:
    raise errors.InputError(f"{path} is not a PLY file (no 'ply' … "
                            "'end_header' header); expected the sparse point "
                            "cloud the capture tool wrote.")
  header = data[:end].decode("ascii", "replace").splitlines()
  body = data[data.index(b"\n", end) + 1:]
  fmt = next((line.split()[1] for line in header if line.startswith("format")),
             "")
  types = {"char": "i1", "uchar": "u1", "short": "<i2", "ushort": "<u2",
           "int": "<i4", "uint": "<u4", "float": "<f4", "double": "<f8",
           "int8": "i1", "uint8": "u1", "int16": "<i2", "uint16": "<u2",
           "int32": "<i4", "uint32": "<u4", "float32": "<f4", "float64": "<f8"}
  count, fields, element = 0, [], None
  for line in header:
    words = line.split()
    if words[:1] == ["element"]:
      element = words[1]
      if element == "vertex":
        count = int(words[2])
    elif words[:1] == ["property"] and element == "vertex":
      if words[1] == "list" or words[1] not in types:
        raise errors.InputError(f"{path}: vertex property {line!r} is not "
                                "supported; expected scalar properties.")
      fields.append((words[2], types[words[1]]))
    elif words[:1] == ["element"] and element != "vertex" and count:
      break
  names = [n for n, _ in fields]
  if not {"x", "y", "z"} <= set(names):
    raise errors.InputError(f"{path}: the vertices have no x, y, z "
                            f"(properties {names}).")
  try:
    if fmt == "ascii":
      rows = np.array([line.split()[:len(fields)] for line in
                       body.decode("ascii").splitlines()[:count]], np.float64)
      table = {n: rows[:, i] for i, n in enumerate(names)}
    elif fmt == "binary_little_endian":
      array = np.frombuffer(body, np.dtype(fields), count=count)
      table = {n: array[n].astype(np.float64) for n in names}
    else:
      raise ValueError(f"format {fmt!r} (expected ascii or "
                       "binary_little_endian)")
  except (ValueError, IndexError) as e:
    raise errors.InputError(f"{path} could not be read as a PLY point cloud "
                            f"({e}).") from None
  points = np.stack([table["x"], table["y"], table["z"]], axis=-1)
  return points[np.all(np.isfinite(points), axis=1)]


def _frame_camera(meta: dict, frame: dict, json_file: str, index: int,
                  size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray,
                                                  tuple[int, int]]:
  """(K [3, 3], (k1, k2, p1, p2), (H, W) the intrinsics are for) of a frame;
  per-frame keys override the file's global ones."""
  def get(key, default=None):
    value = frame.get(key, meta.get(key, default))
    if value is None:
      return None
    return float(_real_array(value, f"{key} of frames[{index}] in {json_file}",
                             [()]))
  model = str(frame.get("camera_model", meta.get("camera_model", "OPENCV")))
  if model.upper() not in PINHOLE_MODELS:
    raise errors.InputError(
        f"{json_file} uses camera_model {model!r}; supported: perspective "
        "cameras (OPENCV with k1, k2, p1, p2). Fisheye and equirectangular "
        "captures are not read: process the photos again with a perspective "
        "camera model (regnerf-process-data --camera_model=OPENCV).")
  for key in ("k3", "k4"):
    if get(key, 0.0):
      raise errors.InputError(
          f"{key} of frames[{index}] in {json_file} is {get(key)}; only k1, "
          "k2, p1 and p2 are undistorted here. Process the photos with the "
          "OPENCV camera model (regnerf-process-data).")
  w, h = get("w"), get("h")
  height, width = (int(h), int(w)) if w and h else size
  fx = get("fl_x")
  if fx is None and get("camera_angle_x") is not None:
    fx = 0.5 * width / math.tan(0.5 * get("camera_angle_x"))
  fy = get("fl_y")
  if fy is None and get("camera_angle_y") is not None:
    fy = 0.5 * height / math.tan(0.5 * get("camera_angle_y"))
  if fx is None:
    raise errors.InputError(
        f"frames[{index}] in {json_file} has no focal length: expected fl_x "
        "(and fl_y) or camera_angle_x, in the file or in the frame.")
  fy = fx if fy is None else fy
  k = camera.intrinsic_matrix(fx, fy, get("cx", width / 2.0),
                              get("cy", height / 2.0))
  coefficients = np.array([get(key, 0.0) for key in ("k1", "k2", "p1", "p2")])
  return k, coefficients, (height, width)


def _frame_path(scene_dir: str, frame: dict, factor: int, json_file: str,
                index: int) -> tuple[str, int]:
  """(image file, factor still to downsample by): with ``factor`` > 1, the
  copy in images_<factor>/ when the tool wrote one (nerfstudio does)."""
  rel = frame.get("file_path")
  if not isinstance(rel, str) or not rel:
    raise errors.InputError(f"frames[{index}] in {json_file} has no file_path "
                            f"(found {rel!r:.60}).")
  rel = rel[2:] if rel.startswith("./") else rel
  path = rel if rel.startswith("/") else _join(scene_dir, rel)
  if factor > 1:
    folder, _, name = rel.rpartition("/")
    top, _, rest = folder.partition("/")
    scaled = "/".join(p for p in (f"{top}_{factor}", rest, name) if p)
    if top and _exists(_join(scene_dir, scaled)):
      return _join(scene_dir, scaled), 1
  if not _exists(path):
    raise errors.MissingFileError(
        f"frames[{index}].file_path in {json_file} names {path}, which does "
        "not exist. Check that the capture folder is complete, or fix the "
        "path in the json file.")
  return path, factor


def read_transforms(scene_dir: str, *, factor: int = 1,
                    views: Sequence[int] | None = None, kind: str = "auto",
                    resize: str = "area", exif: str = "auto") -> list[Record]:
  """Reads an instant-ngp or nerfstudio capture (``transforms.json``).

  Frames are sorted by file path (as text). Intrinsics come from ``fl_x``,
  ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` (or ``camera_angle_x``), global or
  per frame; k1, k2, p1, p2 are undistorted. ``transform_matrix`` is an
  OpenGL camera-to-world. Each view's near/far are the 0.1 and 99.9
  percentiles of the depths of the sparse points (``ply_file_path``, e.g.
  nerfstudio's ``sparse_pc.ply``) that project into it; a capture without
  points is refused, since nothing else says how deep the scene is.

  Args: as :func:`read_colmap`.
  """
  scene_dir = str(scene_dir).rstrip("/")
  json_file = _join(scene_dir, TRANSFORMS_FILE)
  if kind not in COLMAP_KINDS:
    raise errors.InputError(f"kind must be one of {list(COLMAP_KINDS)}; "
                            f"received {kind!r}.")
  try:
    meta = json.loads(_read_bytes(json_file).decode("utf-8"))
  except ValueError as e:
    raise errors.InputError(f"{json_file} is not UTF-8 JSON ({e}).") from None
  frames = meta.get("frames") if isinstance(meta, dict) else None
  if not isinstance(frames, list) or not frames or not all(
      isinstance(f, dict) for f in frames):
    raise errors.InputError(f"{json_file} has no frames; expected an object "
                            "with a non-empty list 'frames' of objects with "
                            "file_path and transform_matrix.")
  frames = sorted(frames, key=lambda f: str(f.get("file_path")))
  ply = meta.get("ply_file_path")
  ply = _join(scene_dir, ply) if isinstance(ply, str) else None
  if ply is None and _exists(_join(scene_dir, "sparse_pc.ply")):
    ply = _join(scene_dir, "sparse_pc.ply")
  if ply is None or not _exists(ply):
    raise errors.MissingFileError(
        f"{json_file} names no sparse point cloud (ply_file_path; found "
        f"{ply!r}), so this reader cannot tell how near and far the scene "
        "is from each camera. Process the photos with regnerf-process-data "
        "(a COLMAP capture), or with nerfstudio's ns-process-data, which "
        "writes sparse_pc.ply.")
  points = read_ply_points(ply)
  num = len(frames)
  paths, downs, ks, coefficients, c2w, files = [], [], [], [], [], []
  for i, frame in enumerate(frames):
    path, down = _frame_path(scene_dir, frame, factor, json_file, i)
    tag, stored_hw = _probe(path)
    if tag != 1:
      raise errors.InputError(
          f"{orientation.describe(path, tag)}; instant-ngp and nerfstudio "
          "captures are expected upright. Process the photos again (the "
          "tools write upright copies).")
    if stored_hw is None:
      stored_hw = read_stored(path)[0].shape[:2]
    k, dist, (h, w) = _frame_camera(meta, frame, json_file, i, stored_hw)
    file_scale = stored_hw[1] / w
    if abs(stored_hw[0] / h - file_scale) > 0.01 * file_scale:
      raise errors.InputError(
          f"{path} is {stored_hw[1]}×{stored_hw[0]} pixels, not a scaled copy "
          f"of the {w}×{h} of frames[{i}] in {json_file}.")
    ks.append(_scale_intrinsics(k, file_scale))
    files.append(tuple(stored_hw))
    coefficients.append(dist)
    paths.append(path)
    downs.append(down)
    c2w.append(_real_array(frame.get("transform_matrix"),
                           f"frames[{i}].transform_matrix in {json_file}",
                           ((4, 4), (3, 4)))[:3])
  c2w = np.stack(c2w)
  _check_rotations(c2w[:, :, :3],
                   lambda i: f"frames[{i}].transform_matrix in {json_file}")
  c2w_cv = c2w @ np.diag([1.0, -1.0, -1.0, 1.0])
  bounds = np.zeros((num, 2))
  known = []
  for i in range(num):
    rotation, centre = c2w_cv[i, :, :3], c2w_cv[i, :, 3]
    local = (points - centre) @ rotation  # camera coordinates (OpenCV)
    front = local[local[:, 2] > 0]
    pix = front @ ks[i].T
    u, v = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
    h, w = files[i]
    depth = front[(u >= 0) & (u <= w) & (v >= 0) & (v <= h), 2]
    if depth.size >= MIN_POINTS_PER_VIEW:
      bounds[i] = np.percentile(depth, DEPTH_PERCENTILES)
      if bounds[i, 1] > bounds[i, 0] * (1 + 1e-6):
        known.append(i)
  if not known:
    raise errors.InputError(
        f"No frame of {json_file} sees {MIN_POINTS_PER_VIEW} or more points "
        f"of {ply} in front of it, so near/far cannot be estimated; the point "
        "cloud does not belong to these cameras (another coordinate frame?).")
  for i in set(range(num)) - set(known):
    bounds[i] = bounds[known, 0].min(), bounds[known, 1].max()
  chosen = camera_layout(c2w_cv)[0] if kind == "auto" else kind
  return _capture_records(scene_dir, paths, downs, files, ks, coefficients,
                          c2w_cv, bounds, chosen, views, resize)


def _capture_record(image: np.ndarray, i: int, paths: Sequence[str],
                    poses: np.ndarray, ks: np.ndarray, bounds: np.ndarray,
                    name: str, kind: str, world_transform: np.ndarray
                    ) -> Record:
  """The record of view ``i`` of a capture (COLMAP, transforms.json)."""
  return _record(
      image=image, has_mask=False, camtoworld=poses[i], intrinsics=ks[i],
      near=bounds[i, 0], far=bounds[i, 1], scene=name, view_index=i,
      file_name=paths[i].rsplit("/", 1)[-1], kind=kind,
      scene_camtoworlds=poses, scene_intrinsics=ks, scene_bounds=bounds,
      world_transform=world_transform)


def _normalise_capture(c2w_cv: np.ndarray, bounds: np.ndarray, chosen: str
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
  """(OpenGL poses, bounds, world_transform, record kind) of a capture's
  OpenCV cameras: LLFF's frame for "forward", else recentred and scaled into
  [-1, 1]³ with bounds widened by OBJECT_MARGIN."""
  poses = c2w_cv @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV → OpenGL
  if chosen == "forward":
    poses, bounds, world_transform = _llff_frame(poses, bounds)
    return poses, bounds, world_transform, "llff"
  bounds = bounds * np.array([1 - OBJECT_MARGIN, 1 + OBJECT_MARGIN])
  poses, recentre = camera.recenter_poses(poses)
  poses, scale = camera.rescale_poses(poses)
  return (poses, bounds * scale,
          np.diag([scale, scale, scale, 1.0]) @ recentre, "blender")


def _capture_records(scene_dir: str, paths: Sequence[str],
                     downs: Sequence[int], files: Sequence[tuple[int, int]],
                     ks: Sequence[np.ndarray], coefficients, c2w_cv, bounds,
                     chosen: str, views, resize: str) -> list[Record]:
  """Records of upright photos with (distorted) cameras of their files."""
  num = len(paths)
  sizes = [(h // d, w // d) for (h, w), d in zip(files, downs)]
  size = _check_one_size(paths, sizes, [1] * num)
  ks = np.stack([_scale_intrinsics(k, 1.0 / d) for k, d in zip(ks, downs)])
  poses, bounds, world_transform, record_kind = _normalise_capture(
      c2w_cv, bounds, chosen)
  records = []
  name = scene_dir.rsplit("/", 1)[-1]
  for i in _views_to_read(views, num):
    pixels = read_stored(paths[i])[0]
    if pixels.shape[-1] < 3:
      raise errors.InputError(f"{paths[i]} has {pixels.shape[-1]} channel(s); "
                              "expected RGB.")
    pixels = np.asarray(pixels[..., :3], np.float64)
    if np.any(coefficients[i]):
      k_file = _scale_intrinsics(ks[i], downs[i])
      pixels = colmap.undistort(pixels, k_file, coefficients[i])
    image = image_ops.to_uint8(image_ops.downsample(pixels, downs[i], resize))
    _check_same_size(paths[i], image, size)
    records.append(_capture_record(image, i, paths, poses, ks, bounds, name,
                                   record_kind, world_transform))
  return records


# ----------------------------------------------------------------------------
# Format detection.
# ----------------------------------------------------------------------------


def detect_format(path: str) -> str:
  """Which layout ``path`` holds: one of ``FORMATS``.

  Raises ``MissingFileError`` listing the files looked for if none matches.
  """
  path = str(path).rstrip("/")
  if not _isdir(path):
    found = ("a file, not a folder" if _exists(path)
             else "nothing (it does not exist)")
    raise errors.MissingFileError(f"Expected a scene folder at {path}; found "
                                  f"{found}. Pass the folder that holds the "
                                  "scene's images and camera file.")
  if _exists(_join(path, "poses_bounds.npy")):
    return "llff"
  if any(_exists(_join(path, n)) for n in DTU_CAMERA_FILES):
    return "dtu_idr"
  if _exists(_join(path, DTU_IMAGE_PATTERN.format(1))):
    return "dtu"
  if any(_exists(_join(path, f"transforms_{s}.json"))
         for s in ("train", "val", "test")):
    return "blender"
  if _exists(_join(path, TRANSFORMS_FILE)):
    return "transforms"
  if colmap.find_model(path) is not None:
    return "colmap"
  entries = sorted(_listdir(path), key=_natural_key)
  found = f"its entries are {entries[:12]}" if entries else "the folder is empty"
  raise errors.MissingFileError(
      f"No known scene layout in {path} ({found}). Looked for: "
      "poses_bounds.npy (LLFF); "
      f"{' or '.join(DTU_CAMERA_FILES)} (DTU, IDR/NeuS layout); "
      f"{DTU_IMAGE_PATTERN.format(1)} (DTU, official Rectified/<scan> folder "
      "with Calibration/cal18 two levels up); transforms_train.json, "
      "transforms_val.json or transforms_test.json (Blender); "
      "transforms.json (instant-ngp, nerfstudio); sparse/0/cameras.bin or "
      ".txt (a COLMAP model: make one from photos with "
      "regnerf-process-data). See "
      "datasets/README.md for the layouts.")


def from_directory(path: str, **kwargs: Any) -> list[Record]:
  """Reads any supported scene folder (format detected from its files).

  Args:
    path: a scene folder (see :func:`detect_format`).
    **kwargs: passed to the matching reader (:func:`read_llff`,
      :func:`read_dtu`, :func:`read_dtu_idr` or :func:`read_blender`).

  Returns:
    One record per view, sorted by view index.
  """
  readers = {"llff": read_llff, "dtu": read_dtu, "dtu_idr": read_dtu_idr,
             "blender": read_blender, "colmap": read_colmap,
             "transforms": read_transforms}
  return readers[detect_format(path)](str(path), **kwargs)


def find_scenes(root: str, kinds: Sequence[str]) -> dict[str, tuple[str, str]]:
  """Scene folders directly inside ``root`` (or ``root/Rectified`` for DTU).

  Args:
    root: a folder holding scene folders.
    kinds: formats to accept, subset of ``FORMATS``.

  Returns:
    {scene name: (format, path)} in natural name order.

  Raises:
    errors.MissingFileError: ``root`` is not a folder or cannot be listed.
  """
  root = str(root).rstrip("/")
  if not _isdir(root):
    raise errors.MissingFileError(f"Expected a folder of scenes at {root}; it does "
                                  "not exist or is not a folder.")
  found: dict[str, tuple[str, str]] = {}
  parents = [root]
  if "dtu" in kinds and _isdir(_join(root, "Rectified")):
    parents.append(_join(root, "Rectified"))
  for parent in parents:
    for name in sorted(_listdir(parent), key=_natural_key):
      path = _join(parent, name)
      if not _isdir(path) or name == "Rectified":
        continue
      try:
        kind = detect_format(path)
      except FileNotFoundError:
        continue
      if kind in kinds and name not in found:
        found[name] = (kind, path)
  return found
