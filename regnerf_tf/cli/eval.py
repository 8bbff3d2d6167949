"""regnerf-eval: render a scene's held-out views from a run and score them.

Example::

  regnerf-eval --workdir=runs/demo/demo_small --synthetic
  regnerf-eval --workdir=runs/scan114 --tfds=dtu_sparse/3view --scene=scan114 \\
      --lpips_weights=/models/lpips_vgg.npz --lpips_net=vgg

Writes ``<output_dir>/metrics.json`` (per-image and mean metrics; written
atomically) and ``<output_dir>/<view>_{rgb,depth,acc}.png``. The SSIM data
range is part of every report: 1.0 by default, 2.0 with --ssim_release (what
the official evaluation computes for float images). Without LPIPS weights the
report says why LPIPS is missing instead of writing NaN. Scenes with object
masks (DTU test views) also get masked metrics. The views are rendered by
the exact renderer unless --fast is given; the report's ``renderer`` says which
path rendered them, with its settings.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from regnerf_tf.cli import common
from regnerf_tf import evaluation, training

FLAGS = flags.FLAGS


def define_flags():
  """Declares the flags (at run time; see regnerf_tf.cli.train)."""
  flags.DEFINE_string("workdir", None, "Run folder written by regnerf-train.")
  common.define_scene_flags()
  flags.DEFINE_string("output_dir", None, "Default: <workdir>/eval.")
  flags.DEFINE_string("lpips_weights", None, "Local LPIPS weights file "
                      "(default: the one regnerf-lpips-weights wrote, when "
                      "present).")
  flags.DEFINE_enum("lpips_net", "vgg", ["alex", "vgg"], "LPIPS backbone.")
  flags.DEFINE_bool("ssim_release", False, "SSIM with data range 2, as the "
                    "official evaluation computes it (inflates scores).")
  flags.DEFINE_integer("max_views", None, "Evaluate at most this many views.",
                       lower_bound=1)
  flags.DEFINE_integer("chunk", None, "Rays per rendering chunk.")
  common.define_renderer_flags(fast_by_default=False)


def main(argv):
  del argv
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required.")
  model = training.load_run(FLAGS.workdir)
  scene = common.load_scene_from_flags(model.config.data.n_views,
                                       FLAGS.workdir)
  model.config.check_scene_kind(scene.kind, f"scene {scene.name}")
  records = scene.test[:FLAGS.max_views] if FLAGS.max_views else scene.test
  if not records:
    raise app.UsageError(f"Scene {scene.name} has no held-out views.")
  lpips, status = evaluation.load_lpips(FLAGS.lpips_weights,
                                        FLAGS.lpips_net)
  if lpips is None:
    print(status)
  output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, "eval")
  renderer, which = common.make_renderer(model, scene)
  print(f"Scoring {len(records)} held-out view(s) of {scene.name} with the "
        f"{which}...", flush=True)
  report = evaluation.evaluate_run(renderer, records, output_dir, lpips, status,
                        2.0 if FLAGS.ssim_release else 1.0, FLAGS.chunk,
                        progress=True)
  mean = report["mean"]
  print(f"{len(records)} views of {report['scene']} at step {report['step']}: "
        f"PSNR {mean['psnr']:.2f} dB, SSIM (data range "
        f"{report['ssim_data_range']:g}) {mean['ssim']:.4f}"
        + (f", LPIPS {mean['lpips']:.4f}" if mean.get("lpips") is not None
           else ""))
  print(f"Wrote {os.path.join(output_dir, 'metrics.json')}")
  return 0


def run():
  """Console-script entry point."""
  common.run_app(main, define_flags, __name__)


if __name__ == "__main__":
  sys.exit(run())
