"""Fast rendering: the exact renderer minus the samples that cannot change a pixel.

:func:`regnerf_tf.renderer.render_levels` evaluates the MLP at every sample of
every level: 2 × 128 per ray for the paper's models. Most of them change no
pixel: they lie in empty space, or behind a surface that already hides them.
The fast path keeps the exact algorithm (the same fenceposts, the same
resampling, the same compositing) and evaluates the MLP only where a sample
can matter. It skips two kinds of sample, each with a bound on what skipping
it changes:

* **empty space**: an :class:`OccupancyGrid` baked from the trained field holds,
  per cell, an upper bound of the density there (the density at the cell's
  centre, as a Gaussian the size of the cell, max-pooled over the neighbouring
  cells). A sample's compositing weight is at most ``T·(1 − exp(−σ_max·δ))``,
  with T the ray's transmittance before the sample's segment; a sample whose
  bound is below ``weight_skip`` is given density 0 without calling the MLP.
  Samples outside the grid's box are always evaluated.
* **hidden samples**: each level is evaluated front to back in segments of
  ``segment`` samples; once a ray's transmittance is below
  ``transmittance_floor`` its later samples are given density 0. Their
  weights sum to less than the floor, so each colour channel changes by less
  than the floor (≈ 0.26 grey levels of 255 at the default 1e-3).

The surviving samples of a chunk are gathered into one matrix before the MLP
(compaction) and scattered back, so the MLP's cost is proportional to the
samples that matter. Coarse levels run the density branch only. The coarse
weights, and so the fine fenceposts, move only by the skipped samples' weights.

Users: ``regnerf-render`` and the SavedModel's signatures use this path by
default (``--exact`` for the exact one); ``regnerf-eval`` and the benchmarks
are exact unless given ``--fast``. Every report says which path rendered it
(:meth:`FastRenderer.describe`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from regnerf_tf import data as data_lib
from regnerf_tf import errors, layers, machine, mip, rendering, renderer
from regnerf_tf import rays as rays_lib
from regnerf_tf.rays import RAY_FIELDS, check_rays

# Points per MLP call while baking (bounded memory at any resolution).
_BAKE_BATCH = 1 << 15
PRECISIONS = ("auto", "float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class FastOptions:
  """What the fast path may skip.

  Attributes:
    resolution: cells per side of the occupancy grid.
    weight_skip: a sample whose weight bound (transmittance before its
      segment times its opacity under the grid's density bound) is below
      this is skipped (0 disables empty-space skipping).
    transmittance_floor: a ray's samples after its transmittance falls below
      this are skipped (0 disables early termination).
    segment: samples per front-to-back segment (the termination test runs
      between segments).
    samples: intervals per ray and level; None keeps the model's
      ``num_samples``. Fewer is an approximation (mip-NeRF's Gaussians widen
      with the intervals, so the field is integrated over coarser pieces);
      benchmarks/RESULTS.md measures what it costs in PSNR.
    precision: the MLP's compute precision: "float32", "bfloat16", or "auto"
      (bfloat16 where it is native, :func:`regnerf_tf.machine.native_bfloat16`;
      float32 elsewhere). A model trained in mixed_bfloat16 stays so.
  """
  resolution: int = 64
  weight_skip: float = 1e-4
  transmittance_floor: float = 1e-3
  segment: int = 8
  samples: int | None = None
  precision: str = "auto"

  def __post_init__(self):
    problems = []
    if not 8 <= int(self.resolution) <= 512:
      problems.append(f"resolution={self.resolution} (expected 8 to 512)")
    if not 0.0 <= self.weight_skip < 1.0:
      problems.append(f"weight_skip={self.weight_skip} (expected [0, 1))")
    if not 0.0 <= self.transmittance_floor < 1.0:
      problems.append(f"transmittance_floor={self.transmittance_floor} "
                      "(expected [0, 1))")
    if int(self.segment) < 1:
      problems.append(f"segment={self.segment} (expected >= 1)")
    if self.samples is not None and int(self.samples) < 2:
      problems.append(f"samples={self.samples} (expected None or >= 2)")
    if self.precision not in PRECISIONS:
      problems.append(f"precision={self.precision!r} (expected one of "
                      f"{PRECISIONS})")
    if problems:
      raise errors.InputError("FastOptions: " + "; ".join(problems) + ". The "
                              "defaults are FastOptions().")


@dataclasses.dataclass(frozen=True)
class OccupancyGrid:
  """Per-cell upper bounds of the density over an axis-aligned box.

  Attributes:
    lower, upper: [3] corners of the box, in the space of the sample means
      (world space, or NDC for forward-facing scenes).
    density: [R, R, R] float32, indexed [x, y, z].
  """
  lower: np.ndarray
  upper: np.ndarray
  density: np.ndarray

  @property
  def resolution(self) -> int:
    return int(self.density.shape[0])

  def occupied_fraction(self, weight_skip: float, delta: float) -> float:
    """Share of cells whose bound gives opacity ≥ ``weight_skip`` over a
    segment of length ``delta`` (the cells a fully visible ray evaluates)."""
    alpha = 1.0 - np.exp(-self.density.astype(np.float64) * delta)
    return float(np.mean(alpha >= weight_skip))


def lookup(density: tf.Tensor, lower: tf.Tensor, upper: tf.Tensor,
           points: tf.Tensor) -> tf.Tensor:
  """The grid's density bound at ``points`` [..., 3]; +inf outside the box."""
  res = tf.cast(tf.shape(density)[0], tf.float32)
  rel = (points - lower) / (upper - lower) * res
  inside = tf.reduce_all((rel >= 0.0) & (rel < res), axis=-1)
  index = tf.clip_by_value(tf.cast(tf.floor(rel), tf.int32), 0,
                           tf.shape(density)[0] - 1)
  values = tf.gather_nd(density, index)
  return tf.where(inside, values, tf.fill(tf.shape(values), np.inf))


def bounds_from_rays(rays: Sequence[dict[str, Any]], margin: float = 0.02
                     ) -> tuple[np.ndarray, np.ndarray]:
  """The box holding every point between near and far of the given rays.

  Args:
    rays: ray dicts (e.g. of the training views), any leading shape.
    margin: grown by this fraction of its size on each side.
  """
  points = []
  for r in rays:
    o = np.reshape(np.asarray(r["origins"], np.float32), [-1, 3])
    d = np.reshape(np.asarray(r["directions"], np.float32), [-1, 3])
    for t in ("near", "far"):
      points.append(o + d * np.reshape(np.asarray(r[t], np.float32), [-1, 1]))
  if not points:
    raise errors.InputError("bounds_from_rays needs at least one ray dict; "
                            "received none.")
  points = np.concatenate(points)
  lower, upper = points.min(0), points.max(0)
  pad = np.maximum(upper - lower, 1e-6) * margin
  return (lower - pad).astype(np.float32), (upper + pad).astype(np.float32)


def view_bounds(records: Sequence[dict], margin: float = 0.02
                ) -> tuple[np.ndarray, np.ndarray]:
  """:func:`bounds_from_rays` of the views of ``records`` (a 17 × 17 lattice
  of each view's pixels, borders included: the rays' box for pinhole views)."""
  views = data_lib.load_views(records)
  height, width = views["images"].shape[1:3]
  rows = np.unique(np.linspace(0, height - 1, 17).round().astype(int))
  cols = np.unique(np.linspace(0, width - 1, 17).round().astype(int))
  rays = []
  for i in range(len(views["camtoworlds"])):
    full = rays_lib.view_rays(views["camtoworlds"][i], views["intrinsics"][i],
                              height, width, views["kind"], views["near"][i],
                              views["far"][i])
    rays.append({k: np.asarray(v)[rows][:, cols] for k, v in full.items()})
  return bounds_from_rays(rays, margin)


def bake_grid(mlp, lower, upper, resolution: int = 64) -> OccupancyGrid:
  """Bakes an :class:`OccupancyGrid` of ``mlp``'s density over a box.

  Each cell's density is the MLP's at the cell centre for a Gaussian with the
  cell's own covariance (a uniform distribution over the cell has variance
  size²/12 per axis); the grid then holds the maximum over each cell and its
  26 neighbours, so that a thin surface between two centres still marks both
  cells.
  """
  lower = np.asarray(lower, np.float32)
  upper = np.asarray(upper, np.float32)
  if lower.shape != (3,) or upper.shape != (3,) or not np.all(upper > lower):
    raise errors.InputError(f"bake_grid needs a box with lower < upper on "
                            f"each axis; received lower={lower}, upper={upper}.")
  cell = (upper - lower) / resolution
  axes = [lower[i] + (np.arange(resolution, dtype=np.float32) + 0.5) * cell[i]
          for i in range(3)]
  centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
  var = tf.constant(cell ** 2 / 12.0, tf.float32)

  @tf.function(reduce_retracing=True)
  def density_at(points):
    means = points[:, None, :]
    covs = tf.broadcast_to(var, tf.shape(means))
    _, density = mlp(means, covs, tf.zeros_like(points), training=False,
                     density_only=True)
    return density[:, 0]

  values = np.concatenate([
      density_at(tf.constant(centres[i:i + _BAKE_BATCH])).numpy()
      for i in range(0, len(centres), _BAKE_BATCH)])
  grid = values.reshape(resolution, resolution, resolution)
  pooled = tf.nn.max_pool3d(grid[None, ..., None], ksize=3, strides=1,
                            padding="SAME")[0, ..., 0].numpy()
  return OccupancyGrid(lower, upper, pooled.astype(np.float32))


def _evaluate_level(mlp, means, covs, viewdirs, deltas, alpha_bound,
                    colour: bool, segment: int, log_floor: float,
                    weight_skip: float):
  """Densities (and colours) of one level, front to back, skipping samples.

  Args:
    means, covs: [N, S, 3]; viewdirs: [N, 3]; deltas: [N, S] metric lengths.
    alpha_bound: [N, S] upper bounds of the samples' opacities, or None.
    colour: also evaluate the colour branch.
    segment: samples per segment.
    log_floor: log of the transmittance floor (−inf: no termination).
    weight_skip: skip samples whose weight bound is below this.

  Returns:
    (rgb [N, S, 3], density [N, S], evaluated [N] samples per ray).
  """
  n = tf.shape(means)[0]
  num_samples = means.shape[1]
  optical_depth = tf.zeros([n], tf.float32)
  densities, colours, evaluated = [], [], tf.zeros([n], tf.int32)
  for start in range(0, num_samples, segment):
    stop = min(start + segment, num_samples)
    width = stop - start
    alive = -optical_depth > log_floor
    keep = tf.broadcast_to(alive[:, None], [n, width])
    if alpha_bound is not None:
      weight_bound = tf.exp(-optical_depth)[:, None] * alpha_bound[:, start:stop]
      keep = tf.logical_and(keep, weight_bound >= weight_skip)
    index = tf.where(keep)
    seg_means = tf.gather_nd(means[:, start:stop], index)[:, None, :]
    seg_covs = tf.gather_nd(covs[:, start:stop], index)[:, None, :]
    seg_dirs = tf.gather(viewdirs, index[:, 0])
    rgb, density = mlp(seg_means, seg_covs, seg_dirs, training=False,
                       density_only=not colour)
    dense = tf.scatter_nd(index, density[:, 0], [n, width])
    densities.append(dense)
    if colour:
      colours.append(tf.scatter_nd(index, rgb[:, 0], [n, width, 3]))
    evaluated += tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)
    optical_depth += tf.reduce_sum(dense * deltas[:, start:stop], axis=1)
  density = tf.concat(densities, axis=1)
  rgb = (tf.concat(colours, axis=1) if colour
         else tf.zeros(tf.concat([tf.shape(density), [3]], 0)))
  return rgb, density, evaluated


