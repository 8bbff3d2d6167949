"""Fast against exact rendering on a trained run: speed, samples, PSNR, pixels.

::

  python -m benchmarks.fast_render --workdir=RUN --scene_dir=SCENE \\
      [--downsample=4] [--max_views=3] [--output=fast_render.json]

Renders the scene's held-out views (every pixel) from the run's checkpoint
with the exact renderer and with each variant of the fast path
(:mod:`regnerf_tf.fast_render`), all in one process, one after another per
view, so that the ratios are measured in one sitting. For each variant it
reports rays/s and the ratio to exact, the MLP samples per ray, the held-out
PSNR and its difference to exact, and the largest and 99.9th-percentile
per-pixel difference to the exact image. The grid's baking time is reported
apart (it is paid once per renderer). The CPU model and its vector features
are printed beside the figures.

Variants:
  fast_float32   empty-space skipping and early termination, float32 (what
                 changes is bounded: see the module docstring)
  fast           the default fast path (bfloat16 where native)
  fast_half      the default fast path with half the samples per level (an
                 approximation)
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from absl import app, flags

from regnerf_tf import atomic, evaluation, fast_render, machine, scenes
from regnerf_tf import training

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", None, "A trained run folder.")
  flags.DEFINE_string("scene_dir", None, "Its scene folder.")
  flags.DEFINE_integer("views", 3, "The split's input view count (the held-"
                       "out views are the same for every count).")
  flags.DEFINE_integer("downsample", 1, "Render at 1/N resolution (the "
                       "run's training resolution).", lower_bound=1)
  flags.DEFINE_integer("max_views", 3, "Held-out views rendered.",
                       lower_bound=1)
  flags.DEFINE_integer("chunk", 4096, "Rays per rendering call.")
  flags.DEFINE_string("output", None, "JSON file for the results.")


def variants(num_samples: int) -> dict[str, fast_render.FastOptions]:
  return {"fast_float32": fast_render.FastOptions(precision="float32"),
          "fast": fast_render.FastOptions(),
          "fast_half": fast_render.FastOptions(samples=max(2, num_samples // 2))}


def main(argv):
  del argv
  if not FLAGS.workdir or not FLAGS.scene_dir:
    raise app.UsageError("--workdir and --scene_dir are required.")
  model = training.load_run(FLAGS.workdir)
  scene = scenes.from_folder(FLAGS.scene_dir, FLAGS.views)
  if FLAGS.downsample > 1:
    scene = scenes.downsample(scene, FLAGS.downsample)
  records = scene.test[:FLAGS.max_views]
  renderers = {"exact": model}
  bake = {}
  for name, options in variants(model.config.model.num_samples).items():
    start = time.time()
    renderers[name] = fast_render.FastRenderer.for_records(model, scene.train,
                                                           options)
    bake[name] = time.time() - start
  # Warm up every renderer on the first view (tracing is not timed).
  for r in renderers.values():
    next(evaluation.rendered_views(r, records[:1], FLAGS.chunk))
    if isinstance(r, fast_render.FastRenderer):
      r.evaluated = r.rays = 0
  seconds = {name: 0.0 for name in renderers}
  images = {name: [] for name in renderers}
  targets = []
  for i in range(len(records)):
    for name, r in renderers.items():
      start = time.time()
      view = next(evaluation.rendered_views(r, records[i:i + 1], FLAGS.chunk))
      seconds[name] += time.time() - start
      images[name].append(view["rgb"])
    targets.append(view["target"])
  rays = sum(t.shape[0] * t.shape[1] for t in targets)
  exact_psnr = _psnr(images["exact"], targets)
  rows = {}
  for name, r in renderers.items():
    diff = np.concatenate([np.abs(a - b).ravel() for a, b in
                           zip(images[name], images["exact"])])
    psnr = _psnr(images[name], targets)
    rows[name] = {
        "rays_per_s": rays / seconds[name],
        "speedup": seconds["exact"] / seconds[name],
        "samples_per_ray": (r.describe()["samples_per_ray"]
                            if name != "exact" else
                            model.config.model.num_samples
                            * model.config.model.num_levels),
        "psnr": psnr, "delta_psnr": psnr - exact_psnr,
        "max_pixel_diff": float(diff.max()),
        "p999_pixel_diff": float(np.percentile(diff, 99.9)),
        "bake_s": bake.get(name),
        "settings": evaluation.renderer_info(r)}
  report = {"workdir": FLAGS.workdir, "scene": scene.name,
            "views": [int(r["view_index"]) for r in records],
            "resolution": list(targets[0].shape[:2][::-1]), "rays": rays,
            "step": training.current_step(model), "machine": machine.describe(),
            "model": {k: getattr(model.config.model, k) for k in (
                "net_depth", "net_width", "num_samples", "num_levels")},
            "results": rows}
  print(table(report))
  if FLAGS.output:
    atomic.write_json(FLAGS.output, report)
  return 0


def _psnr(images, targets) -> float:
  """Mean over views of each view's PSNR."""
  return float(np.mean([-10 * np.log10(np.mean((a - b) ** 2))
                        for a, b in zip(images, targets)]))


def table(report: dict) -> str:
  m = report["machine"]
  lines = [f"{report['scene']}, views {report['views']} at "
           f"{report['resolution'][0]}×{report['resolution'][1]}, step "
           f"{report['step']}, model {report['model']}",
           f"CPU {m['cpu']} ({', '.join(m['vector_features'])}); "
           f"bfloat16: {m['bfloat16_reason']}", "",
           "| renderer | rays/s | × exact | MLP samples/ray | PSNR | Δ PSNR | "
           "max |Δpixel| | 99.9 % |Δpixel| | grid bake s |",
           "|---|---|---|---|---|---|---|---|---|"]
  for name, r in report["results"].items():
    bake = "–" if r["bake_s"] is None else f"{r['bake_s']:.1f}"
    lines.append(
        f"| {name} | {r['rays_per_s']:.0f} | {r['speedup']:.2f} | "
        f"{r['samples_per_ray']:.1f} | {r['psnr']:.3f} | "
        f"{r['delta_psnr']:+.3f} | {r['max_pixel_diff']:.4f} | "
        f"{r['p999_pixel_diff']:.4f} | {bake} |")
  return "\n".join(lines)


def run():
  define_flags()
  app.run(main)


if __name__ == "__main__":
  sys.exit(run())
