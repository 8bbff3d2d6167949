"""RegNeRF as a ``keras.Model``: the parts wired together.

The model owns the network (:class:`regnerf_tf.layers.MipNerfMLP`) and the
frozen patch prior, and connects the modules that hold each concept:

* :mod:`regnerf_tf.renderer`: rays → levels of samples → colour, depth,
  opacity (:meth:`RegNeRF.render_rays`), and chunked rendering of any number of
  rays (:meth:`RegNeRF.render_chunked`, ``test_step``, the SavedModel);
* :mod:`regnerf_tf.objective`: the loss recipe of a training batch
  (:meth:`RegNeRF.compute_losses`);
* :mod:`regnerf_tf.optimization`: gradients, micro-batches, the cross-replica
  sum, clipping and skipped non-finite steps (``train_step``), and the
  optimizer.

Batches are dicts of named fields (:mod:`regnerf_tf.rays` for the ray
fields): ``rays`` (observed rays [N, ...]), ``rgb`` ([N, 3] target colours)
and, when the config uses them, ``patch_rays`` (P unobserved-view patches of
S×S pixels, N = P·S·S in row-major order inside each patch).

``call`` renders rays deterministically and returns the last level's ``rgb``,
``depth`` and ``acc``; ``fit`` trains with ``train_step``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import keras
import numpy as np
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import configs as configs_lib
from regnerf_tf import layers, losses, machine, objective, optimization
from regnerf_tf import renderer
from regnerf_tf.rays import RAY_WIDTHS, check_rays

class PatchPrior(Protocol):
  """What the appearance term needs from a patch prior.

  ``patch_nll(patches)`` maps float32 patches [P, S, S, 3] (colours in about
  [0, 1]) to a per-patch negative log-likelihood [P]; it must be differentiable
  with respect to the patches and must not train itself.
  """

  def patch_nll(self, patches: tf.Tensor) -> tf.Tensor:
    ...


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
        # The prior's module is imported here, not at the top: it loads
        # TensorFlow Probability, about 5 s more on every import of the
        # model (measured on the development machine), which a model
        # without the appearance term never needs.
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
    names = objective.term_names(config) + ["grad_norm"]
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
        schedule and warm-up (:func:`regnerf_tf.optimization.make_optimizer`). Gradient clipping
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
      optimizer = optimization.make_optimizer(self.config)
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
                  need_rgb: bool = True, coarse_rgb: bool = True,
                  num_samples: int | None = None
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
      num_samples: intervals per level (None: ``model.num_samples``).

    Returns:
      One dict per level (coarse first) with ``rgb`` [N, 3], ``depth`` [N],
      ``acc`` [N], ``weights`` [N, S] and ``t_vals`` [N, S + 1]; with
      ``return_samples`` also ``density`` [N, S] and ``sample_rgb`` [N, S, 3].
    """
    randomized = bool(training) and self.config.train.randomized
    seeds = None
    if randomized:
      if seed is None:
        raise errors.InputError("render_rays(training=True) needs a seed.")
      seeds = tf.random.experimental.stateless_split(
          tf.cast(seed, tf.int64), 2 * self.config.model.num_levels)
    return renderer.render_levels(
        self.mlp, self.config.model, rays, randomized, seeds,
        step if training else None, return_samples=return_samples,
        need_rgb=need_rgb, coarse_rgb=coarse_rgb, num_samples=num_samples)

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
    return renderer.render_chunked(
        self._render_fn, rays, chunk or self.config.train.render_chunk,
        machine.render_branches(self.config.train.render_branches))

  @property
  def _render_fn(self) -> Callable:
    fn = getattr(self, "_compiled_render", None)
    if fn is None:
      fn = renderer.side_by_side(lambda rays: self(rays),
                                 jit_compile=self.config.train.jit_compile)
      object.__setattr__(self, "_compiled_render", fn)
    return fn

  # --- training ---------------------------------------------------------------

  def tv_weights(self, step) -> tuple[tf.Tensor, tf.Tensor]:
    """(fine, coarse) depth-smoothness weights at 1-based ``step``."""
    return objective.tv_weights(self.config, step)

  def compute_losses(self, data, step, seed) -> dict[str, tf.Tensor]:
    """All loss terms of one (per-replica) batch, unscaled
    (:func:`regnerf_tf.objective.compute_losses`).

    Args:
      data: batch dict (see the module docstring).
      step: 1-based step (scalar tensor).
      seed: shape-[2] int tensor for this step and replica.
    """
    return objective.compute_losses(self, data, step, seed)

  def train_step(self, data):
    objective.check_batch(self.config, data)
    replica_id, num_replicas = optimization.replica_info()
    step = self.optimizer.iterations + 1
    seed = optimization.step_seed(self.config.train.seed, step, replica_id)
    variables = self.mlp.trainable_variables
    grads, terms = optimization.batch_gradients(
        lambda batch, batch_seed: self.compute_losses(batch, step, batch_seed),
        self.optimizer, variables, data, seed, num_replicas,
        parts=self.config.train.micro_batches,
        keys=objective.term_names(self.config))
    grads, terms["grad_norm"], finite = optimization.reduce_and_clip(
        grads, terms["loss"], self.config.train, num_replicas)
    optimization.apply_if_finite(self.optimizer, finite, grads, variables)
    # A skipped step adds nothing to the running means.
    weight = tf.cast(finite, tf.float32)
    for name, tracker in self._trackers.items():
      value = tf.where(finite, terms[name], tf.zeros_like(terms[name]))
      tracker.update_state(value, sample_weight=weight)
    logs = {name: tracker.result() for name, tracker in self._trackers.items()}
    logs["nonfinite"] = 1.0 - weight
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

    out = renderer.render_in_chunks(
        render, rays, self.config.train.render_chunk,
        machine.render_branches(self.config.train.render_branches))
    target = tf.reshape(tf.cast(data["rgb"], tf.float32), [-1, 3])
    mse = tf.reduce_mean(tf.square(out["rgb"] - target))
    self._trackers["psnr"].update_state(losses.mse_to_psnr(mse))
    self._trackers["color_loss"].update_state(
        losses.color_loss(out["rgb"], target))
    return self._logs({"psnr": self._trackers["psnr"].result(),
                       "color_loss": self._trackers["color_loss"].result()})


def build_model(config: configs_lib.Config, patch_prior=None,
                strategy: tf.distribute.Strategy | None = None) -> RegNeRF:
  """Creates and compiles a model inside ``strategy``'s scope."""
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    model = RegNeRF(config, patch_prior=patch_prior)
    model.compile()
  return model