def render_levels_fast(mlp, model_config, rays: dict[str, tf.Tensor],
                       grid: tuple[tf.Tensor, tf.Tensor, tf.Tensor] | None,
                       options: FastOptions) -> list[dict[str, tf.Tensor]]:
  """Deterministic rendering of every level, skipping what cannot matter.

  Args:
    mlp: the model's :class:`regnerf_tf.layers.MipNerfMLP`.
    model_config: :class:`regnerf_tf.configs.ModelConfig`.
    rays: ray fields, leading shape [N].
    grid: (density [R, R, R], lower [3], upper [3]) tensors, or None (no
      empty-space skipping).
    options: :class:`FastOptions`.

  Returns:
    As :func:`regnerf_tf.renderer.render_levels` (coarse first; the coarse
    levels' ``rgb`` is zero), each with ``evaluated`` [N]: MLP samples per ray.
  """
  m = model_config
  rays = {k: tf.cast(v, tf.float32) for k, v in rays.items()
          if k in RAY_FIELDS}
  log_floor = (np.log(options.transmittance_floor)
               if options.transmittance_floor > 0 else -np.inf)
  norms = tf.norm(rays["directions"], axis=-1, keepdims=True)
  outputs = []
  for level in range(m.num_levels):
    t_vals = renderer.level_fenceposts(m, rays,
                                       outputs[-1] if outputs else None,
                                       False, num_samples=options.samples)
    means, covs = mip.cast_rays(t_vals, rays["origins"], rays["directions"],
                                rays["radii"], m.ray_shape)
    deltas = (t_vals[:, 1:] - t_vals[:, :-1]) * norms
    alpha_bound = None
    if grid is not None and options.weight_skip > 0:
      bound = lookup(grid[0], grid[1], grid[2], means)
      alpha_bound = -tf.math.expm1(-bound * deltas)
    colour = level == m.num_levels - 1
    rgb, density, evaluated = _evaluate_level(
        mlp, means, covs, rays["viewdirs"], deltas, alpha_bound, colour,
        options.segment, log_floor, options.weight_skip)
    out = rendering.volumetric_rendering(rgb, density, t_vals,
                                         rays["directions"],
                                         m.white_background)
    out["t_vals"] = t_vals
    out["evaluated"] = evaluated
    outputs.append(out)
  return outputs


