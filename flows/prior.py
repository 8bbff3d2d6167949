"""Saving and loading patch priors, and RegNeRF's appearance loss.

A saved prior is two files sharing a stem::

  <stem>.json          {"format": ..., "config": PatchFlow config, "training": ...}
  <stem>.weights.h5    Keras 3 weights of the PatchFlow

Both are written atomically (a temporary file in the same folder, then
``os.replace``), so a killed writer never leaves a half-written prior.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from regnerf_tf import atomic
from regnerf_tf import errors
from regnerf_tf.flows import realnvp

FORMAT = "regnerf_tf.flows.PatchFlow"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".weights.h5"
CONFIG_SUFFIX = ".json"
DEFAULT_PRIOR_STEM = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                  "weights", "default_prior_8x8")
_CONFIG_KEYS = ("patch_size", "num_couplings", "hidden_units",
                "num_hidden_layers", "log_scale_bound", "alpha", "mask_seed")


def prior_paths(path: str) -> tuple[str, str]:
  """``(json_path, weights_path)`` of a prior given its stem or either file."""
  path = os.fspath(path)
  for suffix in (WEIGHTS_SUFFIX, CONFIG_SUFFIX):
    if path.endswith(suffix):
      path = path[:-len(suffix)]
      break
  return path + CONFIG_SUFFIX, path + WEIGHTS_SUFFIX


def save_prior(flow: realnvp.PatchFlow, path: str,
               metadata: dict[str, Any] | None = None) -> tuple[str, str]:
  """Writes ``<stem>.json`` and ``<stem>.weights.h5`` atomically.

  Args:
    flow: the flow to save.
    path: the stem, or either file name.
    metadata: JSON-serialisable facts stored under ``"training"``.

  Returns:
    ``(json_path, weights_path)``.
  """
  json_path, weights_path = prior_paths(path)
  if not flow.built:
    flow.build()
  full = flow.get_config()
  record = {
      "format": FORMAT,
      "format_version": FORMAT_VERSION,
      "config": {k: full[k] for k in _CONFIG_KEYS},
      "weights_file": os.path.basename(weights_path),
      "training": metadata or {},
  }
  # An uncompiled copy, so no optimizer state ends up in the weights file.
  bare = realnvp.PatchFlow(**record["config"], name=flow.name)
  bare.build()
  bare.set_weights(flow.get_weights())
  # Weights first: a JSON file never points at weights that do not exist yet.
  atomic.write_with(weights_path, bare.save_weights)

  atomic.write_bytes(
      json_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
  return json_path, weights_path


def read_prior_record(path: str) -> dict[str, Any]:
  """The parsed ``<stem>.json`` of a prior (config and training facts)."""
  json_path, _ = prior_paths(path)
  if not os.path.isfile(json_path):
    raise errors.MissingFileError(
        f"Expected a prior config file {json_path!r} (next to "
        f"'<stem>{WEIGHTS_SUFFIX}'); it does not exist. Train one with "
        "`regnerf-train-prior --output <stem>`.")
  try:
    with open(json_path, encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError) as e:
    raise errors.InputError(f"Prior config {json_path!r} is not valid JSON ({e}). "
                     "Re-create it with `regnerf-train-prior`.") from e
  if not isinstance(record, dict) or record.get("format") != FORMAT:
    raise errors.InputError(f"Expected {json_path!r} to be a patch prior config with "
                     f"\"format\": \"{FORMAT}\".")
  if record.get("format_version") != FORMAT_VERSION:
    raise errors.InputError(f"Prior config {json_path!r} has format_version "
                     f"{record.get('format_version')!r}; this code reads "
                     f"version {FORMAT_VERSION}.")
  config = record.get("config")
  if not isinstance(config, dict) or set(config) != set(_CONFIG_KEYS):
    raise errors.InputError(f"Prior config {json_path!r}: expected \"config\" with "
                     f"the keys {sorted(_CONFIG_KEYS)}. Received {config!r}.")
  return record


def load_prior(path: str, trainable: bool = False) -> realnvp.PatchFlow:
  """Loads a prior saved by :func:`save_prior` / ``regnerf-train-prior``.

  Args:
    path: the stem, ``<stem>.json`` or ``<stem>.weights.h5``.
    trainable: False (default) creates every variable of the flow as
      non-trainable (invisible to ``GradientTape`` too); True to fine-tune.

  Returns:
    The built :class:`~regnerf_tf.flows.realnvp.PatchFlow`.

  Raises:
    FileNotFoundError: a file is missing.
    ValueError: a file is corrupt or does not match the config.
  """
  record = read_prior_record(path)
  json_path, weights_path = prior_paths(path)
  if not os.path.isfile(weights_path):
    raise errors.MissingFileError(
        f"Expected the prior weights {weights_path!r} next to {json_path!r}; "
        "the file does not exist.")
  try:
    flow = realnvp.PatchFlow(**record["config"], trainable=trainable,
                             name="patch_prior")
  except (TypeError, ValueError) as e:
    raise errors.InputError(f"Prior config {json_path!r} is invalid: {e}") from e
  flow.build()
  try:
    flow.load_weights(weights_path)
  except Exception as e:  # h5py / Keras raise many types here.
    raise errors.InputError(
        f"Could not load the prior weights {weights_path!r} into the flow "
        f"described by {json_path!r}: {type(e).__name__}: {e}. The file is "
        "corrupt or was written for another architecture.") from e
  for v in flow.weights:
    if not np.all(np.isfinite(v.numpy())):
      raise errors.InputError(f"Prior weights {weights_path!r} contain non-finite "
                       f"values in {v.path}.")
  # Where it came from: a saved RegNeRF model refers to its prior by this.
  flow.source = os.path.abspath(json_path[:-len(CONFIG_SUFFIX)])
  return flow


DEFAULT_SOURCE = "default"


def load_default_prior() -> realnvp.PatchFlow:
  """The frozen 8×8 prior shipped in ``regnerf_tf/flows/weights/``."""
  flow = load_prior(DEFAULT_PRIOR_STEM)
  flow.source = DEFAULT_SOURCE  # the same on every installation
  return flow


def load_source(source: str) -> realnvp.PatchFlow:
  """The prior a saved model names: ``"default"`` or a saved prior's stem."""
  if source == DEFAULT_SOURCE:
    return load_default_prior()
  return load_prior(source)


