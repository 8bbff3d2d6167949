"""COLMAP sparse models: cameras, registered images and 3D points.

A sparse model folder (``sparse/0/``) holds ``cameras``, ``images`` and
``points3D`` as ``.bin`` or ``.txt`` (COLMAP's own formats; newer versions add
``rigs`` and ``frames``, which are not needed here). Poses are world-to-camera
(quaternion w first, translation); COLMAP's camera looks down +z with y down,
as OpenCV's. Pixel coordinates have their origin at the top-left corner of the
image (pixel centres at +0.5), as this project's.

Used by :func:`regnerf_tf.datasets.readers.read_colmap`, and by the LLFF
reader to settle which image goes with which row of ``poses_bounds.npy`` when
the names alone cannot tell (LLFF's ``imgs2poses.py`` leaves the COLMAP model
next to the images).
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import tensorflow as tf

from regnerf_tf import errors

MODEL_FOLDERS = ("sparse/0", "sparse")
# COLMAP's camera model ids: (name, number of parameters).
CAMERA_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4),
                 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
                 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12),
                 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
                 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
MODEL_IDS = {name: i for i, (name, _) in CAMERA_MODELS.items()}
# Models read here (COLMAP's defaults): the pinhole ones and the polynomial
# radial/tangential distortions that undistortion can invert by resampling.
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL",
                    "OPENCV")


@dataclasses.dataclass(frozen=True)
class Camera:
  """One camera of a COLMAP model (pixels of a ``width``×``height`` image)."""
  camera_id: int
  model: str
  width: int
  height: int
  params: np.ndarray

  @property
  def intrinsics(self) -> np.ndarray:
    """[3, 3] pinhole K of the camera (its distortion aside)."""
    p = self.params
    if self.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
      fx = fy = p[0]
      cx, cy = p[1], p[2]
    else:  # PINHOLE, OPENCV
      fx, fy, cx, cy = p[:4]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

  @property
  def distortion(self) -> np.ndarray:
    """[4] (k1, k2, p1, p2) of OpenCV's radial-tangential model (zeros: none)."""
    p = self.params
    if self.model == "SIMPLE_RADIAL":
      return np.array([p[3], 0.0, 0.0, 0.0])
    if self.model == "RADIAL":
      return np.array([p[3], p[4], 0.0, 0.0])
    if self.model == "OPENCV":
      return np.array(p[4:8], np.float64)
    return np.zeros(4)


@dataclasses.dataclass(frozen=True)
class RegisteredImage:
  """One image of a COLMAP model."""
  image_id: int
  name: str
  qvec: np.ndarray  # [4] world-to-camera rotation (w, x, y, z)
  tvec: np.ndarray  # [3] world-to-camera translation
  camera_id: int
  point_ids: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(0, np.int64))  # seen 3D points (≥ 0)

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

  @property
  def camtoworld(self) -> np.ndarray:
    """[3, 4] OpenCV camera-to-world [Rᵀ | C]."""
    return np.concatenate([self.rotation.T, self.centre[:, None]], axis=1)


def _read(path: str) -> bytes:
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


class _Bytes:
  """Reads little-endian records from a binary model file."""

  def __init__(self, path: str, kind: str):
    self.path, self.kind = path, kind
    self.data = _read(path)
    self.at = 0

  def take(self, fmt: str, what: str) -> tuple:
    size = struct.calcsize(fmt)
    if self.at + size > len(self.data):
      raise self.truncated(what)
    values = struct.unpack_from(fmt, self.data, self.at)
    self.at += size
    return values

  def skip(self, size: int, what: str) -> bytes:
    if size < 0 or self.at + size > len(self.data):
      raise self.truncated(what)
    chunk = self.data[self.at:self.at + size]
    self.at += size
    return chunk

  def truncated(self, what: str) -> errors.InputError:
    return errors.InputError(
        f"{self.path} ends inside {what}; expected a complete COLMAP "
        f"{self.kind}. Re-export the model (colmap model_converter) or "
        "recompute it.")


def _lines(path: str) -> list[str]:
  return [line.strip() for line in
          _read(path).decode("utf-8", "replace").splitlines()
          if line.strip() and not line.startswith("#")]


def _bad_line(path: str, number: int, line: str, error: Exception,
              expected: str) -> errors.InputError:
  return errors.InputError(
      f"Line {number} of the data in {path} is {line[:80]!r} ({error}); "
      f"expected {expected}, as COLMAP writes.")


def _check_model(camera: Camera, where: str) -> Camera:
  name, count = camera.model, len(camera.params)
  expected = dict(CAMERA_MODELS.values()).get(name)
  if expected is not None and count != expected:
    raise errors.InputError(f"{where}: camera {camera.camera_id} of model {name} "
                            f"has {count} parameters; expected {expected}.")
  if camera.width < 1 or camera.height < 1 or not np.all(
      np.isfinite(camera.params)):
    raise errors.InputError(
        f"{where}: camera {camera.camera_id} has size {camera.width}×"
        f"{camera.height} and parameters {camera.params.tolist()}; expected "
        "a positive size and finite parameters.")
  return camera


