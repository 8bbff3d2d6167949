"""regnerf_tf.data: ray generation and training pipelines on synthetic views."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import camera
from regnerf_tf import rays as rays_lib
from regnerf_tf import data

H, W = 6, 8


def _records(kind: str, num: int = 3, scene: str = "toy") -> list[dict]:
  """Views whose pixels encode (x, y, view): R = 10 x, G = 10 y, B = 50 view."""
  records = []
  yy, xx = np.mgrid[0:H, 0:W]
  for i in range(num):
    c2w = camera.look_at([0.1 * i, 0.0, 1.0 if kind == "dtu" else -1.0],
                         [0.0, 1.0 if kind == "dtu" else -1.0, 0.0],
                         [0.2 * i, 0.1, -2.0 if kind == "dtu" else 0.3 * i])
    image = np.stack([10 * xx, 10 * yy, np.full_like(xx, 50 * i)], -1)
    records.append({
        "image": image.astype(np.uint8), "camtoworld": c2w.astype(np.float32),
        "intrinsics": camera.intrinsic_matrix(7.0, 7.0, W / 2, H / 2).astype(np.float32),
        "near": np.float32(2.0), "far": np.float32(6.0), "scene": scene,
        "view_index": np.int32(10 + i), "kind": kind, "has_mask": False})
  return records


def test_view_rays_dtu_closed_form():
  c2w = np.concatenate([np.eye(3), [[0.0], [0.0], [-2.0]]], 1)
  k = camera.intrinsic_matrix(4.0, 4.0, 4.0, 3.0)
  rays = rays_lib.view_rays(c2w, k, H, W, "dtu")
  d = rays["directions"].numpy()
  np.testing.assert_allclose(d[..., 2], 1.0)  # OpenCV: camera z component 1.
  np.testing.assert_allclose(d[2, 5, :2], [(5.5 - 4) / 4, (2.5 - 3) / 4])
  # Origins slid to z = 0: o = (0, 0, -2) + 2 d.
  np.testing.assert_allclose(rays["origins"].numpy(), 2 * d + [0, 0, -2], atol=1e-6)
  np.testing.assert_allclose(rays["viewdirs"].numpy(),
                             d / np.linalg.norm(d, axis=-1, keepdims=True), atol=1e-6)
  # Neighbouring rows are 1/4 apart in direction: radius = 0.25 * 2 / sqrt(12).
  np.testing.assert_allclose(rays["radii"].numpy(), 0.25 * 2 / np.sqrt(12), rtol=1e-5)
  assert rays["near"].shape == (H, W, 1)
  np.testing.assert_allclose(rays["near"].numpy(), 0.5)
  np.testing.assert_allclose(rays["far"].numpy(), 3.5)


def test_view_rays_llff_ndc_closed_form():
  c2w = np.concatenate([np.eye(3), np.zeros((3, 1))], 1)
  k = camera.intrinsic_matrix(3.0, 3.0, 2.5, 2.5)
  rays = rays_lib.view_rays(c2w, k, 5, 5, "llff")
  # The centre pixel looks straight down -z: NDC origin (0, 0, -1), direction
  # (0, 0, 2); its viewdir is the unnormalised world direction (0, 0, -1).
  np.testing.assert_allclose(rays["origins"].numpy()[2, 2], [0, 0, -1], atol=1e-6)
  np.testing.assert_allclose(rays["directions"].numpy()[2, 2], [0, 0, 2], atol=1e-6)
  np.testing.assert_allclose(rays["viewdirs"].numpy()[2, 2], [0, 0, -1], atol=1e-6)
  # Pixel (x=3, y=2): world direction (1/3, 0, -1) → NDC x = -2f/W * (1/3) / -1.
  np.testing.assert_allclose(rays["origins"].numpy()[2, 3, 0], 2 * 3 / 5 / 3,
                             rtol=1e-5)
  np.testing.assert_allclose(rays["near"].numpy(), 0.0)
  np.testing.assert_allclose(rays["far"].numpy(), 1.0)
  np.testing.assert_allclose(rays["radii"].numpy(),
                             camera.ndc_radii(rays["origins"]).numpy())


@pytest.mark.parametrize("kind", ["dtu", "llff", "blender"])
def test_rays_at_pixels_equals_view_rays(kind):
  r = _records(kind)[1]
  full = rays_lib.view_rays(r["camtoworld"], r["intrinsics"], H, W, kind, r["near"],
                        r["far"])
  yy, xx = np.mgrid[0:H, 0:W]
  per = rays_lib.rays_at_pixels(xx, yy, r["camtoworld"], r["intrinsics"], H, W, kind,
                            np.full((H, W), r["near"]), np.full((H, W), r["far"]))
  for field in rays_lib.RAY_FIELDS:
    np.testing.assert_allclose(per[field].numpy(), full[field].numpy(), rtol=1e-5,
                               atol=1e-6, err_msg=field)
  if kind == "blender":
    np.testing.assert_allclose(full["near"].numpy(), 2.0)


def _take(dataset, n):
  return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset.take(n)]


@pytest.mark.parametrize("kind", ["dtu", "llff"])
def test_train_batches_match_their_pixels(kind):
  records = _records(kind)
  ds = data.make_train_dataset(records, batch_size=32, batching="all_images",
                               seed=5)
  batch = _take(ds, 1)[0]
  assert batch["rgb"].shape == (32, 3) and batch["rays"]["radii"].shape == (32, 1)
  # Decode the pixel and view of every ray from its colour, then recompute.
  rgb = np.round(batch["rgb"] * 255).astype(int)
  x, y, view = rgb[:, 0] // 10, rgb[:, 1] // 10, rgb[:, 2] // 50
  assert len(set(view)) > 1  # all_images mixes views.
  c2w = np.stack([records[v]["camtoworld"] for v in view])
  k = np.stack([records[v]["intrinsics"] for v in view])
  expected = rays_lib.rays_at_pixels(x, y, c2w, k, H, W, kind)
  for field in rays_lib.RAY_FIELDS:
    np.testing.assert_allclose(batch["rays"][field], expected[field].numpy(),
                               rtol=1e-5, atol=1e-6, err_msg=field)


def test_single_image_batching_uses_one_view_per_step():
  ds = data.make_train_dataset(_records("dtu"), batch_size=64,
                               batching="single_image", seed=1)
  views_seen = set()
  for batch in _take(ds, 8):
    views = set(np.round(batch["rgb"][:, 2] * 255 / 50).astype(int))
    assert len(views) == 1
    views_seen |= views
  assert len(views_seen) > 1


def test_pipeline_is_deterministic_under_a_seed():
  a = _take(data.make_train_dataset(_records("llff"), batch_size=16, seed=7), 3)
  b = _take(data.make_train_dataset(_records("llff"), batch_size=16, seed=7), 3)
  c = _take(data.make_train_dataset(_records("llff"), batch_size=16, seed=8), 3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["rgb"], y["rgb"])
    np.testing.assert_array_equal(x["rays"]["origins"], y["rays"]["origins"])
  assert any(not np.array_equal(x["rgb"], z["rgb"]) for x, z in zip(a, c))


def test_eval_dataset_gives_full_images():
  records = _records("blender", num=2)
  views = list(data.make_eval_dataset(records))
  assert len(views) == 2
  assert views[0]["rays"]["origins"].shape == (H, W, 3)
  assert int(views[1]["view_index"]) == 11
  np.testing.assert_allclose(views[0]["mask"].numpy(), 1.0)
  np.testing.assert_allclose(views[1]["rgb"].numpy() * 255, records[1]["image"],
                             atol=1e-3)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="num_replicas"):
    data.make_train_dataset(_records("dtu"), batch_size=10, num_replicas=4)
  with pytest.raises(ValueError, match="batching"):
    data.make_train_dataset(_records("dtu"), batching="random")
  with pytest.raises(ValueError, match="one scene"):
    data.load_views(_records("dtu", 1, "a") + _records("dtu", 1, "b"))
  with pytest.raises(ValueError, match="empty"):
    data.load_views([])
  with pytest.raises(ValueError, match="kind"):
    rays_lib.view_rays(np.eye(3, 4), np.eye(3), H, W, "colmap")
