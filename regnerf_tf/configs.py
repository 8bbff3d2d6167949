"""Typed, frozen configuration: the schema, its validation and overrides.

A :class:`Config` groups four parts: :class:`ModelConfig` (the MLP and how rays
are sampled), :class:`RegConfig` (losses, regularisers, annealing),
:class:`TrainConfig` (optimiser, batches, unobserved poses, checkpoints) and
:class:`DataConfig` (which scene and how its rays are built). Every field is
validated when the object is built; an invalid value raises
``errors.ConfigError`` (a ``ValueError``) naming the field and the value
received.

Presets are a literal table in :mod:`regnerf_tf.presets` (one entry per
preset): the official release's ``dtu3/6/9`` and ``llff3/6/9``
configurations, their mip-NeRF baselines (``*_mipnerf``), FreeNeRF
(``*_freenerf``), RegNeRF + FreeNeRF (``*_combined``), small CPU presets
(``*_small*``), the benchmark's CPU protocol (``*_cpu*``) and the demo.
:func:`get_preset` validates one; override any field with a dotted name::

    config = get_preset("dtu3", **{"train.batch_size": 1024,
                                   "model.num_samples": 64})

``release_compat=True`` reproduces the release's quirks (reference pitfalls P4,
P5, P6): one LLFF unobserved pose, zero LLFF depth-smoothness weight, one
density-noise scalar per level and step, coarse depth-smoothness weight fixed
at 0.1. The default (False) is the corrected behaviour.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any

from regnerf_tf import errors
from regnerf_tf import scene_kinds
from regnerf_tf.presets import PRESETS

DATASETS = scene_kinds.NAMES  # data.dataset: the kind a config is made for
RAY_SHAPES = ("cone", "cylinder")
ANNEAL_MODES = ("release", "paper")
BATCHING = ("single_image", "all_images")
PRECISIONS = ("float32", "mixed_bfloat16")


_INT64 = 2**63


def _short_repr(value, limit: int = 120) -> str:
  """repr() cut to ``limit`` characters (and safe for huge integers)."""
  try:
    text = repr(value)
  except ValueError:  # int with more digits than Python will print
    text = f"<{type(value).__name__} too large to print>"
  return text if len(text) <= limit else text[:limit] + "…"


def _fail(cls, field: str, value, expected: str):
  raise errors.ConfigError(
      f"{cls}.{field} {expected}. Received: {field}={_short_repr(value)}. "
      f"Fix the value (override '{_override_name(cls, field)}=...').")


def _override_name(cls: str, field: str) -> str:
  """'TrainConfig', 'seed' → 'train.seed' (the name overrides use)."""
  for section, section_cls in _SECTION_CLASSES.items():
    if section_cls.__name__ == cls:
      return f"{section}.{field}"
  return field


def _check_fields(obj):
  """Type coercion and generic checks driven by the dataclass annotations."""
  hints = typing.get_type_hints(type(obj))
  name = type(obj).__name__
  for f in dataclasses.fields(obj):
    value = getattr(obj, f.name)
    hint = hints[f.name]
    if hint is bool:
      if not isinstance(value, bool):
        _fail(name, f.name, value, "must be a bool")
    elif hint is int:
      if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
          value = int(value)
          object.__setattr__(obj, f.name, value)
        else:
          _fail(name, f.name, value, "must be an integer")
      if not -_INT64 <= value < _INT64:
        _fail(name, f.name, value, "must fit in a signed 64-bit integer")
    elif hint is float:
      if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(name, f.name, value, "must be a number")
      try:
        number = float(value)
      except OverflowError:  # an int beyond the float range
        number = math.inf
      if not math.isfinite(number):
        _fail(name, f.name, value, "must be finite (not NaN or infinite)")
      object.__setattr__(obj, f.name, number)
    elif hint is str:
      if not isinstance(value, str):
        _fail(name, f.name, value, "must be a string")


def _positive(obj, *names):
  for n in names:
    if getattr(obj, n) <= 0:
      _fail(type(obj).__name__, n, getattr(obj, n), "must be > 0")


def _non_negative(obj, *names):
  for n in names:
    if getattr(obj, n) < 0:
      _fail(type(obj).__name__, n, getattr(obj, n), "must be >= 0")


def _one_of(obj, n, choices):
  if getattr(obj, n) not in choices:
    _fail(type(obj).__name__, n, getattr(obj, n), f"must be one of {choices}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The mip-NeRF network and the sampling along rays."""
  net_depth: int = 8  # trunk layers
  net_width: int = 256  # trunk width
  net_depth_viewdirs: int = 1  # layers of the view-dependent branch
  net_width_viewdirs: int = 128  # width of the view-dependent branch
  skip_layer: int = 4  # input concatenated after this trunk layer (0-based)
  min_deg_point: int = 0  # IPE degrees [min, max)
  max_deg_point: int = 16
  deg_view: int = 4  # view-direction PE degrees [0, deg_view) + identity
  density_bias: float = -1.0  # added before softplus
  density_noise: float = 1.0  # std of raw-density noise in training
  rgb_padding: float = 0.001
  use_viewdirs: bool = True
  num_samples: int = 128  # intervals per ray and level
  num_levels: int = 2  # coarse + fine, one shared MLP
  ray_shape: str = "cone"  # "cone" (DTU) or "cylinder" (LLFF in NDC)
  lindisp: bool = False  # coarse samples linear in disparity
  resample_padding: float = 0.01  # added to blurred weights before resampling
  stop_level_grad: bool = True  # no gradient through resampled t-values
  white_background: bool = False
  precision: str = "float32"  # or "mixed_bfloat16" for the MLP
  # FreeNeRF: the raw 3-D mean before the IPE features (99 inputs for degrees
  # 0–15 instead of 96; other weights). False keeps mip-NeRF's input.
  append_mean_to_ipe: bool = False

  def __post_init__(self):
    _check_fields(self)
    _positive(self, "net_depth", "net_width", "net_width_viewdirs",
              "num_samples", "num_levels")
    _non_negative(self, "net_depth_viewdirs", "density_noise", "rgb_padding",
                  "resample_padding", "deg_view", "min_deg_point")
    if not 0 <= self.skip_layer < self.net_depth - 1 and self.skip_layer != -1:
      _fail("ModelConfig", "skip_layer", self.skip_layer,
            f"must be -1 (no skip) or in [0, net_depth - 1 = {self.net_depth - 1})")
    if self.max_deg_point <= self.min_deg_point:
      _fail("ModelConfig", "max_deg_point", self.max_deg_point,
            f"must be > min_deg_point={self.min_deg_point}")
    _one_of(self, "ray_shape", RAY_SHAPES)
    _one_of(self, "precision", PRECISIONS)


