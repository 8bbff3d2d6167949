"""LPIPS ("net-lin", version 0.1) as a small Keras 3 model.

Its weights are loaded from one local ``.npz`` file (see
:meth:`LPIPS.from_weights`; ``regnerf-lpips-weights``,
:mod:`regnerf_tf.lpips_weights`, writes the real AlexNet and VGG weights).
:mod:`regnerf_tf.metrics` uses it for LPIPS and masked LPIPS.

LPIPS ``.npz`` layout (all float32 except ``net``):

* ``net``: 0-d unicode array, ``"alex"`` or ``"vgg"``.
* ``backbone/conv{i}/kernel``: [kh, kw, c_in, c_out] (HWIO), i = 0 … n−1 in
  network order (AlexNet: 5 convolutions, VGG16: 13 convolutions).
* ``backbone/conv{i}/bias``: [c_out].
* ``lin{k}/weight``: [C_k], k = 0 … 4, the non-negative 1×1 linear weights of
  LPIPS layer k (C = 64, 192, 384, 256, 256 for AlexNet; 64, 128, 256, 512,
  512 for VGG16).
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import tensorflow as tf

from regnerf_tf import atomic
from regnerf_tf import errors



# LPIPS v0.1 input statistics, applied after mapping [0, 1] to [−1, 1].
_LPIPS_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_LPIPS_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
_NORM_EPS = 1e-10

# Backbone recipes as ordered ops. ("conv", kernel, c_out, stride, pad),
# ("pool", size, stride), ("tap",) marks the relu output fed to LPIPS.
_ALEX_OPS = (
    ("conv", 11, 64, 4, 2), ("tap",), ("pool", 3, 2),
    ("conv", 5, 192, 1, 2), ("tap",), ("pool", 3, 2),
    ("conv", 3, 384, 1, 1), ("tap",),
    ("conv", 3, 256, 1, 1), ("tap",),
    ("conv", 3, 256, 1, 1), ("tap",),
)


def _vgg16_ops() -> tuple:
  ops = []
  for stage, (reps, ch) in enumerate(
      ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))):
    if stage:
      ops.append(("pool", 2, 2))
    ops.extend(("conv", 3, ch, 1, 1) for _ in range(reps))
    ops.append(("tap",))
  return tuple(ops)


_BACKBONES = {"alex": _ALEX_OPS, "vgg": _vgg16_ops()}


def lpips_weight_shapes(net: str) -> dict[str, tuple[int, ...]]:
  """Names and shapes of every array an LPIPS ``.npz`` file must hold.

  Args:
    net: "alex" or "vgg".

  Returns:
    {name: shape} for the backbone kernels/biases and the linear weights
    (the 0-d ``net`` string array is not listed).
  """
  ops = _backbone_ops(net)
  shapes: dict[str, tuple[int, ...]] = {}
  c_in, i, taps = 3, 0, []
  for op in ops:
    if op[0] == "conv":
      _, k, c_out, _, _ = op
      shapes[f"backbone/conv{i}/kernel"] = (k, k, c_in, c_out)
      shapes[f"backbone/conv{i}/bias"] = (c_out,)
      c_in, i = c_out, i + 1
    elif op[0] == "tap":
      taps.append(c_in)
  for k, c in enumerate(taps):
    shapes[f"lin{k}/weight"] = (c,)
  return shapes


def _backbone_ops(net: str) -> tuple:
  if net not in _BACKBONES:
    raise errors.InputError(f"unknown LPIPS net {net!r}; expected 'alex' or 'vgg'")
  return _BACKBONES[net]


def _build_backbone(net: str) -> tuple[keras.Model, list[keras.layers.Conv2D]]:
  """Functional Keras backbone returning the five LPIPS feature maps.

  Args:
    net: "alex" or "vgg".

  Returns:
    (model mapping [B, H, W, 3] → list of five [B, h_l, w_l, C_l] relu
    outputs, list of its Conv2D layers in network order).
  """
  ops = _backbone_ops(net)
  inp = keras.Input(shape=(None, None, 3), dtype="float32")
  x, taps, convs = inp, [], []
  for op in ops:
    if op[0] == "conv":
      _, k, c_out, stride, pad = op
      # PyTorch pads symmetrically; explicit zero padding + "valid" matches it
      # for every stride (Keras "same" would pad asymmetrically at stride 4).
      x = keras.layers.ZeroPadding2D(pad, dtype="float32")(x)
      conv = keras.layers.Conv2D(
          c_out, k, strides=stride, padding="valid", activation="relu",
          dtype="float32", name=f"conv{len(convs)}")
      x = conv(x)
      convs.append(conv)
    elif op[0] == "pool":
      _, size, stride = op
      x = keras.layers.MaxPooling2D(size, strides=stride, padding="valid",
                                    dtype="float32")(x)
    else:
      taps.append(x)
  return keras.Model(inp, taps, name=f"lpips_{net}_backbone"), convs


class LPIPS:
  """LPIPS "net-lin" (v0.1) distance with an AlexNet or VGG16 backbone.

  distance(x0, x1) = Σ_l mean_{h,w} Σ_c w_{l,c} (n0_{l,hwc} − n1_{l,hwc})²,
  where n = backbone relu features of ((2x − 1) − shift)/scale, each unit-
  normalised over channels, and w_l ≥ 0 are the learned linear weights.

  Build with :meth:`from_weights` (real, converted weights) or
  :meth:`random` (He-initialised weights for tests).
  """

  def __init__(self, net: str, weights: dict[str, np.ndarray]):
    """Builds the model and assigns ``weights`` (see module docstring layout).

    Args:
      net: "alex" or "vgg".
      weights: {name: array} with every name of :func:`lpips_weight_shapes`.

    Raises:
      ValueError: unknown net, or a missing or mis-shaped array (named).
    """
    self.net = net
    expected = lpips_weight_shapes(net)
    for name, shape in expected.items():
      if name not in weights:
        raise errors.InputError(f"LPIPS ({net}) weights: missing array {name!r}")
      got = tuple(np.shape(weights[name]))
      if got != shape:
        raise errors.InputError(f"LPIPS ({net}) weights: array {name!r} has shape "
                         f"{got}, expected {shape}")
    self.backbone, convs = _build_backbone(net)
    for i, conv in enumerate(convs):
      conv.set_weights([
          np.asarray(weights[f"backbone/conv{i}/kernel"], np.float32),
          np.asarray(weights[f"backbone/conv{i}/bias"], np.float32)])
    n_lin = sum(1 for name in expected if name.startswith("lin"))
    self.lin_weights = [
        tf.constant(np.asarray(weights[f"lin{k}/weight"], np.float32))
        for k in range(n_lin)]
    if any(float(tf.reduce_min(w)) < 0.0 for w in self.lin_weights):
      raise errors.InputError(f"LPIPS ({net}) weights: linear weights must be >= 0")
    self._shift = tf.constant(_LPIPS_SHIFT)
    self._scale = tf.constant(_LPIPS_SCALE)
    self._distance_fn = tf.function(self._distance, reduce_retracing=True)

  # -- construction -------------------------------------------------------

  @classmethod
  def from_weights(cls, path: str | os.PathLike, net: str) -> LPIPS:
    """Loads all weights (backbone + linear layers) from one ``.npz`` file.

    Args:
      path: file written by :func:`save_weights_npz` or
        ``regnerf-lpips-weights`` (:mod:`regnerf_tf.lpips_weights`).
      net: "alex" or "vgg"; must match the file's ``net`` entry.

    Returns:
      the model.

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: wrong net, or a missing / mis-shaped array (named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise errors.MissingFileError(
          f"LPIPS unavailable: weights not found at {path}. Write them with "
          f"`regnerf-lpips-weights` (see regnerf_tf/lpips_weights.py).")
    with np.load(path, allow_pickle=False) as data:
      weights = {name: data[name] for name in data.files}
    if "net" not in weights:
      raise errors.InputError(f"LPIPS weights at {path}: missing array 'net'")
    file_net = str(weights.pop("net"))
    if file_net != net:
      raise errors.InputError(f"LPIPS weights at {path}: array 'net' is "
                       f"{file_net!r}, expected {net!r}")
    return cls(net, weights)

  @classmethod
  def random(cls, net: str, seed: int = 0) -> LPIPS:
    """Random weights for tests: He-normal backbone, positive linear weights.

    Args:
      net: "alex" or "vgg".
      seed: NumPy seed; the same seed gives the same weights.

    Returns:
      the model.
    """
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in lpips_weight_shapes(net).items():
      if name.endswith("/kernel"):
        fan_in = shape[0] * shape[1] * shape[2]
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
      elif name.endswith("/bias"):
        w = rng.normal(0.0, 0.01, shape)
      else:
        w = rng.uniform(0.05, 1.0, shape) / shape[0]
      weights[name] = w.astype(np.float32)
    return cls(net, weights)

  def get_weights(self) -> dict[str, np.ndarray]:
    """All weights in the ``.npz`` layout (without the ``net`` entry)."""
    weights = {}
    convs = [l for l in self.backbone.layers
             if isinstance(l, keras.layers.Conv2D)]
    for i, conv in enumerate(convs):
      kernel, bias = conv.get_weights()
      weights[f"backbone/conv{i}/kernel"] = kernel
      weights[f"backbone/conv{i}/bias"] = bias
    for k, w in enumerate(self.lin_weights):
      weights[f"lin{k}/weight"] = w.numpy()
    return weights

  # -- evaluation ---------------------------------------------------------

  def _features(self, images: tf.Tensor) -> list[tf.Tensor]:
    x = (images * 2.0 - 1.0 - self._shift) / self._scale
    feats = self.backbone(x, training=False)
    out = []
    for f in feats:
      norm = tf.sqrt(tf.reduce_sum(tf.square(f), axis=-1, keepdims=True))
      out.append(f / (norm + _NORM_EPS))
    return out

  def _distance(self, pred: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    f0, f1 = self._features(pred), self._features(target)
    total = tf.zeros(tf.shape(pred)[:1], tf.float32)
    for a, b, w in zip(f0, f1, self.lin_weights):
      per_pixel = tf.reduce_sum(tf.square(a - b) * w, axis=-1)  # [B, h, w]
      total += tf.reduce_mean(per_pixel, axis=[1, 2])
    return total

  def batch_distance(self, pred, target) -> np.ndarray:
    """LPIPS for a batch of pairs.

    Args:
      pred: [B, H, W, 3] (or [H, W, 3]) float in [0, 1].
      target: same shape as ``pred``.

    Returns:
      [B] float32 distances.
    """
    pred = tf.convert_to_tensor(np.asarray(pred, np.float32))
    target = tf.convert_to_tensor(np.asarray(target, np.float32))
    if pred.shape != target.shape:
      raise errors.InputError(
          f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    if pred.shape.rank == 3:
      pred, target = pred[None], target[None]
    if pred.shape.rank != 4 or pred.shape[-1] != 3:
      raise errors.InputError(f"expected [B, H, W, 3] images, got {pred.shape}")
    return self._distance_fn(pred, target).numpy()

  def __call__(self, pred, target) -> float:
    """LPIPS for a single pair.

    Args:
      pred: [H, W, 3] (or [1, H, W, 3]) float in [0, 1].
      target: same shape as ``pred``.

    Returns:
      the distance (0 for identical images).
    """
    d = self.batch_distance(pred, target)
    if d.shape[0] != 1:
      raise errors.InputError("LPIPS.__call__ takes a single pair; use "
                       "batch_distance for batches")
    return float(d[0])


def save_weights_npz(model: LPIPS, path: str | os.PathLike) -> None:
  """Writes ``model``'s weights in the layout :meth:`LPIPS.from_weights` reads.

  Args:
    model: an :class:`LPIPS` instance.
    path: output path, written exactly as given (conventionally ``.npz``).
  """
  atomic.write_npz(os.fspath(path), net=np.array(model.net),
                   **model.get_weights())