class AppearanceLoss:
  """RegNeRF's appearance regulariser: NLL of rendered patches under a prior.

  ``loss(patches)`` is the mean over patches and colour values of
  ``−log p(patch) / D`` in **nats per dimension** (D = S·S·3) of the frozen
  prior's continuous density on ``[0, 1]^D``. Per-dimension units keep the
  value independent of the patch size and of the number of patches. It is
  negative for natural patches (densities above 1 on the unit cube); only its
  gradient matters, and constant offsets do not change training. Measured on
  the default prior: natural held-out patches ≈ −3.2 nats/dim, uniform noise
  ≈ +6.3 nats/dim (see flows/README.md for the suggested loss weight).

  The prior is frozen (``trainable = False``): its variables are not in any
  model's trainable variables, and gradients only flow to ``patches``.

  Rendered colours may overshoot ``[0, 1]`` slightly; they are clipped to
  ``[−clip_margin, 1 + clip_margin]`` (``clip_margin`` is below
  ``α / (1 − 2α)``, where the logit preprocessing is defined).

  Args:
    prior: a :class:`PatchFlow`; None loads the default prior.
    clip_margin: how far outside ``[0, 1]`` colours are still scored.
    check_finite: reject NaN/Inf patches (ValueError in eager mode,
      ``tf.errors.InvalidArgumentError`` inside a ``tf.function``). Under
      XLA (``jit_compile=True``) TensorFlow drops this check silently.
  """

  def __init__(self, prior: realnvp.PatchFlow | None = None,
               clip_margin: float = 0.02, check_finite: bool = True):
    self.prior = load_default_prior() if prior is None else prior
    self.prior.trainable = False
    limit = self.prior.alpha / (1.0 - 2.0 * self.prior.alpha)
    if not 0.0 <= clip_margin < limit:
      raise errors.InputError(f"Expected 0 <= clip_margin < {limit:.4f} "
                       f"(alpha={self.prior.alpha}). Received {clip_margin}.")
    self.clip_margin = float(clip_margin)
    self.check_finite = check_finite

  @property
  def patch_size(self) -> int:
    return self.prior.patch_size

  def patch_nll(self, patches) -> tf.Tensor:
    """The RegNeRF model's prior interface: same as :meth:`nll_per_patch_dim`."""
    return self.nll_per_patch_dim(patches)

  def nll_per_patch_dim(self, patches) -> tf.Tensor:
    """Per-patch NLL in nats/dim: patches [P, S, S, 3] → float32 [P]."""
    patches = tf.convert_to_tensor(patches)
    s = self.patch_size
    if patches.shape.rank != 4 or tuple(patches.shape[1:]) != (s, s, 3):
      raise errors.InputError(
          f"Expected rendered patches of shape [P, {s}, {s}, 3] (the prior's "
          f"patch size is {s}). Received shape {patches.shape}.")
    if not patches.dtype.is_floating:
      raise errors.InputError("Expected float patches with colours in [0, 1]. "
                       f"Received dtype {patches.dtype.name}.")
    patches = tf.cast(patches, tf.float32)
    if self.check_finite:
      if tf.executing_eagerly():
        if not bool(tf.reduce_all(tf.math.is_finite(patches))):
          raise errors.InputError("Expected finite rendered patches; received NaN "
                           "or Inf colours.")
      else:
        patches = tf.debugging.assert_all_finite(
            patches, "Expected finite rendered patches; received NaN or Inf "
            "colours.")
    m = self.clip_margin
    patches = tf.clip_by_value(patches, -m, 1.0 + m)
    return self.prior.nll_per_dim(patches)

  def __call__(self, patches) -> tf.Tensor:
    """Mean NLL in nats/dim of patches [P, S, S, 3]: float32 scalar."""
    return tf.reduce_mean(self.nll_per_patch_dim(patches))


def appearance_loss(patches, prior: realnvp.PatchFlow) -> tf.Tensor:
  """Functional form of :class:`AppearanceLoss` (nats/dim, scalar)."""
  return AppearanceLoss(prior)(patches)
