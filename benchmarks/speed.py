"""Speed benchmark: training and rendering throughput against the matmul limit.

One command measures, on this machine and in one run::

  python -m benchmarks.speed [--presets=llff3,llff3_small] [--steps=11]

* the machine: CPU model, clock, vector features, whether bfloat16 is native
  (:mod:`regnerf_tf.machine`), and a ceiling from them (the CPU's FMA peak);
* the matmul limit in float32 and bfloat16, GFLOP/s: the best of chains of
  [M, W] × [W, W] matmuls for W = 128, 256 and 512, each under TensorFlow's
  default threads and under one thread per core, so that no real workload of
  the MLP's shapes beats it;
* for each preset × precision (float32, mixed_bfloat16) × XLA (off, on):
  training throughput (median step time over the steps after the first, i.e.
  after compilation; observed and patch rays counted separately and together),
  rendering throughput of the exact renderer and of the fast path
  (:mod:`regnerf_tf.fast_render`; on random weights and rays, so this measures
  its overhead and its precision, not what a trained field lets it skip:
  ``benchmarks/fast_render.py`` measures that), the MLP's FLOPs per ray computed from its layer
  shapes, the share of the matmul limit this reaches, and peak memory (each
  variant runs in its own process, whose peak resident set size is reported);
* for each preset and precision, the MLP alone (forward + backward over as
  many samples as one training step evaluates), so that the difference to the
  full step shows how much time goes to everything else (encoding, sampling,
  compositing, losses, the optimizer).

``--isa=native,AVX2`` repeats every measurement with oneDNN and XLA capped at
AVX2 (``ONEDNN_MAX_CPU_ISA``, ``--xla_cpu_max_isa``), which measures the
code path of a CPU without AVX-512 on this one; ``--thread_settings=default,2:1``
repeats the training and rendering variants with other intra-op:inter-op
thread counts.

The batch is the issue's comparison batch by default: 1024 observed rays and
4096 patch rays (64 patches of 8×8) per step. It prints one table and writes
JSON (``--output``).

``--cost`` adds how cost grows with the work (for ``--cost_preset``): render
time of 1×, 4× and 16× ``--cost_pixels`` rays, exact and fast, and step time
at 1×, 2× and 4× ``--cost_batch`` observed rays (with four times as many patch
rays), so that a run's time can be predicted.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS

PRECISIONS = ("float32", "mixed_bfloat16")
# --isa caps: oneDNN's level name → XLA's --xla_cpu_max_isa name.
ISA_CAPS = {"AVX2": "AVX2", "AVX512_CORE": "AVX512",
            "AVX512_CORE_VNNI": "AVX512_VNNI",
            "AVX512_CORE_BF16": "AVX512_BF16"}


def isa_env(isa: str) -> dict:
  """Environment variables that cap a child at ``isa`` ('native': none)."""
  if isa == "native":
    return {}
  level = isa.upper()
  if level not in ISA_CAPS:
    raise app.UsageError(f"--isa={isa}: expected 'native' or one of "
                         f"{', '.join(ISA_CAPS)}.")
  xla = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                 if not f.startswith("--xla_cpu_max_isa"))
  return {"ONEDNN_MAX_CPU_ISA": level,
          "XLA_FLAGS": f"{xla} --xla_cpu_max_isa={ISA_CAPS[level]}".strip()}


def bfloat16_under(isa: str) -> bool:
  """Whether bfloat16 variants can run under ``isa`` on this CPU."""
  from regnerf_tf import machine  # pylint: disable=import-outside-toplevel
  return not machine.bfloat16_crashes_under(None if isa == "native" else isa)


def parse_threads(setting: str) -> tuple[int, int]:
  """'default' → (0, 0); 'INTRA:INTER' → the two counts; 'auto' → what
  regnerf-train chooses on this machine (:func:`machine.training_threads`)."""
  from regnerf_tf import machine  # pylint: disable=import-outside-toplevel
  try:
    return machine.training_threads(setting)[:2]
  except ValueError as e:
    raise app.UsageError(f"--thread_settings: {e}") from None


def define_flags():
  flags.DEFINE_list("presets", ["llff3", "llff3_small"], "Presets to measure.")
  flags.DEFINE_list("precisions", list(PRECISIONS), "Precisions.")
  flags.DEFINE_list("xla", ["false", "true"], "XLA settings.")
  flags.DEFINE_list("isa", ["native"], "Instruction sets to run under: "
                    "'native' (everything the CPU has) and/or a cap, "
                    f"one of {', '.join(ISA_CAPS)}. A cap runs the children "
                    "with ONEDNN_MAX_CPU_ISA and XLA's --xla_cpu_max_isa set, "
                    "so that an AVX-512 machine measures the AVX2 code path "
                    "(same cores, caches and clock; bfloat16 variants are "
                    "skipped under a cap without bfloat16, where oneDNN has "
                    "no bfloat16 matmul and crashes).")
  flags.DEFINE_list("thread_settings", ["default"], "Thread settings of the "
                    "training and rendering variants: 'default' "
                    "(TensorFlow's), 'auto' (what regnerf-train chooses "
                    "here) and/or 'INTRA:INTER' (intra-op and inter-op "
                    "threads).")
  flags.DEFINE_integer("steps", 11, "Training steps per variant (the first "
                       "one, which compiles, is not counted).")
  flags.DEFINE_integer("batch_size", 1024, "Observed rays per step.")
  flags.DEFINE_integer("patch_batch_size", 4096, "Patch rays per step.")
  flags.DEFINE_integer("micro_batches", 4, "train.micro_batches: parts each "
                       "step's rays are processed in (bounds memory).")
  flags.DEFINE_integer("render_rays", 16384, "Rays rendered for the "
                       "rendering figure (after one warm-up chunk).")
  flags.DEFINE_integer("matmul_rows", 65536, "M of the matmul-limit test.")
  flags.DEFINE_string("output", "benchmarks/speed.json", "JSON output.")
  flags.DEFINE_bool("mlp_only", True, "Also time the MLP alone.")
  flags.DEFINE_string("child", None, "Internal: run one variant "
                      "(preset:precision:xla:what) and print its JSON.")
  flags.DEFINE_integer("threads", 0, "Internal: intra-op threads of a child "
                       "(0: TensorFlow's default).")
  flags.DEFINE_integer("inter_threads", 0, "Internal: inter-op threads of a "
                       "child (0: TensorFlow's default).")
  flags.DEFINE_bool("cost", False, "Also measure how render and step time "
                    "grow (see the module docstring).")
  flags.DEFINE_string("cost_preset", "llff3_cpu", "Preset of the cost table.")
  flags.DEFINE_multi_string("override", [], "section.field=value applied to "
                            "every preset (e.g. reg.patch_samples=64); "
                            "repeatable. The precision, XLA and batch flags "
                            "win over overrides of the same fields.")
  flags.DEFINE_integer("cost_pixels", 4096, "Rays of the smallest render.")
  flags.DEFINE_integer("cost_batch", 256, "Observed rays of the smallest "
                       "step of the cost table.")


# --- measurements (run in child processes) -----------------------------------


def _timed(fn, repeats: int) -> list[float]:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


MATMUL_WIDTHS = (128, 256, 512)


def matmul_limit(rows: int, widths=MATMUL_WIDTHS, repeats: int = 10) -> dict:
  """GFLOP/s of chains of [rows, W] × [W, W] matmuls, float32 and bfloat16.

  Returns {dtype: best over ``widths``, "detail": {"<dtype> W=<w>": GFLOP/s}}.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from regnerf_tf import machine  # pylint: disable=import-outside-toplevel
  result = {"detail": {}}
  dtypes = [tf.float32, tf.bfloat16]
  if machine.bfloat16_crashes_under(machine.isa_cap()):
    dtypes.pop()
  for dtype in dtypes:
    for width in widths:
      n = rows * 256 // width  # the same FLOPs for every width
      a = tf.cast(tf.random.normal([n, width]), dtype)
      b = tf.cast(tf.random.normal([width, width]) / width ** 0.5, dtype)

      @tf.function
      def chain(a, b):
        x = a
        for _ in range(8):  # like the trunk: 8 back-to-back matmuls
          x = tf.matmul(x, b)
        return tf.reduce_sum(tf.cast(x[:1], tf.float32))

      chain(a, b).numpy()
      times = _timed(lambda: chain(a, b).numpy(), repeats)
      gflops = 8 * 2.0 * n * width * width / statistics.median(times) / 1e9
      result["detail"][f"{dtype.name} W={width}"] = gflops
      result[dtype.name] = max(result.get(dtype.name, 0.0), gflops)
  return result