@dataclasses.dataclass(frozen=True)
class RegConfig:
  """Losses: colour, depth smoothness, appearance prior; annealing; FreeNeRF.

  FreeNeRF's two regularisers (Yang et al., CVPR 2023; reference §7.5), both
  off by default:

  * ``freq_reg``: multiply the point encoding and the view encoding by a
    visibility mask that reveals them frequency by frequency (identity, then
    degree 0, 1, …; sine and cosine of a degree together), opening linearly
    until step T = ⌊``freq_reg_end_fraction`` · train.max_steps⌋, all ones
    from then on and whenever rendering (:func:`regnerf_tf.mip.freq_reg_mask`).
    The mask is a function of ``optimizer.iterations``, so it survives a
    resume. FreeNeRF pairs it with ``model.append_mean_to_ipe``.
  * ``occlusion_weight`` (0 = off; FreeNeRF 0.01): weight of the mean density
    of the first ``occlusion_range`` samples of every observed ray on the
    fine level (FreeNeRF: 10 for DTU, 20 for LLFF); with
    ``occlusion_wb_prior`` (DTU) also of any of the first
    ``occlusion_wb_range`` samples whose predicted colour is near black or
    white (:func:`regnerf_tf.losses.occlusion_loss`).
  """
  coarse_loss_mult: float = 0.1  # weight of the coarse level's colour loss
  patch_size: int = 8  # S of the S×S unobserved-view patches
  # Intervals per level for the patch rays (0: model.num_samples; at most
  # model.num_samples). Fewer is cheaper: patch rays are most of a step's
  # rays. The release-size presets take half (benchmarks/RESULTS.md,
  # "Cheaper patch rays").
  patch_samples: int = 0
  depth_tv_weight_start: float = 400.0  # fine-level weight at step 0
  depth_tv_weight_end: float = 0.1  # fine-level weight after the decay
  depth_tv_decay_steps: int = 512  # linear decay length; 0 = constant end
  depth_tv_coarse_mult: float = 0.1  # coarse weight = this × schedule
  depth_tv_acc_weighting: float = 1.0  # × stop_grad(acc); 0 = unweighted
  appearance_weight: float = 0.0  # weight of the flow prior's patch NLL
  # With appearance_hinge, a patch adds max(NLL − appearance_nll_floor, 0)
  # instead of its NLL (nats/dim): patches already as likely as natural ones
  # are not pushed further towards the prior's flattest, darkest modes.
  appearance_hinge: bool = False
  appearance_nll_floor: float = -2.5  # ≈ mean NLL of natural 8×8 patches
  anneal_steps: int = 256  # 0 disables sample-space annealing
  anneal_start_fraction: float = 0.5  # p: initial interval as a fraction
  anneal_mid_fraction: float = 0.5  # m: where the interval starts
  anneal_mode: str = "release"  # "release" or "paper" formula
  freq_reg: bool = False  # FreeNeRF's frequency mask on the encodings
  freq_reg_end_fraction: float = 0.9  # mask all ones from this run fraction
  occlusion_weight: float = 0.0  # FreeNeRF's occlusion term; 0 = off
  occlusion_range: int = 10  # K: leading samples penalised on every ray
  occlusion_wb_prior: bool = False  # also near-black/white leading samples
  occlusion_wb_range: int = 15  # leading samples the b/w prior looks at

  def __post_init__(self):
    _check_fields(self)
    _positive(self, "patch_size")
    _non_negative(self, "coarse_loss_mult", "depth_tv_weight_start",
                  "depth_tv_weight_end", "depth_tv_decay_steps", "patch_samples",
                  "depth_tv_coarse_mult", "depth_tv_acc_weighting",
                  "appearance_weight", "anneal_steps", "occlusion_weight",
                  "occlusion_range", "occlusion_wb_range")
    if self.patch_samples == 1:
      _fail("RegConfig", "patch_samples", self.patch_samples,
            "must be 0 (the model's num_samples) or >= 2")
    for n in ("anneal_start_fraction", "anneal_mid_fraction"):
      if not 0.0 <= getattr(self, n) <= 1.0:
        _fail("RegConfig", n, getattr(self, n), "must be in [0, 1]")
    if not 0.0 < self.freq_reg_end_fraction <= 1.0:
      _fail("RegConfig", "freq_reg_end_fraction", self.freq_reg_end_fraction,
            "must be in (0, 1]")
    _one_of(self, "anneal_mode", ANNEAL_MODES)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation, batches, unobserved poses, checkpoints."""
  max_steps: int = 43945
  batch_size: int = 4096  # observed rays per step (global)
  patch_batch_size: int = 4096  # unobserved-view rays per step (global)
  batching: str = "single_image"  # rays of one image per step, or all
  lr_init: float = 2e-3
  lr_final: float = 2e-5
  lr_delay_steps: int = 512
  lr_delay_mult: float = 0.01
  grad_clip_value: float = 0.1  # element-wise; 0 disables
  grad_clip_norm: float = 0.1  # global norm; 0 disables
  adam_beta1: float = 0.9
  adam_beta2: float = 0.999
  adam_epsilon: float = 1e-8
  n_random_poses: int = 10000  # size of the unobserved-pose bank
  random_pose_radius: float = 1.0  # box half-extent scale
  random_pose_focus_jitter: float = 0.125  # DTU look-at jitter std
  seed: int = 20200823
  checkpoint_every: int = 25000
  keep_checkpoints: int = 3  # newest kept; 2+ lets a damaged one fall back
  log_every: int = 100
  jit_compile: bool = False  # XLA for the train and render steps
  randomized: bool = True  # stratified jitter in training (False: debugging)
  render_chunk: int = 4096  # rays per chunk when rendering images
  # Each chunk is rendered in this many parts side by side (independent
  # branches of one graph, run at once on TensorFlow's inter-op threads);
  # 0: machine.render_branches decides (2 on CPUs with 2+ cores, else 1).
  render_branches: int = 0
  # A step whose loss or gradients are NaN/inf is skipped (weights and
  # optimizer state untouched); this many in a row stop training.
  max_nonfinite_steps: int = 20
  # Each step's rays are processed in this many equal parts whose gradients
  # are summed before one update: the same update, with the activation memory
  # of one part (observed rays split evenly, patch rays in whole patches).
  micro_batches: int = 1

  def __post_init__(self):
    _check_fields(self)
    _positive(self, "max_steps", "batch_size", "lr_init", "lr_final",
              "n_random_poses", "checkpoint_every", "keep_checkpoints",
              "log_every",
              "render_chunk", "adam_epsilon", "max_nonfinite_steps",
              "micro_batches")
    _non_negative(self, "patch_batch_size", "lr_delay_steps", "lr_delay_mult",
                  "render_branches",
                  "grad_clip_value", "grad_clip_norm", "random_pose_radius",
                  "random_pose_focus_jitter")
    _one_of(self, "batching", BATCHING)
    for n in ("adam_beta1", "adam_beta2"):
      if not 0.0 <= getattr(self, n) < 1.0:
        _fail("TrainConfig", n, getattr(self, n), "must be in [0, 1)")
    if self.lr_final > self.lr_init:
      _fail("TrainConfig", "lr_final", self.lr_final,
            f"must be <= lr_init={self.lr_init} (the schedule decays)")
    if self.lr_delay_mult > 1.0:
      _fail("TrainConfig", "lr_delay_mult", self.lr_delay_mult,
            "must be in [0, 1] (the warm-up's starting fraction of lr_init)")
    if not 0 <= self.seed < 2**32:
      _fail("TrainConfig", "seed", self.seed, "must be in [0, 2**32)")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which scenes and how many input views.

  Ray bounds, NDC and the image resolution belong to the scene, not to the
  config: see ``REMOVED_FIELDS``.
  """
  # The scene kind (regnerf_tf.scene_kinds) the hyperparameters are made for.
  dataset: str = "dtu"
  n_views: int = 3

  def __post_init__(self):
    _check_fields(self)
    _one_of(self, "dataset", DATASETS)
    _positive(self, "n_views")


