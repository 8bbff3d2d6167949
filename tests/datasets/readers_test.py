"""Readers on small synthetic scenes written to a temporary folder."""

from __future__ import annotations

import pathlib

import imageio.v3 as iio
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from regnerf_tf import camera
from regnerf_tf.datasets import image_ops
from regnerf_tf.datasets import readers


# ----------------------------------------------------------------------------
# Projection decomposition and downsampling.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, -3.5, 1e-3])
def test_decompose_projection_recovers_k_and_pose(scale):
  rng = np.random.default_rng(1)
  k = np.array([[2890.0, 1.5, 810.0], [0.0, 2870.0, 590.0], [0.0, 0.0, 1.0]])
  rotation = Rotation.random(random_state=2).as_matrix()  # world → camera.
  centre = rng.normal(size=3) * 300
  p = scale * k @ np.concatenate([rotation, -(rotation @ centre)[:, None]], 1)
  k_out, c2w = readers.decompose_projection(p)
  np.testing.assert_allclose(k_out, k, rtol=1e-9, atol=1e-7)
  np.testing.assert_allclose(c2w[:, :3], rotation.T, atol=1e-9)
  np.testing.assert_allclose(c2w[:, 3], centre, rtol=1e-9, atol=1e-7)


def test_decompose_projection_rejects_bad_input():
  with pytest.raises(ValueError, match="3, 4"):
    readers.decompose_projection(np.zeros((2, 4)))
  with pytest.raises(ValueError, match="NaN"):
    readers.decompose_projection(np.full((3, 4), np.nan))
  with pytest.raises(ValueError, match="singular"):
    readers.decompose_projection(np.zeros((3, 4)))


def test_release_downsample_is_centre_2x2_mean():
  image = np.random.default_rng(0).uniform(size=(8, 12, 3))
  out = image_ops.downsample(image, 4, "release")
  assert out.shape == (2, 3, 3)
  np.testing.assert_allclose(out[1, 2], image[5:7, 9:11].mean((0, 1)))
  area = image_ops.downsample(image, 4, "area")
  np.testing.assert_allclose(area[1, 2], image[4:8, 8:12].mean((0, 1)))
  assert np.abs(out - area).max() > 0.01  # The two filters differ.
  # Odd factors: bilinear sampling hits the block's centre pixel.
  np.testing.assert_array_equal(image_ops.downsample(image, 3, "release")[1, 2],
                                image[4, 7])


def test_release_downsample_binary_mask_values():
  mask = np.zeros((8, 8))
  mask[2:7, 1:7] = 1.0
  out = image_ops.downsample(mask, 4, "release")
  # Block (0, 0): centre rows 1-2, cols 1-2 → row 2 is object: 2 of 4 pixels.
  np.testing.assert_allclose(out, [[0.5, 0.5], [1.0, 1.0]])


# ----------------------------------------------------------------------------
# Synthetic scene writers.
# ----------------------------------------------------------------------------


def _look_at_projection(centre: np.ndarray) -> np.ndarray:
  """OpenCV P = K[R|t] (1600×1200 pixel units) of a camera looking at 0."""
  z = -centre / np.linalg.norm(centre)
  x = np.cross([0.0, 1.0, 0.0], z)
  x /= np.linalg.norm(x)
  rotation = np.stack([x, np.cross(z, x), z])
  k = np.array([[2900.0, 0.0, 800.0], [0.0, 2900.0, 600.0], [0.0, 0.0, 1.0]])
  return k @ np.concatenate([rotation, -(rotation @ centre)[:, None]], 1)


def _dtu_centres(num: int) -> np.ndarray:
  angles = np.linspace(-1.0, 1.0, num)
  return np.stack([500 * np.sin(angles), -100 + 20 * np.cos(3 * angles),
                   -500 * np.cos(angles)], -1)


