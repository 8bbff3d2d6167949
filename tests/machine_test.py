"""Tests for regnerf_tf.machine: what the CPU can do, under an ISA cap."""

from __future__ import annotations

import pytest

from regnerf_tf import machine


@pytest.fixture(autouse=True)
def no_isa_cap(monkeypatch):
  for name in machine.ISA_CAP_VARIABLES:
    monkeypatch.delenv(name, raising=False)


def test_native_bfloat16_from_cpu_flags(monkeypatch):
  monkeypatch.setattr(machine, "_gpu_capabilities", lambda: [])
  monkeypatch.setattr(machine, "cpu_flags",
                      lambda: frozenset({"avx2", "fma", "avx512f"}))
  native, why = machine.native_bfloat16()
  assert not native and "avx512_bf16" in why and "emulated" in why
  monkeypatch.setattr(machine, "cpu_flags",
                      lambda: frozenset({"avx2", "avx512_bf16"}))
  native, why = machine.native_bfloat16()
  assert native and "avx512_bf16" in why
  assert machine.vector_features() == ["avx2", "avx512_bf16"]
  monkeypatch.setattr(machine, "_gpu_capabilities", lambda: [(7, 5)])
  assert not machine.native_bfloat16()[0]
  monkeypatch.setattr(machine, "_gpu_capabilities", lambda: [(8, 0), (9, 0)])
  assert machine.native_bfloat16()[0]


def test_fma_peak_from_features_and_clock(monkeypatch):
  monkeypatch.setattr(machine, "cpu_mhz", lambda: 2000.0)
  monkeypatch.setattr(machine, "cpu_flags",
                      lambda: frozenset({"fma", "avx2", "avx512f",
                                         "avx512_bf16"}))
  # 2 cores × 2 GHz × 2 FMA units × 16 lanes × 2 FLOPs; bfloat16 twice that.
  assert machine.fma_peak_gflops(2) == {"float32": 256.0, "bfloat16": 512.0}
  monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"fma", "avx2"}))
  assert machine.fma_peak_gflops(2) == {"float32": 128.0, "bfloat16": 128.0}
  monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset())
  assert machine.fma_peak_gflops(2) is None


AVX512_BF16_CPU = frozenset({"sse4_1", "avx", "avx2", "fma", "avx512f",
                             "avx512_vnni", "avx512_bf16"})


def test_isa_cap_hides_the_flags_above_it(monkeypatch):
  monkeypatch.setattr(machine, "_gpu_capabilities", lambda: [])
  monkeypatch.setattr(machine, "cpu_flags", lambda: AVX512_BF16_CPU)
  monkeypatch.setattr(machine, "cpu_mhz", lambda: 2000.0)
  assert machine.isa_cap() is None
  assert machine.native_bfloat16()[0]
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
  assert machine.isa_cap() == "AVX2"
  assert machine.vector_features() == ["avx2", "fma"]
  native, why = machine.native_bfloat16()
  assert not native and "avx512_bf16" in why and "AVX2" in why
  # AVX2's 8 float32 lanes, and no bfloat16 doubling.
  assert machine.fma_peak_gflops(2) == {"float32": 128.0, "bfloat16": 128.0}
  assert machine.describe()["isa_cap"] == "AVX2"
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
  assert machine.vector_features() == ["avx2", "fma", "avx512f",
                                       "avx512_vnni"]
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
  assert machine.native_bfloat16()[0]
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX")
  assert machine.vector_features() == []
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
  assert machine.isa_cap() is None and machine.native_bfloat16()[0]


def test_isa_cap_older_name_and_unknown_level(monkeypatch):
  monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE")
  assert machine.isa_cap() == "AVX512_CORE"
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX3")
  with pytest.raises(ValueError, match="ONEDNN_MAX_CPU_ISA=AVX3.*AVX2.*unset"):
    machine.isa_cap()


@pytest.fixture
def no_thread_variables(monkeypatch):
  for name in machine.THREAD_VARIABLES:
    monkeypatch.delenv(name, raising=False)


def test_render_branches(monkeypatch):
  gpus = []
  monkeypatch.setattr(machine.tf.config, "list_physical_devices",
                      lambda kind=None: gpus)
  for n, expected in ((1, 1), (2, 2), (16, 2)):
    monkeypatch.setattr(machine, "cores", lambda n=n: n)
    assert machine.render_branches() == expected, n
  assert machine.render_branches(3) == 3  # train.render_branches as given
  gpus.append("GPU:0")
  assert machine.render_branches() == 1 and machine.render_branches(2) == 2


