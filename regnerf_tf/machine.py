"""What this machine's processors can do, for choosing an execution path.

One home for the questions "does this machine do bfloat16 natively?" and
"which vector features does its CPU have?", asked by the fast renderer (which
runs its MLP in bfloat16 where that is native), by training's default
precision and by the speed benchmark's reports.

bfloat16 is *native* on a CPU with AVX512_BF16 or AMX-BF16 (Intel Cooper Lake
and later, AMD Zen 4 and later) and on GPUs of compute capability 8.0 or more
(NVIDIA Ampere and later). Elsewhere TensorFlow emulates it and it is slower
than float32 (benchmarks/RESULTS.md measured 35 against 68 GFLOP/s on an
AVX2-only CPU).
"""

from __future__ import annotations

import functools
import os
import platform

import tensorflow as tf

from regnerf_tf import errors

# CPU flags (as /proc/cpuinfo spells them) that make bfloat16 matmuls native.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# Vector features reported beside speed figures, widest last.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                "amx_tile", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
  """The CPU's feature flags from /proc/cpuinfo (empty where unreadable)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return frozenset(line.split(":", 1)[1].split())
  except OSError:
    pass
  return frozenset()


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
  """The CPU's model name (``platform.processor()`` where /proc is absent)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


# oneDNN's instruction-set levels, as ONEDNN_MAX_CPU_ISA spells them, lowest
# first, each with the vector flags it adds to the levels below it. A cap
# hides the flags of every level above it: TensorFlow's matmuls then run as on
# a CPU without them.
ISA_LEVELS = (
    ("SSE41", ()), ("AVX", ()), ("AVX2", ("avx2", "fma")), ("AVX2_VNNI", ()),
    ("AVX2_VNNI_2", ()), ("AVX512_CORE", ("avx512f",)),
    ("AVX512_CORE_VNNI", ("avx512_vnni",)),
    ("AVX512_CORE_BF16", ("avx512_bf16",)), ("AVX10_1_512", ()),
    ("AVX512_CORE_FP16", ()), ("AVX10_1_512_AMX", ("amx_tile", "amx_bf16")),
    ("AVX512_CORE_AMX", ()), ("AVX10_1_512_AMX_FP16", ()),
    ("AVX512_CORE_AMX_FP16", ()))
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def isa_cap() -> str | None:
  """The oneDNN ISA level the environment caps matmuls at (None: no cap).

  Read from ``ONEDNN_MAX_CPU_ISA`` (or its older name ``DNNL_MAX_CPU_ISA``);
  ``ALL`` and ``DEFAULT`` are no cap.

  Raises:
    errors.InputError: the variable names no level this module knows.
  """
  for name in ISA_CAP_VARIABLES:
    value = os.environ.get(name, "").strip().upper()
    if not value or value in ("ALL", "DEFAULT"):
      continue
    if value not in dict(ISA_LEVELS):
      raise errors.InputError(
          f"{name}={os.environ[name]} is not a oneDNN instruction-set level: "
          f"expected one of {', '.join(l for l, _ in ISA_LEVELS)}, ALL or "
          f"DEFAULT. Correct it, or unset {name} to use everything the CPU "
          "has.")
    return value
  return None


def effective_flags() -> frozenset[str]:
  """:func:`cpu_flags` without the vector flags above :func:`isa_cap`."""
  flags = cpu_flags()
  cap = isa_cap()
  if cap is None:
    return flags
  names = [level for level, _ in ISA_LEVELS]
  hidden = {f for level, added in ISA_LEVELS[names.index(cap) + 1:]
            for f in added}
  if names.index(cap) < names.index("AVX2"):
    hidden |= {"avx2", "fma"}
  return flags - hidden


def bfloat16_crashes_under(cap: str | None) -> bool:
  """Whether bfloat16 matmuls would crash under the oneDNN level ``cap``.

  TensorFlow picks oneDNN's bfloat16 kernels from the CPU's flags; a cap
  below AVX512_CORE_BF16 on a CPU that has them leaves oneDNN without those
  kernels, and the process died of a segmentation fault (benchmarks/
  RESULTS.md). On a CPU without them, bfloat16 is emulated and runs, slowly.
  """
  if cap is None:
    return False
  names = [level for level, _ in ISA_LEVELS]
  return (names.index(cap.upper()) < names.index("AVX512_CORE_BF16")
          and any(f in cpu_flags() for f in BF16_CPU_FLAGS))