def write_idr_scan(root: pathlib.Path, num: int = 49, size=(48, 64)) -> pathlib.Path:
  scan = root / "scan7"
  (scan / "image").mkdir(parents=True)
  (scan / "mask").mkdir()
  mats = {}
  rng = np.random.default_rng(0)
  for i, c in enumerate(_dtu_centres(num)):
    mats[f"world_mat_{i}"] = np.concatenate([_look_at_projection(c),
                                             [[0, 0, 0, 1.0]]])
    mats[f"scale_mat_{i}"] = np.eye(4)
    iio.imwrite(scan / "image" / f"{i:06d}.png",
                rng.integers(0, 256, size + (3,), dtype=np.uint8))
    mask = np.zeros(size + (3,), np.uint8)
    mask[10:30, 20:40] = 255
    iio.imwrite(scan / "mask" / f"{i:03d}.png", mask)
  np.savez(scan / "cameras_sphere.npz", **mats)
  return scan


def write_llff_scene(root: pathlib.Path, num: int = 10, size=(12, 16),
                     full=(96.0, 128.0, 100.0)) -> tuple[pathlib.Path, np.ndarray]:
  scene = root / "toy"
  (scene / "images_8").mkdir(parents=True)
  rng = np.random.default_rng(0)
  rows = []
  for i in range(num):
    # LLFF columns [down, right, back]: a camera looking along world -z.
    rot = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    t = rng.normal(size=3)
    pose = np.concatenate([rot, t[:, None], np.array(full)[:, None]], 1)
    rows.append(np.concatenate([pose.reshape(-1), [4.0 + i, 40.0]]))
    iio.imwrite(scene / "images_8" / f"img{i:02d}.png",
                rng.integers(0, 256, size + (3,), dtype=np.uint8))
  data = np.array(rows)
  np.save(scene / "poses_bounds.npy", data)
  return scene, data


# ----------------------------------------------------------------------------
# LLFF.
# ----------------------------------------------------------------------------


def test_llff_axis_fix_scale_and_recentre(tmp_path):
  scene, data = write_llff_scene(tmp_path)
  records = readers.from_directory(str(scene))
  assert [r["view_index"] for r in records] == list(range(10))
  r0 = records[0]
  assert r0["kind"] == "llff" and r0["scene"] == "toy"
  assert r0["image"].shape == (12, 16, 3) and r0["image"].dtype == np.uint8
  # Scale s = 1 / (0.75 * min bound) = 1 / 3; bounds are scaled by s.
  s = 1.0 / (0.75 * 4.0)
  np.testing.assert_allclose(r0["scene_bounds"], data[:, 15:] * s, rtol=1e-6)
  assert r0["near"] == pytest.approx(4.0 * s)
  # After the axis fix every camera has the same rotation, so recentring makes
  # them all the identity and moves the mean centre to the origin.
  poses = r0["scene_camtoworlds"]
  np.testing.assert_allclose(poses[:, :, :3], np.broadcast_to(np.eye(3), (10, 3, 3)),
                             atol=1e-6)
  t = data[:, :15].reshape(-1, 3, 5)[:, :, 3] * s
  np.testing.assert_allclose(poses[:, :, 3], t - t.mean(0), atol=1e-5)
  # Focal from hwf (100 at 128 px wide) scaled to the 16-px images.
  np.testing.assert_allclose(r0["intrinsics"],
                             camera.intrinsic_matrix(12.5, 12.5, 8.0, 6.0))
  # world_transform maps source camera centres to ours.
  src = np.concatenate([data[:, :15].reshape(-1, 3, 5)[:, :, 3],
                        np.ones((10, 1))], 1)
  np.testing.assert_allclose((src @ r0["world_transform"].T)[:, :3],
                             poses[:, :, 3], atol=1e-5)


def test_llff_views_subset_reads_only_those(tmp_path):
  scene, _ = write_llff_scene(tmp_path)
  records = readers.read_llff(str(scene), views=[7, 2])
  assert [r["view_index"] for r in records] == [2, 7]
  assert records[0]["scene_camtoworlds"].shape == (10, 3, 4)
  with pytest.raises(ValueError, match="do not exist"):
    readers.read_llff(str(scene), views=[10])


