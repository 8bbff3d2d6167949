"""What every scene reader shares: files, images, arrays, checks, records.

File access goes through ``tf.io.gfile`` (so that TFDS builders can use it);
NumPy files are never unpickled. Images are decoded as displayed (EXIF
orientation applied, CMYK converted); image folders are listed in the text
order of their names, refusing names whose text and number orders differ
unless an order is chosen. See :mod:`regnerf_tf.datasets.readers` for the
record fields and the errors.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable, Sequence
from typing import Any

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf.datasets import image_ops
from regnerf_tf.datasets import orientation


Record = dict[str, Any]


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


PNG_SIGNATURE = orientation.PNG_SIGNATURE


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


def _scale_intrinsics(k: np.ndarray, scale: float) -> np.ndarray:
  return np.diag([scale, scale, 1.0]) @ k


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


def _turned_views(paths: Sequence[str], camera_hw: Sequence[float] | None,
                  exif: str, what_camera: str, optional: Sequence[int] = (),
                  camera_hws: Sequence[Sequence[float]] | None = None,
                  ) -> tuple[list[int], list[str], list[tuple[int, int] | None]]:
  """Per view: (EXIF orientation, camera reading, displayed (H, W)).

  Reads only the head of each file. The reading is "displayed" for views
  without a tag; see :func:`orientation.resolve` for the others, with the
  image size the camera file declares: ``camera_hw`` for every view, or
  ``camera_hws[i]`` per view. Files of views in ``optional`` that do not
  exist count as untagged, size None.
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
      declared = camera_hw if camera_hws is None else camera_hws[i]
      reading = orientation.resolve(path, tag, stored_hw, declared, exif,
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
