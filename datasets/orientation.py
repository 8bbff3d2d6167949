"""EXIF orientation: pixels as displayed, and cameras that agree with them.

A phone stores a photo in the sensor's orientation and writes an EXIF
``Orientation`` tag (1–8) that tells viewers how to turn it for display. The
readers always return images as displayed. The camera of a view must then
describe the displayed pixels, and which pixels a scene's camera file
describes depends on the tool that made it:

* ``"stored"``: the cameras were computed from the pixels as stored (COLMAP,
  and so LLFF's ``imgs2poses.py``, ignore the tag). The reader turns each such
  camera with its image (a rotation about the optical axis and intrinsics for
  the turned grid), so every pixel keeps its ray.
* ``"displayed"``: the cameras were computed from the turned images (tools that
  apply the tag first). The cameras are used as they are.
* ``"auto"`` (default): decided from the image size the camera file declares
  (LLFF's H, W; DTU's 1600×1200 calibration) when only one reading fits, as for
  a 90° tag on a non-square photo. When both fit (a 180° or mirror tag, a
  square image, a format without a size such as Blender's), the reader refuses
  and names both readings rather than guess.

Mirror tags (2, 4, 5, 7) cannot be expressed by a camera with positive focal
lengths under the "stored" reading and are refused there.

Pixel coordinates are continuous with the origin at the top-left corner of the
image, x to the right, y down, pixel centres at (column + ½, row + ½).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from regnerf_tf import camera, errors

READINGS = ("auto", "stored", "displayed")
EXIF_ORIENTATION_TAG = 0x0112
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = {1: "upright", 2: "mirrored left-right", 3: "rotated 180°",
         4: "mirrored top-bottom", 5: "transposed (mirrored and turned 90°)",
         6: "turned 90° clockwise for display",
         7: "transversed (mirrored and turned 90°)",
         8: "turned 90° counter-clockwise for display"}
MIRRORS = (2, 4, 5, 7)
SWAPS_AXES = (5, 6, 7, 8)


def check_reading(reading: str) -> str:
  if reading not in READINGS:
    raise errors.InputError(
        f"exif must be one of {list(READINGS)}; received {reading!r}. See "
        "datasets/orientation.py for what each reading means.")
  return reading


def orientation_from_bytes(data: bytes) -> int:
  """The EXIF orientation (1–8) of an encoded image; 1 if it has none.

  Values outside 1–8 are treated as 1, as image viewers do.
  """
  if (data.startswith(PNG_SIGNATURE) and b"eXIf" not in data
      and b"Raw profile type exif" not in data):
    return 1  # Plain PNG: skip Pillow, which would decode it to look.
  from PIL import Image  # pylint: disable=import-outside-toplevel
  try:
    with Image.open(io.BytesIO(data)) as image:
      value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
  except Exception:  # pylint: disable=broad-except
    return 1  # Not an image Pillow reads: decoding reports it, not EXIF.
  try:
    value = int(value)
  except (TypeError, ValueError):
    return 1
  return value if 1 <= value <= 8 else 1


def to_display(image: np.ndarray, orientation: int) -> np.ndarray:
  """The stored pixels [H, W, ...] turned as a viewer shows them."""
  ops = {1: lambda a: a,
         2: lambda a: a[:, ::-1],
         3: lambda a: a[::-1, ::-1],
         4: lambda a: a[::-1],
         5: lambda a: np.swapaxes(a, 0, 1),
         6: lambda a: np.rot90(a, -1),
         7: lambda a: np.rot90(a, -1)[::-1],
         8: lambda a: np.rot90(a, 1)}
  return np.ascontiguousarray(ops[orientation](image))


def displayed_size(stored_hw: Sequence[int], orientation: int) -> tuple[int, int]:
  h, w = int(stored_hw[0]), int(stored_hw[1])
  return (w, h) if orientation in SWAPS_AXES else (h, w)


def pixel_map(orientation: int, stored_hw: Sequence[int]) -> np.ndarray:
  """[3, 3] A with (x', y', 1) = A (x, y, 1): stored → displayed coordinates."""
  h, w = float(stored_hw[0]), float(stored_hw[1])
  rows = {1: ((1, 0, 0), (0, 1, 0)),
          2: ((-1, 0, w), (0, 1, 0)),
          3: ((-1, 0, w), (0, -1, h)),
          4: ((1, 0, 0), (0, -1, h)),
          5: ((0, 1, 0), (1, 0, 0)),
          6: ((0, -1, h), (1, 0, 0)),
          7: ((0, -1, h), (-1, 0, w)),
          8: ((0, 1, 0), (-1, 0, w))}[orientation]
  return np.array(rows + ((0, 0, 1),), np.float64)


def turn_camera(intrinsics: np.ndarray, camtoworld: np.ndarray,
                orientation: int, stored_hw: Sequence[int],
                convention: str) -> tuple[np.ndarray, np.ndarray]:
  """The camera of the displayed image, given the camera of the stored one.

  Every displayed pixel gets the ray its stored pixel had: with A the pixel
  map, A K = K' Q (RQ decomposition, Q a rotation about the optical axis), so
  K'⁻¹ p' = Q K⁻¹ A⁻¹ p' up to scale and the camera-to-world rotation becomes
  R Qᵀ.

  Args:
    intrinsics: [3, 3] K of the stored pixels.
    camtoworld: [3, 4] camera-to-world.
    orientation: EXIF orientation, not a mirror (2, 4, 5, 7).
    stored_hw: (H, W) of the stored image the camera describes.
    convention: "opencv" (x right, y down, z forward) or "opengl" (x right,
      y up, z backward).

  Returns:
    (K' [3, 3], camera-to-world [3, 4]) for the displayed image, float64.
  """
  if orientation in MIRRORS:
    raise ValueError(f"orientation {orientation} mirrors the image")
  if convention not in ("opencv", "opengl"):
    raise ValueError(f"unknown camera convention {convention!r}")
  k = np.asarray(intrinsics, np.float64)
  c2w = np.asarray(camtoworld, np.float64)[:3]
  upper, turn = camera.rq_decomposition(pixel_map(orientation, stored_hw) @ k)
  scale = upper[2, 2]
  flip = np.diag([1.0, -1.0, -1.0]) if convention == "opengl" else np.eye(3)
  rotation = c2w[:, :3] @ flip @ turn.T @ flip
  return upper / scale, np.concatenate([rotation, c2w[:, 3:]], axis=1)


def describe(path: str, orientation: int) -> str:
  return f"{path} has EXIF orientation {orientation} ({NAMES[orientation]})"


def resolve(path: str, orientation: int, stored_hw: Sequence[int],
            camera_hw: Sequence[float] | None, reading: str,
            what_camera: str) -> str:
  """Which pixels the camera of ``path`` describes: "stored" or "displayed".

  Args:
    path: the image file (for messages).
    orientation: its EXIF orientation (≠ 1).
    stored_hw: its stored (H, W).
    camera_hw: the (H, W) the camera file declares (any scale), or None.
    reading: "auto", "stored" or "displayed" (see the module docstring).
    what_camera: names the camera file in messages.

  Raises:
    errors.InputError: "auto" and both readings (or neither) fit the declared
      size; or the "stored" reading of a mirror tag.
  """
  check_reading(reading)
  shown = displayed_size(stored_hw, orientation)
  stored_text = f"{stored_hw[1]}×{stored_hw[0]}"
  shown_text = f"{shown[1]}×{shown[0]}"
  if reading == "auto":
    fits = []
    if camera_hw is not None:
      ch, cw = float(camera_hw[0]), float(camera_hw[1])
      for name, (h, w) in (("stored", stored_hw), ("displayed", shown)):
        if abs(h / ch - w / cw) <= 0.01 * (w / cw):
          fits.append(name)
    else:
      fits = ["stored", "displayed"]
    if len(fits) == 1:
      reading = fits[0]
    elif not fits:
      raise errors.InputError(
          f"{describe(path, orientation)}: it is {stored_text} pixels as "
          f"stored and {shown_text} as displayed, but {what_camera} declares "
          f"{camera_hw[1]:g}×{camera_hw[0]:g} (another aspect ratio). Check that "
          "the images belong to these cameras.")
    else:
      size = ("declares no image size" if camera_hw is None else
              f"declares {camera_hw[1]:g}×{camera_hw[0]:g}, which fits both")
      raise errors.InputError(
          f"{describe(path, orientation)}, and {what_camera} {size}: the cameras "
          "may describe the pixels as stored (COLMAP and LLFF's imgs2poses.py "
          "ignore the tag) or as displayed (tools that turn photos first). "
          "Choose one: exif='stored' (CLI --exif=stored) or exif='displayed' "
          "(--exif=displayed); or remove the tag from the photos (e.g. "
          "`exiftool -Orientation=1 -n`) and recompute the poses.")
  if reading == "stored" and orientation in MIRRORS:
    raise errors.InputError(
        f"{describe(path, orientation)}. A mirrored photo cannot keep its "
        "camera from the stored pixels (the camera would need a negative focal "
        "length). Use exif='displayed' if the cameras were computed on the "
        "displayed photos, or remove the tag and recompute the poses.")
  return reading
