"""Volume rendering: alpha compositing of per-sample colour and density.

For sample i on interval [t_i, t_{i+1}] with density σ_i:
  δ_i = (t_{i+1} − t_i)·||d||      (d unnormalised, so δ is a metric length)
  α_i = 1 − exp(−σ_i δ_i)
  T_i = exp(−Σ_{j<i} σ_j δ_j)
  w_i = α_i T_i
rgb = Σ w_i c_i (+ (1 − acc) on a white background), acc = Σ w_i, and the
expected depth Σ w_i t̄_i / acc clamped to the sampled range.

Everything here runs in float32.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

_EPS = float(np.finfo(np.float32).eps)


def compute_alpha_weights(density, t_vals, directions
                          ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Compositing weights of the samples along each ray.

  Args:
    density: [..., S] non-negative σ.
    t_vals: [..., S + 1] fenceposts.
    directions: [..., 3] unnormalised ray directions.

  Returns:
    (weights [..., S], alpha [..., S], transmittance before each sample [..., S]).
  """
  density = tf.cast(density, tf.float32)
  deltas = (t_vals[..., 1:] - t_vals[..., :-1]) * tf.norm(
      directions[..., None, :], axis=-1)
  density_delta = density * deltas
  alpha = -tf.math.expm1(-density_delta)  # 1 − e^{−x}, exact for small x
  # Exclusive cumulative sum: transmittance before sample i.
  trans = tf.exp(-tf.cumsum(density_delta, axis=-1, exclusive=True))
  return alpha * trans, alpha, trans


def expected_depth(weights, t_vals) -> tf.Tensor:
  """Σ w_i t̄_i / max(acc, ε), clipped to [t_0, t_S] (t̄: interval midpoints).

  Args:
    weights: [..., S]; t_vals: [..., S + 1].

  Returns:
    [...] depth along the ray in units of t.
  """
  t_mids = 0.5 * (t_vals[..., :-1] + t_vals[..., 1:])
  acc = tf.reduce_sum(weights, axis=-1)
  depth = tf.reduce_sum(weights * t_mids, axis=-1) / tf.maximum(acc, _EPS)
  return tf.clip_by_value(depth, t_vals[..., 0], t_vals[..., -1])


def volumetric_rendering(rgb, density, t_vals, directions,
                         white_background: bool = False) -> dict[str, tf.Tensor]:
  """Composites samples into a pixel.

  Args:
    rgb: [..., S, 3] per-sample colour.
    density: [..., S] per-sample density.
    t_vals: [..., S + 1] fenceposts.
    directions: [..., 3] unnormalised directions.
    white_background: composite onto white instead of black.

  Returns:
    dict with ``rgb`` [..., 3], ``depth`` [...], ``acc`` [...], ``weights``
    [..., S].
  """
  rgb = tf.cast(rgb, tf.float32)
  weights, _, _ = compute_alpha_weights(density, t_vals, directions)
  acc = tf.reduce_sum(weights, axis=-1)
  comp_rgb = tf.reduce_sum(weights[..., None] * rgb, axis=-2)
  if white_background:
    comp_rgb = comp_rgb + (1.0 - acc[..., None])
  return {
      "rgb": comp_rgb,
      "depth": expected_depth(weights, t_vals),
      "acc": acc,
      "weights": weights,
  }