COLOUR_BRANCH = ("bottleneck", "view_", "rgb")


def mlp_flops_per_sample(mlp, density_only: bool = False) -> int:
  """Forward FLOPs of one MLP evaluation: 2·in·out for every Dense kernel
  (without the colour branch when ``density_only``)."""
  total = 0
  for weight in mlp.weights:
    if len(weight.shape) != 2:
      continue
    if density_only and any(f"/{n}" in weight.path for n in COLOUR_BRANCH):
      continue
    total += 2 * int(weight.shape[0]) * int(weight.shape[1])
  return total


def _random_rays(n: int, seed: int, near: float, far: float):
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  d = np.concatenate([rng.normal(scale=0.3, size=(n, 2)),
                      -np.ones((n, 1))], -1).astype(np.float32)
  return {"origins": rng.normal(scale=0.05, size=(n, 3)).astype(np.float32),
          "directions": d,
          "viewdirs": d / np.linalg.norm(d, axis=-1, keepdims=True),
          "radii": np.full((n, 1), 0.002, np.float32),
          "near": np.full((n, 1), near, np.float32),
          "far": np.full((n, 1), far, np.float32)}


def config_for(preset: str, precision: str, xla: bool):
  """The preset with ``--override``, then the benchmark's precision, XLA
  setting and batch flags."""
  from regnerf_tf import configs  # pylint: disable=import-outside-toplevel
  return configs.get_preset(preset, **{
      **dict(configs.parse_override(o) for o in FLAGS.override),
      "model.precision": precision, "train.jit_compile": xla,
      "train.batch_size": FLAGS.batch_size,
      "train.patch_batch_size": FLAGS.patch_batch_size,
      "train.micro_batches": FLAGS.micro_batches})


