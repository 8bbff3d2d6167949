"""mip-NeRF's Gaussian approximation of ray segments and its encodings.

A ray segment [t0, t1] is a conical frustum (cone rays, DTU) or a cylinder
(LLFF, in NDC). Each is replaced by a Gaussian with the same mean and covariance
(Barron et al., "Mip-NeRF", ICCV 2021, eq. 7 for the stable cone form), and the
Gaussian is encoded by the expected value of sinusoids of growing frequency
(integrated positional encoding, IPE).

All math runs in float32, whatever the model's compute dtype.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from regnerf_tf import errors

RAY_SHAPES = ("cone", "cylinder")
_EPS = float(np.finfo(np.float32).eps)


def safe_sin(x: tf.Tensor) -> tf.Tensor:
  """sin(x), with arguments of magnitude ≥ 100π reduced modulo 100π first.

  Small arguments are left untouched (reducing them would cost float32 precision);
  large ones are brought into a range where sin is accurate on every device.
  """
  bound = 100.0 * math.pi
  # x − bound·⌊x / bound⌋ is floormod(x, bound); written out it avoids
  # TensorFlow's FloorMod kernel, which took 1–10 % of a training step's op
  # time on CPUs (benchmarks/profile.py).
  reduced = x - bound * tf.floor(x * (1.0 / bound))
  return tf.sin(tf.where(tf.abs(x) < bound, x, reduced))


def lift_gaussian(directions, t_mean, t_var, r_var) -> tuple[tf.Tensor, tf.Tensor]:
  """Lifts a 1-D Gaussian along a ray to a 3-D Gaussian with diagonal covariance.

  mean = d·t_mean; cov_diag = t_var·d² + r_var·(1 − d²/||d||²).

  Args:
    directions: [..., 3] unnormalised ray directions.
    t_mean, t_var, r_var: [..., S].

  Returns:
    (mean offset from the origin [..., S, 3], diagonal covariance [..., S, 3]).
  """
  d = directions[..., None, :]
  mean = d * t_mean[..., None]
  d_sq = tf.square(d)
  d_norm_sq = tf.maximum(1e-10, tf.reduce_sum(d_sq, axis=-1, keepdims=True))
  cov_diag = t_var[..., None] * d_sq + r_var[..., None] * (1.0 - d_sq / d_norm_sq)
  return mean, cov_diag


def conical_frustum_to_gaussian(directions, t0, t1, base_radius,
                                stable: bool = True
                                ) -> tuple[tf.Tensor, tf.Tensor]:
  """Gaussian approximation of a conical frustum.

  The cone has its apex at the ray origin and radius ``base_radius·t`` at
  distance parameter t. With μ = (t0 + t1)/2, h = (t1 − t0)/2 and
  D = max(ε, 3μ² + h²), the stable form is

    t_mean = μ + 2μh²/D
    t_var  = h²/3 − (4/15)·h⁴·(12μ² − h²)/D²
    r_var  = r²·(μ²/4 + (5/12)·h² − (4/15)·h⁴/D).

  ``stable=False`` uses the textbook ratios of moments of t³ (loses precision when
  t1 ≈ t0; kept for testing).

  Args:
    directions: [..., 3] unnormalised directions.
    t0, t1: [..., S] segment ends, t0 ≤ t1.
    base_radius: [..., 1] cone radius at t = 1.
    stable: use the numerically stable form.

  Returns:
    (mean offset [..., S, 3], diagonal covariance [..., S, 3]).
  """
  if stable:
    mu = (t0 + t1) / 2.0
    hw = (t1 - t0) / 2.0
    mu_sq, hw_sq = tf.square(mu), tf.square(hw)
    denom = tf.maximum(_EPS, 3.0 * mu_sq + hw_sq)
    t_mean = mu + 2.0 * mu * hw_sq / denom
    t_var = hw_sq / 3.0 - (4.0 / 15.0) * tf.square(hw_sq) * (
        12.0 * mu_sq - hw_sq) / tf.square(denom)
    r_var = tf.square(base_radius) * (
        mu_sq / 4.0 + (5.0 / 12.0) * hw_sq
        - (4.0 / 15.0) * tf.square(hw_sq) / denom)
  else:
    c3 = t1**3 - t0**3
    t_mean = 3.0 * (t1**4 - t0**4) / (4.0 * c3)
    t_mosq = 3.0 * (t1**5 - t0**5) / (5.0 * c3)
    t_var = t_mosq - tf.square(t_mean)
    r_var = tf.square(base_radius) * 3.0 * (t1**5 - t0**5) / (20.0 * c3)
  return lift_gaussian(directions, t_mean, t_var, r_var)


def cylinder_to_gaussian(directions, t0, t1, radius
                         ) -> tuple[tf.Tensor, tf.Tensor]:
  """Gaussian approximation of a cylinder segment of constant ``radius``.

  t_mean = (t0 + t1)/2, t_var = (t1 − t0)²/12, r_var = radius²/4.

  Args:
    directions: [..., 3]; t0, t1: [..., S]; radius: [..., 1].

  Returns:
    (mean offset [..., S, 3], diagonal covariance [..., S, 3]).
  """
  t_mean = (t0 + t1) / 2.0
  t_var = tf.square(t1 - t0) / 12.0
  r_var = tf.square(radius) / 4.0 * tf.ones_like(t_mean)
  return lift_gaussian(directions, t_mean, t_var, r_var)


def cast_rays(t_vals, origins, directions, radii, ray_shape: str
              ) -> tuple[tf.Tensor, tf.Tensor]:
  """Gaussians of the segments between consecutive fenceposts.

  Args:
    t_vals: [..., S + 1] sorted fenceposts.
    origins, directions: [..., 3].
    radii: [..., 1].
    ray_shape: "cone" or "cylinder".

  Returns:
    (means [..., S, 3] in world space, diagonal covariances [..., S, 3]).
  """
  if ray_shape not in RAY_SHAPES:
    raise errors.InputError(f"ray_shape must be one of {RAY_SHAPES}; "
                     f"received {ray_shape!r}.")
  t0, t1 = t_vals[..., :-1], t_vals[..., 1:]
  fn = (conical_frustum_to_gaussian if ray_shape == "cone"
        else cylinder_to_gaussian)
  means, covs = fn(directions, t0, t1, radii)
  return means + origins[..., None, :], covs


def expected_sin(x, x_var) -> tf.Tensor:
  """E[sin(z)] for z ~ N(x, x_var): exp(−x_var/2)·sin(x). Same shapes in and out."""
  return tf.exp(-0.5 * x_var) * safe_sin(x)


def integrated_pos_enc(means, covs_diag, min_deg: int = 0,
                       max_deg: int = 16,
                       append_identity: bool = False) -> tf.Tensor:
  """Integrated positional encoding of diagonal Gaussians.

  For degrees l in [min_deg, max_deg): y = mean·2^l, v = var·4^l; features
  e^{−v/2}·sin(y) and e^{−v/2}·sin(y + π/2). Layout: all sine entries ordered
  [l = min_deg: x, y, z; l + 1: x, y, z; …], then all cosine entries in the same
  order. With ``append_identity`` the raw means come first (FreeNeRF's 99-d
  input for the defaults), as in :func:`pos_enc`.

  Args:
    means: [..., 3]; covs_diag: [..., 3].

  Returns:
    [..., 3·append_identity + 2·3·(max_deg − min_deg)] (96 for the defaults).
  """
  scales = tf.constant([2.0**i for i in range(min_deg, max_deg)], tf.float32)
  shape = tf.concat([tf.shape(means)[:-1], [-1]], axis=0)
  y = tf.reshape(means[..., None, :] * scales[:, None], shape)
  y_var = tf.reshape(covs_diag[..., None, :] * tf.square(scales)[:, None], shape)
  encoded = expected_sin(tf.concat([y, y + 0.5 * math.pi], axis=-1),
                         tf.concat([y_var, y_var], axis=-1))
  if append_identity:
    return tf.concat([means, encoded], axis=-1)
  return encoded


def pos_enc(x, min_deg: int = 0, max_deg: int = 4,
            append_identity: bool = True) -> tf.Tensor:
  """Plain positional encoding: [x, sin(x·2^l)…, cos(x·2^l)…].

  Sine block then cosine block, each ordered by degree then coordinate; with
  ``append_identity`` the input comes first (27 features for 3-D input, degrees
  0–3).

  Args:
    x: [..., C].

  Returns:
    [..., C·(2·(max_deg − min_deg) + append_identity)].
  """
  scales = tf.constant([2.0**i for i in range(min_deg, max_deg)], tf.float32)
  shape = tf.concat([tf.shape(x)[:-1], [-1]], axis=0)
  xb = tf.reshape(x[..., None, :] * scales[:, None], shape)
  four_feat = safe_sin(tf.concat([xb, xb + 0.5 * math.pi], axis=-1))
  if append_identity:
    return tf.concat([x, four_feat], axis=-1)
  return four_feat


def freq_reg_mask(length: int, step, end_step: int) -> tf.Tensor:
  """FreeNeRF's frequency-regularisation visibility mask, for our layout.

  The encoding (:func:`integrated_pos_enc` or :func:`pos_enc`) is laid out as
  [identity (3, optional), sin block (D degrees × xyz), cos block (D × xyz)],
  so ``length`` is 3 + 6·D with the identity (99 for IPE degrees 0–15 with the
  mean appended, 27 for the view encoding) or 6·D without. The mask opens by
  *frequency group*: the identity first, then degree l = 0, 1, … with the sine
  and the cosine entries of a degree sharing one value. With G groups,
  t = ``step`` and T = ``end_step``:

    ptr = min(G·t/T + 1, G); group g gets clip(ptr − g, 0, 1)

  (groups below ⌊ptr⌋ are open, group ⌊ptr⌋ gets the fractional part, the rest
  are closed), clipped to [1e-8, 1 − 1e-8]; from t ≥ T on, the mask is all
  ones. This is FreeNeRF's rule (ptr = (L/3)·t/T + 1 over triples) with one
  group per degree instead of one triple: FreeNeRF's triples over this same
  layout would open every sine before any cosine.

  Args:
    length: L, the encoding length (a multiple of 3).
    step: scalar (int or tensor), the training step t.
    end_step: T (Python int); T <= 0 gives all ones.

  Returns:
    float32 [L].
  """
  if length <= 0 or length % 3:
    raise errors.InputError("freq_reg_mask: length must be a positive "
                            f"multiple of 3; received {length}.")
  identity = (length // 3) % 2 == 1
  degrees = (length - 3 * identity) // 6
  groups = degrees + int(identity)
  ones = tf.ones([length], tf.float32)
  if end_step <= 0:
    return ones
  t = tf.cast(step, tf.float32)
  ptr = tf.minimum(float(groups) * t / float(end_step) + 1.0, float(groups))
  value = tf.clip_by_value(ptr - tf.range(groups, dtype=tf.float32), 0.0, 1.0)
  value = tf.clip_by_value(value, 1e-8, 1.0 - 1e-8)
  per_degree = tf.repeat(value[int(identity):], 3)
  parts = [tf.repeat(value[:1], 3)] if identity else []
  mask = tf.concat(parts + [per_degree, per_degree], axis=0)
  return tf.where(t >= float(end_step), ones, mask)
