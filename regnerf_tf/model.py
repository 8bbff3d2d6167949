"""RegNeRF as a ``keras.Model`` with a custom ``train_step``.

Batches are dicts of named fields:

* ``rays``: observed rays, a dict with ``origins`` [N, 3], ``directions``
  [N, 3] (unnormalised), ``viewdirs`` [N, 3], ``radii`` [N, 1], ``near``
  [N, 1], ``far`` [N, 1];
* ``rgb``: [N, 3] target colours;
* ``patch_rays`` (optional): rays of P unobserved-view patches of S×S pixels,
  the same fields with N = P·S·S in row-major order inside each patch.

``call`` renders rays deterministically and returns the last level's ``rgb``,
``depth`` and ``acc``. ``train_step`` renders both ray sets with stratified
jitter and density noise, and minimises

  L = L_rgb^fine + c·L_rgb^coarse
      + λ_TV(step)·TV^fine + λ_TVc(step)·TV^coarse
      + λ_app·NLL_prior(fine patch colours)
      + λ_occ·occlusion(fine densities of the observed rays)

with the release's scales (reference §5); the last term and the frequency mask
over the MLP's encodings are FreeNeRF's (reference §7.5, off by default).
Near/far of every ray set are annealed, and the frequency mask opened, by the
optimizer's step, so schedules survive a resume. Gradients are summed over
replicas, then clipped by value and by global norm.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import keras
import numpy as np
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import configs as configs_lib
from regnerf_tf import layers, losses, mip, rendering, sampling

RAY_FIELDS = ("origins", "directions", "viewdirs", "radii", "near", "far")


class PatchPrior(Protocol):
  """What the appearance term needs from a patch prior.

  ``patch_nll(patches)`` maps float32 patches [P, S, S, 3] (colours in about
  [0, 1]) to a per-patch negative log-likelihood [P]; it must be differentiable
  with respect to the patches and must not train itself.
  """

  def patch_nll(self, patches: tf.Tensor) -> tf.Tensor:
    ...


def check_rays(rays: dict[str, Any], name: str = "rays") -> None:
  """Raises ValueError unless ``rays`` has every field with a matching shape."""
  if not isinstance(rays, dict):
    raise errors.InputError(f"{name} must be a dict with fields {RAY_FIELDS}; "
                     f"received {type(rays).__name__}.")
  missing = [f for f in RAY_FIELDS if f not in rays]
  if missing:
    raise errors.InputError(f"{name} is missing fields {missing}; expected "
                     f"{RAY_FIELDS}.")
  widths = {"origins": 3, "directions": 3, "viewdirs": 3, "radii": 1,
            "near": 1, "far": 1}
  for field, width in widths.items():
    shape = tf.TensorShape(getattr(rays[field], "shape", None))
    if shape.rank is not None and (shape.rank < 1 or (
        shape[-1] is not None and shape[-1] != width)):
      raise errors.InputError(f"{name}['{field}'] must have shape [..., {width}]; "
                       f"received {shape}.")


MIN_RENDER_BUCKET = 1024


RAY_WIDTHS = {"origins": 3, "directions": 3, "viewdirs": 3, "radii": 1,
              "near": 1, "far": 1}
# A padding ray that renders without NaNs: along +z from the origin.
PAD_RAY = {"origins": [0.0, 0.0, 0.0], "directions": [0.0, 0.0, 1.0],
            "viewdirs": [0.0, 0.0, 1.0], "radii": [1e-3], "near": [0.1],
            "far": [1.0]}


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


def _replica_info() -> tuple[tf.Tensor, int]:
  ctx = tf.distribute.get_replica_context()
  if ctx is None:  # cross-replica context (should not happen in a step)
    return tf.constant(0, tf.int32), 1
  return (tf.cast(ctx.replica_id_in_sync_group, tf.int32),
          ctx.num_replicas_in_sync)


def _apply_if_finite(optimizer, finite, grads, variables) -> None:
  """``optimizer.apply`` if ``finite``, else only advances its step counter.

  ``finite`` must agree on every replica. Mirrored strategies do not allow a
  cross-replica synchronisation (the optimizer's ``merge_call``) inside a
  ``tf.cond`` taken in a replica context, so there the condition is taken in
  the cross-replica context, the way Keras' LossScaleOptimizer does it.
  """

  def skip():
    optimizer.iterations.assign_add(1)

  ctx = tf.distribute.get_replica_context()
  if (ctx is None or not tf.distribute.has_strategy()
      or tf.__internal__.distribute.strategy_supports_no_merge_call()):
    tf.cond(finite, lambda: optimizer.apply(grads, variables), skip)
    return

  def cross_replica(distribution, finite, grads, variables):
    first = distribution.experimental_local_results(finite)[0]

    def apply():
      distribution.extended.call_for_each_replica(optimizer.apply,
                                                  args=(grads, variables))

    tf.cond(first, apply, skip)

  ctx.merge_call(cross_replica, args=(finite, grads, variables))


@keras.saving.register_keras_serializable(package="regnerf_tf")
class RegNeRF(keras.Model):
  """mip-NeRF with RegNeRF's regularisers.

  Args:
    config: a :class:`regnerf_tf.configs.Config` (or its dict form).
    patch_prior: optional frozen prior for the appearance term (see
      :class:`PatchPrior`); required when ``config.reg.appearance_weight > 0``.
  """

  def __init__(self, config: configs_lib.Config | dict | None = None,
               patch_prior: PatchPrior | None = None, **kwargs):
    kwargs.setdefault("name", "regnerf")
    super().__init__(**kwargs)
    if config is None:
      config = configs_lib.Config()
    elif isinstance(config, dict):
      config = configs_lib.Config.from_dict(config)
    elif not isinstance(config, configs_lib.Config):
      raise errors.InputError("config must be a regnerf_tf.configs.Config or dict; "
                       f"received {type(config).__name__}.")
    self.config = config
    m = config.model
    dtype = ("mixed_bfloat16" if m.precision == "mixed_bfloat16"
             else "float32")
    self.mlp = layers.MipNerfMLP(
        net_depth=m.net_depth, net_width=m.net_width,
        net_depth_viewdirs=m.net_depth_viewdirs,
        net_width_viewdirs=m.net_width_viewdirs,
        skip_layer=None if m.skip_layer < 0 else m.skip_layer,
        min_deg_point=m.min_deg_point, max_deg_point=m.max_deg_point,
        deg_view=m.deg_view, density_bias=m.density_bias,
        density_noise=m.density_noise,
        density_noise_mode=config.density_noise_mode,
        rgb_padding=m.rgb_padding, use_viewdirs=m.use_viewdirs,
        append_mean_to_ipe=m.append_mean_to_ipe,
        freq_reg_end=config.freq_reg_end_step,
        seed=config.train.seed, name="mlp", dtype=dtype)
    self.mlp.build()
    if config.appearance_enabled and patch_prior is None:
      raise errors.InputError(
          "config.reg.appearance_weight > 0 needs a patch prior: pass "
          "patch_prior=regnerf_tf.flows.load_default_prior() (or your own), or "
          "set reg.appearance_weight=0.")
    if patch_prior is not None and not hasattr(patch_prior, "patch_nll"):
      if hasattr(patch_prior, "log_prob") and hasattr(patch_prior, "patch_size"):
        from regnerf_tf import flows  # pylint: disable=import-outside-toplevel
        patch_prior = flows.AppearanceLoss(patch_prior)
      else:
        raise errors.InputError(
            "patch_prior must have a patch_nll(patches [P, S, S, 3]) -> [P] "
            "method (e.g. regnerf_tf.flows.AppearanceLoss) or be a "
            f"regnerf_tf.flows.PatchFlow; received {type(patch_prior).__name__}.")
    if (patch_prior is not None and getattr(patch_prior, "patch_size", None)
        not in (None, config.reg.patch_size)):
      raise errors.InputError(
          f"The patch prior models {patch_prior.patch_size}×"
          f"{patch_prior.patch_size} patches but reg.patch_size is "
          f"{config.reg.patch_size}; train a prior for that size or change "
          "reg.patch_size.")
    if isinstance(patch_prior, keras.layers.Layer):
      patch_prior.trainable = False
    # Where the prior was loaded from ("default" or a saved prior's stem): a
    # saved model refers to it by this and loads it again.
    flow = getattr(patch_prior, "prior", patch_prior)
    object.__setattr__(self, "_prior_source", getattr(flow, "source", None))
    # A plain attribute: the prior is not one of this model's weights.
    object.__setattr__(self, "_patch_prior", patch_prior)
    names = ["loss", "color_loss", "psnr", "psnr_coarse", "depth_tv",
             "appearance", "tv_weight", "near", "far", "grad_norm"]
    # FreeNeRF's terms are logged only when they are on.
    if config.occlusion_enabled:
      names.append("occlusion")
    if config.reg.freq_reg:
      names.append("freq_mask_fraction")
    self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
    self.built = True

  # --- Keras plumbing ----------------------------------------------------------

  @property
  def metrics(self):
    return list(self._trackers.values())

  @property
  def patch_prior(self):
    return self._patch_prior

  def get_config(self):
    """The config, and the patch prior by where it was loaded from.

    The prior is not one of the model's weights: a ``.keras`` file names it
    (``"default"``, or the stem of a prior saved with
    ``regnerf_tf.flows.save_prior``) and loading finds it there again.

    Raises:
      regnerf_tf.errors.InputError: the appearance term is on with a prior
        that was not loaded from a file, so a saved model could not find it.
    """
    base = super().get_config()
    base.update({"config": self.config.to_dict()})
    if self.config.appearance_enabled:
      if self._prior_source is None:
        raise errors.InputError(
            "This model's patch prior was not loaded from a file, so a saved "
            "model could not find it again. Save the prior with "
            "regnerf_tf.flows.save_prior(prior, stem) and build the model with "
            "patch_prior=regnerf_tf.flows.load_prior(stem), or use the shipped "
            "regnerf_tf.flows.load_default_prior().")
      base["patch_prior"] = self._prior_source
    return base

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    cfg = configs_lib.Config.from_saved(config.pop("config"))
    source = config.pop("patch_prior", None)
    prior = None
    if source is not None:
      from regnerf_tf import flows  # pylint: disable=import-outside-toplevel
      try:
        prior = flows.load_source(source)
      except FileNotFoundError as e:
        raise errors.MissingFileError(
            f"The saved model's appearance term uses the patch prior at "
            f"{source}, which is gone: {e} Put the prior back there, or "
            "rebuild the model with RegNeRF(config, patch_prior=...) and "
            "load_weights.") from None
    return cls(cfg, patch_prior=prior,
               **{k: v for k, v in config.items()
                  if k in ("name", "trainable", "dtype")})

  def summary(self, *args, **kwargs):
    """Keras' summary, then what it cannot show: the preset, the sampling and
    the frozen patch prior, which is not one of the model's weights."""
    print_fn = kwargs.get("print_fn") or print
    super().summary(*args, **kwargs)
    m, r = self.config.model, self.config.reg
    prior = self._patch_prior
    flow = getattr(prior, "prior", prior)
    lines = [
        f"Config: {self.config.name or 'custom'}; MLP {m.net_depth}×"
        f"{m.net_width} (view branch {m.net_width_viewdirs}), "
        f"{m.num_levels} levels × {m.num_samples} samples per ray.",
        "Regularisers: depth smoothness "
        + ("on" if self.config.depth_tv_enabled else "off")
        + f", appearance {'on' if self.config.appearance_enabled else 'off'}"
        + f", sample-space annealing "
        + (f"{r.anneal_steps} steps" if r.anneal_steps > 0 else "off") + "."]
    if flow is not None:
      params = sum(int(np.prod(v.shape)) for v in getattr(flow, "weights", []))
      lines.append(f"Patch prior ({type(flow).__name__}, {params:,} frozen "
                   "parameters, not in this model's weights): "
                   f"{self._prior_source or 'built in memory'}.")
    for line in lines:
      print_fn(line)

  def compile(self, optimizer=None, **kwargs):
    """Keras' ``compile``, with this model's defaults.

    Args:
      optimizer: default (None): Adam with the config's learning-rate
        schedule and warm-up (:func:`make_optimizer`). Gradient clipping
        (``train.grad_clip_*``) is done by :meth:`train_step` whatever the
        optimizer.
      **kwargs: passed on; ``jit_compile`` defaults to
        ``config.train.jit_compile``. The losses are the model's own:
        ``loss`` must stay None.
    """
    if kwargs.get("loss") is not None:
      raise errors.InputError(
          "RegNeRF computes its own losses (colour, depth smoothness, "
          f"appearance) in train_step; received loss={kwargs['loss']!r}. "
          "Leave loss out and set the terms in the config (reg.*).")
    if optimizer is None:
      optimizer = make_optimizer(self.config)
    kwargs.setdefault("jit_compile", self.config.train.jit_compile)
    super().compile(optimizer=optimizer, **kwargs)

  def fit(self, x=None, *args, shuffle=False, **kwargs):
    """Keras' ``fit``; the training stream is ordered by step already (batch
    ``s`` is a function of the seed and ``s``), so nothing is shuffled."""
    return super().fit(x, *args, shuffle=shuffle, **kwargs)

  def compile_from_config(self, config):
    """Compiles a loaded ``.keras`` model as it was saved (optimizer and its
    schedule), so that ``fit`` continues where it stopped."""
    config = keras.saving.deserialize_keras_object(config)
    self.compile(**config)
    if self.built:
      self.optimizer.build(self.mlp.trainable_variables)

  def _check_batch(self, data) -> None:
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
    if self.config.uses_patches and "patch_rays" not in data:
      raise errors.InputError(
          "The config uses unobserved-view patches (depth smoothness or the "
          "appearance prior) but the batches hold no 'patch_rays', so those "
          "terms would be zero on every step. Build the stream with "
          "regnerf_tf.data.training_stream(split, config), or switch the "
          "patch terms off (train.patch_batch_size=0).")

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Builds the optimizer only.

    The network is built at construction. Keras' own symbolic build first
    all-reduces a sample batch, which MultiWorkerMirroredStrategy refuses for
    nested dict batches; nothing in it is needed here.
    """
    del iterator, data_batch
    if self.optimizer is not None and not self.optimizer.built:
      with self.distribute_strategy.scope():
        self.optimizer.build(self.mlp.trainable_variables)

  # --- rendering --------------------------------------------------------------

  def render_rays(self, rays: dict[str, tf.Tensor], training: bool = False,
                  seed=None, step=None, return_samples: bool = False,
                  need_rgb: bool = True, coarse_rgb: bool = True
                  ) -> list[dict[str, tf.Tensor]]:
    """Renders every level.

    Args:
      rays: dict of ray fields, leading shape [N].
      training: jitter samples and add density noise (needs ``seed``).
      seed: shape-[2] int tensor.
      step: 1-based training step for the MLP's frequency mask; used only
        when ``training`` (evaluation renders unmasked).
      return_samples: also return the per-sample MLP outputs.
      need_rgb: False skips the MLP's colour branch (``rgb`` is then zero;
        depth, acc and weights are exact).
      coarse_rgb: False skips the colour branch on every level but the last
        (for renders that show only the last level: their colours, depths
        and weights are unchanged; the earlier levels' ``rgb`` is zero).

    Returns:
      One dict per level (coarse first) with ``rgb`` [N, 3], ``depth`` [N],
      ``acc`` [N], ``weights`` [N, S] and ``t_vals`` [N, S + 1]; with
      ``return_samples`` also ``density`` [N, S] and ``sample_rgb`` [N, S, 3].
    """
    m = self.config.model
    rays = {k: tf.cast(v, tf.float32) for k, v in rays.items()
            if k in RAY_FIELDS}
    randomized = bool(training) and self.config.train.randomized
    if randomized:
      if seed is None:
        raise errors.InputError("render_rays(training=True) needs a seed.")
      seeds = tf.random.experimental.stateless_split(
          tf.cast(seed, tf.int64), 2 * m.num_levels)
    step = step if training else None
    outputs = []
    t_vals = None
    for level in range(m.num_levels):
      sample_seed = seeds[2 * level] if randomized else None
      noise_seed = seeds[2 * level + 1] if randomized else None
      if level == 0:
        t_vals = sampling.stratified_fenceposts(
            rays["near"], rays["far"], m.num_samples, randomized, sample_seed,
            lindisp=m.lindisp)
      else:
        t_vals = sampling.resample_along_rays(
            t_vals, outputs[-1]["weights"], randomized, sample_seed,
            resample_padding=m.resample_padding,
            stop_grad=m.stop_level_grad)
      means, covs = mip.cast_rays(t_vals, rays["origins"], rays["directions"],
                                  rays["radii"], m.ray_shape)
      colour = need_rgb and (coarse_rgb or level == m.num_levels - 1)
      rgb, density = self.mlp(means, covs, rays["viewdirs"],
                              training=randomized, seed=noise_seed, step=step,
                              density_only=not colour)
      out = rendering.volumetric_rendering(rgb, density, t_vals,
                                           rays["directions"],
                                           m.white_background)
      out["t_vals"] = t_vals
      if return_samples:
        out["density"] = density
        out["sample_rgb"] = rgb
      outputs.append(out)
    return outputs

  def call(self, rays, training=False):
    """Deterministic rendering: the last level's rgb [N, 3], depth [N], acc [N]."""
    check_rays(rays)
    out = self.render_rays(rays, training=False, coarse_rgb=False)[-1]
    return {"rgb": out["rgb"], "depth": out["depth"], "acc": out["acc"]}

  def render_chunked(self, rays: dict[str, Any],
                     chunk: int | None = None) -> dict[str, tf.Tensor]:
    """Deterministic rendering of any number of rays in fixed-size chunks.

    Args:
      rays: dict of ray fields with leading shape [...]; flattened internally.
      chunk: rays per chunk (default ``config.train.render_chunk``).

    Returns:
      rgb [..., 3], depth [...], acc [...].
    """
    check_rays(rays)
    chunk = chunk or self.config.train.render_chunk
    lead = tf.shape(rays["origins"])[:-1]
    flat = {k: tf.reshape(tf.convert_to_tensor(rays[k], tf.float32),
                          [-1, rays[k].shape[-1]]) for k in RAY_FIELDS}
    total = int(flat["origins"].shape[0])
    pieces = {"rgb": [], "depth": [], "acc": []}
    for start in range(0, total, chunk):
      part = {k: v[start:start + chunk] for k, v in flat.items()}
      n = int(part["origins"].shape[0])
      size = padded_chunk(n, chunk)
      if n < size:  # pad a short last chunk to its bucket (few traced shapes)
        part = {k: tf.concat([v, tf.repeat(v[-1:], size - n, 0)], 0)
                for k, v in part.items()}
      out = self._render_fn(part)
      for k in pieces:
        pieces[k].append(out[k][:n])
    result = {k: tf.concat(v, 0) for k, v in pieces.items()}
    result["rgb"] = tf.reshape(result["rgb"], tf.concat([lead, [3]], 0))
    result["depth"] = tf.reshape(result["depth"], lead)
    result["acc"] = tf.reshape(result["acc"], lead)
    return result

  @property
  def _render_fn(self) -> Callable:
    fn = getattr(self, "_compiled_render", None)
    if fn is None:
      fn = tf.function(lambda rays: self(rays),
                       jit_compile=self.config.train.jit_compile,
                       reduce_retracing=True)
      object.__setattr__(self, "_compiled_render", fn)
    return fn

  # --- training ---------------------------------------------------------------

  def _step_seed(self, step, replica_id) -> tf.Tensor:
    base = tf.constant([self.config.train.seed, 0], tf.int64)
    seed = tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64))
    return tf.random.experimental.stateless_fold_in(
        seed, tf.cast(replica_id, tf.int64))

  def _anneal(self, rays, step):
    r = self.config.reg
    if r.anneal_steps <= 0:
      return rays
    near, far = sampling.anneal_near_far(
        rays["near"], rays["far"], step, r.anneal_steps,
        r.anneal_start_fraction, r.anneal_mid_fraction, r.anneal_mode)
    return {**rays, "near": near, "far": far}

  def tv_weights(self, step) -> tuple[tf.Tensor, tf.Tensor]:
    """(fine, coarse) depth-smoothness weights at 1-based ``step``."""
    r = self.config.reg
    fine = losses.depth_tv_weight(step, r.depth_tv_weight_start,
                                  r.depth_tv_weight_end, r.depth_tv_decay_steps)
    if self.config.release_compat:
      coarse = tf.constant(r.depth_tv_coarse_mult, tf.float32)  # P6
    else:
      coarse = r.depth_tv_coarse_mult * fine
    return fine, coarse

  def compute_losses(self, data, step, seed) -> dict[str, tf.Tensor]:
    """All loss terms of one (per-replica) batch, unscaled.

    Args:
      data: batch dict (see the module docstring).
      step: 1-based step (scalar tensor).
      seed: shape-[2] int tensor for this step and replica.

    Returns:
      dict with ``loss`` (the total) and each term.
    """
    cfg = self.config
    ray_seed, patch_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    rays = self._anneal(data["rays"], step)
    outs = self.render_rays(rays, training=True, seed=ray_seed, step=step,
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
    fine_w, coarse_w = self.tv_weights(step)
    if cfg.uses_patches and "patch_rays" in data:
      s = cfg.reg.patch_size
      patch_rays = self._anneal(data["patch_rays"], step)
      # Patch colours are used only by the appearance term.
      pouts = self.render_rays(patch_rays, training=True, seed=patch_seed,
                               step=step, need_rgb=cfg.appearance_enabled)
      if cfg.depth_tv_enabled:
        tvs = [losses.depth_tv(tf.reshape(o["depth"], [-1, s, s]),
                               tf.reshape(o["acc"], [-1, s, s]),
                               cfg.reg.depth_tv_acc_weighting) for o in pouts]
        tv_term = tvs[-1]
        total = total + fine_w * tvs[-1] + coarse_w * tf.add_n(
            [tf.zeros([])] + tvs[:-1])
      if cfg.appearance_enabled:
        patches = tf.reshape(pouts[-1]["rgb"], [-1, s, s, 3])
        nll = tf.cast(self._patch_prior.patch_nll(patches), tf.float32)
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
          self.mlp.point_features, step, cfg.freq_reg_end_step))
    terms.update({"loss": total, "depth_tv": tv_term, "appearance": app_term,
                  "tv_weight": fine_w})
    return terms

  def _gradients(self, data, step, seed, num_replicas):
    """(gradients, loss terms) of one batch."""
    variables = self.mlp.trainable_variables
    with tf.GradientTape() as tape:
      terms = self.compute_losses(data, step, seed)
      # Keras sums gradients over replicas: scale for a global mean.
      scaled = terms["loss"] / num_replicas
      scaled = self.optimizer.scale_loss(scaled)
    grads = tape.gradient(scaled, variables)
    return [tf.zeros_like(v) if g is None else g
            for g, v in zip(grads, variables)], terms

  def _accumulated_gradients(self, data, step, seed, num_replicas, parts):
    """:meth:`_gradients` of the batch, computed part by part.

    Every loss term is a mean over rays or whole patches, so the mean of the
    parts' gradients and terms equals the batch's (up to the per-part random
    jitter). A sequential ``while_loop`` keeps one part's activations alive
    at a time. PSNRs are recomputed from the mean squared errors.
    """
    split = tf.nest.map_structure(
        lambda x: tf.reshape(x, tf.concat([[parts, -1], tf.shape(x)[1:]], 0)),
        data)
    variables = self.mlp.trainable_variables
    # compute_losses returns one value per tracker except the gradient norm.
    keys = [k for k in self._trackers if k != "grad_norm"]

    def body(i, grads, terms):
      part = tf.nest.map_structure(lambda x: x[i], split)
      part_seed = tf.random.experimental.stateless_fold_in(seed, i)
      g, t = self._gradients(part, step, part_seed, num_replicas)
      for key in ("psnr", "psnr_coarse"):  # average MSEs, not PSNRs
        t[key] = tf.pow(10.0, -t[key] / 10.0)
      return (i + 1, [a + b / parts for a, b in zip(grads, g)],
              {k: terms[k] + t[k] / parts for k in terms})

    _, grads, terms = tf.while_loop(
        lambda i, *_: i < parts, body,
        (tf.constant(0), [tf.zeros_like(v) for v in variables],
         {k: tf.zeros([]) for k in keys}),
        parallel_iterations=1)
    for key in ("psnr", "psnr_coarse"):
      terms[key] = -10.0 * tf.math.log(terms[key]) / tf.math.log(10.0)
    return grads, terms

  def train_step(self, data):
    self._check_batch(data)
    replica_id, num_replicas = _replica_info()
    step = self.optimizer.iterations + 1
    seed = self._step_seed(step, replica_id)
    variables = self.mlp.trainable_variables
    parts = self.config.train.micro_batches
    if parts == 1:
      grads, terms = self._gradients(data, step, seed, num_replicas)
    else:
      grads, terms = self._accumulated_gradients(data, step, seed,
                                                 num_replicas, parts)
    # Reduce across replicas first, then clip the global gradient, as the
    # release does; the optimizer's own SUM all-reduce then sees g/N on every
    # replica and restores g.
    ctx = tf.distribute.get_replica_context()
    if num_replicas > 1:
      grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    # A non-finite loss (on any replica) or gradient never reaches the
    # weights: the step is skipped, only the step counter advances, so data
    # and schedules stay aligned with an uninterrupted run. (Checked before
    # clipping, which would turn an inf into a finite value.)
    bad = tf.cast(tf.logical_not(tf.math.is_finite(terms["loss"])), tf.float32)
    if num_replicas > 1:
      bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    finite = tf.logical_and(
        tf.equal(bad, 0.0),
        tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
    t = self.config.train
    grads, norm = losses.clip_gradients(grads, t.grad_clip_value,
                                        t.grad_clip_norm)
    if num_replicas > 1:
      grads = [g / num_replicas for g in grads]

    _apply_if_finite(self.optimizer, finite, grads, variables)
    skipped = 1.0 - tf.cast(finite, tf.float32)
    terms["grad_norm"] = norm
    weight = 1.0 - skipped
    for name, tracker in self._trackers.items():
      value = tf.where(finite, terms[name], tf.zeros_like(terms[name]))
      tracker.update_state(value, sample_weight=weight)
    logs = {name: tracker.result() for name, tracker in self._trackers.items()}
    logs["nonfinite"] = skipped
    return self._logs(logs)

  def _logs(self, logs):
    # Keras reduces multi-worker logs with a MEAN over axis 0, which a scalar
    # does not have; give each value one element there.
    if isinstance(self.distribute_strategy,
                  tf.distribute.MultiWorkerMirroredStrategy):
      return {k: tf.reshape(v, [1]) for k, v in logs.items()}
    return logs

  def test_step(self, data):
    """PSNR of a batch of rays of any shape (e.g. a whole view from
    ``data.make_eval_dataset``), rendered ``train.render_chunk`` rays at a
    time so that memory stays bounded at any image size."""
    rays = {k: tf.reshape(data["rays"][k], [-1, w])
            for k, w in RAY_WIDTHS.items()}

    def render(part):
      return self.render_rays(part, training=False, coarse_rgb=False)[-1]

    out = render_in_chunks(render, rays, self.config.train.render_chunk)
    target = tf.reshape(tf.cast(data["rgb"], tf.float32), [-1, 3])
    mse = tf.reduce_mean(tf.square(out["rgb"] - target))
    self._trackers["psnr"].update_state(losses.mse_to_psnr(mse))
    self._trackers["color_loss"].update_state(
        losses.color_loss(out["rgb"], target))
    return self._logs({"psnr": self._trackers["psnr"].result(),
                       "color_loss": self._trackers["color_loss"].result()})


def make_optimizer(config: configs_lib.Config) -> keras.optimizers.Optimizer:
  """Adam with the log-linear schedule and warm-up of ``config.train``.

  Gradient clipping is done by :meth:`RegNeRF.train_step` (after the
  cross-replica reduction), not by the optimizer.
  """
  t = config.train
  schedule = losses.LogLinearSchedule(t.lr_init, t.lr_final, t.max_steps,
                                      t.lr_delay_steps, t.lr_delay_mult)
  return keras.optimizers.Adam(learning_rate=schedule, beta_1=t.adam_beta1,
                               beta_2=t.adam_beta2, epsilon=t.adam_epsilon)


def build_model(config: configs_lib.Config, patch_prior=None,
                strategy: tf.distribute.Strategy | None = None) -> RegNeRF:
  """Creates and compiles a model inside ``strategy``'s scope."""
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    model = RegNeRF(config, patch_prior=patch_prior)
    model.compile()
  return model
