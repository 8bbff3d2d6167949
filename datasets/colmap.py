"""COLMAP sparse models: the registered images and their poses.

A sparse model folder (``sparse/0/``) holds ``cameras``, ``images`` and
``points3D`` as ``.bin`` or ``.txt``. This module reads the images file: for
each registered image its name and world-to-camera pose (quaternion, w first,
and translation; COLMAP's camera looks down +z with y down, as OpenCV's).

Used by the LLFF reader to settle which image goes with which row of
``poses_bounds.npy`` when the names alone cannot tell (LLFF's
``imgs2poses.py`` leaves the COLMAP model next to the images).
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import tensorflow as tf

from regnerf_tf import errors

MODEL_FOLDERS = ("sparse/0", "sparse")


@dataclasses.dataclass(frozen=True)
class RegisteredImage:
  """One image of a COLMAP model."""
  image_id: int
  name: str
  qvec: np.ndarray  # [4] world-to-camera rotation (w, x, y, z)
  tvec: np.ndarray  # [3] world-to-camera translation
  camera_id: int

  @property
  def rotation(self) -> np.ndarray:
    """[3, 3] world-to-camera rotation."""
    w, x, y, z = self.qvec / np.linalg.norm(self.qvec)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])

  @property
  def centre(self) -> np.ndarray:
    """[3] camera centre in world coordinates, −Rᵀ t."""
    return -self.rotation.T @ self.tvec


def _read(path: str) -> bytes:
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def _truncated(path: str, what: str) -> errors.InputError:
  return errors.InputError(
      f"{path} ends inside {what}; expected a complete COLMAP images.bin. "
      "Re-export the model (colmap model_converter) or delete the file.")


def read_images_bin(path: str) -> list[RegisteredImage]:
  """The images of a binary COLMAP model (``images.bin``)."""
  data = _read(path)
  at = 0

  def take(fmt: str, what: str):
    nonlocal at
    size = struct.calcsize(fmt)
    if at + size > len(data):
      raise _truncated(path, what)
    values = struct.unpack_from(fmt, data, at)
    at += size
    return values

  (count,) = take("<Q", "the image count")
  images = []
  for i in range(count):
    image_id, *pose, camera_id = take("<I7dI", f"image {i}")
    end = data.find(b"\x00", at)
    if end < 0:
      raise _truncated(path, f"the name of image {i}")
    name = data[at:end].decode("utf-8", errors="replace")
    at = end + 1
    (points,) = take("<Q", f"the point count of image {i}")
    if at + 24 * points > len(data):
      raise _truncated(path, f"the points of image {i}")
    at += 24 * points
    images.append(RegisteredImage(image_id, name, np.array(pose[:4]),
                                  np.array(pose[4:]), camera_id))
  return images


def read_images_txt(path: str) -> list[RegisteredImage]:
  """The images of a text COLMAP model (``images.txt``)."""
  lines = [line for line in _read(path).decode("utf-8", "replace").splitlines()
           if not line.startswith("#")]
  images = []
  # Two lines per image: the pose line, then the (possibly empty) points line.
  for number, line in enumerate(lines[::2]):
    fields = line.split(maxsplit=9)
    try:
      if len(fields) != 10:
        raise ValueError(f"{len(fields)} fields")
      values = [float(v) for v in fields[1:8]]
      images.append(RegisteredImage(int(fields[0]), fields[9].strip(),
                                    np.array(values[:4]),
                                    np.array(values[4:]), int(fields[8])))
    except ValueError as e:
      raise errors.InputError(
          f"Image line {number} of {path} is {line[:80]!r} ({e}); expected "
          "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME followed by a line of "
          "points, as COLMAP writes.") from None
  return images


def find_images_file(scene_dir: str) -> str | None:
  """``images.bin`` or ``images.txt`` of the model in ``scene_dir``, if any."""
  for folder in MODEL_FOLDERS:
    for name in ("images.bin", "images.txt"):
      path = f"{str(scene_dir).rstrip('/')}/{folder}/{name}"
      if tf.io.gfile.exists(path):
        return path
  return None


def read_images(path: str) -> list[RegisteredImage]:
  """The images of ``images.bin`` or ``images.txt``, in file order."""
  return read_images_bin(path) if path.endswith(".bin") else read_images_txt(
      path)
