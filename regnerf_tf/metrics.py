"""Image-quality metrics for evaluation: PSNR, SSIM, LPIPS, masked variants.

Conventions (reference §6.2–6.3):

* Images are float arrays [H, W, 3] in [0, 1].
* PSNR = −10·log10(MSE over all pixels and channels).
* SSIM is the scikit-image default algorithm (7×7 uniform window, K1 = 0.01,
  K2 = 0.03, sample covariance, mean over the valid region and channels),
  implemented here in NumPy. The released RegNeRF evaluation let scikit-image
  infer ``data_range = 2`` for float images (pitfall P3); :func:`ssim_release`
  gives that variant, :func:`ssim` defaults to ``data_range = 1``. The range
  used is recorded in every result dict.
* DTU masked metrics: masked PSNR uses only pixel-channels whose mask is
  exactly 1; masked SSIM / LPIPS composite both images on white with the soft
  mask first.
* LPIPS is :class:`regnerf_tf.lpips_net.LPIPS`. Without weights it is
  reported as unavailable (``None`` plus a status string), never silently NaN.
* The paper's "average" error is computed per image and then averaged
  (pitfall P16).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from regnerf_tf import errors
from regnerf_tf.lpips_net import LPIPS

# ---------------------------------------------------------------------------
# PSNR / SSIM
# ---------------------------------------------------------------------------


def _as_f64(x) -> np.ndarray:
  return np.asarray(x, dtype=np.float64)


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
  if pred.shape != target.shape:
    raise errors.InputError(
        f"pred and target shapes differ: {pred.shape} vs {target.shape}")


def mse_to_psnr(mse: float) -> float:
  """PSNR in dB (max value 1) from a mean squared error; inf for mse = 0."""
  mse = float(mse)
  if mse <= 0.0:
    return math.inf
  return -10.0 * math.log10(mse)


def psnr_to_mse(psnr_value: float) -> float:
  """Inverse of :func:`mse_to_psnr`: 10^(−PSNR/10)."""
  return 10.0 ** (-float(psnr_value) / 10.0)


def psnr(pred, target) -> float:
  """PSNR over all pixels and channels.

  Args:
    pred: [H, W, 3] float in [0, 1].
    target: [H, W, 3] float in [0, 1].

  Returns:
    −10·log10(MSE); ``inf`` for identical images.
  """
  pred, target = _as_f64(pred), _as_f64(target)
  _check_pair(pred, target)
  return mse_to_psnr(np.mean(np.square(pred - target)))


def _box_mean_valid(x: np.ndarray, win: int) -> np.ndarray:
  """Mean over every fully-inside win×win window.

  Args:
    x: [H, W] float64.
    win: odd window size.

  Returns:
    [H − win + 1, W − win + 1]; entry (i, j) is the mean of
    x[i:i+win, j:j+win], i.e. the window centred at (i + win//2, j + win//2).
  """
  windows = np.lib.stride_tricks.sliding_window_view(x, (win, win))
  return windows.mean(axis=(-2, -1))


def ssim(pred, target, data_range: float = 1.0) -> float:
  """SSIM with scikit-image's default algorithm and an explicit data range.

  Equivalent to ``skimage.metrics.structural_similarity(pred, target,
  channel_axis=-1, data_range=data_range)``: 7×7 uniform window, K1 = 0.01,
  K2 = 0.03, variances and covariance with the N/(N−1) sample correction,
  SSIM map averaged over the region whose windows lie fully inside the
  image (a 3-pixel border is discarded) and then over channels.

  Args:
    pred: [H, W, C] (or [H, W]) float, H, W ≥ 7.
    target: same shape as ``pred``.
    data_range: dynamic range L of the images (C1 = (K1·L)², C2 = (K2·L)²).
      The released RegNeRF evaluation effectively used 2.0 (pitfall P3).

  Returns:
    mean SSIM.
  """
  pred, target = _as_f64(pred), _as_f64(target)
  _check_pair(pred, target)
  if pred.ndim == 2:
    pred, target = pred[..., None], target[..., None]
  if pred.ndim != 3:
    raise errors.InputError(f"expected [H, W, C] images, got shape {pred.shape}")
  win = 7
  if min(pred.shape[:2]) < win:
    raise errors.InputError(f"images must be at least {win}×{win}, got {pred.shape}")
  c1 = (0.01 * data_range) ** 2
  c2 = (0.03 * data_range) ** 2
  n = win * win
  cov_norm = n / (n - 1.0)
  values = []
  for c in range(pred.shape[-1]):
    x, y = pred[..., c], target[..., c]
    mx, my = _box_mean_valid(x, win), _box_mean_valid(y, win)
    vx = cov_norm * (_box_mean_valid(x * x, win) - mx * mx)
    vy = cov_norm * (_box_mean_valid(y * y, win) - my * my)
    vxy = cov_norm * (_box_mean_valid(x * y, win) - mx * my)
    num = (2.0 * mx * my + c1) * (2.0 * vxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    values.append(np.mean(num / den))
  return float(np.mean(values))


def ssim_release(pred, target) -> float:
  """SSIM as the released RegNeRF evaluation computed it (data_range = 2).

  scikit-image infers a range of 2 (−1 … 1) for float images when none is
  given; the release relied on that default (pitfall P3).
  """
  return ssim(pred, target, data_range=2.0)


# ---------------------------------------------------------------------------
# Masked metrics (DTU)
# ---------------------------------------------------------------------------


def _broadcast_mask(mask, shape: Sequence[int]) -> np.ndarray:
  mask = _as_f64(mask)
  if mask.ndim == len(shape) - 1:
    mask = mask[..., None]
  try:
    return np.broadcast_to(mask, shape)
  except ValueError as e:
    raise errors.InputError(
        f"mask of shape {mask.shape} does not broadcast to {tuple(shape)}"
    ) from e


def composite_on_white(image, mask) -> np.ndarray:
  """Composites an image onto white with a (soft) mask.

  Args:
    image: [H, W, 3] float in [0, 1].
    mask: [H, W], [H, W, 1] or [H, W, 3] in [0, 1].

  Returns:
    [H, W, 3] float64: image·mask + (1 − mask).
  """
  image = _as_f64(image)
  mask = _broadcast_mask(mask, image.shape)
  return image * mask + (1.0 - mask)


def masked_psnr(pred, target, mask) -> float:
  """PSNR over the pixel-channels whose mask value is exactly 1.

  Soft edge values (e.g. 0.5 after the release's bilinear downsample,
  pitfall P1) are excluded.

  Args:
    pred: [H, W, 3] float in [0, 1].
    target: [H, W, 3] float in [0, 1].
    mask: [H, W], [H, W, 1] or [H, W, 3] in [0, 1].

  Returns:
    PSNR in dB.

  Raises:
    ValueError: if no mask value equals 1.
  """
  pred, target = _as_f64(pred), _as_f64(target)
  _check_pair(pred, target)
  keep = _broadcast_mask(mask, pred.shape) == 1.0
  if not np.any(keep):
    raise errors.InputError("masked_psnr: no pixel has mask value 1")
  return mse_to_psnr(np.mean(np.square(pred - target)[keep]))


def masked_ssim(pred, target, mask, data_range: float = 1.0) -> float:
  """SSIM of both images composited on white with the soft mask.

  Args:
    pred: [H, W, 3] float in [0, 1].
    target: [H, W, 3] float in [0, 1].
    mask: [H, W], [H, W, 1] or [H, W, 3] in [0, 1].
    data_range: see :func:`ssim`.

  Returns:
    mean SSIM.
  """
  return ssim(composite_on_white(pred, mask), composite_on_white(target, mask),
              data_range=data_range)


def masked_lpips(pred, target, mask, lpips: LPIPS) -> float:
  """LPIPS of both images composited on white with the soft mask.

  Args:
    pred: [H, W, 3] float in [0, 1].
    target: [H, W, 3] float in [0, 1].
    mask: [H, W], [H, W, 1] or [H, W, 3] in [0, 1].
    lpips: a loaded :class:`LPIPS` model.

  Returns:
    LPIPS distance.
  """
  return lpips(composite_on_white(pred, mask), composite_on_white(target, mask))


# ---------------------------------------------------------------------------
# Combined error and per-image / summary reports
# ---------------------------------------------------------------------------


def average_error(mse: float, ssim_value: float, lpips_value: float) -> float:
  """The paper's "average" error for one image.

  Geometric mean of MSE, √(1 − SSIM) and LPIPS:
  exp(mean(log[MSE, √(1 − SSIM), LPIPS])). Compute it per image and average
  the per-image values (pitfall P16).

  Args:
    mse: mean squared error (= 10^(−PSNR/10)).
    ssim_value: SSIM (1 − SSIM is clipped at 0).
    lpips_value: LPIPS distance.

  Returns:
    the geometric mean (0 if any term is 0).
  """
  terms = np.array([mse, math.sqrt(max(1.0 - ssim_value, 0.0)), lpips_value],
                   np.float64)
  if np.any(terms <= 0.0):
    return 0.0
  return float(np.exp(np.mean(np.log(terms))))


def evaluate_image(pred, target, mask=None, lpips: LPIPS | None = None,
                   ssim_data_range: float = 1.0,
                   lpips_status: str | None = None) -> dict[str, Any]:
  """All metrics for one image.

  Args:
    pred: [H, W, 3] float in [0, 1].
    target: [H, W, 3] float in [0, 1].
    mask: optional [H, W], [H, W, 1] or [H, W, 3] foreground mask in [0, 1]
      (DTU); adds the masked metrics.
    lpips: a loaded :class:`LPIPS`, or None when unavailable.
    ssim_data_range: SSIM data range (1.0; 2.0 reproduces the release, P3).
    lpips_status: reason LPIPS is unavailable (e.g. the FileNotFoundError
      message of :meth:`LPIPS.from_weights`); used only when ``lpips`` is
      None.

  Returns:
    {"psnr", "ssim", "ssim_data_range", "lpips", "lpips_net", "lpips_status",
    "avg_error"} and, with a mask, {"masked_psnr", "masked_ssim",
    "masked_lpips", "masked_avg_error"}. LPIPS-dependent entries are None
    when LPIPS is unavailable; "lpips_status" is "ok" or starts with
    "LPIPS unavailable:".
  """
  out: dict[str, Any] = {
      "psnr": psnr(pred, target),
      "ssim": ssim(pred, target, data_range=ssim_data_range),
      "ssim_data_range": float(ssim_data_range),
  }
  if lpips is not None:
    out["lpips"] = lpips(pred, target)
    out["lpips_net"] = lpips.net
    out["lpips_status"] = "ok"
    out["avg_error"] = average_error(psnr_to_mse(out["psnr"]), out["ssim"],
                                     out["lpips"])
  else:
    status = lpips_status or "no LPIPS model given"
    if not status.startswith("LPIPS unavailable"):
      status = f"LPIPS unavailable: {status}"
    out.update(lpips=None, lpips_net=None, lpips_status=status,
               avg_error=None)
  if mask is not None:
    out["masked_psnr"] = masked_psnr(pred, target, mask)
    out["masked_ssim"] = masked_ssim(pred, target, mask,
                                     data_range=ssim_data_range)
    if lpips is not None:
      out["masked_lpips"] = masked_lpips(pred, target, mask, lpips)
      out["masked_avg_error"] = average_error(
          psnr_to_mse(out["masked_psnr"]), out["masked_ssim"],
          out["masked_lpips"])
    else:
      out["masked_lpips"] = None
      out["masked_avg_error"] = None
  return out


def _is_number(v: Any) -> bool:
  return isinstance(v, (int, float, np.integer, np.floating)) and not \
      isinstance(v, bool)


def summarize(per_image: list[dict[str, Any]]) -> dict[str, Any]:
  """Means over images of every numeric metric.

  The average errors are the means of the per-image values, never recomputed
  from the mean PSNR/SSIM/LPIPS (pitfall P16). For each key, images where
  the value is None are skipped; a key that is None for every image stays
  None. String entries (``lpips_status``, ``lpips_net``) are carried through:
  the common value, or the distinct values joined by " | " if they differ.
  ``ssim_data_range`` is carried through likewise (it must agree).

  Args:
    per_image: dicts from :func:`evaluate_image`.

  Returns:
    {key: mean or carried value} plus "num_images".
  """
  keys: list[str] = []
  for d in per_image:
    keys.extend(k for k in d if k not in keys)
  out: dict[str, Any] = {}
  for key in keys:
    values = [d[key] for d in per_image if d.get(key) is not None]
    if key == "ssim_data_range":
      ranges = sorted({float(v) for v in values})
      if len(ranges) > 1:
        raise errors.InputError(f"summarize: mixed ssim_data_range values {ranges}")
      out[key] = ranges[0] if ranges else None
    elif not values:
      out[key] = None
    elif all(_is_number(v) for v in values):
      out[key] = float(np.mean(np.asarray(values, np.float64)))
    else:
      distinct = list(dict.fromkeys(str(v) for v in values))
      out[key] = distinct[0] if len(distinct) == 1 else " | ".join(distinct)
  out["num_images"] = len(per_image)
  return out