def resolve_precision(requested: str, trained: str) -> tuple[str, str]:
  """(the MLP precision the fast path uses, why), for ``requested`` in
  :data:`PRECISIONS` and the model's trained ``precision``."""
  if trained == "mixed_bfloat16":
    return "bfloat16", "the model computes in mixed_bfloat16"
  if requested != "auto":
    return requested, "requested"
  native, why = machine.native_bfloat16()
  return ("bfloat16" if native else "float32"), why


def bfloat16_copy(mlp):
  """A copy of a float32 :class:`regnerf_tf.layers.MipNerfMLP` that computes
  its dense layers in bfloat16 (the same float32 weights)."""
  config = mlp.get_config()
  config["dtype"] = "mixed_bfloat16"
  copy = layers.MipNerfMLP.from_config(config)
  copy.build()
  copy.set_weights(mlp.get_weights())
  return copy


class FastRenderer(tf.Module):
  """A trained model's fast renderer: its MLP, a baked grid and the options.

  Stands in for the model wherever views are rendered
  (:func:`regnerf_tf.evaluation.evaluate_run`, :mod:`regnerf_tf.video`):
  :meth:`render_chunked` has the model's signature.

  Args:
    model: a trained :class:`regnerf_tf.model.RegNeRF`.
    bounds: (lower [3], upper [3]) of the grid's box, e.g.
      :func:`view_bounds` of the training views (samples outside it are
      always evaluated); None: no grid (early termination only).
    options: :class:`FastOptions`.
  """

  def __init__(self, model, bounds: tuple[np.ndarray, np.ndarray] | None,
               options: FastOptions | None = None):
    super().__init__(name="fast_renderer")
    self.model = model
    self.config = model.config
    self.options = options or FastOptions()
    self.precision, self.precision_reason = resolve_precision(
        self.options.precision, model.config.model.precision)
    self.mlp = (bfloat16_copy(model.mlp) if self.precision == "bfloat16"
                and model.config.model.precision == "float32" else model.mlp)
    self.grid = None
    if bounds is not None and self.options.weight_skip > 0:
      self.grid = bake_grid(model.mlp, bounds[0], bounds[1],
                            self.options.resolution)
    self._grid_tensors = None
    if self.grid is not None:
      self._grid_tensors = (tf.Variable(self.grid.density, trainable=False,
                                        name="grid_density"),
                            tf.Variable(self.grid.lower, trainable=False,
                                        name="grid_lower"),
                            tf.Variable(self.grid.upper, trainable=False,
                                        name="grid_upper"))
    self.evaluated = 0
    self.rays = 0
    self._compiled = renderer.side_by_side(self.render_rays)

  @classmethod
  def for_records(cls, model, records: Sequence[dict],
                  options: FastOptions | None = None) -> "FastRenderer":
    """The fast renderer of ``model`` with its grid over the views of
    ``records`` (a scene's training views)."""
    return cls(model, view_bounds(records), options)

  @property
  def optimizer(self):  # for training.current_step
    return self.model.optimizer

  def render_rays(self, rays: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The last level's rgb [N, 3], depth [N], acc [N], and ``evaluated``
    [N]: MLP samples per ray over all levels."""
    outs = render_levels_fast(self.mlp, self.config.model, rays,
                              self._grid_tensors, self.options)
    last = outs[-1]
    return {"rgb": last["rgb"], "depth": last["depth"], "acc": last["acc"],
            "evaluated": tf.add_n([o["evaluated"] for o in outs])}

  def render_chunked(self, rays: dict[str, Any],
                     chunk: int | None = None) -> dict[str, tf.Tensor]:
    """Like :meth:`regnerf_tf.model.RegNeRF.render_chunked`; also counts the
    MLP samples evaluated (:meth:`describe`)."""
    check_rays(rays)
    out = renderer.render_chunked(
        self._compiled, rays, chunk or self.config.train.render_chunk,
        machine.render_branches(self.config.train.render_branches))
    self.evaluated += int(tf.reduce_sum(out["evaluated"]))
    self.rays += int(tf.size(out["evaluated"]))
    return out

  def summary(self) -> str:
    """One line: the fast path and its settings (for logs)."""
    o = self.options
    grid = (f"{o.resolution}³ occupancy grid, weight_skip {o.weight_skip:g}"
            if self.grid is not None else "no occupancy grid")
    samples = o.samples or self.config.model.num_samples
    return (f"fast renderer ({grid}, transmittance floor "
            f"{o.transmittance_floor:g}, {samples} samples per level, "
            f"{self.precision}: {self.precision_reason})")

  def describe(self) -> dict[str, Any]:
    """What rendered: the options, the grid, and the MLP samples evaluated
    per ray so far against the exact renderer's."""
    m = self.config.model
    exact = m.num_samples * m.num_levels  # the exact renderer's
    info = {"renderer": "fast", **dataclasses.asdict(self.options),
            "precision": self.precision,
            "precision_reason": self.precision_reason,
            "exact_samples_per_ray": exact}
    if self.grid is not None:
      info["grid_lower"] = self.grid.lower.tolist()
      info["grid_upper"] = self.grid.upper.tolist()
    if self.rays:
      info["samples_per_ray"] = self.evaluated / self.rays
    return info
