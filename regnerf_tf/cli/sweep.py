"""regnerf-sweep: the paper's protocol (scenes × views × methods × seeds) on Ray.

Examples::

  # The CPU quality protocol on fern and scan24 at 3 views, on this machine:
  regnerf-sweep --scene_dirs=../shared/data/llff/fern,../shared/data/dtu/scan24 \\
      --views=3 --methods=mipnerf_cpu,regnerf_cpu --downscale=2 \\
      --output=runs/sweep_cpu

  # The paper's protocol on every DTU scan of a TFDS build, on a Ray cluster:
  regnerf-sweep --tfds=dtu_sparse --tfds_scenes=all --manual_dir=/data/dtu \\
      --data_dir=/shared/tfds --views=3,6,9 --methods=mipnerf,regnerf \\
      --output=/shared/runs/paper --address=auto

Each cell trains with regnerf-train and is scored with regnerf-eval in its own
run folder, ``<output>/<scene>/<n>view/<method>[-seed<s>]``; the tables go to
``<output>/sweep_results.md`` and ``.json`` and are printed at the end.
Running the same command again skips the finished cells and resumes the
others from their checkpoints (see regnerf_tf.sweep).
"""

from __future__ import annotations

import sys

from absl import app, flags

from regnerf_tf.cli import common
from regnerf_tf import sweep

FLAGS = flags.FLAGS


def define_flags():
  """Declares the flags (at run time; see regnerf_tf.cli.train)."""
  flags.DEFINE_list("scene_dirs", [], "Scene folders (any layout the readers "
                    "accept), comma separated.")
  flags.DEFINE_string("tfds", None, "A project TFDS dataset: dtu_sparse or "
                      "llff_sparse (the view count picks <n>view).")
  flags.DEFINE_list("tfds_scenes", [], "Scenes of --tfds (e.g. scan24,scan114) "
                    "or 'all': every scene the built dataset holds.")
  flags.DEFINE_string("data_dir", None, "TFDS data directory.")
  flags.DEFINE_string("manual_dir", None, "Raw scenes TFDS builds --tfds from.")
  flags.DEFINE_list("views", ["3", "6", "9"], "Numbers of input views.")
  flags.DEFINE_list("methods", ["mipnerf", "regnerf"], "Methods: names of "
                    "regnerf_tf.sweep.METHODS (mipnerf, regnerf, freenerf, "
                    "*_cpu, ...), preset names, or templates such as "
                    "{kind}{views}_mipnerf.")
  flags.DEFINE_multi_string("override", [], "section.field=value for every "
                            "cell; repeatable.")
  flags.DEFINE_list("seeds", [], "Values of train.seed (default: the "
                    "presets' seed).")
  flags.DEFINE_integer("downscale", 1, "Train and evaluate at 1/N of the "
                       "readers' resolution (2 for the CPU protocol).",
                       lower_bound=1)
  flags.DEFINE_enum("lpips_net", "vgg", ["alex", "vgg"], "LPIPS backbone.")
  flags.DEFINE_bool("ssim_release", False, "SSIM with data range 2, as the "
                    "official evaluation computes it.")
  flags.DEFINE_string("output", None, "Root of the run folders and the "
                      "tables; on a cluster, a path every node sees.")
  flags.DEFINE_string("address", None, "Ray cluster to use ('auto', "
                      "'ray://head:10001'); default: a new local Ray instance.")
  flags.DEFINE_float("cpus_per_run", 1.0, "CPUs each run declares.",
                     lower_bound=0.0)
  flags.DEFINE_float("gpus_per_run", None, "GPUs each run declares (default: "
                     "1 when the cluster has GPUs, else 0).", lower_bound=0.0)
  flags.DEFINE_integer("max_retries", 3, "Retries of a run whose worker or "
                       "process was killed.", lower_bound=0)
  flags.DEFINE_bool("dry_run", False, "Print the cells and their commands; "
                    "run nothing.")
  flags.DEFINE_bool("aggregate_only", False, "Print the tables of what the "
                    "run folders hold now; run nothing (no Ray needed).")


def _integers(values, flag: str) -> list[int]:
  try:
    return [int(v) for v in values]
  except ValueError:
    raise app.UsageError(f"--{flag}={','.join(values)} must be integers "
                         "separated by commas, e.g. --views=3,6,9.") from None


def main(argv):
  del argv
  if not FLAGS.output:
    raise app.UsageError("--output is required: the folder of the run "
                         "folders (on a cluster, a path every node sees).")
  grid = sweep.Grid(
      scene_dirs=FLAGS.scene_dirs, tfds=FLAGS.tfds,
      tfds_scenes=FLAGS.tfds_scenes, data_dir=FLAGS.data_dir,
      manual_dir=FLAGS.manual_dir, views=_integers(FLAGS.views, "views"),
      methods=FLAGS.methods, overrides=FLAGS.override,
      seeds=_integers(FLAGS.seeds, "seeds"), downscale=FLAGS.downscale,
      lpips_net=FLAGS.lpips_net, ssim_release=FLAGS.ssim_release)
  cells = sweep.expand(grid, FLAGS.output)
  if FLAGS.dry_run:
    for cell in cells:
      state = "finished" if sweep.finished(cell.spec())[0] else "to run"
      print(f"{cell.key} ({state}): {cell.workdir}\n"
            f"  regnerf-train {' '.join(cell.train_args())}\n"
            f"  regnerf-eval {' '.join(cell.eval_args())}")
    return 0
  if FLAGS.aggregate_only:
    results = sweep.aggregate(cells)
  else:
    results = sweep.run_sweep(
        cells, FLAGS.output, address=FLAGS.address,
        cpus_per_run=FLAGS.cpus_per_run, gpus_per_run=FLAGS.gpus_per_run,
        max_retries=FLAGS.max_retries)
  print()
  print(sweep.markdown(results))
  failed = [r for r in results["cells"] if r["state"] != "done"]
  return 1 if failed and not FLAGS.aggregate_only else 0


def run():
  """Console-script entry point."""
  common.run_app(main, define_flags, __name__)


if __name__ == "__main__":
  sys.exit(run())