def read_cameras_bin(path: str) -> dict[int, Camera]:
  """The cameras of ``cameras.bin``: {camera_id: Camera}."""
  f = _Bytes(path, "cameras.bin")
  (count,) = f.take("<Q", "the camera count")
  cameras = {}
  for i in range(count):
    camera_id, model_id, width, height = f.take("<iiQQ", f"camera {i}")
    if model_id not in CAMERA_MODELS:
      raise errors.InputError(f"{path}: camera {camera_id} has the unknown "
                              f"model id {model_id}; expected one of "
                              f"{sorted(CAMERA_MODELS)}.")
    name, n = CAMERA_MODELS[model_id]
    params = np.array(f.take(f"<{n}d", f"the parameters of camera {i}"))
    cameras[camera_id] = _check_model(
        Camera(camera_id, name, width, height, params), path)
  return cameras


def read_cameras_txt(path: str) -> dict[int, Camera]:
  """The cameras of ``cameras.txt``: {camera_id: Camera}."""
  cameras = {}
  for number, line in enumerate(_lines(path)):
    fields = line.split()
    try:
      camera = Camera(int(fields[0]), fields[1], int(fields[2]),
                      int(fields[3]), np.array([float(v) for v in fields[4:]]))
    except (ValueError, IndexError) as e:
      raise _bad_line(path, number, line, e, "CAMERA_ID MODEL WIDTH HEIGHT "
                      "PARAMS[]") from None
    cameras[camera.camera_id] = _check_model(camera, path)
  return cameras


def read_images_bin(path: str) -> list[RegisteredImage]:
  """The images of ``images.bin``, in file order."""
  f = _Bytes(path, "images.bin")
  (count,) = f.take("<Q", "the image count")
  points_dtype = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
  images = []
  for i in range(count):
    image_id, *pose, camera_id = f.take("<I7dI", f"image {i}")
    end = f.data.find(b"\x00", f.at)
    if end < 0:
      raise f.truncated(f"the name of image {i}")
    name = f.skip(end - f.at + 1, f"the name of image {i}")[:-1].decode(
        "utf-8", errors="replace")
    (points,) = f.take("<Q", f"the point count of image {i}")
    raw = f.skip(points * points_dtype.itemsize, f"the points of image {i}")
    ids = np.frombuffer(raw, points_dtype)["id"]
    images.append(RegisteredImage(image_id, name, np.array(pose[:4]),
                                  np.array(pose[4:]), camera_id,
                                  ids[ids >= 0].astype(np.int64)))
  return images


def read_images_txt(path: str) -> list[RegisteredImage]:
  """The images of ``images.txt``, in file order.

  Each image has a pose line and a line of points (X Y POINT3D_ID triples),
  which may be empty; blank lines are therefore significant here.
  """
  lines = [line for line in _read(path).decode("utf-8", "replace").splitlines()
           if not line.startswith("#")]
  while lines and not lines[-1].strip():
    lines.pop()
  images = []
  for number in range(0, len(lines), 2):
    line = lines[number]
    fields = line.split(maxsplit=9)
    try:
      if len(fields) != 10:
        raise ValueError(f"{len(fields)} fields")
      values = [float(v) for v in fields[1:8]]
      points = lines[number + 1].split() if number + 1 < len(lines) else []
      ids = np.array([int(float(v)) for v in points[2::3]], np.int64)
      images.append(RegisteredImage(int(fields[0]), fields[9].strip(),
                                    np.array(values[:4]),
                                    np.array(values[4:]), int(fields[8]),
                                    ids[ids >= 0]))
    except ValueError as e:
      raise _bad_line(path, number, line, e, "IMAGE_ID QW QX QY QZ TX TY TZ "
                      "CAMERA_ID NAME followed by a line of points") from None
  return images


def read_points_bin(path: str) -> dict[int, np.ndarray]:
  """{point3D_id: [3] position} of ``points3D.bin``."""
  f = _Bytes(path, "points3D.bin")
  (count,) = f.take("<Q", "the point count")
  points = {}
  for i in range(count):
    point_id, x, y, z, _, _, _, _, track = f.take("<Q3d3BdQ", f"point {i}")
    f.skip(8 * track, f"the track of point {i}")
    points[point_id] = np.array([x, y, z])
  return points


