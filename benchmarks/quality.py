"""Quality benchmark: methods side by side on one scene, under a named protocol.

For a scene folder (any layout the readers accept: LLFF, DTU, Blender) it takes
the canonical split with ``--views`` input views (3, 6, 9: the data-efficiency
curve) at the protocol's resolution, trains every method with the protocol's
presets (``<kind>3_cpu*``: the same 6×128 network, 32 + 32 samples, optimizer
schedule, seed and step budget), records held-out PSNR along the way (a
PSNR-versus-steps curve on the protocol's curve views, every 4th pixel), then
evaluates all test views at every pixel (PSNR, SSIM with data range 1, LPIPS
with the weights of ``regnerf-lpips-weights`` or ``--lpips_weights``, masked
metrics on DTU; a method finished before the weights were there is scored
again). Run folders go to
``--output/<protocol>/<scene>/<n>view/<method>`` (``<method>-seed<N>`` for a
seed other than the presets'); ``results.json``, ``results.md`` and the PNG
plots go to ``--results/<protocol>/<scene>``::

  python -m benchmarks.quality --protocol=long \\
      --scene_dir=../shared/data/llff/fern --output=/work/runs

Protocols (``--protocol``, see ``PROTOCOLS``):
  cpu           half resolution, 1200 steps, curve on 3 test views (the first
                CPU protocol)
  long          quarter resolution, 14000 steps, curve on every test view
                every 500 steps: the headline comparison
  long_quarter  quarter resolution, 4000 steps: the cheaper variant for the
                ablation and the data-efficiency curve

Methods (``--methods``, comma separated):
  mipnerf     the mip-NeRF baseline (``<kind>3_cpu_mipnerf``)
  regnerf_tv  RegNeRF without the appearance term (``<kind>3_cpu``)
  regnerf     full RegNeRF: + the shipped flow prior, λ = ``--appearance_weight``
  freenerf    FreeNeRF's frequency and occlusion regularisers
              (``<kind>3_cpu_freenerf``)
  combined    RegNeRF's patch regularisers and prior + FreeNeRF's two terms
              (``<kind>3_cpu_combined``)
  regnerf_hinge     full RegNeRF whose appearance term stops at the NLL of
                    natural patches (``reg.appearance_hinge``)
  regnerf_noanneal  full RegNeRF without sample-space annealing (ablation)
  regnerf_nodepth   full RegNeRF without the depth-smoothness term (ablation)
  regnerf_noreg     RegNeRF's optimizer (clipping, warm-up) without any
                    regulariser: mip-NeRF's model with RegNeRF's schedule

Killed, it resumes: each method trains in its own run folder, the curve is
saved next to the checkpoint, and finished methods are not run again.

Seeds: ``--seeds=20200823,7`` trains every method once per seed (each in its
own run folder); ``results.json`` keeps one row per seed and, under
``means``, the mean over the seeds of each method and view count, which the
tables, the data-efficiency figure and the plots report (the tables also list
each seed's PSNR).

The final scores are rendered by the exact renderer; ``--fast`` scores them
with the fast path (:mod:`regnerf_tf.fast_render`) instead, and each row of
``results.json`` says which (``renderer``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from absl import app, flags

import regnerf_tf  # noqa: F401  (sets the Keras backend before keras loads)
import keras

from regnerf_tf import atomic, configs, errors, evaluation, fast_render, flows
from regnerf_tf import run_folder, scenes, training
from regnerf_tf.cli import common
from benchmarks import plots

FLAGS = flags.FLAGS

# method: (preset, appearance term on, overrides of the preset).
METHODS = {
    "mipnerf": ("{kind}3_cpu_mipnerf", False, {}),
    "regnerf_tv": ("{kind}3_cpu", False, {}),
    "regnerf": ("{kind}3_cpu", True, {}),
    "freenerf": ("{kind}3_cpu_freenerf", False, {}),
    "combined": ("{kind}3_cpu_combined", True, {}),
    # The appearance term as a hinge: patches whose NLL is already below the
    # natural-patch level are not pushed further (see RESULTS.md, `long`).
    "regnerf_hinge": ("{kind}3_cpu", True, {"reg.appearance_hinge": True}),
    "regnerf_noanneal": ("{kind}3_cpu", True, {"reg.anneal_steps": 0}),
    "regnerf_nodepth": ("{kind}3_cpu", True,
                        {"reg.depth_tv_weight_start": 0.0,
                         "reg.depth_tv_weight_end": 0.0}),
    # RegNeRF's optimizer (gradient clipping, learning-rate warm-up) with
    # every regulariser off: what the schedule alone gives over mip-NeRF.
    "regnerf_noreg": ("{kind}3_cpu", False,
                      {"reg.anneal_steps": 0,
                       "reg.depth_tv_weight_start": 0.0,
                       "reg.depth_tv_weight_end": 0.0,
                       "train.patch_batch_size": 0}),
}
# The ablation of the paper's Table 3, in its order, then the baselines.
ABLATION = plots.ABLATION
LABELS = {
    "mipnerf": "mip-NeRF (baseline)",
    "regnerf_tv": "RegNeRF, no appearance term",
    "regnerf": "RegNeRF (full: + flow prior)",
    "freenerf": "FreeNeRF (frequency + occlusion)",
    "combined": "RegNeRF + FreeNeRF (combined)",
    "regnerf_hinge": "RegNeRF, appearance term as a hinge",
    "regnerf_noanneal": "RegNeRF without annealing",
    "regnerf_nodepth": "RegNeRF without depth smoothness",
    "regnerf_noreg": "RegNeRF's optimizer, no regulariser",
}


@dataclasses.dataclass(frozen=True)
class Protocol:
  """A named benchmark protocol: resolution, budget and curve.

  Attributes:
    downsample: resolution as 1/k of the reader's (DTU 400×300, LLFF 504×378).
    steps: training steps of every method (0: the presets' ``max_steps``).
    curve_every: steps between curve points.
    curve_views: test views on the curve (0: all of them).
  """
  downsample: int
  steps: int
  curve_every: int
  curve_views: int


PROTOCOLS = {
    "cpu": Protocol(downsample=2, steps=0, curve_every=200, curve_views=3),
    # The most passes over the input pixels that fit in about two hours per
    # method on one core (RESULTS.md: 14000 × 512 rays are 318 passes over
    # scan24's three 100×75 views, 202 over fern's 126×94).
    "long": Protocol(downsample=4, steps=14000, curve_every=500,
                     curve_views=0),
    "long_quarter": Protocol(downsample=4, steps=4000, curve_every=250,
                             curve_views=0),
}
# Scene kinds without protocol presets of their own borrow another kind's
# (network, samples, schedule); the data section follows the scene.
PRESET_KIND = {"dtu": "dtu", "llff": "llff", "blender": "dtu"}
KIND_DATA = {"blender": {"data.dataset": "blender"}}
CURVE_FILE = "curve.json"
CURVE_STRIDE = 4  # curve points use every 4th pixel in each direction
EVAL_CHUNK = 32768  # rays per rendering chunk in the evaluations


def define_flags():
  flags.DEFINE_string("scene_dir", None, "Scene folder (LLFF, DTU or Blender "
                      "layout).")
  flags.DEFINE_enum("protocol", "long", sorted(PROTOCOLS), "Named protocol: "
                    "resolution, step budget and curve (see PROTOCOLS).")
  flags.DEFINE_string("output", None, "Root of the run folders (outside the "
                      "repository; they hold checkpoints and renderings).")
  flags.DEFINE_string("results", "benchmarks/results", "Root of results.json, "
                      "results.md and the plots (<results>/<protocol>/<scene>).")
  flags.DEFINE_list("methods", ["mipnerf", "regnerf_tv", "regnerf"],
                    f"Methods, from {sorted(METHODS)}.")
  flags.DEFINE_list("views", ["3"], "Numbers of input views (canonical "
                    "splits), e.g. 3,6,9 for the data-efficiency curve.")
  flags.DEFINE_integer("steps", 0, "Training steps of every method; 0: the "
                       "protocol's.")
  flags.DEFINE_integer("curve_every", 0, "Steps between curve points; 0: the "
                       "protocol's.")
  flags.DEFINE_integer("curve_views", -1, "Test views used for the curve; 0: "
                       "all; -1: the protocol's.")
  flags.DEFINE_float("appearance_weight", 1e-4,
                     "λ of the appearance term (nats per dimension).")
  flags.DEFINE_string("lpips_weights", None, "LPIPS weights (.npz); default: "
                      "those regnerf-lpips-weights wrote, when present.")
  flags.DEFINE_string("lpips_net", "vgg", "alex or vgg.")
  flags.DEFINE_bool("fast", False, "Score the final renders with the fast "
                    "renderer (regnerf_tf.fast_render) instead of the exact "
                    "one; results.json records which rendered each row.")
  flags.DEFINE_multi_string("override", [], "section.field=value for every "
                            "method (e.g. reg.patch_samples=16).")
  flags.DEFINE_list("seeds", [], "Seeds (train.seed) to train every method "
                    "with, e.g. 20200823,7: one run folder per seed; the "
                    "tables and plots report the mean over them and each "
                    "seed's PSNR. Default: the presets' seed.")
  flags.DEFINE_integer("downsample", 0, "Train and evaluate at 1/k of the "
                       "scene's resolution (box filter); 0: the protocol's.")
  flags.DEFINE_boolean("plots", True, "Write the PNG plots (needs "
                       "matplotlib: pip install 'regnerf-tf[plots]').")


def make_config(method: str, kind: str, steps: int, appearance_weight: float,
                overrides=(), n_views: int = 3):
  """The config of one method on a scene of ``kind`` with ``n_views`` inputs.

  Every method shares the protocol presets' network, samples, schedule and
  seed; ``steps`` (0: the preset's) sets the budget of all of them. With 9 or
  more views annealing is off, as in the release's 9-view configs.
  """
  if method not in METHODS:
    raise app.UsageError(f"Unknown method {method!r}; choose from "
                         f"{sorted(METHODS)}.")
  if kind not in PRESET_KIND:
    raise app.UsageError(f"No protocol presets for {kind!r} scenes; "
                         f"supported kinds: {sorted(PRESET_KIND)}.")
  preset, with_prior, method_values = METHODS[method]
  preset = preset.format(kind=PRESET_KIND[kind])
  values = dict(KIND_DATA.get(kind, {}))
  values["data.n_views"] = n_views
  if n_views >= 9:
    values["reg.anneal_steps"] = 0
  values.update(method_values)
  values.update(dict(configs.parse_override(o) for o in overrides))
  if steps:
    values["train.max_steps"] = steps
  steps = values.get("train.max_steps") or configs.get_preset(
      preset).train.max_steps
  values["train.checkpoint_every"] = min(values.get(
      "train.checkpoint_every", 300), steps)
  values["reg.appearance_weight"] = appearance_weight if with_prior else 0.0
  return configs.get_preset(preset, **values)


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
  return evaluation.evaluate_views(model, records, EVAL_CHUNK,
                                 stride=stride)["mean_psnr"]


def load_curve(workdir: str) -> list[dict]:
  path = os.path.join(workdir, CURVE_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)["points"]


def preset_seed(method: str, kind: str) -> int:
  """The seed the protocol presets give ``method`` on a scene of ``kind``."""
  return make_config(method, kind, 0, 0.0).train.seed


def run_name(method: str, seed: int, kind: str) -> str:
  """The run folder of ``method`` trained with ``seed``: ``<method>`` for the
  presets' seed, ``<method>-seed<seed>`` for any other."""
  return method if seed == preset_seed(method, kind) else f"{method}-seed{seed}"


def run_method(method: str, scene, root: str, lpips, lpips_status,
               settings: dict, seed: int | None = None) -> dict:
  """Trains (or resumes) one method in ``root/<run_name>`` and evaluates it.

  ``settings``: steps, curve_every, curve_views, appearance_weight, overrides;
  ``seed``: train.seed (None: the presets' or the overrides').
  Returns its summary (also kept in ``summary.json``: a finished method is not
  run again).
  """
  n_views = len(scene.train)
  overrides = list(settings["overrides"])
  if seed is not None:
    overrides.append(f"train.seed={int(seed)}")
  config = make_config(method, scene.kind, settings["steps"],
                       settings["appearance_weight"], overrides,
                       n_views=n_views)
  name = run_name(method, config.train.seed, scene.kind)
  workdir = os.path.join(root, name)
  done = os.path.join(workdir, "summary.json")
  changes = run_folder.result_changes(workdir, config)
  if changes:
    # A finished run would be reported as this invocation's result, an
    # unfinished one continued with another config: refuse both.
    raise errors.InputError(
        f"{workdir} holds a {method} run with another config "
        f"({run_folder.describe_changes(changes)}). Its result would be "
        "taken for this invocation's. Give a variant (other --override, "
        "--steps or --appearance_weight) its own --output and --results, or "
        "move that run folder away to run it again.")
  if os.path.exists(done):
    with open(done) as f:
      summary = json.load(f)
    if lpips is not None and summary["mean"].get("lpips") is None:
      # Finished before LPIPS weights were at hand: score it again (the
      # renderings are repeated from the final checkpoint; training is not).
      print(f"{method}: finished without LPIPS; evaluating again with it.",
            flush=True)
      model = training.load_run(workdir)
      report = evaluation.evaluate_run(model, scene.test,
                                     os.path.join(workdir, "eval"), lpips,
                                     lpips_status, chunk=EVAL_CHUNK)
      if report["step"] != summary["steps"]:
        raise RuntimeError(f"{workdir}: the checkpoint is at step "
                           f"{report['step']}, the summary at "
                           f"{summary['steps']}; not mixing them.")
      summary["mean"] = report["mean"]
      atomic.write_json(done, summary)
    # Runs finished before seeds were recorded: the config says which.
    summary.setdefault("seed", config.train.seed)
    summary.setdefault("run", name)
    return summary
  prior = flows.load_default_prior() if config.appearance_enabled else None
  curve_records = scene.test[:settings["curve_views"] or None]
  start = time.time()
  model = training.train(
      config, scene.train, workdir, patch_prior=prior, verbose=False,
      callbacks=[CurveRecorder(workdir, curve_records,
                               settings["curve_every"])])
  train_seconds = time.time() - start
  renderer = (fast_render.FastRenderer.for_records(model, scene.train)
              if settings.get("fast") else model)
  report = evaluation.evaluate_run(renderer, scene.test,
                                 os.path.join(workdir, "eval"), lpips,
                                 lpips_status, chunk=EVAL_CHUNK)
  summary = {"method": method, "label": LABELS[method], "preset": config.name,
             "seed": config.train.seed, "run": name, "n_views": n_views,
             "train_views": [int(r["view_index"]) for r in scene.train],
             "steps": training.current_step(model),
             "appearance_weight": config.reg.appearance_weight,
             "train_seconds_last_session": round(train_seconds, 1),
             "curve_views": len(curve_records),
             "curve": load_curve(workdir), "mean": report["mean"],
             "renderer": report["renderer"]}
  atomic.write_json(done, summary)
  return summary


def result_row(summary: dict) -> dict:
  """The machine-readable row of one run: flat means, split, budget, curve."""
  mean = summary["mean"]
  row = {"method": summary["method"], "label": summary["label"],
         "preset": summary["preset"], "seed": summary.get("seed"),
         "run": summary.get("run", summary["method"]),
         "n_views": summary["n_views"],
         "train_views": summary["train_views"], "steps": summary["steps"],
         "psnr": mean["psnr"], "ssim": mean["ssim"],
         "lpips": mean.get("lpips")}
  for key in ("masked_psnr", "masked_ssim"):
    if key in mean:
      row[key] = mean[key]
  row.update({"renderer": summary.get("renderer",
                                      {"renderer": "exact"})["renderer"],
              "appearance_weight": summary["appearance_weight"],
              "curve_views": summary.get("curve_views"),
              "curve": summary["curve"]})
  return row


METRICS = ("psnr", "ssim", "lpips", "masked_psnr", "masked_ssim")


def mean_rows(rows: list[dict]) -> list[dict]:
  """One row per method and view count: the mean over its seeds.

  Each metric is the mean of the seeds' (None when a seed lacks it); the
  curve is the mean at the steps every seed recorded; ``seeds`` and
  ``psnr_per_seed`` list the seeds and their PSNR. A method run with one seed
  gets its own row with those two lists added. Rows keep the order of
  ``rows``.
  """
  groups: dict[tuple, list[dict]] = {}
  for r in rows:
    groups.setdefault((r["method"], r["n_views"]), []).append(r)
  out = []
  for group in groups.values():
    first = group[0]
    row = dict(first, seeds=[r.get("seed") for r in group],
               psnr_per_seed=[r["psnr"] for r in group])
    if len(group) > 1:
      for key in METRICS:
        values = [r.get(key) for r in group]
        if any(key in r for r in group):
          row[key] = (None if any(v is None for v in values)
                      else sum(values) / len(values))
      steps = [{p["step"]: p["psnr"] for p in r["curve"]} for r in group]
      common = sorted(set.intersection(*(set(c) for c in steps)))
      row["curve"] = [{"step": t, "psnr": sum(c[t] for c in steps) / len(steps)}
                      for t in common]
      row["steps"] = min(r["steps"] for r in group)
    out.append(row)
  return out


# The interpolated views to match a PSNR (pure Python; shared with the plots).
views_to_match = plots.views_to_match


def _fmt(value, spec: str) -> str:
  return "–" if value is None else format(value, spec)


def markdown(results: dict) -> str:
  """results.md: the table per view count, the ablation, the data-efficiency
  figure and the curves."""
  rows = mean_rows(results["results"])
  several = any(len(r["seeds"]) > 1 for r in rows)
  has_mask = any("masked_psnr" in r for r in rows)
  has_lpips = any(r.get("lpips") is not None for r in rows)
  width, height = results["resolution"]
  lines = [f"Scene `{results['scene']}` ({results['kind']}), protocol "
           f"`{results['protocol']}` at {width}×{height} pixels, "
           f"{results['test_views']} held-out views (every pixel). "
           f"LPIPS: {'yes' if has_lpips else results['lpips_status']}"
           + (f". Overrides of every method's preset: "
              f"{_describe_overrides(results['overrides'])}"
              if results.get("overrides") else "")
           + (". Each row is the mean over the seeds it lists (PSNR of each "
              "seed in the last column)." if several else ""), ""]

  def table(selected, reference, ref_name):
    head = ["method", "views", "steps", "PSNR", f"Δ vs {ref_name}", "SSIM"]
    head += ["LPIPS"] if has_lpips else []
    head += ["masked PSNR", "Δ masked", "masked SSIM"] if has_mask else []
    head += ["best curve PSNR (step)"]
    head += ["seeds: PSNR"] if several else []
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in selected:
      delta = (f"{r['psnr'] - reference['psnr']:+.2f} dB" if reference
               else "–")
      best = max(r["curve"], key=lambda p: p["psnr"]) if r["curve"] else None
      cells = [r["label"], str(r["n_views"]), str(r["steps"]),
               f"{r['psnr']:.2f}", delta, f"{r['ssim']:.3f}"]
      cells += [_fmt(r.get("lpips"), ".3f")] if has_lpips else []
      if has_mask:
        dm = (f"{r['masked_psnr'] - reference['masked_psnr']:+.2f} dB"
              if reference and "masked_psnr" in r else "–")
        cells += [_fmt(r.get("masked_psnr"), ".2f"), dm,
                  _fmt(r.get("masked_ssim"), ".3f")]
      cells += [f"{best['psnr']:.2f} ({best['step']})" if best else "–"]
      if several:
        cells += [", ".join(f"{seed}: {p:.2f}" for seed, p in
                            zip(r["seeds"], r["psnr_per_seed"]))]
      out.append("| " + " | ".join(cells) + " |")
    return out

  by_key = {(r["method"], r["n_views"]): r for r in rows}
  for n in sorted({r["n_views"] for r in rows}):
    selected = [r for r in rows if r["n_views"] == n]
    lines += [f"### {n} input views", ""]
    lines += table(selected, by_key.get(("mipnerf", n)), "mip-NeRF") + [""]
  ablation = [by_key[(m, 3)] for m in ABLATION if (m, 3) in by_key]
  ablated = [m for m in ABLATION[1:-1] if (m, 3) in by_key]
  if ablated and ("regnerf", 3) in by_key:
    lines += ["### Ablation (3 views)", ""]
    lines += table(ablation, by_key[("regnerf", 3)], "full RegNeRF") + [""]
  efficiency = data_efficiency(rows)
  if efficiency:
    lines += ["### Data efficiency" + (" (means over seeds)" if several
                                       else ""), "",
              "| method | " + " | ".join(f"{n} views" for n in
                                       efficiency["views"]) + " |",
              "|---|" + "---|" * len(efficiency["views"])]
    for method, points in efficiency["psnr"].items():
      cells = [_fmt(points.get(n), ".2f") for n in efficiency["views"]]
      lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    match = efficiency["mipnerf_views_to_match"]
    lines += ["", f"mip-NeRF needs "
              f"{'more than the measured views' if match is None else f'{match:.1f} views'}"
              f" to match RegNeRF's 3-view PSNR "
              f"({efficiency['psnr']['regnerf'][3]:.2f} dB)"
              + ("" if match is None else
                 f": {100 * (match / 3 - 1):.0f} % more input views "
                 "(the paper: about 55 % more)") + ".", ""]
  steps_all = sorted({p["step"] for r in rows for p in r["curve"]})
  if steps_all:
    curve_rows = [r for r in rows if r["n_views"] == 3]
    lines += ["Held-out PSNR (dB) versus training step, 3 input views, "
              f"{curve_rows[0]['curve_views'] if curve_rows else '?'} test "
              f"views (every {CURVE_STRIDE}th pixel):", "",
              "| step | " + " | ".join(r["method"] for r in curve_rows) + " |",
              "|---|" + "---|" * len(curve_rows)]
    for s in steps_all:
      cells = []
      for r in curve_rows:
        point = next((p for p in r["curve"] if p["step"] == s), None)
        cells.append(f"{point['psnr']:.2f}" if point else "–")
      lines.append(f"| {s} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def data_efficiency(rows: list[dict]) -> dict | None:
  """PSNR per view count for mip-NeRF and RegNeRF, and the interpolated views
  mip-NeRF needs to match RegNeRF's 3-view PSNR; None below two view counts."""
  psnr = {m: {r["n_views"]: r["psnr"] for r in rows if r["method"] == m}
          for m in ("mipnerf", "regnerf")}
  views = sorted(set(psnr["mipnerf"]) | set(psnr["regnerf"]))
  if len(psnr["mipnerf"]) < 2 or 3 not in psnr["regnerf"]:
    return None
  match = views_to_match(list(psnr["mipnerf"].items()), psnr["regnerf"][3])
  return {"views": views, "psnr": psnr, "mipnerf_views_to_match": match}


def load_scene(scene_dir: str, n_views: int, factor: int):
  """The canonical ``n_views`` split of any scene folder, at 1/``factor``."""
  scene = scenes.from_folder(scene_dir, n_views)
  if scene.kind not in PRESET_KIND:
    raise app.UsageError(f"No protocol presets for {scene.kind!r} scenes "
                         f"({scene_dir}); supported kinds: "
                         f"{sorted(PRESET_KIND)}.")
  if not scene.test:
    raise app.UsageError(f"{scene_dir} has no held-out views for the "
                         f"{n_views}-view split; the benchmark evaluates on "
                         "them.")
  return scenes.downsample(scene, factor)


def run_root(output: str, protocol: str, scene_name: str, n_views: int) -> str:
  """The folder holding one scene's method run folders for ``n_views``."""
  return os.path.join(output, protocol, scene_name, f"{n_views}view")


def main(argv):
  del argv
  if not FLAGS.scene_dir:
    raise app.UsageError("--scene_dir is required.")
  if not FLAGS.output:
    raise app.UsageError("--output is required: a folder outside the "
                         "repository for the run folders, e.g. /work/runs.")
  if not FLAGS.methods:
    raise app.UsageError(f"--methods is empty; choose from {sorted(METHODS)}.")
  unknown = [m for m in FLAGS.methods if m not in METHODS]
  if unknown:
    raise app.UsageError(f"Unknown methods {unknown}; choose from "
                         f"{sorted(METHODS)}.")
  try:
    view_counts = [int(v) for v in FLAGS.views]
  except ValueError:
    raise app.UsageError(f"--views must be integers, e.g. 3,6,9; received "
                         f"{FLAGS.views}.") from None
  try:
    seeds = [int(s) for s in FLAGS.seeds] or [None]
  except ValueError:
    raise app.UsageError(f"--seeds must be integers, e.g. 20200823,7; "
                         f"received {FLAGS.seeds}.") from None
  if FLAGS.seeds and any(o.strip().startswith("train.seed")
                         for o in FLAGS.override):
    raise app.UsageError("Both --seeds and --override=train.seed=... name "
                         "the seed; give the seeds with --seeds only.")
  protocol = PROTOCOLS[FLAGS.protocol]
  factor = FLAGS.downsample or protocol.downsample
  settings = {"steps": FLAGS.steps or protocol.steps,
              "curve_every": FLAGS.curve_every or protocol.curve_every,
              "curve_views": (protocol.curve_views if FLAGS.curve_views < 0
                              else FLAGS.curve_views),
              "appearance_weight": FLAGS.appearance_weight,
              "overrides": FLAGS.override, "fast": FLAGS.fast}
  variant = variant_overrides(FLAGS.override)
  lpips, status = evaluation.load_lpips(FLAGS.lpips_weights, FLAGS.lpips_net)
  first = None
  for n_views in view_counts:
    scene = load_scene(FLAGS.scene_dir, n_views, factor)
    first = first or scene
    root = run_root(FLAGS.output, FLAGS.protocol, scene.name, n_views)
    for method in FLAGS.methods:
      for seed in seeds:
        t0 = time.time()
        what = method + ("" if seed is None else f" (seed {seed})")
        print(f"[{scene.name} {n_views} views] {what}: training...",
              flush=True)
        summary = run_method(method, scene, root, lpips, status, settings,
                             seed)
        print(f"[{scene.name} {n_views} views] {what}: PSNR "
              f"{summary['mean']['psnr']:.2f} dB ({time.time() - t0:.0f} s "
              "this session)", flush=True)
        # Results and plots after every run: a long invocation that is
        # stopped keeps what it finished.
        table, _ = publish(first, summary, results_dir=FLAGS.results,
                           output=FLAGS.output, protocol=FLAGS.protocol,
                           factor=factor, lpips_status=status,
                           with_plots=FLAGS.plots,
                           overrides=variant)
  print(table)
  return 0


def variant_overrides(overrides) -> dict:
  """{field: value} of the ``--override``s that make a variant of the
  protocol (every one but ``train.seed``, which names a row's seed)."""
  parsed = dict(configs.parse_override(o) for o in overrides)
  parsed.pop("train.seed", None)
  return dict(sorted(parsed.items()))


def _describe_overrides(overrides: dict) -> str:
  return (", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
          or "none")


def publish(scene, summary: dict, *, results_dir: str, output: str,
            protocol: str, factor: int, lpips_status: str,
            with_plots: bool = True, overrides: dict | None = None
            ) -> tuple[str, list[str]]:
  """Merges one finished method into ``results.json`` and rewrites
  ``results.md`` and the plots under ``<results_dir>/<protocol>/<scene>``.

  ``overrides``: the variant's ``{field: value}`` (:func:`variant_overrides`);
  a results file holds one variant at one resolution (:func:`merge_results`).

  The contact sheet reads every row's renderings from its run folder under
  ``output``, also those of methods run by earlier invocations.

  Returns:
    the markdown table and the plots written.
  """
  out_dir = os.path.join(results_dir, protocol, scene.name)
  results = merge_results(os.path.join(out_dir, "results.json"), scene,
                          [summary], protocol, factor, lpips_status,
                          overrides=overrides)
  atomic.write_json(os.path.join(out_dir, "results.json"), results)
  table = markdown(results)
  atomic.write_bytes(os.path.join(out_dir, "results.md"), table.encode())
  written = []
  if with_plots:
    # The plots show the mean over seeds; the contact sheet the renderings of
    # each method's first seed.
    with_dirs = dict(results, results=[
        dict(r, eval_dir=os.path.join(
            run_root(output, protocol, scene.name, r["n_views"]),
            r["run"], "eval"))
        for r in mean_rows(results["results"])])
    gt = {int(r["view_index"]): r["image"] for r in scene.test}
    written = plots.write_all(with_dirs, out_dir, gt_images=gt)
    for path in written:
      print("wrote", path, flush=True)
  return table, written


def merge_results(path: str, scene, summaries: list[dict], protocol: str,
                  factor: int, lpips_status: str,
                  overrides: dict | None = None) -> dict:
  """results.json: this invocation's rows over those already in ``path``
  (rows are keyed by method, view count and seed), in METHODS order.

  One file holds one variant of the protocol: rows at one resolution, made
  with the same ``overrides`` ({field: value}; files written before they
  were recorded count as none). Rows of another variant would replace or
  sit beside the file's under the same method names, so they are refused.
  """
  overrides = dict(overrides or {})
  def keyed(row):
    # Rows written before seeds were recorded ran with the presets' seed.
    if row.get("seed") is None:
      row = dict(row, seed=preset_seed(row["method"], scene.kind))
    row.setdefault("run", row["method"])
    # New rows, and rows of files written before overrides were recorded,
    # have this file's (checked below).
    row = dict(row, overrides=row.get("overrides", overrides))
    return (row["method"], row["n_views"], row["seed"]), row

  height, width = scene.train[0]["image"].shape[:2]
  previous = {}
  if os.path.exists(path):
    with open(path) as f:
      earlier = json.load(f)
    _check_same_variant(path, earlier, factor, [width, height], overrides)
    previous = dict(keyed(r) for r in earlier["results"])
  previous.update(keyed(result_row(s)) for s in summaries)
  order = list(METHODS)
  rows = sorted(previous.values(),
                key=lambda r: (r["n_views"], order.index(r["method"])))
  means = mean_rows(rows)
  efficiency = data_efficiency(means)
  return {"scene": scene.name, "kind": scene.kind, "protocol": protocol,
          "protocol_settings": dataclasses.asdict(PROTOCOLS[protocol]),
          "downsample": factor, "resolution": [width, height],
          "test_views": len(scene.test), "lpips_status": lpips_status,
          "overrides": overrides,
          "mipnerf_views_to_match_regnerf_3view": (
              efficiency["mipnerf_views_to_match"] if efficiency else None),
          "results": rows,
          "means": [{k: v for k, v in r.items() if k not in ("seed", "run")}
                    for r in means]}


def _check_same_variant(path: str, earlier: dict, factor: int,
                        resolution: list[int], overrides: dict) -> None:
  """Refuses rows of another resolution or other overrides than ``path``'s."""
  found = []
  if earlier.get("downsample", factor) != factor or earlier.get(
      "resolution", resolution) != resolution:
    found.append(f"its rows are at 1/{earlier.get('downsample')} resolution "
                 f"({'×'.join(map(str, earlier.get('resolution', [])))}), "
                 f"this run's at 1/{factor} "
                 f"({'×'.join(map(str, resolution))})")
  theirs = earlier.get("overrides", {})
  if theirs != overrides:
    found.append(f"its rows were made with overrides "
                 f"{_describe_overrides(theirs)}, this run's with "
                 f"{_describe_overrides(overrides)}")
  if found:
    raise errors.InputError(
        f"{path} holds the results of another variant: "
        + "; ".join(found) + ". Mixing them would show one variant's rows "
        "as the other's. Give this variant its own --results folder (and "
        "--output for its run folders), or move that file away.")


def run():
  define_flags()
  # A deliberate error (e.g. a run folder of another config) is one paragraph.
  app.run(common.guarded(main, "benchmarks.quality"))


if __name__ == "__main__":
  sys.exit(run())
