"""The quality benchmark's PNG figures, drawn from its ``results.json``.

* ``curves.png``: held-out PSNR versus training step, one line per method
  (``curves_<n>view.png`` for the other view counts);
* ``ablation.png``: PSNR of the ablated models next to the full RegNeRF;
* ``data_efficiency.png``: PSNR versus the number of input views, and how many
  views mip-NeRF needs to match RegNeRF's 3-view PSNR;
* ``contact_sheet.png``: ground truth, renderings and depth maps side by side.

Matplotlib (``pip install 'regnerf-tf[plots]'``) is imported inside the
functions, so importing this module, and :func:`views_to_match`, work without
it. Figures are drawn with matplotlib's object-oriented API on an Agg canvas
(no pyplot, so no global state and no interactive backend) and every PNG is
written atomically.
"""

from __future__ import annotations

import io
import os
from typing import Iterable, Sequence

import numpy as np

from regnerf_tf import atomic

# The ablation of the paper's Table 3, in its order, then the baselines: RegNeRF's
# optimizer without any regulariser, and mip-NeRF (benchmarks.quality uses it).
ABLATION = ("regnerf", "regnerf_noanneal", "regnerf_nodepth", "regnerf_tv",
            "regnerf_noreg", "mipnerf")
FULL_MODEL = "regnerf"
BASELINE = "mipnerf"
DPI = 100


def _figure(width: float = 6.0, height: float = 4.0):
  """A matplotlib Figure on an Agg canvas (never a pyplot window)."""
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(width, height))
  FigureCanvasAgg(fig)
  return fig


def _save(fig, path: str, dpi: int = DPI) -> str:
  """Renders ``fig`` to PNG bytes, writes them atomically, releases it."""
  buffer = io.BytesIO()
  try:
    # No "Software" entry: the same figure gives the same bytes across
    # matplotlib releases' metadata (the PNGs are committed).
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
  finally:
    fig.clear()  # a Figure without pyplot is not registered: clearing closes
  atomic.write_bytes(path, buffer.getvalue())
  return path


def _rows(results: dict, n_views: int | None = None,
          methods: Iterable[str] | None = None) -> list[dict]:
  rows = results.get("results", [])
  if n_views is not None:
    rows = [r for r in rows if r.get("n_views") == n_views]
  if methods is not None:
    methods = list(methods)
    rows = [r for r in rows if r.get("method") in methods]
  return rows


def _label(row: dict) -> str:
  return row.get("label") or row["method"]


def _resolution(results: dict) -> str:
  resolution = results.get("resolution")
  if not resolution:
    return "?"
  width, height = resolution
  return f"{width}×{height}"


def _heading(results: dict) -> str:
  return (f"{results.get('scene', '?')} — protocol "
          f"{results.get('protocol', '?')}, {_resolution(results)}")


def views_to_match(points: Sequence[tuple[int, float]],
                   target: float) -> float | None:
  """Input views at which a PSNR-versus-views curve first reaches ``target``.

  The curve is piecewise linear through ``points`` sorted by views.

  Args:
    points: (number of views, PSNR) pairs, in any order.
    target: the PSNR to reach.

  Returns:
    the interpolated number of views; the first point's views when it already
    reaches ``target``; None when the curve stays below ``target`` over the
    measured range (or ``points`` is empty).
  """
  points = sorted((float(v), float(p)) for v, p in points)
  if not points:
    return None
  if points[0][1] >= target:
    return points[0][0]
  for (v0, p0), (v1, p1) in zip(points, points[1:]):
    if p1 >= target > p0:
      return v0 + (target - p0) / (p1 - p0) * (v1 - v0)
  return None