def read_points_txt(path: str) -> dict[int, np.ndarray]:
  """{point3D_id: [3] position} of ``points3D.txt``."""
  points = {}
  for number, line in enumerate(_lines(path)):
    fields = line.split()
    try:
      points[int(fields[0])] = np.array([float(v) for v in fields[1:4]])
      if len(fields) < 8:
        raise ValueError(f"{len(fields)} fields")
    except (ValueError, IndexError) as e:
      raise _bad_line(path, number, line, e, "POINT3D_ID X Y Z R G B ERROR "
                      "TRACK[]") from None
  return points


@dataclasses.dataclass(frozen=True)
class Model:
  """A sparse model: its folder, cameras, images (sorted by name), points."""
  folder: str
  cameras: dict[int, Camera]
  images: list[RegisteredImage]
  points: dict[int, np.ndarray]


def find_model(scene_dir: str) -> str | None:
  """The sparse model folder of ``scene_dir`` (sparse/0 or sparse), if any."""
  for folder in MODEL_FOLDERS:
    path = f"{str(scene_dir).rstrip('/')}/{folder}"
    if any(tf.io.gfile.exists(f"{path}/cameras.{ext}") for ext in ("bin", "txt")):
      return path
  return None


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


def read_model(folder: str) -> Model:
  """Cameras, images and points of a model folder (.bin preferred).

  Raises:
    errors.MissingFileError: a part of the model is missing.
    errors.InputError: a part is truncated or malformed, or an image names a
      camera the model does not have.
  """
  folder = str(folder).rstrip("/")
  parts = {}
  for part in ("cameras", "images", "points3D"):
    for ext in ("bin", "txt"):
      if tf.io.gfile.exists(f"{folder}/{part}.{ext}"):
        parts[part] = f"{folder}/{part}.{ext}"
        break
    else:
      raise errors.MissingFileError(
          f"The COLMAP model in {folder} has no {part}.bin or {part}.txt; "
          "expected cameras, images and points3D (as COLMAP's mapper or "
          "model_converter writes them).")
  def read(part, binary, text):
    path = parts[part]
    return binary(path) if path.endswith(".bin") else text(path)
  cameras = read("cameras", read_cameras_bin, read_cameras_txt)
  images = read("images", read_images_bin, read_images_txt)
  points = read("points3D", read_points_bin, read_points_txt)
  for image in images:
    if image.camera_id not in cameras:
      raise errors.InputError(
          f"{parts['images']}: image {image.name} uses camera "
          f"{image.camera_id}, which {parts['cameras']} does not hold "
          f"(cameras {sorted(cameras)}). The model is incomplete: export it "
          "again.")
  return Model(folder, cameras, sorted(images, key=lambda im: im.name), points)


# ----------------------------------------------------------------------------
# Undistortion.
# ----------------------------------------------------------------------------


def distort(x: np.ndarray, y: np.ndarray, coefficients: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
  """OpenCV's radial-tangential model on normalised coordinates."""
  k1, k2, p1, p2 = coefficients
  r2 = x * x + y * y
  radial = 1.0 + k1 * r2 + k2 * r2 * r2
  xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
  yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
  return xd, yd


def undistort(image: np.ndarray, intrinsics: np.ndarray,
              coefficients: np.ndarray) -> np.ndarray:
  """The pinhole image (same K) of a distorted one, bilinear resampling.

  Every output pixel centre is mapped through the distortion model into the
  input; samples outside the input take the nearest edge pixel.

  Args:
    image: [H, W, C] pixels as the distorted camera saw them.
    intrinsics: [3, 3] K of ``image``'s pixels.
    coefficients: (k1, k2, p1, p2).

  Returns:
    float64 [H, W, C].
  """
  h, w = image.shape[:2]
  k = np.asarray(intrinsics, np.float64)
  u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
  x = (u - k[0, 2] - k[0, 1] * (v - k[1, 2]) / k[1, 1]) / k[0, 0]
  y = (v - k[1, 2]) / k[1, 1]
  xd, yd = distort(x, y, coefficients)
  ud = k[0, 0] * xd + k[0, 1] * yd + k[0, 2] - 0.5  # in pixel-index units
  vd = k[1, 1] * yd + k[1, 2] - 0.5
  ud = np.clip(ud, 0.0, w - 1.0)
  vd = np.clip(vd, 0.0, h - 1.0)
  u0 = np.minimum(np.floor(ud).astype(int), w - 2 if w > 1 else 0)
  v0 = np.minimum(np.floor(vd).astype(int), h - 2 if h > 1 else 0)
  fu = (ud - u0)[..., None]
  fv = (vd - v0)[..., None]
  u1 = np.minimum(u0 + 1, w - 1)
  v1 = np.minimum(v0 + 1, h - 1)
  src = np.asarray(image, np.float64)
  top = src[v0, u0] * (1 - fu) + src[v0, u1] * fu
  bottom = src[v1, u0] * (1 - fu) + src[v1, u1] * fu
  return top * (1 - fv) + bottom * fv
