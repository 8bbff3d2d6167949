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


def vector_features() -> list[str]:
  """The features of :data:`VECTOR_FLAGS` this CPU has."""
  flags = cpu_flags()
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
  flags = cpu_flags()
  found = [f for f in BF16_CPU_FLAGS if f in flags]
  if found:
    return True, f"CPU {cpu_model()} has {', '.join(found)}"
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
  flags = cpu_flags()
  lanes = 16 if "avx512f" in flags else 8 if "fma" in flags else 0
  if not mhz or not lanes:
    return None
  cores = cores or os.cpu_count() or 1
  fp32 = cores * mhz / 1000.0 * 2 * lanes * 2
  native = any(f in flags for f in BF16_CPU_FLAGS)
  return {"float32": fp32, "bfloat16": 2 * fp32 if native else fp32}


def describe() -> dict:
  """The CPU model, clock, vector features and the bfloat16 verdict, for
  reports."""
  native, why = native_bfloat16()
  return {"cpu": cpu_model(), "cpu_mhz": cpu_mhz(),
          "vector_features": vector_features(),
          "native_bfloat16": native, "bfloat16_reason": why}