def plot_curves(results: dict, path: str, n_views: int = 3) -> str:
  """Held-out PSNR versus training step, one line per method.

  Args:
    results: the benchmark's results dict (``results.json``).
    path: the PNG to write.
    n_views: the rows (input view count) to draw.

  Returns:
    ``path``.

  Raises:
    ValueError: no row with ``n_views`` has a curve.
  """
  rows = [r for r in _rows(results, n_views) if r.get("curve")]
  if not rows:
    raise ValueError(f"No {n_views}-view row of {results.get('scene')!r} has "
                     "a PSNR curve to plot.")
  fig = _figure()
  ax = fig.add_subplot()
  for row in rows:
    steps = [point["step"] for point in row["curve"]]
    psnr = [point["psnr"] for point in row["curve"]]
    best = max(range(len(psnr)), key=psnr.__getitem__)
    (line,) = ax.plot(steps, psnr, linewidth=1.5,
                      label=f"{_label(row)}: best {psnr[best]:.2f}")
    ax.plot(steps[best], psnr[best], "o", color=line.get_color(),
            markersize=5)
  ax.set_title(f"{_heading(results)}\nheld-out PSNR, {n_views} input views "
               "(dot: best)", fontsize=9)
  ax.set_xlabel("training step")
  ax.set_ylabel("held-out PSNR (dB)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  return _save(fig, path)


def plot_ablation(results: dict, path: str, rows: list[str]) -> str:
  """Horizontal bars of the 3-view PSNR of ``rows`` (method names), in order.

  Each bar is annotated with its PSNR and its difference to the full model
  (method ``regnerf``) when that row is present. On DTU (rows with
  ``masked_psnr``) each method gets a second bar with the masked PSNR.

  Args:
    results: the benchmark's results dict (``results.json``).
    path: the PNG to write.
    rows: method names, top to bottom; missing ones are skipped.

  Returns:
    ``path``.

  Raises:
    ValueError: none of ``rows`` has a 3-view result.
  """
  by_method = {r["method"]: r for r in _rows(results, 3)
               if r.get("psnr") is not None}
  present = [by_method[m] for m in rows if m in by_method]
  if not present:
    raise ValueError(f"None of {rows} has a 3-view result in "
                     f"{results.get('scene')!r}.")
  full = by_method.get(FULL_MODEL)
  masked = any(r.get("masked_psnr") is not None for r in present)
  metrics = [("psnr", "PSNR")] + ([("masked_psnr", "masked PSNR")]
                                  if masked else [])
  height = 0.8 / len(metrics)
  fig = _figure(6.0, max(2.5, 0.35 * len(present) * len(metrics) + 1.5))
  ax = fig.add_subplot()
  top = 0.0
  for k, (key, name) in enumerate(metrics):
    ys = [i + (k - (len(metrics) - 1) / 2) * height
          for i in range(len(present))]
    values = [r.get(key) for r in present]
    bars = ax.barh([y for y, v in zip(ys, values) if v is not None],
                   [v for v in values if v is not None], height=height,
                   color=f"C{k}", label=name)
    reference = full.get(key) if full is not None else None
    kept = [r for r, v in zip(present, values) if v is not None]
    for bar, row in zip(bars, kept):
      value = row[key]
      text = f"{value:.2f}"
      if reference is not None and row is not full:
        text += f" (Δ {value - reference:+.2f})"
      ax.annotate(text, (value, bar.get_y() + bar.get_height() / 2),
                  textcoords="offset points", xytext=(3, 0), va="center",
                  fontsize=7)
      top = max(top, value)
  ax.set_yticks(range(len(present)), [_label(r) for r in present],
                fontsize=7)
  ax.invert_yaxis()  # the first listed method on top
  ax.set_xlim(0.0, top * 1.35 if top > 0 else 1.0)
  ax.set_xlabel("held-out PSNR (dB)")
  versus = (f"Δ vs {_label(full)}" if full is not None
            else "full model not run")
  ax.set_title(f"{_heading(results)}\nablation, 3 input views ({versus})",
               fontsize=9)
  ax.grid(axis="x", alpha=0.3)
  if masked:
    ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  return _save(fig, path)


def plot_data_efficiency(results: dict, path: str,
                         methods: Sequence[str] = (BASELINE, FULL_MODEL)
                         ) -> str:
  """PSNR versus the number of input views, one line per method.

  A dashed horizontal line marks RegNeRF's 3-view PSNR; where another method's
  curve reaches it (:func:`views_to_match`) a vertical marker and a label give
  the number of views that method needs.

  Args:
    results: the benchmark's results dict (``results.json``).
    path: the PNG to write.
    methods: the methods to draw.

  Returns:
    ``path``.

  Raises:
    ValueError: none of ``methods`` has a result.
  """
  curves = {}
  for method in methods:
    points = sorted((r["n_views"], r["psnr"]) for r in _rows(results)
                    if r["method"] == method and r.get("psnr") is not None)
    if points:
      curves[method] = points
  if not curves:
    raise ValueError(f"None of {list(methods)} has a result in "
                     f"{results.get('scene')!r}.")
  labels = {r["method"]: _label(r) for r in _rows(results)}
  fig = _figure()
  ax = fig.add_subplot()
  for method, points in curves.items():
    ax.plot([v for v, _ in points], [p for _, p in points], "o-",
            label=labels.get(method, method))
  target = dict(curves.get(FULL_MODEL, [])).get(3)
  views = sorted({v for points in curves.values() for v, _ in points})
  if target is not None:
    ax.axhline(target, color="gray", linestyle="--", linewidth=1,
               label=f"{labels.get(FULL_MODEL, FULL_MODEL)}, 3 views")
    for method, points in curves.items():
      if method == FULL_MODEL:
        continue
      match = views_to_match(points, target)
      if match is None:
        continue
      ax.axvline(match, color="gray", linestyle=":", linewidth=1)
      right = match > (views[0] + views[-1]) / 2  # label inside the axes
      ax.annotate(f"{labels.get(method, method)}\nneeds ≈ {match:.1f} views",
                  (match, target), textcoords="offset points",
                  xytext=(-4 if right else 4, -24),
                  ha="right" if right else "left", fontsize=7)
  ax.set_xticks(views)
  ax.set_xlabel("input views")
  ax.set_ylabel("held-out PSNR (dB)")
  ax.set_title(f"{_heading(results)}\ndata efficiency", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  return _save(fig, path)


def _read_png(path: str, what: str):
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"{path} not found ({what}): run the benchmark's evaluation first "
        "(python -m benchmarks.quality ...), which writes <view>_rgb.png and "
        "<view>_depth.png to each run's eval folder.")
  import imageio.v3 as iio  # pylint: disable=import-outside-toplevel
  return iio.imread(path)


def contact_sheet(results: dict, gt_images: dict[int, np.ndarray], path: str,
                  methods: Sequence[str] = (BASELINE, FULL_MODEL),
                  views: list[int] | None = None, max_views: int = 3) -> str:
  """A grid: one row per held-out view; ground truth, then per method its
  rendering and depth map (3-view runs, read from their ``eval_dir``).

  Args:
    results: the benchmark's results dict, its rows with ``eval_dir``.
    gt_images: held-out view index -> ground-truth image (uint8 [H, W, 3]).
    path: the PNG to write.
    methods: the methods' columns, in order; methods without a 3-view row are
      skipped.
    views: the view indices to show (default: ``gt_images``' keys, sorted);
      the first ``max_views`` are used.
    max_views: the most rows.

  Returns:
    ``path``.

  Raises:
    ValueError: no view, or no method with a 3-view row.
    KeyError: a view without a ground-truth image.
    FileNotFoundError: a rendering or depth PNG is missing.
  """
  views = list(sorted(gt_images) if views is None else views)[:max_views]
  if not views:
    raise ValueError("No held-out view to show in the contact sheet.")
  by_method = {r["method"]: r for r in _rows(results, 3)}
  rows = [by_method[m] for m in methods if m in by_method]
  if not rows:
    raise ValueError(f"None of {list(methods)} has a 3-view result in "
                     f"{results.get('scene')!r}.")
  # Every tile first, so that a missing file fails before any drawing.
  grid = []
  for view in views:
    if view not in gt_images:
      raise KeyError(f"No ground-truth image for held-out view {view}.")
    tiles = [("ground truth", gt_images[view], False)]
    for row in rows:
      folder = row.get("eval_dir") or ""
      what = f"{row['method']}, 3 views"
      stem = os.path.join(folder, f"{int(view):03d}")
      tiles.append((_label(row), _read_png(f"{stem}_rgb.png", what), False))
      tiles.append((f"{_label(row)} depth",
                    _read_png(f"{stem}_depth.png", what), True))
    grid.append(tiles)
  height, width = np.shape(gt_images[views[0]])[:2]
  tile = 1.6  # inches per tile's width
  columns = len(grid[0])
  fig = _figure(tile * columns,
                tile * len(views) * height / max(width, 1) + 0.5)
  axes = fig.subplots(len(views), columns, squeeze=False)
  for r, (view, tiles) in enumerate(zip(views, grid)):
    for c, (title, image, is_depth) in enumerate(tiles):
      ax = axes[r][c]
      image = np.asarray(image)
      if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
      if image.ndim == 2:
        ax.imshow(image, cmap="turbo" if is_depth else "gray",
                  interpolation="nearest")
      else:
        ax.imshow(image, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_visible(False)
      if r == 0:
        ax.set_title(title, fontsize=6)
      if c == 0:
        ax.set_ylabel(f"view {view}", fontsize=6)
  fig.suptitle(f"{_heading(results)}, 3 input views", fontsize=8)
  fig.tight_layout()
  return _save(fig, path)


def write_all(results: dict, out_dir: str,
              gt_images: dict[int, np.ndarray] | None = None) -> list[str]:
  """Every figure the results allow, into ``out_dir``.

  * ``curves.png`` (3 views) and ``curves_<n>view.png`` (other view counts),
    for the view counts with a PSNR curve;
  * ``ablation.png`` when at least two of :data:`ABLATION` have 3-view rows;
  * ``data_efficiency.png`` when mip-NeRF or RegNeRF ran with at least two
    view counts;
  * ``contact_sheet.png`` when ``gt_images`` is given and the 3-view mip-NeRF
    or RegNeRF rows have an existing ``eval_dir``.

  Args:
    results: the benchmark's results dict (``results.json``), rows optionally
      with ``eval_dir``.
    out_dir: the folder to write to.
    gt_images: held-out view index -> ground-truth image, for the contact
      sheet.

  Returns:
    the paths written.
  """
  written = []
  rows = _rows(results)
  for n in sorted({r["n_views"] for r in rows if r.get("curve")}):
    name = "curves.png" if n == 3 else f"curves_{n}view.png"
    written.append(plot_curves(results, os.path.join(out_dir, name), n))
  ablation = [m for m in ABLATION
              if any(r.get("psnr") is not None for r in _rows(results, 3, [m]))]
  if len(ablation) >= 2:
    written.append(plot_ablation(
        results, os.path.join(out_dir, "ablation.png"), list(ABLATION)))
  efficiency = (BASELINE, FULL_MODEL)
  if any(len({r["n_views"] for r in _rows(results, methods=[m])
              if r.get("psnr") is not None}) >= 2 for m in efficiency):
    written.append(plot_data_efficiency(
        results, os.path.join(out_dir, "data_efficiency.png"), efficiency))
  if gt_images:
    with_renders = [m for m in efficiency
                    if any(r.get("eval_dir") and os.path.isdir(r["eval_dir"])
                           for r in _rows(results, 3, [m]))]
    if with_renders:
      written.append(contact_sheet(
          results, gt_images, os.path.join(out_dir, "contact_sheet.png"),
          methods=with_renders))
  return written
