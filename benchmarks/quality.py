"""Quality benchmark, "CPU protocol": methods side by side on one scene.

For a scene folder (LLFF or DTU layout) it takes the canonical 3-view split at
half the reader's resolution (``--downsample``), trains every method with the
protocol's presets (``<kind>3_cpu*``: the same 6×128 network, 32 + 32 samples,
optimizer schedule, seed and step budget), records held-out PSNR along the way
(a PSNR-versus-steps curve on the first ``--curve_views`` test views), then
evaluates all test views (PSNR, SSIM with data range 1, LPIPS when
``--lpips_weights`` is given, masked metrics on DTU) and writes
``results.json`` and ``results.md`` into ``--output/<scene>``::

  python -m benchmarks.quality --scene_dir=../shared/data/llff/fern \\
      --output=benchmarks/results

Methods (``--methods``, comma separated):
  mipnerf     the mip-NeRF baseline (``<kind>3_cpu_mipnerf``)
  regnerf_tv  RegNeRF without the appearance term (``<kind>3_cpu``)
  regnerf     full RegNeRF: + the shipped flow prior, λ = ``--appearance_weight``
  freenerf    FreeNeRF's frequency and occlusion regularisers
              (``<kind>3_cpu_freenerf``)
  combined    RegNeRF's patch regularisers and prior + FreeNeRF's two terms
              (``<kind>3_cpu_combined``)

Killed, it resumes: each method trains in its own run folder, the curve is
saved next to the checkpoint, and finished methods are not run again.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

import regnerf_tf  # noqa: F401  (sets the Keras backend before keras loads)
import keras

from regnerf_tf import atomic, configs, flows, scenes, training
from regnerf_tf.cli import eval as eval_cli

FLAGS = flags.FLAGS

METHODS = {
    "mipnerf": ("{kind}3_cpu_mipnerf", False),
    "regnerf_tv": ("{kind}3_cpu", False),
    "regnerf": ("{kind}3_cpu", True),
    "freenerf": ("{kind}3_cpu_freenerf", False),
    "combined": ("{kind}3_cpu_combined", True),
}
LABELS = {
    "mipnerf": "mip-NeRF (baseline)",
    "regnerf_tv": "RegNeRF, no appearance term",
    "regnerf": "RegNeRF (full: + flow prior)",
    "freenerf": "FreeNeRF (frequency + occlusion)",
    "combined": "RegNeRF + FreeNeRF (combined)",
}
# Resolution of the CPU protocol, relative to the reader's (DTU 400×300,
# LLFF 504×378): half, i.e. 200×150 and 252×189, so that the step budget
# covers the input views' pixels several times (at full resolution 1200
# steps of 512 rays do not see fern's three views twice).
PROTOCOL_DOWNSAMPLE = {"dtu": 2, "llff": 2}
CURVE_FILE = "curve.json"
CURVE_STRIDE = 4  # curve points use every 4th pixel in each direction
EVAL_CHUNK = 32768  # rays per rendering chunk in the evaluations


def define_flags():
  flags.DEFINE_string("scene_dir", None, "Scene folder (LLFF or DTU layout).")
  flags.DEFINE_string("output", "benchmarks/results", "Output root.")
  flags.DEFINE_list("methods", ["mipnerf", "regnerf_tv", "regnerf"],
                    f"Methods, from {sorted(METHODS)}.")
  flags.DEFINE_integer("steps", 0, "Training steps of every method; 0: the "
                       "protocol presets' max_steps.")
  flags.DEFINE_integer("curve_every", 200, "Steps between curve points.")
  flags.DEFINE_integer("curve_views", 3, "Test views used for the curve.")
  flags.DEFINE_float("appearance_weight", 1e-4,
                     "λ of the appearance term (nats per dimension).")
  flags.DEFINE_string("lpips_weights", None, "LPIPS weights (.npz), optional.")
  flags.DEFINE_string("lpips_net", "vgg", "alex or vgg.")
  flags.DEFINE_multi_string("override", [], "section.field=value for every "
                            "method (e.g. train.seed=1).")
  flags.DEFINE_integer("downsample", 0, "Train and evaluate at 1/k of the "
                       "scene's resolution (box filter); 0: the protocol's "
                       f"choice per kind {PROTOCOL_DOWNSAMPLE}.")


def make_config(method: str, kind: str, steps: int, appearance_weight: float,
                overrides=()):
  """The config of one method on a scene of ``kind`` ("llff" or "dtu")."""
  if method not in METHODS:
    raise app.UsageError(f"Unknown method {method!r}; choose from "
                         f"{sorted(METHODS)}.")
  preset, with_prior = METHODS[method]
  values = dict(configs.parse_override(o) for o in overrides)
  if steps:
    values["train.max_steps"] = steps
  steps = values.get("train.max_steps") or configs.get_preset(
      preset.format(kind=kind)).train.max_steps
  values["train.checkpoint_every"] = min(values.get(
      "train.checkpoint_every", 300), steps)
  values["reg.appearance_weight"] = appearance_weight if with_prior else 0.0
  return configs.get_preset(preset.format(kind=kind), **values)


class CurveRecorder(keras.callbacks.Callback):
  """Mean held-out PSNR every ``every`` steps, saved to ``<workdir>/curve.json``
  so that a resumed run keeps its earlier points."""

  def __init__(self, workdir: str, records, every: int):
    super().__init__()
    self.path = os.path.join(workdir, CURVE_FILE)
    self.records = records
    self.every = every
    self.points = load_curve(workdir)

  def on_train_batch_end(self, batch, logs=None):
    step = training.current_step(self.model)
    if step % self.every or any(p["step"] == step for p in self.points):
      return
    self.points.append({"step": step, "psnr": curve_psnr(self.model,
                                                         self.records)})
    self.points.sort(key=lambda p: p["step"])
    atomic.write_json(self.path, {"points": self.points})


def curve_psnr(model, records, stride: int = CURVE_STRIDE) -> float:
  """Mean PSNR over ``records`` on every ``stride``-th pixel in each direction
  (a cheap sample of the full-image PSNR, the same for every method)."""
  return training.evaluate_views(model, records, EVAL_CHUNK,
                                 stride=stride)["mean_psnr"]


def load_curve(workdir: str) -> list[dict]:
  path = os.path.join(workdir, CURVE_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)["points"]


def run_method(method: str, scene, root: str, lpips, lpips_status) -> dict:
  """Trains (or resumes) one method and evaluates it; returns its summary."""
  workdir = os.path.join(root, method)
  done = os.path.join(workdir, "summary.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  config = make_config(method, scene.kind, FLAGS.steps,
                       FLAGS.appearance_weight, FLAGS.override)
  prior = flows.load_default_prior() if config.appearance_enabled else None
  curve_records = scene.test[:FLAGS.curve_views]
  start = time.time()
  model = training.train(
      config, scene.train, workdir, patch_prior=prior, verbose=False,
      callbacks=[CurveRecorder(workdir, curve_records, FLAGS.curve_every)])
  train_seconds = time.time() - start
  report = eval_cli.evaluate_run(model, scene.test,
                                 os.path.join(workdir, "eval"), lpips,
                                 lpips_status, chunk=EVAL_CHUNK)
  summary = {"method": method, "label": LABELS[method], "preset": config.name,
             "steps": training.current_step(model),
             "appearance_weight": config.reg.appearance_weight,
             "train_seconds_last_session": round(train_seconds, 1),
             "curve": load_curve(workdir), "mean": report["mean"]}
  atomic.write_json(done, summary)
  return summary


def markdown(scene, results: list[dict], steps: int, curve_views: int) -> str:
  base = next((r for r in results if r["method"] == "mipnerf"), None)
  has_mask = any("masked_psnr" in r["mean"] for r in results)
  has_lpips = any(r["mean"].get("lpips") is not None for r in results)
  head = ["method", "preset", "PSNR", "Δ vs mip-NeRF", "SSIM"]
  head += ["LPIPS"] if has_lpips else []
  head += ["masked PSNR", "masked SSIM"] if has_mask else []
  head += ["best curve PSNR (step)"]
  first = scene.train[0]
  size = (" at {1}×{0} pixels".format(*first["image"].shape[:2])
          if "image" in first else "")
  lines = [f"Scene `{scene.name}` ({scene.kind}){size}, input views "
           f"{[int(r['view_index']) for r in scene.train]}, "
           f"{len(scene.test)} held-out views, {steps} steps per method.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in results:
    m = r["mean"]
    delta = (f"{m['psnr'] - base['mean']['psnr']:+.2f} dB" if base else "")
    best = max(r["curve"], key=lambda p: p["psnr"]) if r["curve"] else None
    row = [r["label"], f"`{r['preset']}`", f"{m['psnr']:.2f}", delta,
           f"{m['ssim']:.3f}"]
    row += [f"{m['lpips']:.3f}" if m.get("lpips") is not None else "–"] \
        if has_lpips else []
    row += [f"{m.get('masked_psnr', float('nan')):.2f}",
            f"{m.get('masked_ssim', float('nan')):.3f}"] if has_mask else []
    row += [f"{best['psnr']:.2f} ({best['step']})" if best else "–"]
    lines.append("| " + " | ".join(row) + " |")
  steps_all = sorted({p["step"] for r in results for p in r["curve"]})
  if steps_all:
    lines += ["", "Held-out PSNR (dB) versus training step, first "
              f"{curve_views} test views (every {CURVE_STRIDE}th pixel):", "",
              "| step | " + " | ".join(r["method"] for r in results) + " |",
              "|---|" + "---|" * len(results)]
    for s in steps_all:
      cells = []
      for r in results:
        point = next((p for p in r["curve"] if p["step"] == s), None)
        cells.append(f"{point['psnr']:.2f}" if point else "–")
      lines.append(f"| {s} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  if not FLAGS.scene_dir:
    raise app.UsageError("--scene_dir is required.")
  unknown = [m for m in FLAGS.methods if m not in METHODS]
  if unknown:
    raise app.UsageError(f"Unknown methods {unknown}; choose from "
                         f"{sorted(METHODS)}.")
  scene = scenes.from_folder(FLAGS.scene_dir, 3)
  if scene.kind not in ("llff", "dtu"):
    raise app.UsageError(f"The CPU protocol has presets for LLFF and DTU "
                         f"scenes; {FLAGS.scene_dir} is a {scene.kind} scene.")
  factor = FLAGS.downsample or PROTOCOL_DOWNSAMPLE[scene.kind]
  scene = scenes.downsample(scene, factor)
  height, width = scene.train[0]["image"].shape[:2]
  root = os.path.join(FLAGS.output, scene.name)
  lpips, status = eval_cli.load_lpips(FLAGS.lpips_weights, FLAGS.lpips_net)
  results = []
  for method in FLAGS.methods:
    t0 = time.time()
    print(f"[{scene.name}] {method}: training...",
          flush=True)
    summary = run_method(method, scene, root, lpips, status)
    results.append(summary)
    print(f"[{scene.name}] {method}: PSNR {summary['mean']['psnr']:.2f} dB "
          f"({time.time() - t0:.0f} s this session)", flush=True)
  steps = max(r["steps"] for r in results)
  previous = {}
  path = os.path.join(root, "results.json")
  if os.path.exists(path):
    with open(path) as f:
      previous = {r["method"]: r for r in json.load(f)["results"]}
  previous.update({r["method"]: r for r in results})
  ordered = [previous[m] for m in METHODS if m in previous]
  atomic.write_json(path, {"scene": scene.name, "kind": scene.kind,
                           "steps": steps, "lpips_status": status,
                           "downsample": factor,
                           "resolution": [width, height],
                           "results": ordered})
  table = markdown(scene, ordered, steps, FLAGS.curve_views)
  atomic.write_bytes(os.path.join(root, "results.md"), table.encode())
  print(table)
  return 0


def run():
  define_flags()
  app.run(main)


if __name__ == "__main__":
  sys.exit(run())
