"""Keras 3 layers of mip-NeRF: the encoders and the MLP.

The layers hold weights and call the pure math of :mod:`regnerf_tf.mip`. They
honour Keras dtype policies: under ``mixed_bfloat16`` the dense layers compute in
bfloat16 while encodings and the output activations stay in float32.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import mip

DENSITY_NOISE_MODES = ("per_sample", "scalar")


@keras.saving.register_keras_serializable(package="regnerf_tf")
class IntegratedPositionalEncoding(keras.layers.Layer):
  """Weightless layer: IPE of diagonal Gaussians (see :func:`mip.integrated_pos_enc`).

  Args:
    min_deg: lowest frequency degree (inclusive).
    max_deg: highest frequency degree (exclusive).
    append_identity: put the raw means first (FreeNeRF's input).

  Call arguments:
    means: [..., 3]; covs: [..., 3] diagonal covariances.

  Returns:
    float32 [..., 3·append_identity + 6·(max_deg − min_deg)].
  """

  def __init__(self, min_deg: int = 0, max_deg: int = 16,
               append_identity: bool = False, **kwargs):
    super().__init__(**kwargs)
    if not 0 <= min_deg < max_deg:
      raise errors.InputError("Expected 0 <= min_deg < max_deg. Received: "
                       f"min_deg={min_deg}, max_deg={max_deg}")
    self.min_deg = min_deg
    self.max_deg = max_deg
    self.append_identity = bool(append_identity)
    self.built = True

  @property
  def features(self) -> int:
    return 3 * self.append_identity + 6 * (self.max_deg - self.min_deg)

  def call(self, means, covs):
    return mip.integrated_pos_enc(tf.cast(means, tf.float32),
                                  tf.cast(covs, tf.float32),
                                  self.min_deg, self.max_deg,
                                  append_identity=self.append_identity)

  def compute_output_shape(self, means_shape, covs_shape=None):
    return tuple(means_shape[:-1]) + (self.features,)

  def get_config(self):
    config = super().get_config()
    config.update({"min_deg": self.min_deg, "max_deg": self.max_deg,
                   "append_identity": self.append_identity})
    return config


@keras.saving.register_keras_serializable(package="regnerf_tf")
class MipNerfMLP(keras.layers.Layer):
  """mip-NeRF's MLP: IPE Gaussians + view directions → colour and density.

  Trunk of ``net_depth`` Dense(``net_width``) + ReLU layers with the encoded
  input concatenated after layer ``skip_layer`` (0-based). Density head:
  Dense(1), optional Gaussian noise in training, softplus(raw + density_bias).
  Colour head: linear bottleneck Dense(net_width), concatenated with the
  encoded view direction, ``net_depth_viewdirs`` Dense(net_width_viewdirs) +
  ReLU layers, Dense(3), sigmoid, padded to [−rgb_padding, 1 + rgb_padding].
  The defaults give mip-NeRF's 612,740 parameters.

  FreeNeRF's frequency regularisation: with ``freq_reg_end`` = T > 0, a call
  given a training ``step`` t < T multiplies the point encoding and the view
  encoding by :func:`mip.freq_reg_mask` (see :meth:`freq_masks`); the encoded
  input of every layer that takes it (first layer, skip connection, view
  branch) is the masked one. Calls without a step (evaluation, rendering) and
  steps t ≥ T use the unmasked encodings.

  Args:
    net_depth: trunk layers.
    net_width: trunk width.
    net_depth_viewdirs: layers of the view branch.
    net_width_viewdirs: width of the view branch.
    skip_layer: the input is concatenated after this many trunk layers
      (after the layer of index ``skip_layer``); None for no skip.
    min_deg_point, max_deg_point: IPE degrees [min, max).
    deg_view: view-direction PE degrees [0, deg_view) plus identity.
    density_bias: added to the raw density before softplus.
    density_noise: std of the noise added to the raw density in training.
    density_noise_mode: "per_sample" (independent noise for every sample) or
      "scalar" (one draw shared by the whole batch, the release's behaviour).
    rgb_padding: colour padding.
    use_viewdirs: condition colour on the view direction.
    append_mean_to_ipe: put the raw 3-D means before the IPE features
      (FreeNeRF; 3 more inputs, so different weights).
    freq_reg_end: T, the step from which the frequency mask is all ones;
      0 disables frequency regularisation.
    seed: seeds the Glorot-uniform kernel initialisers (layer i uses
      seed + i) so that a run is reproducible; None draws from Keras' global
      generator.

  Call arguments:
    means: [..., S, 3] Gaussian means; covs: [..., S, 3] diagonal covariances.
    viewdirs: [..., 3] view directions.
    training: bool.
    seed: shape-[2] integer tensor; required when training with noise.
    step: scalar integer tensor, the 1-based training step driving the
      frequency mask; pass it only in training (None: no mask).

  Returns:
    (rgb float32 [..., S, 3], density float32 [..., S]).
  """

  def __init__(self, net_depth: int = 8, net_width: int = 256,
               net_depth_viewdirs: int = 1, net_width_viewdirs: int = 128,
               skip_layer: int | None = 4, min_deg_point: int = 0,
               max_deg_point: int = 16, deg_view: int = 4,
               density_bias: float = -1.0, density_noise: float = 0.0,
               density_noise_mode: str = "per_sample",
               rgb_padding: float = 0.001, use_viewdirs: bool = True,
               append_mean_to_ipe: bool = False, freq_reg_end: int = 0,
               seed: int | None = None, **kwargs):
    super().__init__(**kwargs)
    # Positions must reach the encoder in float32 whatever the dtype policy:
    # sin(2^15·x) of a bfloat16 x is noise. The dense layers cast for themselves.
    self._convert_input_args = False
    for name, value in (("net_depth", net_depth), ("net_width", net_width),
                        ("net_width_viewdirs", net_width_viewdirs)):
      if int(value) < 1:
        raise errors.InputError(f"{name} must be >= 1. Received: {name}={value}")
    if net_depth_viewdirs < 0:
      raise errors.InputError("net_depth_viewdirs must be >= 0. Received: "
                       f"net_depth_viewdirs={net_depth_viewdirs}")
    if skip_layer is not None and not 0 <= skip_layer < net_depth - 1:
      raise errors.InputError("skip_layer must be None or in [0, net_depth - 1). "
                       f"Received: skip_layer={skip_layer}, "
                       f"net_depth={net_depth}")
    if density_noise < 0:
      raise errors.InputError(f"density_noise must be >= 0. Received: {density_noise}")
    if density_noise_mode not in DENSITY_NOISE_MODES:
      raise errors.InputError(f"density_noise_mode must be one of "
                       f"{DENSITY_NOISE_MODES}. Received: {density_noise_mode!r}")
    if deg_view < 0:
      raise errors.InputError(f"deg_view must be >= 0. Received: {deg_view}")
    if freq_reg_end < 0:
      raise errors.InputError(
          f"freq_reg_end must be >= 0 (0 = off). Received: {freq_reg_end}")

    # === Config ===
    self.net_depth = int(net_depth)
    self.net_width = int(net_width)
    self.net_depth_viewdirs = int(net_depth_viewdirs)
    self.net_width_viewdirs = int(net_width_viewdirs)
    self.skip_layer = None if skip_layer is None else int(skip_layer)
    self.min_deg_point = int(min_deg_point)
    self.max_deg_point = int(max_deg_point)
    self.deg_view = int(deg_view)
    self.density_bias = float(density_bias)
    self.density_noise = float(density_noise)
    self.density_noise_mode = density_noise_mode
    self.rgb_padding = float(rgb_padding)
    self.use_viewdirs = bool(use_viewdirs)
    self.append_mean_to_ipe = bool(append_mean_to_ipe)
    self.freq_reg_end = int(freq_reg_end)
    self.seed = None if seed is None else int(seed)

    # === Layers ===
    counter = iter(range(10_000))

    def init():
      if self.seed is None:
        return "glorot_uniform"
      return keras.initializers.GlorotUniform(seed=self.seed + next(counter))
    self.encoder = IntegratedPositionalEncoding(
        min_deg_point, max_deg_point, append_identity=self.append_mean_to_ipe,
        name="ipe", dtype="float32")
    self.trunk = [
        keras.layers.Dense(self.net_width, activation="relu",
                           kernel_initializer=init(), name=f"trunk_{i}",
                           dtype=self.dtype_policy)
        for i in range(self.net_depth)
    ]
    self.density_layer = keras.layers.Dense(
        1, kernel_initializer=init(), name="density", dtype=self.dtype_policy)
    if self.use_viewdirs:
      self.bottleneck = keras.layers.Dense(
          self.net_width, kernel_initializer=init(), name="bottleneck",
          dtype=self.dtype_policy)
      self.view_layers = [
          keras.layers.Dense(self.net_width_viewdirs, activation="relu",
                             kernel_initializer=init(), name=f"view_{i}",
                             dtype=self.dtype_policy)
          for i in range(self.net_depth_viewdirs)
      ]
    else:
      self.bottleneck = None
      self.view_layers = []
    self.rgb_layer = keras.layers.Dense(
        3, kernel_initializer=init(), name="rgb", dtype=self.dtype_policy)

  @property
  def point_features(self) -> int:
    return self.encoder.features

  @property
  def view_features(self) -> int:
    return 3 + 6 * self.deg_view

  def build(self, means_shape=None, covs_shape=None, viewdirs_shape=None):
    width = self.point_features
    for i, layer in enumerate(self.trunk):
      layer.build((None, width))
      width = self.net_width
      if self.skip_layer is not None and i == self.skip_layer:
        width += self.point_features
    self.density_layer.build((None, self.net_width))
    if self.use_viewdirs:
      self.bottleneck.build((None, self.net_width))
      width = self.net_width + self.view_features
      for layer in self.view_layers:
        layer.build((None, width))
        width = self.net_width_viewdirs
    else:
      width = self.net_width
    self.rgb_layer.build((None, width))
    self.built = True

  def _density_noise(self, raw_density, seed):
    if seed is None:
      raise errors.InputError("MipNerfMLP adds density noise in training and needs a "
                       "seed: pass seed=<shape-[2] int tensor>, or set "
                       "density_noise=0.")
    shape = (tf.shape(raw_density) if self.density_noise_mode == "per_sample"
             else [])
    return self.density_noise * tf.random.stateless_normal(shape, seed=seed)

  def freq_masks(self, step) -> tuple[tf.Tensor | None, tf.Tensor | None]:
    """(point mask [point_features], view mask [view_features]) at ``step``.

    Both are :func:`mip.freq_reg_mask` of ``step`` and ``freq_reg_end``; (None,
    None) when frequency regularisation is off or ``step`` is None.
    """
    if step is None or self.freq_reg_end <= 0:
      return None, None
    return (mip.freq_reg_mask(self.point_features, step, self.freq_reg_end),
            mip.freq_reg_mask(self.view_features, step, self.freq_reg_end))

  def call(self, means, covs, viewdirs=None, training=False, seed=None,
           step=None, density_only=False):
    """(rgb [..., S, 3], density [..., S]) of the Gaussians (means, covs).

    With ``density_only`` the colour branch is skipped and rgb is zeros (for
    rays whose colour no loss uses: about a sixth fewer FLOPs per sample).
    """
    point_mask, view_mask = self.freq_masks(step)
    encoded = self.encoder(means, covs)
    if point_mask is not None:
      encoded = encoded * point_mask
    # The layers run on [samples, features] matrices: with no reshape between
    # a matmul and its bias and ReLU, TensorFlow's graph rewriter fuses the
    # three into one kernel (benchmarks/RESULTS.md: 4 % off a full step).
    sample_shape = tf.shape(means)[:-1]
    encoded = tf.reshape(encoded, [-1, self.point_features])
    x = encoded
    for i, layer in enumerate(self.trunk):
      x = layer(x)
      if self.skip_layer is not None and i == self.skip_layer:
        x = tf.concat([x, tf.cast(encoded, x.dtype)], axis=-1)
    raw_density = tf.reshape(
        tf.cast(self.density_layer(x)[:, 0], tf.float32), sample_shape)
    if training and self.density_noise > 0:
      raw_density = raw_density + self._density_noise(raw_density, seed)
    density = tf.math.softplus(raw_density + self.density_bias)
    if density_only:
      return tf.zeros_like(means, tf.float32), density

    if self.use_viewdirs:
      if viewdirs is None:
        raise errors.InputError("MipNerfMLP(use_viewdirs=True) needs viewdirs of shape "
                         "[..., 3]; received None.")
      view_enc = mip.pos_enc(tf.cast(viewdirs, tf.float32), 0, self.deg_view,
                             append_identity=True)
      if view_mask is not None:
        view_enc = view_enc * view_mask
      view_enc = tf.reshape(tf.broadcast_to(
          view_enc[..., None, :],
          tf.concat([sample_shape, [self.view_features]], axis=0)),
                            [-1, self.view_features])
      x = self.bottleneck(x)
      x = tf.concat([x, tf.cast(view_enc, x.dtype)], axis=-1)
      for layer in self.view_layers:
        x = layer(x)
    raw_rgb = tf.reshape(tf.cast(self.rgb_layer(x), tf.float32),
                         tf.concat([sample_shape, [3]], axis=0))
    rgb = tf.sigmoid(raw_rgb) * (1.0 + 2.0 * self.rgb_padding) - self.rgb_padding
    return rgb, density

  def compute_output_shape(self, means_shape, covs_shape=None,
                           viewdirs_shape=None):
    return tuple(means_shape[:-1]) + (3,), tuple(means_shape[:-1])

  def get_config(self):
    config = super().get_config()
    config.update({
        "net_depth": self.net_depth,
        "net_width": self.net_width,
        "net_depth_viewdirs": self.net_depth_viewdirs,
        "net_width_viewdirs": self.net_width_viewdirs,
        "skip_layer": self.skip_layer,
        "min_deg_point": self.min_deg_point,
        "max_deg_point": self.max_deg_point,
        "deg_view": self.deg_view,
        "density_bias": self.density_bias,
        "density_noise": self.density_noise,
        "density_noise_mode": self.density_noise_mode,
        "rgb_padding": self.rgb_padding,
        "use_viewdirs": self.use_viewdirs,
        "append_mean_to_ipe": self.append_mean_to_ipe,
        "freq_reg_end": self.freq_reg_end,
        "seed": self.seed,
    })
    return config
