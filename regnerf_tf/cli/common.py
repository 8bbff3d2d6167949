"""Flags and helpers shared by the command-line entry points."""

from __future__ import annotations

import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS


def define_scene_flags():
  """--scene_dir / --tfds + --scene / --synthetic and related flags."""
  flags.DEFINE_string("scene_dir", None, "A scene folder (LLFF, DTU, IDR/NeuS, "
                      "Blender layouts).")
  flags.DEFINE_string("tfds", None, "TFDS dataset, e.g. llff_sparse/3view.")
  flags.DEFINE_string("scene", None, "Scene name within --tfds, e.g. fern.")
  flags.DEFINE_string("data_dir", None, "TFDS data directory.")
  flags.DEFINE_string("manual_dir", None, "Raw scenes for building --tfds.")
  flags.DEFINE_bool("synthetic", False, "The project's synthetic scene.")
  flags.DEFINE_list("train_views", None, "Explicit 0-based input views.")


def load_scene_from_flags(n_views: int):
  """The Scene the flags name (exactly one source must be given)."""
  from regnerf_tf import scenes  # pylint: disable=import-outside-toplevel
  sources = [bool(FLAGS.scene_dir), bool(FLAGS.tfds), FLAGS.synthetic]
  if sum(sources) != 1:
    raise app.UsageError("Give exactly one of --scene_dir, --tfds (with "
                         "--scene) or --synthetic.")
  views = [int(v) for v in FLAGS.train_views] if FLAGS.train_views else None
  if FLAGS.synthetic:
    return (scenes.synthetic_scene(train_views=views) if views
            else scenes.synthetic_scene())
  if FLAGS.scene_dir:
    if not os.path.isdir(FLAGS.scene_dir):
      raise app.UsageError(f"--scene_dir {FLAGS.scene_dir} is not a folder.")
    return scenes.from_folder(FLAGS.scene_dir, n_views, train_views=views)
  if not FLAGS.scene:
    raise app.UsageError("--tfds needs --scene (e.g. --scene=fern).")
  return scenes.from_tfds(FLAGS.tfds, FLAGS.scene, FLAGS.data_dir,
                          FLAGS.manual_dir)


def run_app(main, define_flags, module_name: str) -> None:
  """Declares the flags, makes ``--help`` list them, and runs ``main``.

  absl's ``--help`` shows the flags of the module named by ``sys.argv[0]``;
  for a console script that is the generated wrapper, so the entry point's
  flags (and the shared scene flags) are registered for it.
  """
  define_flags()
  for module in (module_name, __name__):
    for flag in FLAGS.get_flags_for_module(module):
      FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main)