def vector_features() -> list[str]:
  """The features of :data:`VECTOR_FLAGS` this CPU has (under
  :func:`isa_cap`)."""
  flags = effective_flags()
  return [f for f in VECTOR_FLAGS if f in flags]


def _gpu_capabilities() -> list[tuple[int, int]]:
  caps = []
  for gpu in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(gpu)
    if "compute_capability" in details:
      caps.append(tuple(details["compute_capability"]))
  return caps


def native_bfloat16() -> tuple[bool, str]:
  """(whether bfloat16 is native where TensorFlow will run, why).

  With GPUs, every GPU must be of compute capability ≥ 8.0; without, the CPU
  must have one of :data:`BF16_CPU_FLAGS`.
  """
  caps = _gpu_capabilities()
  if caps:
    if all(c >= (8, 0) for c in caps):
      return True, f"GPUs of compute capability {min(caps)} (>= 8.0)"
    return False, (f"a GPU of compute capability {min(caps)} (bfloat16 is "
                   "native from 8.0)")
  flags = effective_flags()
  found = [f for f in BF16_CPU_FLAGS if f in flags]
  if found:
    return True, f"CPU {cpu_model()} has {', '.join(found)}"
  hidden = [f for f in BF16_CPU_FLAGS if f in cpu_flags()]
  if hidden:
    return False, (f"CPU {cpu_model()} has {', '.join(hidden)}, but the "
                   f"environment caps oneDNN at {isa_cap()} "
                   "(ONEDNN_MAX_CPU_ISA), where bfloat16 matmuls are not "
                   "available")
  return False, (f"CPU {cpu_model()} has none of {', '.join(BF16_CPU_FLAGS)} "
                 "(bfloat16 would be emulated)")


