"""Integration tests on the real scenes in ``<repo>/../shared/data``.

Skipped when that folder is absent. Nothing is copied into the repository; TFDS
builds go to pytest's temporary folder.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

import regnerf_tf.datasets  # noqa: F401  (registers the builders)
from regnerf_tf import data
from regnerf_tf import rays as rays_lib
from regnerf_tf.datasets import readers
from regnerf_tf.datasets import splits

SHARED = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"
FERN = SHARED / "llff" / "fern"
SCAN24 = SHARED / "dtu" / "scan24"
LEGO = SHARED / "nerf_synthetic" / "lego"

pytestmark = [
    pytest.mark.skipif(not (FERN.is_dir() and SCAN24.is_dir()),
                       reason=f"shared real scenes not found at {SHARED}"),
    pytest.mark.large,
]


@pytest.fixture(scope="module")
def fern_records():
  return readers.from_directory(str(FERN))


@pytest.fixture(scope="module")
def scan24_records():
  return readers.from_directory(str(SCAN24))


def test_fern_from_directory(fern_records):
  assert len(fern_records) == 20
  assert splits.llff_test_views(20) == [0, 8, 16]
  assert splits.llff_train_views(20, 3) == [1, 10, 19]
  r = fern_records[0]
  assert r["image"].shape == (378, 504, 3)
  # hwf = (3024, 4032, 3260.53) at full size → focal / 8.
  assert r["intrinsics"][0, 0] == pytest.approx(3260.53 / 8, rel=1e-4)
  centres = r["scene_camtoworlds"][:, :, 3]
  np.testing.assert_allclose(centres.mean(0), 0.0, atol=1e-5)
  # Bounds scaled so that the smallest is 1 / 0.75.
  assert r["scene_bounds"].min() == pytest.approx(1 / 0.75, rel=1e-5)


def test_scan24_from_directory(scan24_records):
  assert len(scan24_records) == 49
  r = scan24_records[0]
  assert r["image"].shape == (300, 400, 3) and r["mask"].shape == (300, 400, 1)
  assert all(x["has_mask"] for x in scan24_records)
  centres = r["scene_camtoworlds"][:, :, 3]
  assert np.abs(centres).max() == pytest.approx(1.0)
  np.testing.assert_allclose(centres.mean(0), 0.0, atol=1e-5)


def test_scan24_object_centre_projects_inside_training_masks(scan24_records):
  cams = np.load(SCAN24 / "cameras_sphere.npz")
  centre = cams["scale_mat_0"][:, 3]  # Centre of NeuS's object sphere (world).
  transform = scan24_records[0]["world_transform"].astype(np.float64)
  centre = (transform @ centre)[:3]
  for view in splits.dtu_train_views(9):
    r = scan24_records[view]
    c2w = r["camtoworld"].astype(np.float64)
    pix = r["intrinsics"].astype(np.float64) @ (c2w[:, :3].T @ (centre - c2w[:, 3]))
    x, y = (pix[:2] / pix[2]).astype(int)
    assert pix[2] > 0 and r["mask"][y, x, 0] == 255, (view, x, y)
    # The object lies between near and far along the shifted rays.
    rays = rays_lib.rays_at_pixels(x, y, r["camtoworld"], r["intrinsics"], 300, 400,
                               "dtu")
    o, d = rays["origins"].numpy(), rays["directions"].numpy()
    t = np.dot(centre - o, d) / np.dot(d, d)
    assert 0.5 < t < 3.5


def test_lego_from_directory():
  if not LEGO.is_dir():
    pytest.skip(f"{LEGO} not found")
  records = readers.from_directory(str(LEGO), views=[0, 1])
  assert records[0]["image"].shape == (100, 100, 3)
  assert records[0]["scene_camtoworlds"].shape == (100, 3, 4)


def _manual(root: pathlib.Path) -> dict:
  return {"download_config": tfds.download.DownloadConfig(manual_dir=str(root))}


def test_llff_sparse_tfds_on_fern(tmp_path):
  train = tfds.load("llff_sparse/3view", split="fern_train", data_dir=tmp_path,
                    download_and_prepare_kwargs=_manual(FERN.parent))
  views = sorted(int(x["view_index"]) for x in train.as_numpy_iterator())
  assert views == [1, 10, 19]
  test = tfds.load("llff_sparse/3view", split="fern_test", data_dir=tmp_path)
  assert sorted(int(x["view_index"]) for x in test.as_numpy_iterator()) == [0, 8, 16]
  builder = tfds.builder("llff_sparse/3view", data_dir=tmp_path)
  assert builder.info.splits["train"].num_examples == 3
  assert builder.info.metadata["num_views"] == 3
  # The same records as from_directory, and they feed the training pipeline.
  ex = next(iter(train.as_numpy_iterator()))
  rec = readers.read_llff(str(FERN), views=[int(ex["view_index"])])[0]
  np.testing.assert_array_equal(ex["image"], rec["image"])
  np.testing.assert_allclose(ex["camtoworld"], rec["camtoworld"])
  batch = next(iter(data.make_train_dataset(train, batch_size=64)))
  assert batch["rgb"].shape == (64, 3)


def test_dtu_sparse_tfds_on_scan24(tmp_path):
  train = tfds.load("dtu_sparse/3view", split="scan24_train", data_dir=tmp_path,
                    download_and_prepare_kwargs=_manual(SCAN24.parent))
  assert sorted(int(x["view_index"]) for x in train.as_numpy_iterator()) == [
      22, 25, 28]  # The first 3 of the pixelNeRF order [25, 22, 28, ...].
  builder = tfds.builder("dtu_sparse/3view", data_dir=tmp_path)
  assert builder.info.splits["test"].num_examples == 25
  assert builder.info.metadata["resize"] == "release"
  assert builder.info.metadata["train_views"] == [25, 22, 28]
  test = tfds.load("dtu_sparse/3view", split="scan24_test", data_dir=tmp_path)
  masks = [x["mask"] for x in test.as_numpy_iterator()]
  assert len(masks) == 25 and all(m.shape == (300, 400, 1) and m.max() == 255
                                  for m in masks)


def test_builders_say_what_is_missing(tmp_path):
  broken = tmp_path / "broken"
  (broken / "scan1" / "image").mkdir(parents=True)  # No cameras file.
  (broken / "fern" / "images_8").mkdir(parents=True)  # No poses_bounds.npy.
  for name, expected in (("dtu_sparse/3view", "cameras_sphere.npz"),
                         ("llff_sparse/3view", "poses_bounds.npy")):
    builder = tfds.builder(name, data_dir=tmp_path / "data")
    with pytest.raises(FileNotFoundError, match=expected) as info:
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=str(broken)))
    assert "scan1" in str(info.value) and "fern" in str(info.value)
  # A scene that is recognised but incomplete names the missing folder.
  (broken / "fern" / "images_8").rmdir()
  np.save(broken / "fern" / "poses_bounds.npy", np.ones((20, 17)))
  with pytest.raises(FileNotFoundError, match="images_8/ or images/"):
    tfds.builder("llff_sparse/3view", data_dir=tmp_path / "data").download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(broken)))
