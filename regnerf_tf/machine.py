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


def describe() -> dict:
  """The CPU model, its vector features and the bfloat16 verdict, for reports."""
  native, why = native_bfloat16()
  return {"cpu": cpu_model(), "vector_features": vector_features(),
          "native_bfloat16": native, "bfloat16_reason": why}
