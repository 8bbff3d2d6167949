"""COLMAP captures: models read in both formats, cameras, bounds and layout.

Models are written here from known cameras (fern's poses_bounds.npy, or a
ring of cameras around an object) with scipy's quaternions, so that what the
reader returns can be compared with the cameras it came from: the fern model
must give exactly what the LLFF reader gives for fern.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import struct

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from regnerf_tf import errors, scenes
from regnerf_tf.datasets import colmap, readers

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
FERN = SHARED / "llff" / "fern"
VIEWS = [0, 7, 13]

pytestmark = pytest.mark.skipif(not FERN.is_dir(),
                                reason="shared scenes not present")


def _write_model(folder: pathlib.Path, cameras, images, points, text: bool):
  """cameras: [(id, model, w, h, params)]; images: [(id, name, R, t,
  camera_id, point_ids)] with R, t world-to-camera; points: {id: xyz}."""
  folder.mkdir(parents=True, exist_ok=True)
  seen: dict[int, list] = {}
  for image_id, _, _, _, _, ids in images:
    for j, p in enumerate(ids):
      seen.setdefault(p, []).append((image_id, j))
  quats = {image[0]: np.roll(Rotation.from_matrix(image[2]).as_quat(), 1)
           for image in images}  # scipy (x, y, z, w) → COLMAP (w, x, y, z)
  if text:
    (folder / "cameras.txt").write_text("# Camera list\n" + "".join(
        f"{i} {m} {w} {h} {' '.join(repr(float(p)) for p in ps)}\n"
        for i, m, w, h, ps in cameras))
    lines = ["# Image list"]
    for image_id, name, _, t, cam, ids in images:
      q = quats[image_id]
      lines.append(" ".join([str(image_id)] + [repr(float(v)) for v in q]
                            + [repr(float(v)) for v in t] + [str(cam), name]))
      lines.append(" ".join(f"{j + 0.5} {j + 1.5} {p}" for j, p in
                            enumerate(list(ids) + [-1])))
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    (folder / "points3D.txt").write_text("# 3D points\n" + "".join(
        f"{p} {x!r} {y!r} {z!r} 10 20 30 0.5 "
        + " ".join(f"{a} {b}" for a, b in seen.get(p, [])) + "\n"
        for p, (x, y, z) in ((p, tuple(map(float, v)))
                             for p, v in points.items())))
    return
  data = struct.pack("<Q", len(cameras))
  for i, m, w, h, ps in cameras:
    data += struct.pack("<iiQQ", i, colmap.MODEL_IDS[m], w, h)
    data += struct.pack(f"<{len(ps)}d", *ps)
  (folder / "cameras.bin").write_bytes(data)
  data = struct.pack("<Q", len(images))
  for image_id, name, _, t, cam, ids in images:
    data += struct.pack("<I7dI", image_id, *quats[image_id], *t, cam)
    data += name.encode() + b"\x00" + struct.pack("<Q", len(ids) + 1)
    for j, p in enumerate(list(ids) + [-1]):
      data += struct.pack("<ddq", j + 0.5, j + 1.5, p)
  (folder / "images.bin").write_bytes(data)
  data = struct.pack("<Q", len(points))
  for p, xyz in points.items():
    track = seen.get(p, [])
    data += struct.pack("<Q3d3BdQ", p, *xyz, 10, 20, 30, 0.5, len(track))
    for a, b in track:
      data += struct.pack("<ii", a, b)
  (folder / "points3D.bin").write_bytes(data)


def _fern_model(root: pathlib.Path, text: bool = False,
                model: str = "PINHOLE") -> pathlib.Path:
  return write_fern_model(root, FERN / "images_8", text, model)


def write_fern_model(root: pathlib.Path, photos: pathlib.Path,
                     text: bool = False, model: str = "PINHOLE"
                     ) -> pathlib.Path:
  """fern as a COLMAP capture of the images in ``photos`` (any size): its
  cameras, and for each view 60 points on its central ray at depth near and
  60 at far (so that the 0.1 and 99.9 percentiles are exactly the bounds of
  poses_bounds.npy)."""
  scene = root / "fern_colmap"
  (scene / "images").mkdir(parents=True)
  names = sorted(os.listdir(photos))
  for name in names:
    shutil.copy(photos / name, scene / "images" / name)
  width, height = Image.open(photos / names[0]).size
  data = np.load(FERN / "poses_bounds.npy")
  raw = data[:, :15].reshape(-1, 3, 5)
  h, w, f = raw[0, :, 4]
  f = f * width / w
  cx, cy = width / 2, height / 2
  params = {"PINHOLE": [f, f, cx, cy], "SIMPLE_PINHOLE": [f, cx, cy],
            "SIMPLE_RADIAL": [f, cx, cy, 0.0]}[model]
  images, points = [], {}
  for i, name in enumerate(names):
    # LLFF columns [down, right, back] → OpenCV [right, down, forward].
    c2w = np.stack([raw[i, :, 1], raw[i, :, 0], -raw[i, :, 2]], axis=1)
    centre = raw[i, :, 3]
    ids = []
    for k, depth in enumerate([data[i, 15]] * 60 + [data[i, 16]] * 60):
      point_id = 1000 * i + k + 1
      points[point_id] = centre + depth * c2w[:, 2]
      ids.append(point_id)
    images.append((i + 1, name, c2w.T, -c2w.T @ centre, 1, ids))
  _write_model(scene / "sparse" / "0", [(1, model, width, height, params)],
               images, points, text)
  return scene


@pytest.fixture(scope="module")
def fern_llff():
  return readers.read_llff(str(FERN), views=VIEWS)


@pytest.mark.parametrize("text", [False, True])
def test_fern_as_a_colmap_capture_is_fern(tmp_path, fern_llff, text):
  scene = _fern_model(tmp_path, text)
  assert readers.detect_format(str(scene)) == "colmap"
  got = readers.read_colmap(str(scene), views=VIEWS)
  for g, want in zip(got, fern_llff):
    assert g["kind"] == "llff" and g["view_index"] == want["view_index"]
    np.testing.assert_array_equal(g["image"], want["image"])
    for key in ("camtoworld", "intrinsics", "scene_camtoworlds",
                "scene_bounds", "world_transform"):
      np.testing.assert_allclose(g[key], want[key], atol=2e-5, err_msg=key)
    np.testing.assert_allclose([g["near"], g["far"]],
                               [want["near"], want["far"]], rtol=1e-5)


def test_binary_and_text_models_agree(tmp_path):
  binary = colmap.read_model(str(_fern_model(tmp_path / "b") / "sparse" / "0"))
  text = colmap.read_model(str(_fern_model(tmp_path / "t", text=True)
                               / "sparse" / "0"))
  assert [im.name for im in binary.images] == [im.name for im in text.images]
  for a, b in zip(binary.images, text.images):
    np.testing.assert_allclose(a.camtoworld, b.camtoworld, atol=1e-12)
    np.testing.assert_array_equal(a.point_ids, b.point_ids)
  assert binary.points.keys() == text.points.keys()
  assert binary.cameras[1] .model == text.cameras[1].model == "PINHOLE"


def test_views_follow_the_text_order_of_the_names(tmp_path):
  """The view index is the position of the name sorted as text, whatever the
  order of the images in the model file."""
  scene = _fern_model(tmp_path)
  model = colmap.read_model(str(scene / "sparse" / "0"))
  assert [im.name for im in model.images] == sorted(
      os.listdir(FERN / "images_8"))


def test_the_layout_of_fern_is_forward_facing(tmp_path):
  scene = _fern_model(tmp_path)
  model = colmap.read_model(str(scene / "sparse" / "0"))
  layout, spread = readers.camera_layout(
      np.stack([im.camtoworld for im in model.images]))
  assert layout == "forward" and spread < readers.FORWARD_SPREAD_DEGREES


def _ring_model(root: pathlib.Path, n: int = 12, size=(30, 40)
                ) -> tuple[pathlib.Path, np.ndarray]:
  """n cameras on a circle of radius 4 around (1, 2, 3), all looking at it,
  with points scattered in a ball of radius 1 around it."""
  scene = root / "ring"
  (scene / "images").mkdir(parents=True)
  centre = np.array([1.0, 2.0, 3.0])
  rng = np.random.default_rng(0)
  points = {i + 1: centre + rng.uniform(-0.6, 0.6, 3) for i in range(400)}
  images = []
  for i in range(n):
    a = 2 * np.pi * i / n
    position = centre + 4 * np.array([np.cos(a), np.sin(a), 0.3])
    forward = (centre - position) / np.linalg.norm(centre - position)
    right = np.cross(forward, [0.0, 0.0, -1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.stack([right, down, forward], axis=1)
    name = f"frame_{i:02d}.png"
    Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(
        scene / "images" / name)
    images.append((i + 1, name, c2w.T, -c2w.T @ position, 1, list(points)))
  _write_model(scene / "sparse" / "0",
               [(1, "SIMPLE_PINHOLE", size[1], size[0], [35.0, 20.0, 15.0])],
               images, points, text=False)
  return scene, centre


def test_an_object_capture_is_normalised_around_the_object(tmp_path):
  scene, centre = _ring_model(tmp_path)
  records = readers.read_colmap(str(scene))
  assert {r["kind"] for r in records} == {"blender"}
  poses = records[0]["scene_camtoworlds"]
  assert np.abs(poses[:, :, 3]).max() <= 1.0 + 1e-6
  # The object's centre, in the normalised frame, is on every central ray
  # (OpenGL: the camera looks down −z) between near and far.
  target = (records[0]["world_transform"] @ np.append(centre, 1.0))[:3]
  for r in records:
    c2w = r["camtoworld"].astype(np.float64)
    to_target = target - c2w[:, 3]
    along = -c2w[:, 2] @ to_target
    assert np.linalg.norm(to_target - along * -c2w[:, 2]) < 1e-4
    assert r["near"] < along < r["far"]


def test_the_kind_can_be_chosen(tmp_path):
  scene, _ = _ring_model(tmp_path)
  forward = readers.read_colmap(str(scene), kind="forward", views=[0])
  assert forward[0]["kind"] == "llff"
  with pytest.raises(errors.InputError, match="kind must be one of"):
    readers.read_colmap(str(scene), kind="360")


def test_splits_of_a_colmap_capture_hold_out_every_8th_view(tmp_path):
  scene = _fern_model(tmp_path)
  loaded = scenes.from_folder(str(scene), 3)
  assert [int(r["view_index"]) for r in loaded.train] == [1, 10, 19]
  assert [int(r["view_index"]) for r in loaded.test] == [0, 8, 16]


def test_distortion_matches_opencv_model_at_a_point():
  """x_d = x (1 + k1 r² + k2 r⁴) + 2 p1 x y + p2 (r² + 2 x²), and y alike."""
  x, y, (k1, k2, p1, p2) = 0.3, -0.2, (0.1, -0.05, 0.01, 0.02)
  r2 = x * x + y * y
  want_x = x * (1 + k1 * r2 + k2 * r2 ** 2) + 2 * p1 * x * y + p2 * (
      r2 + 2 * x * x)
  want_y = y * (1 + k1 * r2 + k2 * r2 ** 2) + p1 * (r2 + 2 * y * y) + (
      2 * p2 * x * y)
  got = colmap.distort(np.array(x), np.array(y), np.array([k1, k2, p1, p2]))
  np.testing.assert_allclose(got, (want_x, want_y), rtol=1e-12)


def test_undistort_samples_the_distorted_image_where_the_model_says():
  """A smooth image g(u, v): the undistorted pixel p holds g at the
  distorted position of p (bilinear sampling of a linear g is exact)."""
  h, w = 30, 40
  k = np.array([[30.0, 0.0, 20.5], [0.0, 32.0, 14.0], [0.0, 0.0, 1.0]])
  coefficients = np.array([0.08, -0.02, 0.003, -0.002])
  v, u = np.mgrid[0:h, 0:w] + 0.5
  g = lambda uu, vv: 2.0 * uu + 3.0 * vv  # noqa: E731
  image = g(u, v)[..., None]
  out = colmap.undistort(image, k, coefficients)[..., 0]
  xd, yd = colmap.distort((u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1],
                          coefficients)
  ud, vd = k[0, 0] * xd + k[0, 2], k[1, 1] * yd + k[1, 2]
  inside = (ud > 0.5) & (ud < w - 0.5) & (vd > 0.5) & (vd < h - 0.5)
  assert inside.mean() > 0.8
  np.testing.assert_allclose(out[inside], g(ud, vd)[inside], atol=1e-9)


def test_zero_distortion_reads_the_same_pixels(tmp_path, fern_llff):
  scene = _fern_model(tmp_path, model="SIMPLE_RADIAL")
  got = readers.read_colmap(str(scene), views=VIEWS)
  for g, want in zip(got, fern_llff):
    np.testing.assert_array_equal(g["image"], want["image"])


# ----------------------------------------------------------------------------
# Hostile models.
# ----------------------------------------------------------------------------


def test_a_truncated_cameras_file_is_named(tmp_path):
  scene = _fern_model(tmp_path)
  path = scene / "sparse" / "0" / "cameras.bin"
  path.write_bytes(path.read_bytes()[:30])
  with pytest.raises(errors.InputError, match=r"cameras\.bin ends inside"):
    readers.read_colmap(str(scene))


def test_a_fisheye_camera_is_refused_with_what_to_do(tmp_path):
  scene = _fern_model(tmp_path, text=True)
  path = scene / "sparse" / "0" / "cameras.txt"
  path.write_text("1 OPENCV_FISHEYE 504 378 400 400 252 189 0.1 0 0 0\n")
  with pytest.raises(errors.InputError) as e:
    readers.read_colmap(str(scene))
  assert "OPENCV_FISHEYE" in str(e.value)
  assert "image_undistorter" in str(e.value)


def test_a_registered_image_that_is_missing_is_named(tmp_path):
  scene = _fern_model(tmp_path)
  (scene / "images" / "image004.png").unlink()
  with pytest.raises(errors.MissingFileError, match="image004.png"):
    readers.read_colmap(str(scene))


def test_an_image_of_an_unknown_camera_is_refused(tmp_path):
  scene = _fern_model(tmp_path, text=True)
  path = scene / "sparse" / "0" / "images.txt"
  path.write_text(path.read_text().replace(" 1 image003.png", " 7 image003.png"))
  with pytest.raises(errors.InputError, match="uses camera 7"):
    readers.read_colmap(str(scene))


def test_a_model_without_points_is_refused(tmp_path):
  scene = _fern_model(tmp_path, text=True)
  (scene / "sparse" / "0" / "points3D.txt").write_text("# no points\n")
  with pytest.raises(errors.InputError, match="near/far cannot be estimated"):
    readers.read_colmap(str(scene))


def test_photos_of_another_size_are_refused(tmp_path):
  scene = _fern_model(tmp_path)
  path = scene / "images" / "image002.png"
  Image.open(path).resize((300, 300)).save(path)
  with pytest.raises(errors.InputError, match=r"image002\.png is 300×300"):
    readers.read_colmap(str(scene))


def test_a_downscaled_copy_is_used_for_a_factor(tmp_path):
  """images_2/ (PNG copies of JPEG originals: another extension) is used for
  factor 2 and its pixels are read; K halves."""
  scene = _fern_model(tmp_path)
  (scene / "images_2").mkdir()
  for name in os.listdir(scene / "images"):
    Image.open(scene / "images" / name).resize((252, 189)).save(
        scene / "images_2" / name.replace(".png", ".jpg"), quality=95)
  full = readers.read_colmap(str(scene), views=[3])[0]
  half = readers.read_colmap(str(scene), views=[3], factor=2)[0]
  assert half["image"].shape == (189, 252, 3)
  assert half["file_name"] == "image003.jpg"
  np.testing.assert_allclose(half["intrinsics"][:2],
                             full["intrinsics"][:2] / 2, rtol=1e-6)
