"""RealNVP density over S×S×3 colour patches, built from ``tfp.bijectors``.

The flow maps a latent ``z ~ N(0, I_D)``, ``D = S·S·3``, to a colour patch
``x ∈ [0, 1]^{S×S×3}``::

  z [..., D] ──couplings──▶ y [..., D] ──reshape──▶ [..., S, S, 3]
             ──sigmoid──▶ s ──(s − α) / (1 − 2α)──▶ x

Read right to left this is the usual preprocessing of RealNVP (Dinh et al.
2017, §4.1): ``y = logit(α + (1 − 2α)·x)``. The logit map is part of the
bijector, so :meth:`PatchFlow.log_prob` is a density over colours in
``[0, 1]`` (it is defined on the slightly larger open interval
``(−α/(1−2α), 1 + α/(1−2α))``, which lets rendered colours that overshoot
``[0, 1]`` a little be scored).

Each coupling is a ``tfb.RealNVP`` over the flattened patch, wrapped in a
fixed ``tfb.Permute`` that moves the conditioning half to the front and back
again. The halves alternate between a spatial checkerboard, its complement, a
fixed pseudo-random split of all D values and that split's complement. The
permutations are numpy constants (never variables). The shift and log-scale
come from :class:`CouplingNetwork`, a Keras 3 layer: Keras owns every
variable, the bijector only calls the layer through a small closure.

Units: ``log_prob`` is in nats of the continuous density on ``[0, 1]^D``.
``bits_per_dim`` converts it to the number reported for 8-bit images after
uniform dequantisation, ``−log p(x) / (D·ln 2) + 8``; uniform noise scores
exactly 8 bits/dim.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from regnerf_tf import errors

tfb = tfp.bijectors
tfd = tfp.distributions

MASK_CYCLE = ("checkerboard", "checkerboard_inv", "random", "random_inv")
NUM_CHANNELS = 3
BITS_PER_COLOUR = 8


def coupling_permutation(patch_size: int, index: int,
                         mask_seed: int = 0) -> np.ndarray:
  """The fixed permutation of coupling ``index`` (conditioning half first).

  Couplings cycle through :data:`MASK_CYCLE`: the spatial checkerboard (all
  three colours of the pixels with even ``row + col`` condition the others),
  its complement, a pseudo-random half of the ``D`` values drawn from
  ``numpy.random.default_rng([mask_seed, index // 4])`` and its complement.

  Args:
    patch_size: S.
    index: coupling index, 0-based.
    mask_seed: seed of the random splits.

  Returns:
    int32 [D] permutation of ``range(D)``, ``D = S·S·3``; the first ``D // 2``
    entries are the flattened indices that condition the coupling.
  """
  dim = patch_size * patch_size * NUM_CHANNELS
  kind = MASK_CYCLE[index % len(MASK_CYCLE)]
  if kind.startswith("checkerboard"):
    rows, cols, _ = np.meshgrid(np.arange(patch_size), np.arange(patch_size),
                                np.arange(NUM_CHANNELS), indexing="ij")
    in_first = ((rows + cols) % 2 == 0).reshape(-1)
  else:
    rng = np.random.default_rng([mask_seed, index // len(MASK_CYCLE)])
    in_first = np.zeros(dim, bool)
    in_first[rng.permutation(dim)[:dim // 2]] = True
  if kind.endswith("_inv"):
    in_first = ~in_first
  # Stable: the chosen half first (for odd S the halves differ in size and
  # the first D // 2 entries are what conditions).
  order = np.concatenate([np.flatnonzero(in_first), np.flatnonzero(~in_first)])
  return order.astype(np.int32)


@keras.saving.register_keras_serializable(package="regnerf_tf")
class CouplingNetwork(keras.layers.Layer):
  """Shift and bounded log-scale of one affine coupling: an MLP.

  ``num_hidden_layers`` dense ReLU layers of ``hidden_units`` (Glorot-uniform
  kernels, zero biases), then one dense layer with zero-initialised kernel and
  bias that outputs ``2·output_units`` values. The coupling therefore starts
  as the identity. The log-scale is bounded softly,
  ``log_scale = bound · tanh(raw / bound)``, so ``|log_scale| < bound`` and
  its slope at 0 is 1.

  Always computes in float32, whatever the global dtype policy. Constructed
  with ``trainable=False``, its variables are created non-trainable (also
  for ``tf.GradientTape``), so a frozen prior is never watched.

  Args:
    output_units: number of transformed values (D − D // 2).
    hidden_units: width of the hidden layers.
    num_hidden_layers: number of hidden layers (≥ 1).
    log_scale_bound: the bound of |log_scale| (> 0).

  Call arguments:
    x0: [..., D // 2] the conditioning half (logit space).

  Returns:
    (shift, log_scale), each float32 [..., output_units].
  """

  def __init__(self, output_units: int, hidden_units: int = 192,
               num_hidden_layers: int = 2, log_scale_bound: float = 2.0,
               **kwargs):
    kwargs["dtype"] = "float32"
    super().__init__(**kwargs)
    if output_units < 1 or hidden_units < 1 or num_hidden_layers < 1:
      raise errors.InputError(
          "Expected output_units, hidden_units and num_hidden_layers >= 1. "
          f"Received: output_units={output_units}, hidden_units={hidden_units}"
          f", num_hidden_layers={num_hidden_layers}")
    if not log_scale_bound > 0:
      raise errors.InputError(
          f"Expected log_scale_bound > 0. Received: {log_scale_bound}")
    self.output_units = int(output_units)
    self.hidden_units = int(hidden_units)
    self.num_hidden_layers = int(num_hidden_layers)
    self.log_scale_bound = float(log_scale_bound)
    self._layer_weights: list[tuple[keras.Variable, keras.Variable]] = []

  def build(self, input_shape):
    # Weights are made here rather than by Dense sublayers so that a layer
    # constructed with trainable=False gets variables that are not trainable
    # at the TensorFlow level either: GradientTape then never watches them.
    if self.built:
      return
    sizes = [int(input_shape[-1])] + [self.hidden_units] * (
        self.num_hidden_layers)
    for i in range(self.num_hidden_layers):
      kernel = self.add_weight(
          name=f"hidden_{i}_kernel", shape=(sizes[i], sizes[i + 1]),
          initializer="glorot_uniform", dtype="float32",
          trainable=self.trainable)
      bias = self.add_weight(name=f"hidden_{i}_bias", shape=(sizes[i + 1],),
                             initializer="zeros", dtype="float32",
                             trainable=self.trainable)
      self._layer_weights.append((kernel, bias))
    kernel = self.add_weight(
        name="out_kernel", shape=(sizes[-1], 2 * self.output_units),
        initializer="zeros", dtype="float32", trainable=self.trainable)
    bias = self.add_weight(name="out_bias", shape=(2 * self.output_units,),
                           initializer="zeros", dtype="float32",
                           trainable=self.trainable)
    self._layer_weights.append((kernel, bias))
    self.built = True

  def call(self, x0):
    h = tf.cast(x0, tf.float32)
    *hidden, (out_kernel, out_bias) = self._layer_weights
    for kernel, bias in hidden:
      h = tf.nn.relu(tf.matmul(h, kernel) + bias)
    shift, raw = tf.split(tf.matmul(h, out_kernel) + out_bias, 2, axis=-1)
    bound = self.log_scale_bound
    return shift, bound * tf.tanh(raw / bound)

  def compute_output_shape(self, input_shape):
    shape = tuple(input_shape[:-1]) + (self.output_units,)
    return shape, shape

  def get_config(self):
    config = super().get_config()
    config.update({
        "output_units": self.output_units,
        "hidden_units": self.hidden_units,
        "num_hidden_layers": self.num_hidden_layers,
        "log_scale_bound": self.log_scale_bound,
    })
    return config


def _shift_and_log_scale_fn(
    layer: CouplingNetwork) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
  """Adapts a Keras layer to RealNVP's ``fn(x0, output_units, **kwargs)``.

  Keras 3 layers accept only tensors positionally, so the integer
  ``output_units`` is checked here and not passed on.
  """

  def fn(x0, output_units, **unused_condition_kwargs):
    if output_units != layer.output_units:
      raise errors.InputError(
          f"Coupling {layer.name} outputs {layer.output_units} values, but "
          f"RealNVP asked for {output_units}.")
    return layer(x0)

  return fn


@keras.saving.register_keras_serializable(package="regnerf_tf")
class PatchFlow(keras.Model):
  """RealNVP density over S×S×3 colour patches in ``[0, 1]``.

  ``call(patches)`` returns ``log_prob(patches)``. ``fit`` minimises the mean
  negative log-likelihood in nats per dimension of (already dequantised)
  patches; ``evaluate`` reports it and bits/dim. Dequantisation belongs to the
  data pipeline (see :mod:`regnerf_tf.flows.patches`), so the model itself is
  a plain continuous density.

  All math runs in float32 even under a ``mixed_bfloat16`` global policy.

  Args:
    patch_size: S (patch side in pixels, ≥ 2).
    num_couplings: number of affine couplings (≥ 2).
    hidden_units: width of each coupling MLP.
    num_hidden_layers: hidden layers per coupling MLP.
    log_scale_bound: bound of each coupling's |log-scale|.
    alpha: logit preprocessing constant α ∈ (0, 0.5):
      ``y = logit(α + (1 − 2α)·x)``.
    mask_seed: seed of the pseudo-random coupling splits.
    **kwargs: ``keras.Model`` arguments such as ``name``. With
      ``trainable=False`` the variables are created frozen (not watched by
      ``GradientTape``); setting ``trainable`` later only changes Keras's view.
  """

  def __init__(self, patch_size: int = 8, num_couplings: int = 12,
               hidden_units: int = 192, num_hidden_layers: int = 2,
               log_scale_bound: float = 2.0, alpha: float = 0.05,
               mask_seed: int = 0, **kwargs):
    kwargs["dtype"] = "float32"
    super().__init__(**kwargs)
    if int(patch_size) < 2:
      raise errors.InputError(f"Expected patch_size >= 2. Received: {patch_size}")
    if int(num_couplings) < 2:
      raise errors.InputError(
          f"Expected num_couplings >= 2. Received: {num_couplings}")
    if not 0.0 < alpha < 0.5:
      raise errors.InputError(f"Expected 0 < alpha < 0.5. Received: {alpha}")
    self.patch_size = int(patch_size)
    self.num_couplings = int(num_couplings)
    self.hidden_units = int(hidden_units)
    self.num_hidden_layers = int(num_hidden_layers)
    self.log_scale_bound = float(log_scale_bound)
    self.alpha = float(alpha)
    self.mask_seed = int(mask_seed)
    self.dim = self.patch_size * self.patch_size * NUM_CHANNELS
    self.num_masked = self.dim // 2
    self.couplings = [
        CouplingNetwork(self.dim - self.num_masked, self.hidden_units,
                        self.num_hidden_layers, self.log_scale_bound,
                        trainable=self.trainable, name=f"coupling_{i}")
        for i in range(self.num_couplings)
    ]
    self.nll_tracker = keras.metrics.Mean(name="nll", dtype="float32")
    self.bpd_tracker = keras.metrics.Mean(name="bits_per_dim", dtype="float32")

  @property
  def event_shape(self) -> tuple[int, int, int]:
    """The patch shape (S, S, 3)."""
    return (self.patch_size, self.patch_size, NUM_CHANNELS)

  def build(self, input_shape=None):
    if self.built:
      return
    for layer in self.couplings:
      layer.build((None, self.num_masked))
    self.built = True

  # --- The bijector (math only; the variables live in self.couplings). ---

  @property
  def bijector(self) -> tfb.Bijector:
    """Bijector latent [..., D] → patch [..., S, S, 3] (generation direction).

    A new ``tfb.Chain`` is made on every access (cheap: it holds no
    variables), so no tensor created inside one ``tf.function`` trace leaks
    into another graph or into eager code.
    """
    if not self.built:
      self.build()
    steps = []
    for i, layer in enumerate(self.couplings):
      perm = coupling_permutation(self.patch_size, i, self.mask_seed)
      coupling = tfb.RealNVP(
          num_masked=self.num_masked,
          shift_and_log_scale_fn=_shift_and_log_scale_fn(layer),
          name=f"real_nvp_{i}")
      # Applied right to left: gather the conditioning half first, couple,
      # scatter back.
      steps.append(tfb.Chain([
          tfb.Permute(np.argsort(perm).astype(np.int32)), coupling,
          tfb.Permute(perm)], name=f"coupling_{i}"))
    a = self.alpha
    # Chain applies its list right to left: the last element acts on z.
    return tfb.Chain(
        [tfb.Scale(1.0 / (1.0 - 2.0 * a)), tfb.Shift(-a), tfb.Sigmoid(),
         tfb.Reshape(event_shape_out=self.event_shape,
                     event_shape_in=(self.dim,))]
        + steps[::-1], name="patch_flow")

  @property
  def distribution(self) -> tfd.Distribution:
    """The flow as a ``tfd.TransformedDistribution`` with event [S, S, 3]."""
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([self.dim], tf.float32))
    return tfd.TransformedDistribution(base, self.bijector)

  # --- Public math. ---

  def _check_patches(self, patches) -> tf.Tensor:
    patches = tf.convert_to_tensor(patches)
    if not (patches.dtype.is_floating or patches.dtype.is_integer):
      raise errors.InputError(f"Expected real-valued patches. Received dtype "
                       f"{patches.dtype.name}.")
    patches = tf.cast(patches, tf.float32)
    shape = patches.shape
    if shape.rank is None or shape.rank < 3 or (
        tuple(shape[-3:]) != self.event_shape):
      raise errors.InputError(
          f"Expected patches of shape [..., {self.patch_size}, "
          f"{self.patch_size}, 3] with colours in [0, 1]. Received shape "
          f"{shape}.")
    return patches

  def forward(self, z) -> tf.Tensor:
    """Latent [..., D] → patches [..., S, S, 3] (colours ≈ in [0, 1])."""
    z = tf.cast(tf.convert_to_tensor(z), tf.float32)
    if z.shape.rank is None or z.shape[-1] != self.dim:
      raise errors.InputError(f"Expected latents of shape [..., {self.dim}]. "
                       f"Received shape {z.shape}.")
    return self.bijector.forward(z)

  def inverse(self, patches) -> tf.Tensor:
    """Patches [..., S, S, 3] → latent [..., D]."""
    return self.bijector.inverse(self._check_patches(patches))

  def log_prob(self, patches) -> tf.Tensor:
    """Log-density of patches [..., S, S, 3] in nats; returns float32 [...]."""
    patches = self._check_patches(patches)
    bij = self.bijector
    z = bij.inverse(patches)
    ildj = bij.inverse_log_det_jacobian(patches, event_ndims=3)
    base = -0.5 * tf.reduce_sum(tf.square(z), axis=-1) - 0.5 * self.dim * (
        math.log(2.0 * math.pi))
    return base + ildj

  def nll_per_dim(self, patches) -> tf.Tensor:
    """Negative log-density in nats per colour value: float32 [...]."""
    return -self.log_prob(patches) / float(self.dim)

  def bits_per_dim(self, patches) -> tf.Tensor:
    """8-bit dequantised bits per dimension: ``nll_per_dim / ln 2 + 8``."""
    return nats_per_dim_to_bits(self.nll_per_dim(patches))

  def sample(self, n: int, seed: Sequence[int] | tf.Tensor = (0, 0),
             temperature: float = 1.0) -> tf.Tensor:
    """Draws ``n`` patches: float32 [n, S, S, 3].

    Args:
      n: number of samples.
      seed: stateless seed, shape [2] ints.
      temperature: standard deviation of the base Gaussian (1 = the model).

    Returns:
      Patches; colours lie in ``(−α/(1−2α), 1 + α/(1−2α))``, clip for display.
    """
    z = temperature * tf.random.stateless_normal(
        [int(n), self.dim], seed=tf.cast(seed, tf.int32), dtype=tf.float32)
    return self.bijector.forward(z)

  # --- Keras plumbing. ---

  def call(self, patches):
    return self.log_prob(patches)

  @property
  def metrics(self):
    return [self.nll_tracker, self.bpd_tracker]

  def _x_from_data(self, data):
    if isinstance(data, (tuple, list)):
      data = data[0]
    return data

  def train_step(self, data):
    x = self._x_from_data(data)
    with tf.GradientTape() as tape:
      nll = tf.reduce_mean(self.nll_per_dim(x))
    variables = self.trainable_variables
    grads = tape.gradient(nll, variables)
    self.optimizer.apply(grads, variables)
    self.nll_tracker.update_state(nll)
    self.bpd_tracker.update_state(nats_per_dim_to_bits(nll))
    return {m.name: m.result() for m in self.metrics}

  def test_step(self, data):
    x = self._x_from_data(data)
    nll = tf.reduce_mean(self.nll_per_dim(x))
    self.nll_tracker.update_state(nll, sample_weight=tf.shape(x)[0])
    self.bpd_tracker.update_state(nats_per_dim_to_bits(nll),
                                  sample_weight=tf.shape(x)[0])
    return {m.name: m.result() for m in self.metrics}

  def get_config(self):
    config = super().get_config()
    config.update({
        "patch_size": self.patch_size,
        "num_couplings": self.num_couplings,
        "hidden_units": self.hidden_units,
        "num_hidden_layers": self.num_hidden_layers,
        "log_scale_bound": self.log_scale_bound,
        "alpha": self.alpha,
        "mask_seed": self.mask_seed,
    })
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config.pop("dtype", None)  # Always float32.
    return cls(**config)


def nats_per_dim_to_bits(nats_per_dim):
  """Nats/dim of a density on ``[0, 1]`` → 8-bit dequantised bits/dim."""
  return nats_per_dim / math.log(2.0) + float(BITS_PER_COLOUR)


def mean_bits_per_dim(flow: PatchFlow, patches, batch_size: int = 2000
                     ) -> float:
  """Mean bits/dim of float patches [N, S, S, 3] (already dequantised)."""
  patches = tf.convert_to_tensor(patches)
  total, count = 0.0, 0
  for start in range(0, int(patches.shape[0]), batch_size):
    batch = patches[start:start + batch_size]
    total += float(tf.reduce_sum(flow.bits_per_dim(batch)))
    count += int(batch.shape[0])
  return total / count


def logit_preprocess(patches, alpha: float = 0.05):
  """The flow's preprocessing alone: ``y = logit(α + (1 − 2α)·x)``.

  Args:
    patches: [..., S, S, 3] colours.
    alpha: as in :class:`PatchFlow`.

  Returns:
    (y, log_det): y [..., S, S, 3] and ``log|dy/dx|`` summed over the last
    three axes, [...].
  """
  x = tf.cast(patches, tf.float32)
  s = alpha + (1.0 - 2.0 * alpha) * x
  y = tf.math.log(s) - tf.math.log1p(-s)
  log_det = tf.reduce_sum(
      math.log(1.0 - 2.0 * alpha) - tf.math.log(s) - tf.math.log1p(-s),
      axis=[-3, -2, -1])
  return y, log_det