def test_llff_falls_back_to_downsampling_images(tmp_path):
  scene, _ = write_llff_scene(tmp_path)
  (scene / "images").mkdir()
  full = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
  for i, name in enumerate(sorted(p.name for p in (scene / "images_8").iterdir())):
    iio.imwrite(scene / "images" / name, full)
  for p in (scene / "images_8").iterdir():
    p.unlink()
  (scene / "images_8").rmdir()
  record = readers.read_llff(str(scene), views=[0], resize="area")[0]
  np.testing.assert_array_equal(
      record["image"], image_ops.to_uint8(image_ops.downsample(full, 8, "area")))
  assert record["intrinsics"][0, 0] == pytest.approx(12.5)


def test_llff_count_mismatch_names_both_counts(tmp_path):
  scene, _ = write_llff_scene(tmp_path)
  (scene / "images_8" / "img00.png").unlink()
  with pytest.raises(ValueError, match=r"9 images .* 10 rows"):
    readers.from_directory(str(scene))


def test_llff_bad_poses_file(tmp_path):
  scene, data = write_llff_scene(tmp_path)
  np.save(scene / "poses_bounds.npy", data[:, :15])
  with pytest.raises(ValueError, match=r"expected \[N, 17\]"):
    readers.read_llff(str(scene))
  bad = data.copy()
  bad[3, 4] = np.nan
  np.save(scene / "poses_bounds.npy", bad)
  with pytest.raises(ValueError, match="NaN"):
    readers.read_llff(str(scene))
  np.save(scene / "poses_bounds.npy", np.array([{"a": 1}], dtype=object),
          allow_pickle=True)
  with pytest.raises(ValueError, match="without pickle"):
    readers.read_llff(str(scene))


def test_corrupt_image_is_named(tmp_path):
  scene, _ = write_llff_scene(tmp_path)
  (scene / "images_8" / "img03.png").write_bytes(b"not a png")
  with pytest.raises(ValueError, match="img03.png"):
    readers.read_llff(str(scene), views=[3])


# ----------------------------------------------------------------------------
# DTU.
# ----------------------------------------------------------------------------


def test_dtu_idr_normalisation_and_intrinsics(tmp_path):
  scan = write_idr_scan(tmp_path)
  records = readers.from_directory(str(scan), views=[0, 25])
  r = records[1]
  assert r["kind"] == "dtu" and r["scene"] == "scan7" and r["view_index"] == 25
  # Files are 64×48, below the 400×300 target: used as they are, K scaled by
  # 64 / 1600.
  assert r["image"].shape == (48, 64, 3)
  np.testing.assert_allclose(r["intrinsics"], [[116.0, 0, 32.0], [0, 116.0, 24.0],
                                               [0, 0, 1]], rtol=1e-5, atol=1e-4)
  poses = r["scene_camtoworlds"]
  assert poses.shape == (49, 3, 4)
  # Recentred: mean centre at 0; rescaled: largest |coordinate| is exactly 1.
  np.testing.assert_allclose(poses[:, :, 3].mean(0), 0.0, atol=1e-6)
  assert np.abs(poses[:, :, 3]).max() == pytest.approx(1.0)
  np.testing.assert_allclose(camera.average_pose(poses)[:, :3], np.eye(3),
                             atol=1e-5)
  assert (r["near"], r["far"]) == (0.5, 3.5)
  assert r["has_mask"] and set(np.unique(r["mask"])) == {0, 255}
  # The world origin (all cameras look at it) projects to the image centre.
  origin = r["world_transform"].astype(np.float64) @ np.array([0, 0, 0, 1.0])
  c2w = r["camtoworld"].astype(np.float64)
  pix = r["intrinsics"] @ (c2w[:, :3].T @ (origin[:3] - c2w[:, 3]))
  np.testing.assert_allclose(pix[:2] / pix[2], [32.0, 24.0], atol=1e-2)


def test_dtu_downsamples_to_target_with_release_filter(tmp_path):
  scan = write_idr_scan(tmp_path)
  # factor 100 → target 16×12; the 64×48 files are downsampled by 4.
  r = readers.read_dtu_idr(str(scan), factor=100, views=[3])[0]
  full = iio.imread(scan / "image" / "000003.png")
  np.testing.assert_array_equal(
      r["image"], image_ops.to_uint8(image_ops.downsample(full, 4, "release")))
  assert r["intrinsics"][0, 0] == pytest.approx(2900.0 * 16 / 1600, rel=1e-5)
  area = readers.read_dtu_idr(str(scan), factor=100, views=[3], resize="area")[0]
  assert np.any(area["image"] != r["image"])