def test_parse_threads():
  assert machine.parse_threads("auto") is None
  assert machine.parse_threads(" Default ") == (0, 0)
  assert machine.parse_threads("1:2") == (1, 2)
  for bad in ("2", "0:1", "1:0", "a:b", "1:2:3", ""):
    with pytest.raises(ValueError, match="INTRA:INTER"):
      machine.parse_threads(bad)


def test_training_threads_auto(monkeypatch, no_thread_variables):
  gpus = []
  monkeypatch.setattr(machine.tf.config, "list_physical_devices",
                      lambda kind=None: gpus)
  for n, expected in ((1, (0, 0)), (2, (1, 2)), (3, (1, 2)), (8, (4, 2))):
    monkeypatch.setattr(machine, "cores", lambda n=n: n)
    assert machine.training_threads()[:2] == expected, n
  assert "8 cores" in machine.training_threads()[2]
  gpus.append("GPU:0")
  assert machine.training_threads() == (0, 0, "auto: TensorFlow's default "
                                        "with GPUs")
  gpus.clear()
  # A thread count from the environment (regnerf-sweep sets one) is kept.
  monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
  intra, inter, why = machine.training_threads()
  assert (intra, inter) == (0, 0) and "TF_NUM_INTRAOP_THREADS=1" in why
  # Explicit settings win over everything.
  assert machine.training_threads("3:1") == (3, 1, "--threads")
  assert machine.training_threads("default")[:2] == (0, 0)


def test_apply_threads_in_a_fresh_process_and_after_start():
  import subprocess
  import sys
  code = ("from regnerf_tf import machine; import tensorflow as tf; "
          "machine.apply_threads(1, 2); tf.constant(1.0) + 1; "
          "print(tf.config.threading.get_intra_op_parallelism_threads(), "
          "tf.config.threading.get_inter_op_parallelism_threads())")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True).stdout.split()
  assert out == ["1", "2"]
  machine.tf.constant(1.0) + 1  # this process has started TensorFlow
  with pytest.raises(RuntimeError, match="already started.*first"):
    machine.apply_threads(1, 2)


def test_regnerf_train_threads_inside_a_running_process(monkeypatch,
                                                        no_thread_variables):
  from absl import app
  from regnerf_tf.cli import train
  monkeypatch.setattr(machine, "cores", lambda: 2)
  monkeypatch.setattr(machine.tf.config, "list_physical_devices",
                      lambda kind=None: [])
  machine.tf.constant(1.0) + 1  # TensorFlow runs in this process already
  assert "kept, TensorFlow had already started" in train.set_threads("auto")
  with pytest.raises(app.UsageError, match="--threads=1:2: .*already started"):
    train.set_threads("1:2")


@pytest.mark.large
def test_regnerf_train_start_line_names_its_threads(no_thread_variables):
  import os
  import subprocess
  import sys
  args = ["--preset=dtu3_small", "--synthetic", "--steps=1",
          "--eval_views=none", "--override=model.net_depth=2",
          "--override=model.net_width=16", "--override=model.skip_layer=0",
          "--override=model.num_samples=8", "--override=train.batch_size=32",
          "--override=train.patch_batch_size=16", "--override=reg.patch_size=4"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  for name in machine.THREAD_VARIABLES:
    env.pop(name, None)
  for threads, expected in (("1:2", "threads: 1 intra-op, 2 inter-op "
                                    "(--threads)"),
                            ("default", "threads: TensorFlow's default "
                                        "(--threads=default)")):
    out = subprocess.run(
        [sys.executable, "-m", "regnerf_tf.cli.train", f"--threads={threads}",
         *args], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert expected in out.stdout, out.stdout[-3000:]


def test_bfloat16_crashes_only_under_a_cap_that_hides_it(monkeypatch):
  from benchmarks import speed
  monkeypatch.setattr(machine, "cpu_flags", lambda: AVX512_BF16_CPU)
  assert not machine.bfloat16_crashes_under(None)
  assert machine.bfloat16_crashes_under("AVX2")
  assert machine.bfloat16_crashes_under("avx512_core_vnni")
  assert not machine.bfloat16_crashes_under("AVX512_CORE_BF16")
  assert speed.bfloat16_under("native") and not speed.bfloat16_under("AVX2")
  # An AVX2-only CPU emulates bfloat16: its variants run, capped or not.
  monkeypatch.setattr(machine, "cpu_flags",
                      lambda: frozenset({"avx", "avx2", "fma"}))
  assert not machine.bfloat16_crashes_under("AVX2")
  assert speed.bfloat16_under("native") and speed.bfloat16_under("AVX2")
