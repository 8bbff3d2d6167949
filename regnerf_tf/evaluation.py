"""Scoring a model on held-out views: render, compare, write.

One home for "render a record's view and score it", used by training (its
end-of-run scores), ``regnerf-eval``, the demo and the benchmarks:

* :func:`rendered_views` renders each record's view (optionally every
  ``stride``-th pixel) and yields it with its ground truth;
* :func:`evaluate_views` gives PSNR (and SSIM) per view, cheaply, in memory;
* :func:`evaluate_run` gives every metric of :func:`metrics.evaluate_image`
  (PSNR, SSIM, LPIPS, average error; masked ones where there are masks) and
  writes ``metrics.json`` and the RGB, depth and opacity PNGs;
* :func:`load_lpips` finds the LPIPS weights (or says how to get them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from regnerf_tf import atomic
from regnerf_tf import data as data_lib
from regnerf_tf import fast_render
from regnerf_tf import rays as rays_lib
from regnerf_tf import lpips_net
from regnerf_tf import lpips_weights
from regnerf_tf import metrics
from regnerf_tf import training

METRICS_FILE = "metrics.json"
HELDOUT_FILE = "heldout_psnr.json"  # regnerf-train's score, in the run folder


def rendered_views(model, records: Sequence[dict], chunk: int | None = None,
                   stride: int = 1) -> Iterator[dict[str, Any]]:
  """Renders each record's view with ``model``, one at a time.

  ``stride`` > 1 renders only every ``stride``-th pixel in each direction
  (the full-resolution rays of those pixels): a cheap sample.

  Yields:
    {"view_index", "rgb" [H, W, 3] in [0, 1], "depth" [H, W], "acc" [H, W],
    "target" [H, W, 3] in [0, 1], "mask" [H, W, 1] in [0, 1] or None,
    "scene", "kind"}.
  """
  views = data_lib.load_views(records)
  height, width = views["images"].shape[1:3]
  for i, index in enumerate(views["view_indices"]):
    rays = rays_lib.view_rays(views["camtoworlds"][i], views["intrinsics"][i],
                              height, width, views["kind"], views["near"][i],
                              views["far"][i])
    if stride > 1:
      rays = {k: v[::stride, ::stride] for k, v in rays.items()}
    out = model.render_chunked(rays, chunk)
    mask = None
    if views["masks"] is not None:
      mask = views["masks"][i, ::stride, ::stride].astype(np.float32) / 255.0
    yield {"view_index": int(index),
           "rgb": np.clip(out["rgb"].numpy(), 0.0, 1.0),
           "depth": out["depth"].numpy(), "acc": out["acc"].numpy(),
           "target": views["images"][i, ::stride, ::stride].astype(
               np.float32) / 255.0,
           "mask": mask, "scene": views["scene"], "kind": views["kind"]}


def evaluate_views(model, records: Sequence[dict], chunk: int | None = None,
                   stride: int = 1, progress=None,
                   with_ssim: bool = False) -> dict[str, Any]:
  """Per-view and mean PSNR of ``records`` (in memory, nothing written).

  ``progress(i, n, view_index, psnr)`` is called after each view.
  ``with_ssim`` adds SSIM (data range 1; the view must be at least 7×7).

  Returns:
    {"psnr": [per view], "mean_psnr": float, "renders": [rgb arrays]}, and
    "ssim" / "mean_ssim" with ``with_ssim``.
  """
  psnrs, ssims, renders = [], [], []
  for i, view in enumerate(rendered_views(model, records, chunk, stride)):
    psnrs.append(metrics.psnr(view["rgb"], view["target"]))
    if with_ssim:
      ssims.append(float(metrics.ssim(view["rgb"], view["target"])))
    renders.append(view["rgb"])
    if progress is not None:
      progress(i + 1, len(records), view["view_index"], psnrs[-1])
  result = {"psnr": psnrs, "mean_psnr": float(np.mean(psnrs)),
            "renders": renders}
  if with_ssim:
    result.update(ssim=ssims, mean_ssim=float(np.mean(ssims)))
  return result


def score_heldout(model, records: Sequence[dict], workdir: str,
                  progress=None) -> dict[str, Any]:
  """PSNR and SSIM of the held-out ``records`` at the model's step, written
  to ``<workdir>/heldout_psnr.json`` and TensorBoard (what ``regnerf-train``
  does after training; ``regnerf-eval`` is the full evaluation).

  ``progress`` is as in :func:`evaluate_views`.

  Returns:
    the summary written: step, views, per-view and mean PSNR and SSIM.
  """
  step = training.current_step(model)
  result = evaluate_views(model, records, progress=progress, with_ssim=True)
  summary = {"step": step, "views": [int(r["view_index"]) for r in records],
             "psnr": result["psnr"], "mean_psnr": result["mean_psnr"],
             "ssim": result["ssim"], "mean_ssim": result["mean_ssim"]}
  training.save_json(os.path.join(workdir, HELDOUT_FILE), summary)
  training.log_heldout(workdir, step, result)
  return summary


def _to_png(image: np.ndarray) -> np.ndarray:
  return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def evaluate_run(model, records: Sequence[dict], output_dir: str, lpips=None,
                 lpips_status: str | None = None, ssim_data_range: float = 1.0,
                 chunk: int | None = None, progress: bool = False) -> dict:
  """Renders ``records`` with ``model``, writes PNGs and metrics.json.

  ``model`` is a :class:`regnerf_tf.model.RegNeRF` (the exact renderer) or a
  :class:`regnerf_tf.fast_render.FastRenderer`; the report's ``renderer``
  says which (:func:`renderer_info`).

  With ``progress`` a line per view is printed as it is scored.

  Returns:
    the report dict that was written.
  """
  os.makedirs(output_dir, exist_ok=True)
  per_image = []
  scene = kind = None
  for i, view in enumerate(rendered_views(model, records, chunk)):
    scene, kind = view["scene"], view["kind"]
    result = metrics.evaluate_image(view["rgb"], view["target"],
                                    mask=view["mask"], lpips=lpips,
                                    ssim_data_range=ssim_data_range)
    if lpips is None and lpips_status:
      result["lpips_status"] = lpips_status
    result["view_index"] = view["view_index"]
    per_image.append(result)
    if progress:
      print(f"  view {i + 1}/{len(records)} (index {view['view_index']}"
            f"): PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f}"
            + (f", LPIPS {result['lpips']:.3f}"
               if result.get("lpips") is not None else ""), flush=True)
    lo, hi = np.percentile(view["depth"], [1, 99])
    stem = os.path.join(output_dir, f"{view['view_index']:03d}")
    atomic.write_image(f"{stem}_rgb.png", _to_png(view["rgb"]))
    atomic.write_image(f"{stem}_depth.png",
                       _to_png((view["depth"] - lo) / max(hi - lo, 1e-8)))
    atomic.write_image(f"{stem}_acc.png", _to_png(view["acc"]))
  summary = metrics.summarize(
      [{k: v for k, v in r.items() if k != "view_index"} for r in per_image])
  if lpips is None and lpips_status:
    summary["lpips_status"] = lpips_status
  report = {"step": training.current_step(model), "scene": scene,
            "kind": kind, "ssim_data_range": ssim_data_range,
            "renderer": renderer_info(model),
            "mean": summary, "per_image": per_image}
  training.save_json(os.path.join(output_dir, METRICS_FILE), report)
  return report


def renderer_info(model) -> dict[str, Any]:
  """Which path rendered: {"renderer": "exact"} for a model, the fast path's
  settings and samples per ray for a :class:`fast_render.FastRenderer`."""
  if isinstance(model, fast_render.FastRenderer):
    return model.describe()
  return {"renderer": "exact"}


def load_lpips(path: str | None, net: str):
  """(LPIPS model or None, status string).

  Without ``path`` the weights written by ``regnerf-lpips-weights`` are used
  when they are in the cache folder (``regnerf_tf.lpips_weights``).
  """
  if not path:
    path = lpips_weights.default_path(net)
    if not os.path.isfile(path):
      return None, (f"LPIPS unavailable: no {net} weights at {path}. "
                    + lpips_weights.HOW_TO_GET)
  try:
    return lpips_net.LPIPS.from_weights(path, net), "ok"
  except FileNotFoundError as e:
    return None, str(e)
