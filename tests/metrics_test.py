"""Tests of regnerf_tf.metrics: PSNR, SSIM (vs scikit-image), masks, LPIPS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import data as skdata
from skimage import transform as sktransform
from skimage.metrics import structural_similarity

from regnerf_tf import lpips_net, metrics


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
  """A natural image, [48, 64, 3] float64 in [0, 1]."""
  return sktransform.resize(skdata.astronaut(), (48, 64), anti_aliasing=True)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
  return np.random.default_rng(1234).normal(size=(48, 64, 3))


def _noisy(image: np.ndarray, noise: np.ndarray, sigma: float) -> np.ndarray:
  return np.clip(image + sigma * noise[:image.shape[0], :image.shape[1]],
                 0.0, 1.0)


@pytest.fixture(scope="module", params=["alex", "vgg"])
def lpips_model(request) -> lpips_net.LPIPS:
  return lpips_net.LPIPS.random(request.param, seed=7)


# --------------------------------------------------------------------- PSNR


def test_psnr_identical_images_is_inf(astronaut):
  assert metrics.psnr(astronaut, astronaut) == math.inf


def test_psnr_matches_hand_computation(noise):
  target = np.full((4, 5, 3), 0.5)
  pred = target + 0.1  # MSE 0.01 → 20 dB
  assert metrics.psnr(pred, target) == pytest.approx(20.0, abs=1e-9)
  pred = target + 0.05 * noise[:4, :5]
  mse = sum(float(v) ** 2 for v in (0.05 * noise[:4, :5]).ravel()) / 60.0
  assert metrics.psnr(pred, target) == pytest.approx(-10 * math.log10(mse),
                                                     rel=1e-9)


# --------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("data_range", [1.0, 2.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ssim_matches_skimage(astronaut, noise, data_range, dtype):
  pred = _noisy(astronaut, noise, 0.08).astype(dtype)
  target = astronaut.astype(dtype)
  want = structural_similarity(pred, target, channel_axis=-1,
                               data_range=data_range)
  got = metrics.ssim(pred, target, data_range=data_range)
  assert got == pytest.approx(want, abs=1e-5)
  assert 0.3 < got < 0.99  # a non-trivial case


def test_ssim_release_uses_range_two_and_is_higher(astronaut, noise):
  pred = _noisy(astronaut, noise, 0.08)
  ssim1 = metrics.ssim(pred, astronaut)
  ssim2 = metrics.ssim_release(pred, astronaut)
  assert ssim2 == metrics.ssim(pred, astronaut, data_range=2.0)
  assert ssim2 > ssim1 + 0.01  # pitfall P3


def test_ssim_of_identical_images_is_one(astronaut):
  assert metrics.ssim(astronaut, astronaut) == pytest.approx(1.0, abs=1e-12)
  assert metrics.ssim_release(astronaut, astronaut) == pytest.approx(
      1.0, abs=1e-12)


# ------------------------------------------------------------------- masks


def _mask_case(astronaut, noise):
  """Mask with a hard interior, soft (0.5 / 0.25) edges and background."""
  h, w = astronaut.shape[:2]
  mask = np.zeros((h, w, 1))
  mask[10:40, 12:50] = 1.0
  mask[9, 12:50] = 0.5
  mask[10:40, 50] = 0.25
  inside = mask[..., 0] == 1.0
  pred = _noisy(astronaut, noise, 0.05)
  wild = np.where(inside[..., None], pred, 1.0 - astronaut)
  clean_outside = np.where(inside[..., None], pred, astronaut)
  return mask, inside, pred, wild, clean_outside


def test_masked_psnr_counts_only_mask_one_pixels(astronaut, noise):
  mask, inside, pred, wild, clean_outside = _mask_case(astronaut, noise)
  mse = np.mean(np.square(pred - astronaut)[inside])
  want = -10.0 * math.log10(mse)
  assert metrics.masked_psnr(wild, astronaut, mask) == pytest.approx(want)
  assert metrics.masked_psnr(clean_outside, astronaut, mask) == pytest.approx(
      want)
  # Unmasked (and soft-edge) pixels are wildly wrong: full PSNR collapses.
  assert metrics.psnr(wild, astronaut) < want - 10.0
  # [H, W, 3] and [H, W] masks behave the same.
  mask3 = np.repeat(mask, 3, axis=-1)
  assert metrics.masked_psnr(wild, astronaut, mask3) == pytest.approx(want)
  assert metrics.masked_psnr(wild, astronaut, mask[..., 0]) == pytest.approx(
      want)


def test_masked_psnr_per_channel_mask(astronaut):
  mask = np.zeros(astronaut.shape)
  mask[..., 1] = 1.0  # only the green channel counts
  pred = astronaut.copy()
  pred[..., 0] = 1.0 - pred[..., 0]
  pred[..., 1] += 0.1
  assert metrics.masked_psnr(pred, astronaut, mask) == pytest.approx(
      20.0, abs=1e-9)


def test_masked_psnr_without_foreground_raises(astronaut):
  with pytest.raises(ValueError, match="no pixel has mask value 1"):
    metrics.masked_psnr(astronaut, astronaut, np.full((48, 64, 1), 0.5))


def test_composite_on_white():
  image = np.array([[[0.2, 0.4, 0.6], [0.0, 1.0, 0.5]]])  # [1, 2, 3]
  mask = np.array([[[1.0], [0.5]]])
  want = np.array([[[0.2, 0.4, 0.6], [0.5, 1.0, 0.75]]])
  np.testing.assert_allclose(metrics.composite_on_white(image, mask), want)
  np.testing.assert_allclose(
      metrics.composite_on_white(image, np.zeros((1, 2, 1))), np.ones_like(
          image))


def test_masked_ssim_composites_on_white(astronaut, noise):
  mask, _, _, wild, _ = _mask_case(astronaut, noise)
  want = structural_similarity(
      metrics.composite_on_white(wild, mask),
      metrics.composite_on_white(astronaut, mask), channel_axis=-1,
      data_range=2.0)
  assert metrics.masked_ssim(wild, astronaut, mask, data_range=2.0) == (
      pytest.approx(want, abs=1e-5))
  # Background errors are hidden by the white composite.
  assert metrics.masked_ssim(wild, astronaut, mask) > metrics.ssim(
      wild, astronaut) + 0.1


# ------------------------------------------------------------------- LPIPS


def test_lpips_zero_for_identical_and_monotone_in_noise(lpips_model,
                                                        astronaut, noise):
  image = sktransform.resize(astronaut, (64, 64), anti_aliasing=True)
  z = np.random.default_rng(5).normal(size=image.shape)
  assert lpips_model(image, image) == 0.0
  values = [lpips_model(np.clip(image + s * z, 0, 1), image)
            for s in (0.02, 0.05, 0.1, 0.2, 0.4)]
  assert values[0] > 0.0
  assert all(b > a for a, b in zip(values, values[1:])), values


def test_lpips_batch_matches_single(lpips_model, astronaut, noise):
  pred = np.stack([_noisy(astronaut, noise, s) for s in (0.05, 0.2)])
  target = np.stack([astronaut, astronaut])
  batch = lpips_model.batch_distance(pred, target)
  assert batch.shape == (2,)
  for i in range(2):
    assert batch[i] == pytest.approx(lpips_model(pred[i], target[i]),
                                     rel=1e-5)
  with pytest.raises(ValueError, match="batch_distance"):
    lpips_model(pred, target)


def test_lpips_weights_round_trip(lpips_model, astronaut, noise, tmp_path):
  path = tmp_path / f"lpips_{lpips_model.net}.npz"
  lpips_net.save_weights_npz(lpips_model, path)
  with np.load(path, allow_pickle=False) as f:
    assert set(f.files) == set(lpips_net.lpips_weight_shapes(
        lpips_model.net)) | {"net"}
  loaded = lpips_net.LPIPS.from_weights(path, lpips_model.net)
  pred = _noisy(astronaut, noise, 0.1)
  assert loaded(pred, astronaut) == lpips_model(pred, astronaut)
  other = lpips_net.LPIPS.random(lpips_model.net, seed=8)
  assert other(pred, astronaut) != lpips_model(pred, astronaut)


def test_lpips_layouts():
  alex = lpips_net.lpips_weight_shapes("alex")
  vgg = lpips_net.lpips_weight_shapes("vgg")
  assert [alex[f"lin{k}/weight"][0] for k in range(5)] == [64, 192, 384, 256,
                                                           256]
  assert [vgg[f"lin{k}/weight"][0] for k in range(5)] == [64, 128, 256, 512,
                                                          512]
  assert alex["backbone/conv0/kernel"] == (11, 11, 3, 64)
  assert sum(k.endswith("/kernel") for k in alex) == 5
  assert sum(k.endswith("/kernel") for k in vgg) == 13
  assert vgg["backbone/conv12/kernel"] == (3, 3, 512, 512)


def test_lpips_missing_file_message(tmp_path):
  path = tmp_path / "nope.npz"
  with pytest.raises(FileNotFoundError) as e:
    lpips_net.LPIPS.from_weights(path, "vgg")
  msg = str(e.value)
  assert f"LPIPS unavailable: weights not found at {path}" in msg
  assert "regnerf-lpips-weights" in msg


def test_lpips_bad_arrays_are_named(tmp_path):
  weights = lpips_net.LPIPS.random("alex", seed=0).get_weights()
  bad = dict(weights)
  bad["lin2/weight"] = np.ones((7,), np.float32)
  path = tmp_path / "bad.npz"
  np.savez(path, net=np.array("alex"), **bad)
  with pytest.raises(ValueError, match=r"'lin2/weight' has shape \(7,\)"):
    lpips_net.LPIPS.from_weights(path, "alex")
  missing = dict(weights)
  del missing["backbone/conv3/bias"]
  np.savez(path, net=np.array("alex"), **missing)
  with pytest.raises(ValueError, match="missing array 'backbone/conv3/bias'"):
    lpips_net.LPIPS.from_weights(path, "alex")
  np.savez(path, net=np.array("alex"), **weights)
  with pytest.raises(ValueError, match="'net'"):
    lpips_net.LPIPS.from_weights(path, "vgg")


# ------------------------------------------------------- combined / reports


def test_average_error_hand_computation():
  mse, s, lp = 0.01, 0.64, 0.2  # √(1 − 0.64) = 0.6
  want = (0.01 * 0.6 * 0.2) ** (1.0 / 3.0)
  assert metrics.average_error(mse, s, lp) == pytest.approx(want, rel=1e-12)
  assert metrics.average_error(0.0, s, lp) == 0.0


def test_evaluate_image_without_lpips(astronaut, noise):
  pred = _noisy(astronaut, noise, 0.05)
  out = metrics.evaluate_image(pred, astronaut, ssim_data_range=2.0)
  assert out["psnr"] == metrics.psnr(pred, astronaut)
  assert out["ssim"] == metrics.ssim_release(pred, astronaut)
  assert out["ssim_data_range"] == 2.0
  assert out["lpips"] is None and out["avg_error"] is None
  assert out["lpips_status"].startswith("LPIPS unavailable:")
  assert "masked_psnr" not in out


def test_evaluate_image_with_mask_and_lpips(astronaut, noise):
  model = lpips_net.LPIPS.random("alex", seed=3)
  mask, _, _, wild, _ = _mask_case(astronaut, noise)
  out = metrics.evaluate_image(wild, astronaut, mask=mask, lpips=model)
  assert out["lpips_status"] == "ok"
  assert out["lpips"] == model(wild, astronaut)
  assert out["avg_error"] == pytest.approx(metrics.average_error(
      10 ** (-out["psnr"] / 10), out["ssim"], out["lpips"]))
  assert out["masked_psnr"] == metrics.masked_psnr(wild, astronaut, mask)
  assert out["masked_ssim"] == metrics.masked_ssim(wild, astronaut, mask)
  assert out["masked_lpips"] == metrics.masked_lpips(wild, astronaut, mask,
                                                     model)
  assert out["masked_avg_error"] == pytest.approx(metrics.average_error(
      10 ** (-out["masked_psnr"] / 10), out["masked_ssim"],
      out["masked_lpips"]))


def test_summarize_averages_per_image_avg_error():
  per_image = []
  for p, s, lp in ((10.0, 0.3, 0.6), (30.0, 0.9, 0.1)):
    per_image.append({
        "psnr": p, "ssim": s, "ssim_data_range": 1.0, "lpips": lp,
        "lpips_status": "ok",
        "avg_error": metrics.average_error(10 ** (-p / 10), s, lp)})
  out = metrics.summarize(per_image)
  want = (per_image[0]["avg_error"] + per_image[1]["avg_error"]) / 2
  recomputed = metrics.average_error(10 ** (-out["psnr"] / 10), out["ssim"],
                                     out["lpips"])
  assert out["avg_error"] == pytest.approx(want, rel=1e-12)
  assert abs(recomputed - want) > 0.01  # the two really differ (P16)
  assert out["psnr"] == 20.0 and out["ssim"] == pytest.approx(0.6)
  assert out["ssim_data_range"] == 1.0 and out["lpips_status"] == "ok"
  assert out["num_images"] == 2


def test_summarize_without_lpips_keeps_status(astronaut, noise):
  per_image = [metrics.evaluate_image(_noisy(astronaut, noise, s), astronaut)
               for s in (0.02, 0.1)]
  out = metrics.summarize(per_image)
  assert out["lpips"] is None and out["avg_error"] is None
  assert out["lpips_status"] == per_image[0]["lpips_status"]
  assert out["psnr"] == pytest.approx(
      (per_image[0]["psnr"] + per_image[1]["psnr"]) / 2)
