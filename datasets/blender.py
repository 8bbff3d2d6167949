"""Blender (NeRF synthetic) scenes: ``transforms_{train,val,test}.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from regnerf_tf import camera
from regnerf_tf import errors
from regnerf_tf import scene_kinds
from regnerf_tf.datasets import orientation
from regnerf_tf.datasets.files import (
    IMAGE_EXTENSIONS,
    Record,
    _check_one_size,
    _check_rotations,
    _check_same_size,
    _exists,
    _join,
    _read_bytes,
    _real_array,
    _record,
    _turned_views,
    _views_to_read,
    read_image)


BLENDER_NEAR, BLENDER_FAR = 2.0, 6.0


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
        file_name=path.rsplit("/", 1)[-1], kind=scene_kinds.BLENDER.name,
        scene_camtoworlds=poses, scene_intrinsics=ks, scene_bounds=bounds,
        world_transform=np.eye(4)))
  return records
