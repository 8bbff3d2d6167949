"""Captures whose layout is chosen from the cameras: COLMAP sparse models
(``sparse/0/`` next to ``images/``) and instant-ngp / nerfstudio
``transforms.json`` with a sparse point cloud. Forward-facing captures get
LLFF's normalisation (records of kind "llff"), object-centric ones are
recentred and scaled into [-1, 1]³ (records of kind "blender"); per-view
near/far come from the depths of the sparse points each camera sees.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

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
    _isdir,
    _join,
    _list_images,
    _probe,
    _read_bytes,
    _real_array,
    _record,
    _scale_intrinsics,
    _short,
    _turned_views,
    _views_to_read,
    read_stored)
from regnerf_tf.datasets.llff import (
    _llff_frame)


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


def _bounds_from_depths(depths: Sequence[np.ndarray], nothing_seen: str
                        ) -> np.ndarray:
  """[N, 2] near/far per view: the DEPTH_PERCENTILES of the depths of the
  points each view sees. Views with fewer than MIN_POINTS_PER_VIEW points, or
  all at one depth, get the range of the others; InputError(nothing_seen)
  when no view has usable points."""
  bounds = np.zeros((len(depths), 2))
  known = []
  for i, depth in enumerate(depths):
    if depth.size >= MIN_POINTS_PER_VIEW:
      bounds[i] = np.percentile(depth, DEPTH_PERCENTILES)
      if bounds[i, 1] > bounds[i, 0] * (1 + 1e-6):  # else: a degenerate spread
        known.append(i)
  if not known:
    raise errors.InputError(nothing_seen)
  for i in set(range(len(depths))) - set(known):
    bounds[i] = bounds[known, 0].min(), bounds[known, 1].max()
  return bounds


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
  tags, readings, shown = _turned_views(
      paths, None, exif, f"the camera of the COLMAP model in {folder}",
      camera_hws=[(cam.height, cam.width) for cam in cams])
  stored = [orientation.displayed_size(hw, tag)  # turning back is the same
            for hw, tag in zip(shown, tags)]

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

  bounds = _bounds_from_depths(
      [_view_depths(model, image) for image in model.images],
      f"No image of the COLMAP model in {folder} sees {MIN_POINTS_PER_VIEW} "
      "or more 3D points in front of it at different depths, so near/far "
      "cannot be estimated; the model's points3D is empty or does not belong "
      "to its images. Recompute the model.")

  # Turn cameras of tagged photos with their images (before normalising, so
  # that the scene's "up" is the photos' up).
  for i in range(num):
    if readings[i] == "stored" and tags[i] != 1:
      ks[i], c2w[i] = orientation.turn_camera(ks[i], c2w[i], tags[i],
                                              stored[i], "opencv")
  size = _check_one_size(paths, shown, tags)
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
  depths = []
  for i in range(num):
    rotation, centre = c2w_cv[i, :, :3], c2w_cv[i, :, 3]
    local = (points - centre) @ rotation  # camera coordinates (OpenCV)
    front = local[local[:, 2] > 0]
    pix = front @ ks[i].T
    u, v = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
    h, w = files[i]
    depths.append(front[(u >= 0) & (u <= w) & (v >= 0) & (v <= h), 2])
  bounds = _bounds_from_depths(
      depths,
      f"No frame of {json_file} sees {MIN_POINTS_PER_VIEW} or more points "
      f"of {ply} in front of it, so near/far cannot be estimated; the point "
      "cloud does not belong to these cameras (another coordinate frame?).")
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
    return poses, bounds, world_transform, scene_kinds.LLFF.name
  bounds = bounds * np.array([1 - OBJECT_MARGIN, 1 + OBJECT_MARGIN])
  poses, recentre = camera.recenter_poses(poses)
  poses, scale = camera.rescale_poses(poses)
  return (poses, bounds * scale,
          np.diag([scale, scale, scale, 1.0]) @ recentre,
          scene_kinds.BLENDER.name)


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