def _near_far(config):
  """The bounds of the scene kind the preset is made for (DTU for others)."""
  from regnerf_tf import scene_kinds  # pylint: disable=import-outside-toplevel
  kind = scene_kinds.get(config.data.dataset)
  if not kind.fixed_bounds:
    kind = scene_kinds.DTU
  return kind.near, kind.far


def training_setup(config):
  """The model of ``config`` and one fixed random batch of its shape."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from regnerf_tf import model as model_lib  # pylint: disable=import-outside-toplevel
  near, far = _near_far(config)
  model = model_lib.build_model(config)
  batch = {"rays": _random_rays(config.train.batch_size, 0, near, far),
           "rgb": np.random.default_rng(1).uniform(
               size=(config.train.batch_size, 3)).astype(np.float32)}
  if config.uses_patches:
    batch["patch_rays"] = _random_rays(config.train.patch_batch_size, 2, near,
                                       far)
  return model, batch


def step_times(model, batch, steps: int) -> list[float]:
  """Seconds of each of ``steps`` model.fit steps on a fixed batch."""
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  times = []

  class Timer(keras.callbacks.Callback):

    def on_train_batch_begin(self, batch, logs=None):
      self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
      times.append(time.perf_counter() - self.start)

  model.fit(tf.data.Dataset.from_tensors(batch).repeat(),
            steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Timer()])
  return times


def measure_training(preset: str, precision: str, xla: bool) -> dict:
  """Median step time of model.fit on a fixed batch, and rendering speed."""
  from regnerf_tf import machine  # pylint: disable=import-outside-toplevel
  config = config_for(preset, precision, xla)
  near, far = _near_far(config)
  model, batch = training_setup(config)
  times = step_times(model, batch, FLAGS.steps)
  step = statistics.median(times[1:])
  observed = config.train.batch_size
  patches = config.train.patch_batch_size if config.uses_patches else 0
  samples = config.model.num_samples * config.model.num_levels
  flops = mlp_flops_per_sample(model.mlp)
  patch_flops = mlp_flops_per_sample(
      model.mlp, density_only=not config.appearance_enabled)
  step_flops = train_flops_per_step(model.mlp, config)
  # Rendering: deterministic chunks, the first one compiles.
  chunk = config.train.render_chunk
  rays = _random_rays(FLAGS.render_rays + chunk, 3, near, far)
  render_seconds = _render_seconds(model, rays, chunk)
  fast = _fast_renderer(model, rays)
  fast_seconds = _render_seconds(fast, rays, chunk)
  return {
      "step_seconds_median": step,
      "step_seconds": times,
      "observed_rays_per_sec": observed / step,
      "patch_rays_per_sec": patches / step,
      "rays_per_sec": (observed + patches) / step,
      "render_rays_per_sec": FLAGS.render_rays / render_seconds,
      "render_branches": machine.render_branches(
          config.train.render_branches),
      "render_fast_rays_per_sec": FLAGS.render_rays / fast_seconds,
      "render_fast": fast.describe(),
      "mlp_forward_flops_per_sample": flops,
      "mlp_forward_flops_per_sample_density_only": patch_flops,
      "samples_per_ray": samples,
      "train_flops_per_step": step_flops,
      "train_flops_per_ray": step_flops / (observed + patches),
      "render_flops_per_ray": render_flops_per_ray(model.mlp, config),
  }


def _render_seconds(renderer, rays, chunk: int) -> float:
  """Seconds to render ``rays`` after their first chunk, which is rendered
  first with the shapes of the timed pieces (so that no tracing is timed)."""
  n = len(rays["origins"]) - chunk
  for size in {min(n, chunk), n % chunk or chunk}:
    renderer.render_chunked({k: v[:size] for k, v in rays.items()}, chunk)
  start = time.perf_counter()
  renderer.render_chunked({k: v[chunk:] for k, v in rays.items()}, chunk)
  return time.perf_counter() - start


def _fast_renderer(model, rays):
  """The default fast path of ``model``, its grid over the rays' box."""
  from regnerf_tf import fast_render  # pylint: disable=import-outside-toplevel
  return fast_render.FastRenderer(model, fast_render.bounds_from_rays([rays]))