@functools.lru_cache(maxsize=None)
def cpu_mhz() -> float | None:
  """The clock /proc/cpuinfo reports for the first CPU (None where absent)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("cpu MHz"):
          return float(line.split(":", 1)[1])
  except (OSError, ValueError):
    pass
  return None


def fma_peak_gflops(cores: int | None = None) -> dict[str, float] | None:
  """A ceiling on matmul GFLOP/s from the CPU's features and clock.

  cores × GHz × 2 FMA units × lanes × 2 FLOPs, with 16 float32 lanes for
  AVX-512 and 8 for AVX2 (the most any x86 core issues per cycle; a core with
  one FMA unit, or that splits 512-bit operations in two, reaches half).
  bfloat16 dot products (AVX512_BF16, AMX) do twice the float32 FLOPs per
  instruction. None when the clock or the features are unknown.
  """
  mhz = cpu_mhz()
  flags = effective_flags()
  lanes = 16 if "avx512f" in flags else 8 if "fma" in flags else 0
  if not mhz or not lanes:
    return None
  cores = cores or os.cpu_count() or 1
  fp32 = cores * mhz / 1000.0 * 2 * lanes * 2
  native = any(f in flags for f in BF16_CPU_FLAGS)
  return {"float32": fp32, "bfloat16": 2 * fp32 if native else fp32}


def cores() -> int:
  """The cores this process may run on (its affinity, e.g. under taskset)."""
  try:
    return len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    return os.cpu_count() or 1


# --- threads -----------------------------------------------------------------
#
# TensorFlow runs each op on a pool of intra-op threads (one per core by
# default) and independent ops side by side on inter-op threads (also one per
# core). A training step of this project's model is many small ops on
# independent branches (the levels, the observed and patch rays): on 2 cores
# it ran 4-6 % faster (full llff3) and 5-21 % faster (llff3_cpu; float32 and
# bfloat16) with one intra-op thread and two inter-op threads than with
# TensorFlow's 2 and 2, while rendering a chunk as one branch of large matmuls
# ran at 0.54-0.63x that way (benchmarks/RESULTS.md, "The execution path per
# machine"). So training gets half the cores per op and two ops at a time;
# the rendering commands keep TensorFlow's default, and rendering cuts each
# chunk into RENDER_BRANCHES parts side by side, which made it as fast under
# training's threads (regnerf-train's previews and scoring) as under the
# default.

TRAINING_INTER_OP_THREADS = 2
# Environment variables through which TensorFlow takes its thread counts (set,
# e.g., by regnerf-sweep for the CPUs a run declared); auto leaves them be.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def parse_threads(spec: str) -> tuple[int, int] | None:
  """'INTRA:INTER' → (intra, inter); 'default' → (0, 0) (TensorFlow's);
  'auto' → None (:func:`training_threads` decides).

  Raises:
    ValueError: anything else, with what is expected.
  """
  spec = str(spec).strip().lower()
  if spec == "auto":
    return None
  if spec == "default":
    return 0, 0
  try:
    intra, inter = (int(x) for x in spec.split(":"))
    if intra < 1 or inter < 1:
      raise ValueError
  except ValueError:
    raise ValueError(
        f"threads {spec!r}: expected 'auto', 'default' (TensorFlow's) or "
        "INTRA:INTER, two positive numbers of intra-op and inter-op threads "
        "(e.g. 1:2).") from None
  return intra, inter


def training_threads(spec: str = "auto") -> tuple[int, int, str]:
  """(intra-op threads, inter-op threads, why) for training; 0 means
  TensorFlow's default.

  ``auto``: on CPUs with at least 2 cores, half the cores per op and
  :data:`TRAINING_INTER_OP_THREADS` ops at a time; TensorFlow's default on
  one core, with GPUs (where the CPU threads only feed the GPU) and when the
  environment sets :data:`THREAD_VARIABLES`.
  """
  parsed = parse_threads(spec)
  if parsed is not None:
    return (*parsed, "--threads=default" if parsed == (0, 0)
            else "--threads")
  chosen = [f"{v}={os.environ[v]}" for v in THREAD_VARIABLES
            if os.environ.get(v, "").strip()]
  if chosen:
    return 0, 0, f"auto: the environment's {', '.join(chosen)}"
  if tf.config.list_physical_devices("GPU"):
    return 0, 0, "auto: TensorFlow's default with GPUs"
  n = cores()
  if n < 2:
    return 0, 0, "auto: TensorFlow's default on one core"
  return (max(1, n // TRAINING_INTER_OP_THREADS), TRAINING_INTER_OP_THREADS,
          f"auto: {n} cores, training's independent ops side by side")


# Rendering is one chain of large matmuls per chunk: on 2 cores, two halves of
# a chunk as independent branches ran 1.13-1.16x faster than the whole chunk
# with TensorFlow's threads and 1.86x faster under training's threads
# (regnerf_tf.renderer.side_by_side). More branches than 2 were not faster.
RENDER_BRANCHES = 2


def render_branches(setting: int = 0) -> int:
  """Parts each render chunk is split into and rendered side by side.

  ``setting`` (``train.render_branches``) > 0 is used as given; 0 (auto):
  :data:`RENDER_BRANCHES` on CPUs with at least 2 cores, 1 on one core and
  with GPUs (where one large kernel keeps the device busy).
  """
  if setting:
    return int(setting)
  if cores() < 2 or tf.config.list_physical_devices("GPU"):
    return 1
  return RENDER_BRANCHES


def apply_threads(intra: int, inter: int) -> None:
  """Sets TensorFlow's thread pools (0 leaves one at its default).

  Raises:
    RuntimeError: TensorFlow has already started running ops, after which
      its pools are fixed; set them first thing in the process.
  """
  try:
    if intra:
      tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
      tf.config.threading.set_inter_op_parallelism_threads(inter)
  except RuntimeError as e:
    raise RuntimeError(
        f"Cannot set {intra} intra-op and {inter} inter-op threads: "
        f"TensorFlow has already started ({e}). Set them before the first "
        "TensorFlow op of the process.") from e


def describe() -> dict:
  """The CPU model, clock, vector features and the bfloat16 verdict, for
  reports."""
  native, why = native_bfloat16()
  return {"cpu": cpu_model(), "cpu_mhz": cpu_mhz(),
          "vector_features": vector_features(), "isa_cap": isa_cap(),
          "native_bfloat16": native, "bfloat16_reason": why}
