"""The volume renderer: rays → samples → MLP → colour, depth and opacity.

:func:`render_levels` is mip-NeRF's hierarchical renderer (reference §2):
stratified fenceposts on the first level, inverse-CDF resampling of the
previous level's weights on the next, conical-frustum Gaussians encoded by the
MLP, alpha compositing. :meth:`regnerf_tf.model.RegNeRF.render_rays` calls it
with the model's network and config.

Rendering many rays is done in fixed-size chunks, in one place for every user:

* :func:`render_chunked` (eager; evaluation, videos, the training preview):
  pieces of ``chunk`` rays, a short last piece padded to a power-of-two bucket
  (:func:`padded_chunk`), so that few shapes are ever traced; each piece split
  into independent parts rendered in one graph (:func:`side_by_side`), which
  TensorFlow's inter-op threads run at the same time;
* :func:`render_in_chunks` (inside a graph; ``RegNeRF.test_step`` and the
  SavedModel's signatures in :mod:`regnerf_tf.export`): ``tf.map_fn`` over
  chunks, padded with :data:`regnerf_tf.rays.PAD_RAY`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from regnerf_tf import mip, rendering, sampling
from regnerf_tf.rays import PAD_RAY, RAY_FIELDS, RAY_WIDTHS

# The smallest bucket a short piece of rays is padded to (see padded_chunk).
MIN_RENDER_BUCKET = 1024
# A piece is split into side-by-side parts only when each part gets at least
# this many rays (smaller matmuls gain nothing from running side by side, and
# a part must never be empty: the compiled model called on 0 rays kills the
# process with SIGFPE, in TensorFlow's graph optimizer).
MIN_BRANCH_RAYS = 256


def render_levels(mlp, model_config, rays: dict[str, tf.Tensor],
                  randomized: bool, seeds=None, step=None,
                  return_samples: bool = False, need_rgb: bool = True,
                  coarse_rgb: bool = True,
                  num_samples: int | None = None) -> list[dict[str, tf.Tensor]]:
  """Renders every level of the hierarchy.

  Args:
    mlp: a :class:`regnerf_tf.layers.MipNerfMLP`.
    model_config: :class:`regnerf_tf.configs.ModelConfig`.
    rays: dict of ray fields, leading shape [N].
    randomized: jitter the samples and add density noise (needs ``seeds``).
    seeds: [2 · levels, 2] stateless seeds, two per level (samples, noise).
    step: 1-based training step for the MLP's frequency mask, or None.
    return_samples: also return the per-sample MLP outputs.
    need_rgb: False skips the colour branch (``rgb`` is then zero; depth,
      acc and weights are exact).
    coarse_rgb: False skips the colour branch on every level but the last.
    num_samples: intervals per level; None: ``model_config.num_samples``.

  Returns:
    One dict per level (coarse first) with ``rgb`` [N, 3], ``depth`` [N],
    ``acc`` [N], ``weights`` [N, S] and ``t_vals`` [N, S + 1]; with
    ``return_samples`` also ``density`` [N, S] and ``sample_rgb`` [N, S, 3].
  """
  m = model_config
  rays = {k: tf.cast(v, tf.float32) for k, v in rays.items()
          if k in RAY_FIELDS}
  outputs = []
  for level in range(m.num_levels):
    sample_seed = seeds[2 * level] if randomized else None
    noise_seed = seeds[2 * level + 1] if randomized else None
    t_vals = level_fenceposts(m, rays, outputs[-1] if outputs else None,
                              randomized, sample_seed, num_samples)
    means, covs = mip.cast_rays(t_vals, rays["origins"], rays["directions"],
                                rays["radii"], m.ray_shape)
    colour = need_rgb and (coarse_rgb or level == m.num_levels - 1)
    rgb, density = mlp(means, covs, rays["viewdirs"], training=randomized,
                       seed=noise_seed, step=step, density_only=not colour)
    out = rendering.volumetric_rendering(rgb, density, t_vals,
                                         rays["directions"],
                                         m.white_background)
    out["t_vals"] = t_vals
    if return_samples:
      out["density"] = density
      out["sample_rgb"] = rgb
    outputs.append(out)
  return outputs


def level_fenceposts(model_config, rays: dict[str, tf.Tensor],
                     previous: dict[str, tf.Tensor] | None, randomized: bool,
                     seed=None, num_samples: int | None = None) -> tf.Tensor:
  """A level's fenceposts [N, S + 1]: stratified between near and far on the
  first level (``previous`` None), resampled from the previous level's
  output (its ``t_vals`` and ``weights``) on the next.

  ``num_samples``: intervals per level; None: ``model_config.num_samples``.
  """
  m = model_config
  if previous is None:
    return sampling.stratified_fenceposts(
        rays["near"], rays["far"], num_samples or m.num_samples, randomized,
        seed, lindisp=m.lindisp)
  return sampling.resample_along_rays(
      previous["t_vals"], previous["weights"], randomized, seed,
      resample_padding=m.resample_padding, stop_grad=m.stop_level_grad)


def render_in_chunks(render_fn, rays: dict[str, tf.Tensor], chunk: int,
                     branches: int = 1) -> dict[str, tf.Tensor]:
  """Renders flat rays [N, ...] in fixed-size chunks inside a graph.

  Args:
    render_fn: maps a ray dict with leading size n (a chunk or a part of
      one) to {"rgb": [n, 3], "depth": [n], "acc": [n]}.
    rays: float32 ray fields with leading dimension N (may be 0).
    chunk: rays per chunk.
    branches: parts each chunk is cut into (:func:`branch_bounds`),
      independent branches of the graph that run side by side.

  Returns:
    rgb [N, 3], depth [N], acc [N].
  """
  n = tf.shape(rays["origins"])[0]
  num_chunks = (n + chunk - 1) // chunk
  pad = num_chunks * chunk - n
  batched = {}
  for k, width in RAY_WIDTHS.items():
    filler = tf.tile(tf.constant([PAD_RAY[k]], tf.float32), [pad, 1])
    padded = tf.concat([tf.cast(rays[k], tf.float32), filler], axis=0)
    batched[k] = tf.reshape(padded, [num_chunks, chunk, width])

  cuts = branch_bounds(chunk, branches)

  def one_chunk(part):
    outs = [render_fn({k: v[a:b] for k, v in part.items()})
            for a, b in zip(cuts[:-1], cuts[1:])]
    out = {k: tf.concat([o[k] for o in outs], 0) for k in ("rgb", "depth",
                                                            "acc")}
    return {"rgb": tf.reshape(out["rgb"], [chunk, 3]),
            "depth": tf.reshape(out["depth"], [chunk]),
            "acc": tf.reshape(out["acc"], [chunk])}

  out = tf.map_fn(
      one_chunk, batched, parallel_iterations=1,
      fn_output_signature={"rgb": tf.TensorSpec([chunk, 3], tf.float32),
                           "depth": tf.TensorSpec([chunk], tf.float32),
                           "acc": tf.TensorSpec([chunk], tf.float32)})
  return {"rgb": tf.reshape(out["rgb"], [-1, 3])[:n],
          "depth": tf.reshape(out["depth"], [-1])[:n],
          "acc": tf.reshape(out["acc"], [-1])[:n]}


def padded_chunk(n: int, chunk: int, min_bucket: int = MIN_RENDER_BUCKET) -> int:
  """The size a piece of ``n`` ≤ ``chunk`` rays is padded to for rendering.

  ``chunk`` halved while the half still holds ``n`` rays and is at least
  ``min_bucket``: a short piece (the last one of an image, or a subsampled
  view) costs at most twice its rays (or ``min_bucket``) instead of a whole
  chunk, and at most log2(chunk / min_bucket) + 1 shapes are ever traced.
  """
  size = chunk
  while size // 2 >= max(n, min_bucket):
    size //= 2
  return size


def side_by_side(render_fn: Callable[[dict[str, tf.Tensor]], dict],
                 jit_compile: bool = False) -> Callable[[list], list]:
  """A compiled function of a list of flat ray dicts that renders each with
  ``render_fn``, all in one graph.

  The parts are independent branches of that graph, which TensorFlow runs at
  the same time on its inter-op threads, each op on its intra-op threads: on
  2 cores, two parts of a chunk rendered 1.13-1.16x faster than the whole
  chunk at once with TensorFlow's threads, and 1.86x faster under training's
  1 intra-op : 2 inter-op threads (benchmarks/RESULTS.md, "The execution path
  per machine"). :func:`render_chunked` calls it.
  """
  def render_parts(parts):
    return [render_fn(part) for part in parts]
  return tf.function(render_parts, jit_compile=jit_compile,
                     reduce_retracing=True)


def branch_bounds(n: int, branches: int) -> list[int]:
  """Where a piece of ``n`` rays is cut into at most ``branches`` parts of
  nearly equal size, each of at least :data:`MIN_BRANCH_RAYS` rays (one part
  when ``n`` is smaller than two of them): [0, ..., n]."""
  parts = max(1, min(branches, n // MIN_BRANCH_RAYS))
  return [n * i // parts for i in range(parts + 1)]


def render_chunked(render_parts: Callable[[list], list],
                   rays: dict[str, Any], chunk: int,
                   branches: int = 1) -> dict[str, tf.Tensor]:
  """Eager rendering of any number of rays, ``chunk`` rays at a time.

  Args:
    render_parts: a compiled function of a list of flat ray dicts [n_i, ...]
      returning one dict per part, {"rgb": [n_i, 3], "depth": [n_i],
      "acc": [n_i]} and any other per-ray outputs [n_i, ...]
      (:func:`side_by_side`).
    rays: dict of ray fields with leading shape [...]; flattened here.
    chunk: rays per piece.
    branches: parts each piece is split into, rendered side by side
      (:func:`branch_bounds`); the result does not depend on it beyond
      float rounding.

  Returns:
    rgb [..., 3], depth [...], acc [...] (and the other outputs [..., ...]).
  """
  lead = tf.shape(rays["origins"])[:-1]
  flat = {k: tf.reshape(tf.convert_to_tensor(rays[k], tf.float32),
                        [-1, rays[k].shape[-1]]) for k in RAY_FIELDS}
  total = int(flat["origins"].shape[0])
  pieces = {}
  # No rays: one bucket of padding rays, sliced to nothing, gives every
  # output its empty shape.
  for start in range(0, max(total, 1), chunk):
    part = {k: v[start:start + chunk] for k, v in flat.items()}
    n = int(part["origins"].shape[0])
    size = padded_chunk(n, chunk)
    if n == 0:
      part = {k: tf.tile(tf.constant([PAD_RAY[k]], tf.float32), [size, 1])
              for k in part}
    elif n < size:  # pad a short last chunk to its bucket (few traced shapes)
      part = {k: tf.concat([v, tf.repeat(v[-1:], size - n, 0)], 0)
              for k, v in part.items()}
    cuts = branch_bounds(size, branches)
    outs = render_parts([{k: v[a:b] for k, v in part.items()}
                         for a, b in zip(cuts[:-1], cuts[1:])])
    for k in outs[0]:
      pieces.setdefault(k, []).append(tf.concat([o[k] for o in outs], 0)[:n])
  result = {}
  for k, v in pieces.items():
    value = tf.concat(v, 0)
    result[k] = tf.reshape(value, tf.concat([lead, tf.shape(value)[1:]], 0))
  return result