def measure_cost(preset: str) -> dict:
  """Render seconds against rays (exact and fast), step seconds against the
  batch (see the module docstring)."""
  import keras  # pylint: disable=import-outside-toplevel
  from regnerf_tf import configs, model as model_lib  # pylint: disable=import-outside-toplevel
  config = configs.get_preset(preset)
  near, far = _near_far(config)
  model = model_lib.build_model(config)
  chunk = config.train.render_chunk
  largest = 16 * FLAGS.cost_pixels
  rays = _random_rays(largest + chunk, 5, near, far)
  fast = _fast_renderer(model, rays)
  renders = []
  for scale in (1, 4, 16):
    n = scale * FLAGS.cost_pixels
    part = {k: v[:n + chunk] for k, v in rays.items()}
    renders.append({"rays": n,
                    "exact_seconds": _render_seconds(model, part, chunk),
                    "fast_seconds": _render_seconds(fast, part, chunk)})
  steps = []
  for scale in (1, 2, 4):
    observed = scale * FLAGS.cost_batch
    cfg = configs.get_preset(preset, **{
        "train.batch_size": observed, "train.patch_batch_size": 4 * observed})
    keras.utils.clear_session()
    times = step_times(*training_setup(cfg), max(3, FLAGS.steps // 2))
    steps.append({"observed_rays": observed, "patch_rays": 4 * observed,
                  "step_seconds": statistics.median(times[1:])})
  return {"cost_preset": preset, "renders": renders, "steps": steps}


def train_flops_per_step(mlp, config) -> int:
  """MLP FLOPs of one training step, forward and backward (≈ 2 × forward:
  gradients of inputs and of weights): every level's samples of the observed
  rays with colour, and of the patch rays (``reg.patch_samples`` per level
  when set) without colour unless the appearance term uses it."""
  levels = config.model.num_levels
  observed = config.train.batch_size * config.model.num_samples * levels
  total = observed * mlp_flops_per_sample(mlp)
  if config.uses_patches:
    per_level = config.reg.patch_samples or config.model.num_samples
    total += (config.train.patch_batch_size * per_level * levels
              * mlp_flops_per_sample(
                  mlp, density_only=not config.appearance_enabled))
  return 3 * total


def render_flops_per_ray(mlp, config) -> int:
  """MLP FLOPs of one rendered ray: every level's samples, colour only on the
  last level (rendering shows only that level's colour)."""
  per_level = config.model.num_samples
  return per_level * ((config.model.num_levels - 1)
                      * mlp_flops_per_sample(mlp, density_only=True)
                      + mlp_flops_per_sample(mlp))


def measure_mlp_only(preset: str, precision: str, xla: bool) -> dict:
  """Forward + backward of the MLP alone over one step's samples (one
  micro-batch timed, times the number of micro-batches)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from regnerf_tf import model as model_lib  # pylint: disable=import-outside-toplevel
  config = config_for(preset, precision, xla)
  mlp = model_lib.build_model(config).mlp
  parts = config.train.micro_batches
  groups = [(config.train.batch_size // parts, False)]
  if config.uses_patches:
    groups.append((config.train.patch_batch_size // parts,
                   not config.appearance_enabled))
  per_level = config.model.num_samples
  # Different inputs for every level: identical calls would let a compiler
  # evaluate the MLP once (XLA does).
  inputs = [(tf.random.normal([n, per_level, 3]),
             tf.fill([n, per_level, 3], 1e-4),
             tf.math.l2_normalize(tf.random.normal([n, 3]), -1), density_only)
            for n, density_only in groups
            for _ in range(config.model.num_levels)]

  @tf.function(jit_compile=xla)
  def step():
    with tf.GradientTape() as tape:
      total = 0.0
      for means, covs, viewdirs, density_only in inputs:
        rgb, density = mlp(means, covs, viewdirs, density_only=density_only)
        total += tf.reduce_sum(rgb) + tf.reduce_sum(density)
    grads = tape.gradient(total, mlp.trainable_variables)
    return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])

  step().numpy()
  times = _timed(lambda: step().numpy(), max(3, FLAGS.steps // 2))
  return {"mlp_step_seconds_median": parts * statistics.median(times)}


def child(spec: str) -> dict:
  preset, precision, xla, what = spec.split(":")
  xla = xla == "true"
  if FLAGS.threads or FLAGS.inter_threads:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if FLAGS.threads:
      tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    if FLAGS.inter_threads:
      tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_threads)
  if what == "matmul":
    result = {"matmul_gflops": matmul_limit(FLAGS.matmul_rows)}
  elif what == "cost":
    result = measure_cost(preset)
  elif what == "train":
    result = measure_training(preset, precision, xla)
  else:
    result = measure_mlp_only(preset, precision, xla)
  result["peak_rss_gb"] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 2**20
  return result


# --- driver ------------------------------------------------------------------


def _run_child(spec: str, threads: int = 0, inter: int = 0,
               isa: str = "native") -> dict:
  args = [sys.executable, "-m", "benchmarks.speed", f"--child={spec}",
          f"--steps={FLAGS.steps}", f"--batch_size={FLAGS.batch_size}",
          f"--patch_batch_size={FLAGS.patch_batch_size}",
          f"--micro_batches={FLAGS.micro_batches}",
          f"--render_rays={FLAGS.render_rays}",
          f"--matmul_rows={FLAGS.matmul_rows}", f"--threads={threads}",
          f"--inter_threads={inter}",
          f"--cost_pixels={FLAGS.cost_pixels}",
          f"--cost_batch={FLAGS.cost_batch}",
          *(f"--override={o}" for o in FLAGS.override)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **isa_env(isa))
  proc = subprocess.run(args, capture_output=True, text=True, env=env,
                        check=False)
  for line in proc.stdout.splitlines()[::-1]:
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  return {"error": proc.stderr[-2000:] or f"exit code {proc.returncode}"}


def _fmt(value, spec):
  return "–" if value is None else format(value, spec)


def main(argv):
  del argv
  if FLAGS.child:
    print("RESULT " + json.dumps(child(FLAGS.child)), flush=True)
    return 0
  import platform  # pylint: disable=import-outside-toplevel
  from regnerf_tf import machine  # pylint: disable=import-outside-toplevel
  report = {"date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                       f"{platform.python_version()}",
            "cpu": machine.describe(),
            "fma_peak_gflops": machine.fma_peak_gflops(),
            "overrides": list(FLAGS.override),
            "batch": {"observed": FLAGS.batch_size,
                      "patch": FLAGS.patch_batch_size,
                      "micro_batches": FLAGS.micro_batches},
            "variants": []}
  cpu = report["cpu"]
  print(f"CPU {cpu['cpu']} at {cpu['cpu_mhz']} MHz "
        f"({', '.join(cpu['vector_features'])}); bfloat16: "
        f"{cpu['bfloat16_reason']}; FMA peak (ceiling): "
        + (", ".join(f"{k} {v:.0f} GFLOP/s"
                     for k, v in report["fma_peak_gflops"].items())
           if report["fma_peak_gflops"] else "unknown"), flush=True)
  isas = list(dict.fromkeys(FLAGS.isa))
  for isa in isas:
    isa_env(isa)  # refuses an unknown level before anything runs
  from regnerf_tf import errors  # pylint: disable=import-outside-toplevel
  for preset in FLAGS.presets + ([FLAGS.cost_preset] if FLAGS.cost else []):
    try:
      config_for(preset, "float32", False)
    except errors.ConfigError as e:  # unknown preset or a bad --override
      raise app.UsageError(str(e)) from None
  thread_settings = [(t, *parse_threads(t)) for t in FLAGS.thread_settings]
  report["matmul_gflops"], report["matmul_detail"] = {}, {}
  for isa in isas:
    best = report["matmul_gflops"].setdefault(isa, {})
    for threads in (0, os.cpu_count() or 1):
      limit = _run_child("-:-:false:matmul", threads, 1 if threads else 0,
                         isa).get("matmul_gflops", {})
      for key, value in limit.pop("detail", {}).items():
        report["matmul_detail"][
            f"{key} threads={threads or 'default'} isa={isa}"] = value
      for key, value in limit.items():  # no bfloat16 where it crashes
        best[key] = max(best.get(key, 0), value)
    print(f"matmul limit, isa={isa} (best of widths "
          + "/".join(map(str, MATMUL_WIDTHS))
          + ", default and per-core threads): "
          + (", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in best.items())
             or "failed"), flush=True)
  for preset in FLAGS.presets:
    for isa in isas:
      for precision in FLAGS.precisions:
        for xla in FLAGS.xla:
          for threads, intra, inter in thread_settings:
            labels = {"preset": preset, "precision": precision, "xla": xla,
                      "isa": isa, "threads": threads}
            if precision == "mixed_bfloat16" and not bfloat16_under(isa):
              result = {"skipped": "bfloat16 matmuls crash under this cap "
                                   "on this CPU"}
            else:
              result = _run_child(f"{preset}:{precision}:{xla}:train", intra,
                                  inter, isa)
            result.update(labels)
            if FLAGS.mlp_only and "error" not in result \
                and "skipped" not in result:
              only = _run_child(f"{preset}:{precision}:{xla}:mlp", intra,
                                inter, isa)
              result["mlp_step_seconds_median"] = only.get(
                  "mlp_step_seconds_median")
            key = "bfloat16" if precision == "mixed_bfloat16" else "float32"
            peak = report["matmul_gflops"][isa].get(key)
            if "step_seconds_median" in result and peak:
              achieved = (result["train_flops_per_step"]
                          / result["step_seconds_median"])
              result["train_gflops"] = achieved / 1e9
              result["train_share_of_limit"] = achieved / 1e9 / peak
              rendered = (result["render_rays_per_sec"]
                          * result["render_flops_per_ray"])
              result["render_share_of_limit"] = rendered / 1e9 / peak
            report["variants"].append(result)
            print(_row(result), flush=True)
  if FLAGS.cost:
    report["cost"] = _run_child(f"{FLAGS.cost_preset}:float32:false:cost")
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  from regnerf_tf import atomic  # pylint: disable=import-outside-toplevel
  atomic.write_json(FLAGS.output, report)
  print(table(report))
  print(f"Wrote {FLAGS.output}")
  return 0


def _label(r: dict) -> str:
  """'llff3 float32 xla=false', with the cap and threads when not native and
  default."""
  label = f"{r['preset']} {r['precision']} xla={r['xla']}"
  if r.get("isa", "native") != "native":
    label += f" isa={r['isa']}"
  if r.get("threads", "default") != "default":
    label += f" threads={r['threads']}"
  return label


def _row(r: dict) -> str:
  if "error" in r:
    return f"{_label(r)}: FAILED {r['error']}"
  if "skipped" in r:
    return f"{_label(r)}: skipped ({r['skipped']})"
  return (f"{_label(r)}: "
          f"{r['step_seconds_median']:.2f} s/step, "
          f"{r['rays_per_sec']:.0f} rays/s train, "
          f"{r['render_rays_per_sec']:.0f} rays/s render "
          f"({r['render_fast_rays_per_sec']:.0f} fast; "
          f"{r.get('render_branches', 1)} part(s) side by side), "
          f"{r['peak_rss_gb']:.1f} GB")


def table(report: dict) -> str:
  head = ("| preset | precision | XLA | ISA | threads | s/step | observed "
          "rays/s | patch rays/s | total rays/s | MLP-only s/step | train "
          "GFLOP/s | share of matmul limit | render rays/s | render share | "
          "fast render rays/s | peak GB |")
  lines = [head, "|" + "---|" * 16]
  for r in report["variants"]:
    first = (f"| {r['preset']} | {r['precision']} | {r['xla']} | "
             f"{r.get('isa', 'native')} | {r.get('threads', 'default')} | ")
    if "error" in r or "skipped" in r:
      lines.append(first + ("failed" if "error" in r else "skipped")
                   + " |" + " |" * 10)
      continue
    lines.append(
        first + 
        f"{r['step_seconds_median']:.2f} | {r['observed_rays_per_sec']:.0f} | "
        f"{r['patch_rays_per_sec']:.0f} | {r['rays_per_sec']:.0f} | "
        f"{_fmt(r.get('mlp_step_seconds_median'), '.2f')} | "
        f"{_fmt(r.get('train_gflops'), '.0f')} | "
        f"{_fmt(r.get('train_share_of_limit'), '.0%')} | "
        f"{r['render_rays_per_sec']:.0f} | "
        f"{_fmt(r.get('render_share_of_limit'), '.0%')} | "
        f"{r['render_fast_rays_per_sec']:.0f} | "
        f"{r['peak_rss_gb']:.1f} |")
  flops = {r["preset"]: r for r in report["variants"]
           if "step_seconds_median" in r}
  notes = [f"{p}: {r['mlp_forward_flops_per_sample'] / 1e6:.3f} MFLOP per MLP "
           f"evaluation ({r['mlp_forward_flops_per_sample_density_only'] / 1e6:.3f}"
           f" for patch rays, whose colour no loss uses), "
           f"{r['train_flops_per_step'] / 1e12:.3f} TFLOP per training step "
           f"(forward + backward), {r['render_flops_per_ray'] / 1e6:.0f} MFLOP "
           "per rendered ray" for p, r in flops.items()]
  limits = "; ".join(
      f"isa={isa}: " + ", ".join(f"{k} {v:.0f} GFLOP/s"
                                 for k, v in by_dtype.items())
      for isa, by_dtype in report["matmul_gflops"].items())
  over = [_label(r) for r in report["variants"]
          if max(r.get("train_share_of_limit") or 0,
                 r.get("render_share_of_limit") or 0) > 1]
  if over:  # the limit did not measure the limit
    notes.append("Above the matmul limit (the limit test is too slow here): "
                 + "; ".join(over))
  if report.get("overrides"):
    notes.append("Overrides: " + ", ".join(report["overrides"]))
  return "\n".join([f"Matmul limit: {limits}.", *notes, "", *lines,
                    *cost_table(report.get("cost"))])


def cost_table(cost: dict | None) -> list[str]:
  """Markdown lines of the ``--cost`` measurements (none without them)."""
  if not cost or "error" in cost:
    return [] if not cost else ["", f"Cost table failed: {cost['error']}"]
  lines = ["", f"How cost grows ({cost['cost_preset']}, float32, random "
           "weights):", "",
           "| rays rendered | exact s | fast s | exact rays/s | fast rays/s |",
           "|---|---|---|---|---|"]
  for r in cost["renders"]:
    lines.append(f"| {r['rays']} | {r['exact_seconds']:.2f} | "
                 f"{r['fast_seconds']:.2f} | "
                 f"{r['rays'] / r['exact_seconds']:.0f} | "
                 f"{r['rays'] / r['fast_seconds']:.0f} |")
  lines += ["", "| observed + patch rays per step | s/step | rays/s |",
            "|---|---|---|"]
  for r in cost["steps"]:
    total = r["observed_rays"] + r["patch_rays"]
    lines.append(f"| {r['observed_rays']} + {r['patch_rays']} | "
                 f"{r['step_seconds']:.3f} | {total / r['step_seconds']:.0f} |")
  return lines


def run():
  define_flags()
  app.run(main)


if __name__ == "__main__":
  sys.exit(run())