def test_dtu_idr_count_mismatch(tmp_path):
  scan = write_idr_scan(tmp_path)
  (scan / "image" / "000048.png").unlink()
  with pytest.raises(ValueError, match=r"48 images .* 49 cameras"):
    readers.from_directory(str(scan))


def test_dtu_official_layout_matches_idr_layout(tmp_path):
  scan = write_idr_scan(tmp_path / "idr")
  root = tmp_path / "official"
  (root / "Rectified" / "scan7").mkdir(parents=True)
  (root / "Calibration" / "cal18").mkdir(parents=True)
  (root / "idrmasks" / "scan7").mkdir(parents=True)
  mats = np.load(scan / "cameras_sphere.npz")
  for i in range(49):
    np.savetxt(root / "Calibration" / "cal18" / f"pos_{i + 1:03d}.txt",
               mats[f"world_mat_{i}"][:3])
    (root / "Rectified" / "scan7" / f"rect_{i + 1:03d}_3_r5000.png").write_bytes(
        (scan / "image" / f"{i:06d}.png").read_bytes())
  (root / "idrmasks" / "scan7" / "001.png").write_bytes(
      (scan / "mask" / "001.png").read_bytes())
  official = readers.from_directory(str(root / "Rectified" / "scan7"),
                                    views=[1, 2])
  idr = readers.from_directory(str(scan), views=[1, 2])
  for a, b in zip(official, idr):
    np.testing.assert_allclose(a["camtoworld"], b["camtoworld"], atol=1e-5)
    np.testing.assert_allclose(a["intrinsics"], b["intrinsics"], rtol=1e-5)
    np.testing.assert_array_equal(a["image"], b["image"])
  assert official[0]["has_mask"] and not official[1]["has_mask"]
  assert np.all(official[1]["mask"] == 255)  # Placeholder without a mask file.
  assert readers.find_scenes(str(root), ("dtu", "dtu_idr")) == {
      "scan7": ("dtu", str(root / "Rectified" / "scan7"))}
  # A missing camera file is named.
  (root / "Calibration" / "cal18" / "pos_049.txt").unlink()
  with pytest.raises(FileNotFoundError, match="pos_049.txt"):
    readers.read_dtu(str(root / "Rectified" / "scan7"))


# ----------------------------------------------------------------------------
# Blender and format detection.
# ----------------------------------------------------------------------------


def test_blender_reader(tmp_path):
  (tmp_path / "train").mkdir()
  pose = np.eye(4)
  pose[:3, 3] = [0, 0, 4]
  frames = []
  for i in range(2):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[2:5, 2:5, 3] = 255
    iio.imwrite(tmp_path / "train" / f"r_{i}.png", rgba)
    frames.append({"file_path": f"./train/r_{i}", "transform_matrix": pose.tolist()})
  import json
  (tmp_path / "transforms_train.json").write_text(
      json.dumps({"camera_angle_x": 2 * np.arctan(0.5), "frames": frames}))
  records = readers.from_directory(str(tmp_path))
  assert len(records) == 2 and records[0]["kind"] == "blender"
  # focal = 0.5 W / tan(0.5 angle) = 0.5 * 10 / 0.5 = 10.
  np.testing.assert_allclose(records[0]["intrinsics"],
                             camera.intrinsic_matrix(10, 10, 5, 5), rtol=1e-6)
  assert records[0]["mask"][3, 3, 0] == 255 and records[0]["mask"][0, 0, 0] == 0
  assert records[0]["image"][0, 0, 0] == 200
  np.testing.assert_allclose(records[1]["camtoworld"], pose[:3])


def test_unknown_folder_lists_what_was_looked_for(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    readers.from_directory(str(tmp_path))
  message = str(info.value)
  for expected in ("poses_bounds.npy", "cameras_sphere.npz", "cameras.npz",
                   "rect_001_3_r5000.png", "transforms_train.json"):
    assert expected in message
  with pytest.raises(FileNotFoundError, match="does not exist"):
    readers.from_directory(str(tmp_path / "nope"))
