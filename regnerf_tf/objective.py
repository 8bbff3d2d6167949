"""The loss recipe: which terms a training batch is scored by, and with what weights.

One (per-replica) batch holds observed rays with their colours and, when the
config uses them, rays of patches seen from unobserved poses. The total is

  L = L_rgb^fine + c·L_rgb^coarse
      + λ_TV(step)·TV^fine + λ_TVc(step)·TV^coarse
      + λ_app·NLL_prior(fine patch colours)
      + λ_occ·occlusion(fine densities of the observed rays)

with the release's scales (reference §5); the last term and the frequency mask
are FreeNeRF's (reference §7.5, off by default). Near/far of every ray set are
annealed by the step (sample-space annealing). The terms themselves are the
pure functions of :mod:`regnerf_tf.losses`; rendering is the model's
(:meth:`regnerf_tf.model.RegNeRF.render_rays`); what is done with the total
(gradients, replicas, clipping, skipping) is :mod:`regnerf_tf.optimization`.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import losses, mip, sampling


def anneal(rays: dict[str, tf.Tensor], step, reg_config) -> dict[str, Any]:
  """``rays`` with near/far annealed at 1-based ``step`` (unchanged when
  ``reg.anneal_steps`` is 0)."""
  r = reg_config
  if r.anneal_steps <= 0:
    return rays
  near, far = sampling.anneal_near_far(
      rays["near"], rays["far"], step, r.anneal_steps,
      r.anneal_start_fraction, r.anneal_mid_fraction, r.anneal_mode)
  return {**rays, "near": near, "far": far}


def tv_weights(config, step) -> tuple[tf.Tensor, tf.Tensor]:
  """(fine, coarse) depth-smoothness weights at 1-based ``step``."""
  r = config.reg
  fine = losses.depth_tv_weight(step, r.depth_tv_weight_start,
                                r.depth_tv_weight_end, r.depth_tv_decay_steps)
  if config.release_compat:
    coarse = tf.constant(r.depth_tv_coarse_mult, tf.float32)  # P6
  else:
    coarse = r.depth_tv_coarse_mult * fine
  return fine, coarse


def check_batch(config, data) -> None:
  """Refuses (at trace time) a batch that is not a training-stream batch."""
  if not isinstance(data, dict) or "rays" not in data or "rgb" not in data:
    found = (sorted(data) if isinstance(data, dict)
             else type(data).__name__)
    raise errors.InputError(
        "RegNeRF.fit trains on ray batches {'rays', 'rgb'[, 'patch_rays']}; "
        f"received batches with {found}. View records (a TFDS split or "
        "regnerf_tf.scenes records) become that stream with "
        "regnerf_tf.data.training_stream(split, config): "
        "model.fit(regnerf_tf.data.training_stream(split, model.config)).")
  if config.uses_patches and "patch_rays" not in data:
    raise errors.InputError(
        "The config uses unobserved-view patches (depth smoothness or the "
        "appearance prior) but the batches hold no 'patch_rays', so those "
        "terms would be zero on every step. Build the stream with "
        "regnerf_tf.data.training_stream(split, config), or switch the "
        "patch terms off (train.patch_batch_size=0).")


def term_names(config) -> list[str]:
  """The logged terms :func:`compute_losses` returns for ``config`` (FreeNeRF's
  only when they are on)."""
  names = ["loss", "color_loss", "psnr", "psnr_coarse", "depth_tv",
           "appearance", "tv_weight", "near", "far"]
  if config.occlusion_enabled:
    names.append("occlusion")
  if config.reg.freq_reg:
    names.append("freq_mask_fraction")
  return names


def compute_losses(model, data, step, seed) -> dict[str, tf.Tensor]:
  """All loss terms of one (per-replica) batch, unscaled.

  Args:
    model: a :class:`regnerf_tf.model.RegNeRF` (its config, ``render_rays``,
      patch prior and network).
    data: batch dict: ``rays``, ``rgb`` and optionally ``patch_rays``.
    step: 1-based step (scalar tensor).
    seed: shape-[2] int tensor for this step and replica.

  Returns:
    dict with ``loss`` (the total) and each term of :func:`term_names`.
  """
  cfg = model.config
  ray_seed, patch_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  rays = anneal(data["rays"], step, cfg.reg)
  outs = model.render_rays(rays, training=True, seed=ray_seed, step=step,
                           return_samples=cfg.occlusion_enabled)
  target = tf.cast(data["rgb"], tf.float32)
  level_losses = [losses.color_loss(o["rgb"], target) for o in outs]
  total = level_losses[-1] + cfg.reg.coarse_loss_mult * tf.add_n(
      [tf.zeros([])] + level_losses[:-1])
  terms = {
      "color_loss": level_losses[-1],
      "psnr": losses.mse_to_psnr(level_losses[-1] / 3.0),
      "psnr_coarse": losses.mse_to_psnr(level_losses[0] / 3.0),
      "near": tf.reduce_mean(rays["near"]),
      "far": tf.reduce_mean(rays["far"]),
  }
  tv_term = tf.zeros([])
  app_term = tf.zeros([])
  fine_w, coarse_w = tv_weights(cfg, step)
  if cfg.uses_patches and "patch_rays" in data:
    s = cfg.reg.patch_size
    patch_rays = anneal(data["patch_rays"], step, cfg.reg)
    # Patch colours are used only by the appearance term.
    pouts = model.render_rays(patch_rays, training=True, seed=patch_seed,
                              step=step, need_rgb=cfg.appearance_enabled,
                              num_samples=cfg.reg.patch_samples or None)
    if cfg.depth_tv_enabled:
      tvs = [losses.depth_tv(tf.reshape(o["depth"], [-1, s, s]),
                             tf.reshape(o["acc"], [-1, s, s]),
                             cfg.reg.depth_tv_acc_weighting) for o in pouts]
      tv_term = tvs[-1]
      total = total + fine_w * tvs[-1] + coarse_w * tf.add_n(
          [tf.zeros([])] + tvs[:-1])
    if cfg.appearance_enabled:
      patches = tf.reshape(pouts[-1]["rgb"], [-1, s, s, 3])
      nll = tf.cast(model.patch_prior.patch_nll(patches), tf.float32)
      if cfg.reg.appearance_hinge:
        nll = tf.nn.relu(nll - cfg.reg.appearance_nll_floor)
      app_term = tf.reduce_mean(nll)
      total = total + cfg.reg.appearance_weight * app_term
  if cfg.occlusion_enabled:
    r = cfg.reg
    terms["occlusion"] = losses.occlusion_loss(
        outs[-1]["density"],
        outs[-1]["sample_rgb"] if r.occlusion_wb_prior else None,
        r.occlusion_range, r.occlusion_wb_prior, r.occlusion_wb_range)
    total = total + r.occlusion_weight * terms["occlusion"]
  if cfg.reg.freq_reg:
    terms["freq_mask_fraction"] = tf.reduce_mean(mip.freq_reg_mask(
        model.mlp.point_features, step, cfg.freq_reg_end_step))
  terms.update({"loss": total, "depth_tv": tv_term, "appearance": app_term,
                "tv_weight": fine_w})
  return terms
