"""regnerf-export: write a trained run as a TensorFlow SavedModel.

Example::

  regnerf-export --workdir=runs/scan114 --scene_dir=/data/dtu/scan114 \\
      --output=exports/scan114 [--max_pixels=1048576]

The scene source (--scene_dir, --tfds with --scene, or --synthetic) gives the
kind of scene baked into the ``render_image`` signature (camera axes, NDC,
near/far). The export loads without regnerf_tf::

  import tensorflow as tf
  m = tf.saved_model.load("exports/scan114")
  out = m.signatures["render_image"](camtoworld=c2w, intrinsics=K,
                                     height=tf.constant(300),
                                     width=tf.constant(400))
  out["image"], out["depth"]   # [H, W, 3], [H, W]

See :mod:`regnerf_tf.export` for both signatures. They render with the fast
path (:mod:`regnerf_tf.fast_render`; its occupancy grid, baked here from the
scene's training views, is saved with the export) unless --exact is given.
--precision=auto bakes in bfloat16 when the exporting machine has it natively:
export with --precision=float32 for serving machines without it (an AVX2-only
CPU emulates bfloat16, slower than float32).
"""

from __future__ import annotations

import sys

import numpy as np
from absl import app, flags

from regnerf_tf.cli import common
from regnerf_tf import export, training


FLAGS = flags.FLAGS


def define_flags():
  """Declares the flags (at run time, not import time)."""
  flags.DEFINE_string("workdir", None, "Run folder written by regnerf-train.")
  common.define_scene_flags()
  flags.DEFINE_string("output", None, "SavedModel folder to write.")
  flags.DEFINE_integer("chunk", 4096, "Rays rendered at once inside the graph.",
                       lower_bound=1)
  flags.DEFINE_integer("max_pixels", None, "Largest height*width that "
                       "render_image accepts (checked in the graph; default "
                       "4096*4096; at least 9, a 3×3 image).", lower_bound=9)
  flags.DEFINE_bool("quiet", False, "No summary line.")
  common.define_renderer_flags(fast_by_default=True)


def main(argv):
  del argv
  if not FLAGS.workdir or not FLAGS.output:
    raise app.UsageError("--workdir and --output are required.")
  if not FLAGS.quiet:
    print(f"Loading the run in {FLAGS.workdir}...", flush=True)
  model = training.load_run(FLAGS.workdir)
  scene = common.load_scene_from_flags(model.config.data.n_views,
                                       FLAGS.workdir)
  model.config.check_scene_kind(scene.kind, f"scene {scene.name}")
  record = scene.train[0]
  near = float(np.asarray(record["near"]).reshape(-1)[0])
  far = float(np.asarray(record["far"]).reshape(-1)[0])
  kind = scene.kind
  if kind != "blender":
    near = far = None  # fixed by the kind
  limit = {} if FLAGS.max_pixels is None else {"max_pixels": FLAGS.max_pixels}
  renderer, which = common.make_renderer(model, scene)
  if not FLAGS.quiet:
    print(f"The signatures render with the {which}.", flush=True)
  if not FLAGS.quiet:
    print(f"Tracing render_rays and render_image and writing {FLAGS.output} "
          "(about a minute)...", flush=True)
  path = export.export_saved_model(model, FLAGS.output, kind, near, far,
                                   FLAGS.chunk, **limit,
                                   cameras=export.serving_cameras(scene),
                                   fast=None if renderer is model else renderer)
  if not FLAGS.quiet:
    print(f"Exported {FLAGS.workdir} ({kind} rays) to {path} with signatures "
          "render_rays, render_image and cameras.")
  return 0


def run():
  """Console-script entry point."""
  common.run_app(main, define_flags, __name__)


if __name__ == "__main__":
  sys.exit(run())
