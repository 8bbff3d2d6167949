"""Where along each ray the MLP is evaluated, and sample-space annealing.

Randomness is stateless: every random function takes ``seed``, a shape-[2]
integer tensor (derive it from (run seed, step, replica) with
``tf.random.experimental.stateless_fold_in``), so that a compiled training step
draws the same numbers on replay and different numbers on every replica.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from regnerf_tf import errors

_EPS = float(np.finfo(np.float32).eps)
ANNEAL_MODES = ("release", "paper")


def _require_seed(randomized: bool, seed):
  if randomized and seed is None:
    raise errors.InputError("randomized sampling needs a seed: pass a shape-[2] "
                     "integer tensor (stateless randomness).")


def stratified_fenceposts(near, far, num_samples: int, randomized: bool,
                          seed=None, lindisp: bool = False) -> tf.Tensor:
  """``num_samples + 1`` fenceposts between near and far (the coarse level).

  The fenceposts are evenly spaced in t (or in 1/t with ``lindisp``). In
  training each fencepost is drawn independently and uniformly between the
  midpoints to its neighbours (the first and last stay inside [near, far]).

  Args:
    near, far: [..., 1] (or broadcastable) per-ray bounds, near < far.
    num_samples: number of intervals S.
    randomized: jitter the fenceposts (training) or not (evaluation).
    seed: shape-[2] int tensor, required when ``randomized``.
    lindisp: space the fenceposts linearly in disparity.

  Returns:
    [..., S + 1] sorted t-values in [near, far].
  """
  _require_seed(randomized, seed)
  near = tf.convert_to_tensor(near, tf.float32)
  far = tf.convert_to_tensor(far, tf.float32)
  steps = tf.linspace(0.0, 1.0, num_samples + 1)
  if lindisp:
    t_vals = 1.0 / (1.0 / near * (1.0 - steps) + 1.0 / far * steps)
  else:
    t_vals = near * (1.0 - steps) + far * steps
  if randomized:
    mids = 0.5 * (t_vals[..., 1:] + t_vals[..., :-1])
    upper = tf.concat([mids, t_vals[..., -1:]], axis=-1)
    lower = tf.concat([t_vals[..., :1], mids], axis=-1)
    u = tf.random.stateless_uniform(tf.shape(t_vals), seed=seed)
    t_vals = lower + (upper - lower) * u
  return t_vals


def blur_pool_weights(weights, padding: float = 0.01) -> tf.Tensor:
  """mip-NeRF's smoothing of the coarse weights before resampling.

  Pads with the first and last weight, takes the max of adjacent pairs, then the
  mean of adjacent pairs, and adds ``padding`` to every entry.

  Args:
    weights: [..., S].

  Returns:
    [..., S].
  """
  padded = tf.concat([weights[..., :1], weights, weights[..., -1:]], axis=-1)
  maxed = tf.maximum(padded[..., :-1], padded[..., 1:])
  blurred = 0.5 * (maxed[..., :-1] + maxed[..., 1:])
  return blurred + padding


def sample_piecewise_constant_pdf(bins, weights, num_samples: int,
                                  randomized: bool, seed=None) -> tf.Tensor:
  """Inverse-CDF samples from the histogram ``weights`` over ``bins``.

  Weights are padded so that they sum to at least 1e-5 (a ray with no weight
  samples uniformly). In training, sample k uses u_k = k/n + U[0, 1/n − ε);
  in evaluation u = linspace(0, 1 − ε, n). Each u is mapped linearly inside the
  CDF bin that contains it.

  Args:
    bins: [..., B + 1] sorted bin edges.
    weights: [..., B] non-negative.
    num_samples: n.
    randomized: stratified random u (training) or fixed u (evaluation).
    seed: shape-[2] int tensor, required when ``randomized``.

  Returns:
    [..., n] sorted samples in [bins[..., 0], bins[..., -1]].
  """
  _require_seed(randomized, seed)
  bins = tf.convert_to_tensor(bins, tf.float32)
  weights = tf.convert_to_tensor(weights, tf.float32)
  eps = 1e-5
  weight_sum = tf.reduce_sum(weights, axis=-1, keepdims=True)
  padding = tf.maximum(0.0, eps - weight_sum)
  num_bins = tf.cast(tf.shape(weights)[-1], tf.float32)
  weights = weights + padding / num_bins
  weight_sum = weight_sum + padding
  pdf = weights / weight_sum
  cdf = tf.minimum(1.0, tf.cumsum(pdf[..., :-1], axis=-1))
  batch_shape = tf.shape(cdf)[:-1]
  ones_shape = tf.concat([batch_shape, [1]], axis=0)
  cdf = tf.concat([tf.zeros(ones_shape), cdf, tf.ones(ones_shape)], axis=-1)

  sample_shape = tf.concat([batch_shape, [num_samples]], axis=0)
  if randomized:
    step = 1.0 / num_samples
    u = tf.range(num_samples, dtype=tf.float32) * step
    u = u + tf.random.stateless_uniform(sample_shape, seed=seed,
                                        maxval=step - _EPS)
    u = tf.minimum(u, 1.0 - _EPS)
  else:
    u = tf.broadcast_to(tf.linspace(0.0, 1.0 - _EPS, num_samples),
                        sample_shape)

  # Index of the last CDF entry ≤ u (the left edge of u's bin) and the next one.
  num_edges = tf.shape(cdf)[-1]
  flat_cdf = tf.reshape(cdf, [-1, num_edges])
  flat_u = tf.reshape(u, [-1, num_samples])
  above = tf.searchsorted(flat_cdf, flat_u, side="right")
  above = tf.reshape(above, sample_shape)
  below = tf.maximum(above - 1, 0)
  above = tf.minimum(above, num_edges - 1)
  cdf_lo = tf.gather(cdf, below, batch_dims=-1)
  cdf_hi = tf.gather(cdf, above, batch_dims=-1)
  bins_lo = tf.gather(bins, below, batch_dims=-1)
  bins_hi = tf.gather(bins, above, batch_dims=-1)
  denom = cdf_hi - cdf_lo
  frac = tf.where(denom > 0, (u - cdf_lo) / tf.where(denom > 0, denom, 1.0),
                  tf.zeros_like(u))
  frac = tf.clip_by_value(frac, 0.0, 1.0)
  return bins_lo + frac * (bins_hi - bins_lo)


def resample_along_rays(t_vals, weights, randomized: bool, seed=None,
                        resample_padding: float = 0.01,
                        stop_grad: bool = True) -> tf.Tensor:
  """Fine-level fenceposts drawn from the blurred coarse weights.

  Args:
    t_vals: [..., S + 1] coarse fenceposts.
    weights: [..., S] coarse rendering weights.
    randomized: stratified random (training) or deterministic (evaluation).
    seed: shape-[2] int tensor, required when ``randomized``.
    resample_padding: added to the blurred weights (mip-NeRF: 0.01).
    stop_grad: block gradients through the new t-values (mip-NeRF default).

  Returns:
    [..., S + 1] sorted fine fenceposts inside [t_vals[0], t_vals[-1]].
  """
  blurred = blur_pool_weights(weights, resample_padding)
  new_t = sample_piecewise_constant_pdf(
      t_vals, blurred, t_vals.shape[-1], randomized, seed)
  if stop_grad:
    new_t = tf.stop_gradient(new_t)
  return new_t


def anneal_near_far(near, far, step, num_steps: int, start_fraction: float,
                    mid_fraction: float = 0.5, mode: str = "release"
                    ) -> tuple[tf.Tensor, tf.Tensor]:
  """Sample-space annealing: start with a short interval around a midpoint.

  mid = near + m·(far − near), with m = ``mid_fraction``. The interval is
  scaled about ``mid`` by a factor η(step):

  * ``"release"`` (the official code): η = p + (1 − p)·min(step/N, 1), i.e. the
    ends move linearly from mid + p·(end − mid) to the full range;
  * ``"paper"`` (the paper's formula): η = min(max(step/N, p), 1).

  with p = ``start_fraction`` and N = ``num_steps``. ``num_steps ≤ 0`` disables
  annealing.

  Args:
    near, far: [...] tensors.
    step: scalar training step (use ``optimizer.iterations`` so it survives
      a resume).
    num_steps: N.
    start_fraction: p ∈ [0, 1].
    mid_fraction: m ∈ [0, 1].
    mode: "release" or "paper".

  Returns:
    (annealed near, annealed far), same shapes as the inputs.
  """
  if mode not in ANNEAL_MODES:
    raise errors.InputError(f"mode must be one of {ANNEAL_MODES}; received {mode!r}.")
  near = tf.convert_to_tensor(near, tf.float32)
  far = tf.convert_to_tensor(far, tf.float32)
  if num_steps <= 0:
    return near, far
  progress = tf.minimum(tf.cast(step, tf.float32) / float(num_steps), 1.0)
  p = float(start_fraction)
  if mode == "release":
    eta = p + (1.0 - p) * progress
  else:
    eta = tf.minimum(tf.maximum(progress, p), 1.0)
  mid = near + mid_fraction * (far - near)
  return mid + eta * (near - mid), mid + eta * (far - mid)
