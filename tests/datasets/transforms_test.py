"""instant-ngp / nerfstudio captures (transforms.json + a sparse point cloud).

Captures are written here from known cameras: fern (whose cameras must come
back as the LLFF reader gives them, up to LLFF's global scale, which depends
on the bounds) and a ring of cameras around an object, whose per-view bounds
are recomputed here from the point cloud with OpenGL projections.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from regnerf_tf import errors, scenes
from regnerf_tf.datasets import readers

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
FERN = SHARED / "llff" / "fern"
VIEWS = [0, 7, 13]

pytestmark = pytest.mark.skipif(not FERN.is_dir(),
                                reason="shared scenes not present")


def _write_ply(path: pathlib.Path, points: np.ndarray, ascii: bool) -> None:
  header = ("ply\nformat {} 1.0\nelement vertex {}\nproperty double x\n"
            "property double y\nproperty double z\nproperty uchar red\n"
            "property uchar green\nproperty uchar blue\nend_header\n").format(
                "ascii" if ascii else "binary_little_endian", len(points))
  if ascii:
    body = "".join(f"{x!r} {y!r} {z!r} 10 20 30\n"
                   for x, y, z in points.tolist()).encode()
  else:
    body = b"".join(struct.pack("<3d3B", *p, 10, 20, 30) for p in points)
  path.write_bytes(header.encode() + body)


def _fern_capture(root: pathlib.Path, ascii: bool = False, **change
                  ) -> pathlib.Path:
  return write_fern_capture(root, FERN / "images_8", ascii, **change)


def write_fern_capture(root: pathlib.Path, photos: pathlib.Path,
                       ascii: bool = False, **change) -> pathlib.Path:
  """fern as nerfstudio writes a capture of the images in ``photos`` (any
  size): global intrinsics, OpenGL camera-to-world matrices, images/ and
  sparse_pc.ply (points on each camera's central ray between its bounds).
  ``change`` sets keys of transforms.json; None removes one (and, for
  ply_file_path, leaves the point cloud out)."""
  scene = root / "fern_ns"
  shutil.copytree(photos, scene / "images")
  data = np.load(FERN / "poses_bounds.npy")
  raw = data[:, :15].reshape(-1, 3, 5)
  names = sorted(os.listdir(scene / "images"))
  width, height = Image.open(scene / "images" / names[0]).size
  f = raw[0, 2, 4] * width / raw[0, 1, 4]
  frames, points = [], []
  for i, name in enumerate(names):
    c2w = np.stack([raw[i, :, 1], -raw[i, :, 0], raw[i, :, 2], raw[i, :, 3]], 1)
    frames.append({"file_path": f"images/{name}",
                   "transform_matrix": np.vstack([c2w, [0, 0, 0, 1]]).tolist()})
    for depth in np.linspace(data[i, 15], data[i, 16], 30):
      points.append(c2w[:, 3] - depth * c2w[:, 2])
  frames.reverse()  # the reader sorts them by file path
  meta = {"camera_model": "OPENCV", "fl_x": f, "fl_y": f, "cx": width / 2,
          "cy": height / 2, "w": width, "h": height, "k1": 0.0, "k2": 0.0,
          "p1": 0.0, "p2": 0.0, "frames": frames,
          "ply_file_path": "sparse_pc.ply"}
  for key, value in change.items():
    if value is None:
      meta.pop(key, None)
    else:
      meta[key] = value
  (scene / "transforms.json").write_text(json.dumps(meta))
  if meta.get("ply_file_path"):
    _write_ply(scene / "sparse_pc.ply", np.array(points), ascii)
  return scene


@pytest.fixture(scope="module")
def fern_llff():
  return readers.read_llff(str(FERN), views=VIEWS)


@pytest.mark.parametrize("ascii", [False, True])
def test_fern_as_a_nerfstudio_capture(tmp_path, fern_llff, ascii):
  scene = _fern_capture(tmp_path, ascii)
  assert readers.detect_format(str(scene)) == "transforms"
  got = readers.read_transforms(str(scene), views=VIEWS)
  assert {g["kind"] for g in got} == {"llff"}
  ratios = []
  for g, want in zip(got, fern_llff):
    np.testing.assert_array_equal(g["image"], want["image"])
    np.testing.assert_allclose(g["intrinsics"], want["intrinsics"], atol=1e-4)
    np.testing.assert_allclose(g["camtoworld"][:, :3], want["camtoworld"][:, :3],
                               atol=1e-5)
    ratios.append(g["scene_camtoworlds"][:, :, 3] / np.where(
        np.abs(want["scene_camtoworlds"][:, :, 3]) > 1e-3,
        want["scene_camtoworlds"][:, :, 3], np.nan))
  ratios = np.array(ratios)
  ratios = ratios[np.isfinite(ratios)]
  np.testing.assert_allclose(ratios, np.median(ratios), rtol=1e-3)


def _ring_capture(root: pathlib.Path, n: int = 10):
  scene = root / "ring"
  (scene / "images").mkdir(parents=True)
  rng = np.random.default_rng(1)
  points = rng.uniform(-0.7, 0.7, (300, 3))
  frames, c2ws = [], []
  for i in range(n):
    a = 2 * np.pi * i / n
    position = 4.0 * np.array([np.cos(a), np.sin(a), 0.4])
    back = position / np.linalg.norm(position)  # OpenGL: looks down −z
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    c2w = np.stack([right, up, back, position], axis=1)
    c2ws.append(c2w)
    name = f"frame_{i:05d}.png"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
        scene / "images" / name)
    frames.append({"file_path": f"./images/{name}", "fl_x": 30.0,
                   "fl_y": 30.0, "transform_matrix": c2w.tolist()})
  (scene / "transforms.json").write_text(json.dumps(
      {"w": 40, "h": 30, "cx": 20.0, "cy": 15.0, "frames": frames,
       "ply_file_path": "points.ply"}))
  _write_ply(scene / "points.ply", points, ascii=True)
  return scene, np.array(c2ws), points


def test_object_capture_bounds_are_the_depths_of_the_points_in_view(tmp_path):
  scene, c2ws, points = _ring_capture(tmp_path)
  records = readers.read_transforms(str(scene))
  assert {r["kind"] for r in records} == {"blender"}
  for r, c2w in zip(records, c2ws):
    local = (points - c2w[:, 3]) @ c2w[:, :3]  # OpenGL camera coordinates
    depth = -local[:, 2]
    u = 30.0 * local[:, 0] / depth + 20.0
    v = -30.0 * local[:, 1] / depth + 15.0
    seen = depth[(depth > 0) & (u >= 0) & (u <= 40) & (v >= 0) & (v <= 30)]
    near, far = np.percentile(seen, [0.1, 99.9])
    world_scale = np.linalg.norm(r["world_transform"][:3, 0])
    np.testing.assert_allclose(
        [r["near"], r["far"]],
        [0.9 * near * world_scale, 1.1 * far * world_scale], rtol=1e-5)


def test_a_downscaled_folder_is_used_for_a_factor(tmp_path):
  scene = _fern_capture(tmp_path)
  (scene / "images_2").mkdir()
  for name in os.listdir(scene / "images"):
    Image.open(scene / "images" / name).resize((252, 189)).save(
        scene / "images_2" / name)
  half = readers.read_transforms(str(scene), views=[2], factor=2)[0]
  full = readers.read_transforms(str(scene), views=[2])[0]
  assert half["image"].shape == (189, 252, 3)
  np.testing.assert_allclose(half["intrinsics"][:2], full["intrinsics"][:2] / 2,
                             rtol=1e-6)


def test_splits_of_a_capture_hold_out_every_8th_view(tmp_path):
  loaded = scenes.from_folder(str(_fern_capture(tmp_path)), 3)
  assert [int(r["view_index"]) for r in loaded.train] == [1, 10, 19]


@pytest.mark.parametrize("change, error, message", [
    ({"ply_file_path": None}, errors.MissingFileError, "ns-process-data"),
    ({"camera_model": "OPENCV_FISHEYE"}, errors.InputError,
     "camera_model 'OPENCV_FISHEYE'"),
    ({"k3": 0.01}, errors.InputError, "k3 of frames"),
    ({"fl_x": None, "fl_y": None}, errors.InputError, "no focal length"),
])
def test_hostile_captures(tmp_path, change, error, message):
  scene = _fern_capture(tmp_path, **change)
  with pytest.raises(error, match=message):
    readers.read_transforms(str(scene))


def test_a_missing_frame_is_named_with_its_json(tmp_path):
  scene = _fern_capture(tmp_path)
  (scene / "images" / "image005.png").unlink()
  with pytest.raises(errors.MissingFileError,
                     match=r"frames\[5\]\.file_path in .*transforms\.json"):
    readers.read_transforms(str(scene))


def test_a_point_cloud_of_another_frame_is_refused(tmp_path):
  scene = _fern_capture(tmp_path)
  _write_ply(scene / "sparse_pc.ply", np.full((50, 3), 1e4), ascii=False)
  with pytest.raises(errors.InputError, match="another coordinate frame"):
    readers.read_transforms(str(scene))
