"""regnerf-demo (``make demo``): RegNeRF vs mip-NeRF from 3 views, on CPU.

Builds the project's synthetic scene (a textured sphere, card and wall, with
textures from photographs bundled in scikit-image; every view rendered exactly),
trains RegNeRF and the mip-NeRF baseline from the same 3 input views with the
same seed and step budget, renders the held-out views and prints their PSNR.

Both runs checkpoint into --workdir, so an interrupted demo resumes where it
stopped. Results: ``<workdir>/demo_results.json`` and
``<workdir>/heldout_renders.png`` (rows: ground truth, mip-NeRF, RegNeRF).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from absl import flags

from regnerf_tf.cli import common
from regnerf_tf import atomic, configs, evaluation, scenes, training

FLAGS = flags.FLAGS


def define_flags():
  """Declares the command-line flags (at run time, not import time, so that
  several entry points can live in one process, e.g. under pytest)."""
  flags.DEFINE_string("workdir", "runs/demo", "Where runs and results go.")
  flags.DEFINE_integer("steps", None, "Training steps per method (default: the "
                       "preset's).")
  flags.DEFINE_string("preset", "demo_small", "RegNeRF preset; the baseline is "
                      "<preset>_mipnerf.")
  flags.DEFINE_multi_string("override", [], "section.field=value for both runs.")
  flags.DEFINE_integer("views", 6, "Held-out views to evaluate.")


def run_demo(workdir: str, preset: str, steps: int | None,
             overrides: list[str], num_eval: int, verbose: bool = True) -> dict:
  """Trains both methods and evaluates them; returns the results dict."""

  parsed = dict(configs.parse_override(o) for o in overrides)
  if steps is not None:
    parsed["train.max_steps"] = steps
  scene = scenes.synthetic_scene()
  heldout = scene.test[:num_eval]
  results = {"scene": scene.name,
             "input_views": [int(r["view_index"]) for r in scene.train],
             "heldout_views": [int(r["view_index"]) for r in heldout],
             "methods": {}}
  renders = {}
  for label, name in (("mip-NeRF", f"{preset}_mipnerf"), ("RegNeRF", preset)):
    config = configs.get_preset(name, **parsed)
    if verbose:
      print(f"\n== {label} ({name}): {config.train.max_steps} steps, "
            f"{config.train.batch_size} rays/step"
            + (f" + {config.train.patch_batch_size} patch rays"
               if config.uses_patches else ""))
    start = time.time()
    run_dir = os.path.join(workdir, name)
    os.makedirs(run_dir, exist_ok=True)
    # Later commands (regnerf-eval, -render, -export) find the scene here.
    common.record_scene(run_dir, scene, {"source": "synthetic",
                                         "train_views": None})
    model = training.train(config, scene.train, run_dir, verbose=verbose)
    seconds = time.time() - start
    scores = evaluation.evaluate_views(model, heldout)
    renders[label] = scores["renders"]
    results["methods"][label] = {
        "preset": name, "steps": training.current_step(model),
        "train_seconds_this_run": round(seconds, 1),
        "heldout_psnr": [round(p, 3) for p in scores["psnr"]],
        "mean_heldout_psnr": round(scores["mean_psnr"], 3)}
  gt = np.concatenate([r["image"] for r in heldout], 1)
  rows = [gt] + [np.round(np.concatenate(renders[k], 1) * 255).astype(np.uint8)
                 for k in ("mip-NeRF", "RegNeRF")]
  atomic.write_image(os.path.join(workdir, "heldout_renders.png"),
                     np.concatenate(rows, 0))
  training.save_json(os.path.join(workdir, "demo_results.json"), results)
  return results


def main(argv):
  del argv
  results = run_demo(FLAGS.workdir, FLAGS.preset, FLAGS.steps, FLAGS.override,
                     FLAGS.views)
  methods = results["methods"]
  print("\nHeld-out views", results["heldout_views"], "from input views",
        results["input_views"], "of the synthetic scene:")
  print(f"{'method':<10} {'steps':>6} {'mean PSNR (dB)':>15}   per view")
  for label, r in methods.items():
    per_view = " ".join(f"{p:5.2f}" for p in r["heldout_psnr"])
    print(f"{label:<10} {r['steps']:>6} {r['mean_heldout_psnr']:>15.2f}   "
          f"{per_view}")
  gain = (methods["RegNeRF"]["mean_heldout_psnr"]
          - methods["mip-NeRF"]["mean_heldout_psnr"])
  print(f"RegNeRF - mip-NeRF: {gain:+.2f} dB. Renders: "
        f"{os.path.join(FLAGS.workdir, 'heldout_renders.png')}")
  return 0


def run():
  """Console-script entry point."""
  common.run_app(main, define_flags, __name__)


if __name__ == "__main__":
  sys.exit(run())