# Fields of earlier versions that were checked and then never read. A run
# folder or saved model of those versions still loads (the fields are dropped,
# which changes nothing); a config, preset or override that sets them now is
# refused with the reason.
_BOUNDS = ("ray bounds come from the scene: each record's near/far (DTU "
           "0.5/3.5 in the readers' normalised frame, Blender 2/6, LLFF 0/1 "
           "in NDC)")
REMOVED_FIELDS = {
    "data.near": _BOUNDS,
    "data.far": _BOUNDS,
    "data.ndc": ("NDC follows from the scene kind: LLFF scenes are rendered "
                 "in NDC, other kinds are not"),
    "data.factor": ("the resolution is the scene's: the readers read DTU at "
                    "1/4 (400×300) and LLFF's images_8; for smaller images "
                    "use regnerf_tf.scenes.downsample or the benchmarks' "
                    "--downsample"),
}


def _removed(key: str) -> errors.ConfigError:
  return errors.ConfigError(
      f"The config field {key!r} was removed: {REMOVED_FIELDS[key]}. It had "
      "no effect in earlier versions either. Remove it from the config or "
      "override.")


def drop_removed_fields(data: Any) -> Any:
  """``data`` (a :meth:`Config.to_dict` layout written by an earlier version)
  without ``REMOVED_FIELDS``."""
  if not isinstance(data, dict):
    return data
  data = dict(data)
  for key in REMOVED_FIELDS:
    section, field = key.split(".")
    if isinstance(data.get(section), dict) and field in data[section]:
      data[section] = {k: v for k, v in data[section].items() if k != field}
  return data


