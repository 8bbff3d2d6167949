"""The volume renderer: rays → samples → MLP → colour, depth and opacity.

:func:`render_levels` is mip-NeRF's hierarchical renderer (reference §2):
stratified fenceposts on the first level, inverse-CDF resampling of the
previous level's weights on the next, conical-frustum Gaussians encoded by the
MLP, alpha compositing. :meth:`regnerf_tf.model.RegNeRF.render_rays` calls it
with the model's network and config.

Rendering many rays is done in fixed-size chunks, in one place for every user:

* :func:`render_chunked` (eager; evaluation, videos, the training preview):
  pieces of ``chunk`` rays, a short last piece padded to a power-of-two bucket
  (:func:`padded_chunk`), so that few shapes are ever traced;
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


def render_in_chunks(render_fn, rays: dict[str, tf.Tensor],
                     chunk: int) -> dict[str, tf.Tensor]:
  """Renders flat rays [N, ...] in fixed-size chunks inside a graph.

  Args:
    render_fn: maps a ray dict with leading size ``chunk`` to
      {"rgb": [chunk, 3], "depth": [chunk], "acc": [chunk]}.
    rays: float32 ray fields with leading dimension N (may be 0).
    chunk: rays per chunk.

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

  def one_chunk(part):
    out = render_fn(part)
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


def render_chunked(render_fn: Callable[[dict[str, tf.Tensor]], dict],
                   rays: dict[str, Any], chunk: int) -> dict[str, tf.Tensor]:
  """Eager rendering of any number of rays, ``chunk`` rays at a time.

  Args:
    render_fn: a (compiled) function of a flat ray dict [n, ...] returning
      {"rgb": [n, 3], "depth": [n], "acc": [n]} (and any other per-ray
      outputs [n, ...], returned the same way).
    rays: dict of ray fields with leading shape [...]; flattened here.
    chunk: rays per call of ``render_fn``.

  Returns:
    rgb [..., 3], depth [...], acc [...] (and the other outputs [..., ...]).
  """
  lead = tf.shape(rays["origins"])[:-1]
  flat = {k: tf.reshape(tf.convert_to_tensor(rays[k], tf.float32),
                        [-1, rays[k].shape[-1]]) for k in RAY_FIELDS}
  total = int(flat["origins"].shape[0])
  pieces = {}
  for start in range(0, total, chunk):
    part = {k: v[start:start + chunk] for k, v in flat.items()}
    n = int(part["origins"].shape[0])
    size = padded_chunk(n, chunk)
    if n < size:  # pad a short last chunk to its bucket (few traced shapes)
      part = {k: tf.concat([v, tf.repeat(v[-1:], size - n, 0)], 0)
              for k, v in part.items()}
    out = render_fn(part)
    for k, v in out.items():
      pieces.setdefault(k, []).append(v[:n])
  result = {}
  for k, v in pieces.items():
    value = tf.concat(v, 0)
    result[k] = tf.reshape(value, tf.concat([lead, tf.shape(value)[1:]], 0))
  return result