_SECTION_CLASSES = {"model": ModelConfig, "reg": RegConfig,
                    "train": TrainConfig, "data": DataConfig}
SECTIONS = tuple(_SECTION_CLASSES)


@dataclasses.dataclass(frozen=True)
class Config:
  """A whole experiment."""
  name: str = "custom"
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  reg: RegConfig = dataclasses.field(default_factory=RegConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  release_compat: bool = False  # reproduce the release's quirks (P4–P6)

  def __post_init__(self):
    if not isinstance(self.name, str):
      _fail("Config", "name", self.name, "must be a string")
    for part in SECTIONS:
      object.__setattr__(self, part, _section(part, getattr(self, part)))
    if not isinstance(self.release_compat, bool):
      _fail("Config", "release_compat", self.release_compat, "must be a bool")
    s2 = self.reg.patch_size**2
    if self.train.patch_batch_size % s2:
      _fail("TrainConfig", "patch_batch_size", self.train.patch_batch_size,
            f"must be a multiple of patch_size² = {s2}")
    if self.reg.patch_samples > self.model.num_samples:
      _fail("RegConfig", "patch_samples", self.reg.patch_samples,
            f"must be at most model.num_samples = {self.model.num_samples} "
            "(patch rays with more samples than the observed rays cost more "
            "and gain nothing); with a smaller model.num_samples, set "
            f"reg.patch_samples={max(2, self.model.num_samples // 2)} (half) or 0 "
            "(all of model.num_samples) too")
    parts = self.train.micro_batches
    if self.train.batch_size % parts:
      _fail("TrainConfig", "batch_size", self.train.batch_size,
            f"must be a multiple of train.micro_batches = {parts}")
    if self.train.patch_batch_size % (parts * s2):
      _fail("TrainConfig", "patch_batch_size", self.train.patch_batch_size,
            f"must be a multiple of train.micro_batches × patch_size² = "
            f"{parts * s2} (whole patches in every micro-batch)")

  def check_scene_kind(self, kind: str, what: str = "the scene") -> None:
    """Refuses a scene of the other family than the config's.

    Forward-facing LLFF scenes (``data.dataset="llff"``: rays in NDC, LLFF
    bounds, the LLFF pose bank and hyperparameters) and object-centred ones
    (DTU, Blender) do not mix; within a family a config is accepted.
    """
    forward = scene_kinds.get(self.data.dataset).forward_facing
    if forward == scene_kinds.get(kind).forward_facing:
      return
    family = ("forward-facing LLFF scenes (NDC rays, LLFF bounds, poses and "
              "weights)" if forward else "object-centred scenes (DTU, "
              "Blender)")
    kind = scene_kinds.get(kind)
    preset = "an llff3* preset" if kind.forward_facing else "a dtu3* preset"
    raise errors.ConfigError(
        f"Config {self.name!r} is for {family}, but {what} is a {kind.name} "
        "scene "
        f"(data.dataset={self.data.dataset!r}). Use {preset} "
        "(regnerf_tf.configs.preset_names()), or a config made for this "
        "scene.")

  # --- derived behaviour, where release_compat matters -----------------------

  @property
  def density_noise_mode(self) -> str:
    return "scalar" if self.release_compat else "per_sample"

  @property
  def effective_n_random_poses(self) -> int:
    if self.release_compat and self.data.dataset == "llff":
      return 1  # reference §4.1: the release keeps a single LLFF pose
    return self.train.n_random_poses

  @property
  def effective_depth_tv_acc_weighting(self) -> float:
    return self.reg.depth_tv_acc_weighting

  @property
  def depth_tv_enabled(self) -> bool:
    if self.release_compat and self.data.dataset == "llff":
      return False  # LLFF mask weight defaults to 0 in the release (P5)
    return self.train.patch_batch_size > 0 and (
        self.reg.depth_tv_weight_start > 0 or self.reg.depth_tv_weight_end > 0)

  @property
  def appearance_enabled(self) -> bool:
    return self.train.patch_batch_size > 0 and self.reg.appearance_weight > 0

  @property
  def uses_patches(self) -> bool:
    return self.depth_tv_enabled or self.appearance_enabled

  @property
  def occlusion_enabled(self) -> bool:
    return self.reg.occlusion_weight > 0

  @property
  def freq_reg_end_step(self) -> int:
    """T of the frequency mask (FreeNeRF's ``freq_reg_end``); 0 when off."""
    if not self.reg.freq_reg:
      return 0
    return math.floor(self.reg.freq_reg_end_fraction * self.train.max_steps)

  # --- (de)serialisation -----------------------------------------------------

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> "Config":
    """A Config from :meth:`to_dict`'s layout; missing fields keep defaults."""
    if not isinstance(data, dict):
      raise errors.ConfigError(
          f"A config must be a JSON object / dict of fields; received a "
          f"{type(data).__name__}: {_short_repr(data)}. Write it like "
          '{"model": {...}, "train": {...}}.')
    _check_names("Config", data, cls)
    return cls(**data)

  @classmethod
  def from_saved(cls, data: dict[str, Any]) -> "Config":
    """:meth:`from_dict` for configs this project saved (run folders, Keras
    model configs), also those of earlier versions (``REMOVED_FIELDS``)."""
    return cls.from_dict(drop_removed_fields(data))

  @classmethod
  def from_json(cls, text: str) -> "Config":
    """A Config from :meth:`to_json`'s text (also of earlier versions)."""
    try:
      data = json.loads(text)
    except (TypeError, ValueError, RecursionError) as e:
      raise errors.ConfigError(
          f"A config must be JSON text (an object of fields); it could not be "
          f"parsed: {e}. Write it as Config.to_json() does.") from None
    return cls.from_saved(data)

  def replace(self, **overrides) -> "Config":
    """A copy with dotted-name overrides, e.g. ``{"train.batch_size": 1024}``."""
    data = self.to_dict()
    for key, value in overrides.items():
      parts = _split_key(key)
      if len(parts) == 1:
        data[parts[0]] = value
      else:
        data[parts[0]][parts[1]] = value
    return Config.from_dict(data)


def _field_names(cls) -> list[str]:
  return sorted(f.name for f in dataclasses.fields(cls))


def _check_names(where: str, data: dict, cls) -> None:
  """ConfigError unless every key of ``data`` is a field of ``cls``."""
  allowed = _field_names(cls)
  unknown = sorted((k for k in data if k not in allowed), key=repr)
  if unknown:
    raise errors.ConfigError(
        f"Unknown {where} fields {', '.join(map(_short_repr, unknown))}; "
        f"expected some of {allowed}. Remove or rename them.")


def _section(part: str, value):
  """A section given as its dataclass or a dict of its fields, validated."""
  cls = _SECTION_CLASSES[part]
  if isinstance(value, cls):
    return value
  if not isinstance(value, dict):
    _fail("Config", part, value,
          f"must be a {cls.__name__} or a dict of its fields")
  for field in value:
    if f"{part}.{field}" in REMOVED_FIELDS:
      raise _removed(f"{part}.{field}")
  _check_names(cls.__name__, value, cls)
  return cls(**value)


def _split_key(key) -> list[str]:
  """'train.batch_size' → ['train', 'batch_size'], if the field exists."""
  parts = key.split(".") if isinstance(key, str) else []
  top = [n for n in _field_names(Config) if n not in SECTIONS]
  if len(parts) == 1 and parts[0] in top:
    return parts
  if len(parts) == 2 and parts[0] in SECTIONS:
    if key in REMOVED_FIELDS:
      raise _removed(key)
    fields = _field_names(_SECTION_CLASSES[parts[0]])
    if parts[1] in fields:
      return parts
    raise errors.ConfigError(
        f"Unknown config field {_short_repr(key)}; {parts[0]} has fields "
        f"{fields}.")
  raise errors.ConfigError(
      f"Unknown config field {_short_repr(key)}; expected one of {top} or a "
      f"dotted name 'section.field' with section in {list(SECTIONS)}, e.g. "
      "'train.batch_size'.")


def parse_override(text: str) -> tuple[str, Any]:
  """'train.batch_size=1024' → ('train.batch_size', 1024) (JSON values, or strings).

  The key must name a config field; the value is JSON (numbers, true/false,
  quoted strings, lists) or else taken as a plain string ("cylinder").

  Raises:
    errors.ConfigError: no '=', an unknown field, or more than one '=' outside
      a JSON string.
  """
  if not isinstance(text, str) or "=" not in text:
    raise errors.ConfigError(
        f"Override {_short_repr(text)} must look like 'section.field=value', "
        "e.g. 'train.batch_size=1024'.")
  key, raw = text.split("=", 1)
  key = key.strip()
  _split_key(key)
  try:
    value = json.loads(raw)
  except (ValueError, RecursionError):  # not JSON: a bare string
    if "=" in raw:
      raise errors.ConfigError(
          f"Override {_short_repr(text)} has more than one '='; expected "
          "'section.field=value' (quote a string value holding '=' as JSON, "
          "e.g. 'name=\"a=b\"').") from None
    low = raw.strip().lower()
    value = {"true": True, "false": False}.get(low, raw)
  return key, value


# ----------------------------------------------------------------------------
# Presets: the table lives in regnerf_tf/presets.py.
# ----------------------------------------------------------------------------

def preset_names() -> list[str]:
  return sorted(PRESETS)


def get_preset(name: str, /, **overrides) -> Config:
  """The named preset with dotted-name overrides applied and validated.

  ``name`` is positional-only, so ``**{"name": "mine"}`` overrides the
  config's name.
  """
  if not isinstance(name, str) or name not in PRESETS:
    raise errors.ConfigError(f"Unknown preset {_short_repr(name)}; choose one "
                             f"of {preset_names()}.")
  base = Config.from_dict({"name": name, **PRESETS[name]})
  return base.replace(**overrides) if overrides else base
