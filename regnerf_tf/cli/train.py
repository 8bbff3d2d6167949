"""regnerf-train: train RegNeRF (or its mip-NeRF baseline) on one scene.

Examples::

  # The project's synthetic scene, small CPU preset:
  regnerf-train --preset=dtu3_small --synthetic --workdir=runs/synth

  # A scene folder (LLFF poses_bounds.npy, DTU, IDR/NeuS, Blender):
  regnerf-train --preset=llff3 --scene_dir=/data/nerf_llff_data/fern \\
      --workdir=runs/fern3

  # A TFDS dataset built by the project's builders:
  regnerf-train --preset=dtu3 --tfds=dtu_sparse/3view --scene=scan114 \\
      --manual_dir=/data/dtu --workdir=runs/scan114

  # Field-by-field overrides:
  regnerf-train --preset=dtu3 ... --override=train.batch_size=1024 \\
      --override=model.precision=mixed_bfloat16

Running the same command again after an interruption resumes from the last
checkpoint in --workdir, at the same step, with the same data and schedules.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
import tensorflow as tf

from regnerf_tf.cli import common
from regnerf_tf import configs, distribute, evaluation, machine, run_folder
from regnerf_tf import training
from regnerf_tf.datasets import readers

FLAGS = flags.FLAGS
DEFAULT_PRESET = "dtu3_small"


def define_flags():
  """Declares the command-line flags (at run time, not import time, so that
  several entry points can live in one process, e.g. under pytest)."""
  flags.DEFINE_string("preset", None, "Named preset (regnerf_tf.configs). "
                      "Default: the config of the run in --workdir, else "
                      f"{DEFAULT_PRESET}.")
  flags.DEFINE_bool("restart", False, "Start a new run in --workdir: a run "
                    "already there is first renamed to "
                    "<workdir>.replaced-<UTC time>.")
  flags.DEFINE_bool("resume_with_changes", False, "Continue the run in "
                    "--workdir with a config that differs from its own; the "
                    "changes are recorded in its history.json.")
  flags.DEFINE_multi_string("override", [], "section.field=value; repeatable.")
  flags.DEFINE_enum("precision", "auto", ["auto", *configs.PRECISIONS],
                    "The MLP's precision (model.precision). auto: a new run "
                    "trains in mixed_bfloat16 where the machine has bfloat16 "
                    "natively (AVX512_BF16 or AMX CPUs, GPUs of compute "
                    "capability 8.0+), in float32 elsewhere; a run in "
                    "--workdir keeps its own; an --override of "
                    "model.precision wins.")
  flags.DEFINE_string("threads", "auto", "TensorFlow's CPU threads while "
                      "training, INTRA:INTER (intra-op threads per op, "
                      "inter-op ops at a time), 'default' (TensorFlow's: one "
                      "per core each) or auto: half the cores per op and two "
                      "ops at a time on CPUs with 2+ cores (measured faster "
                      "for training), the default on one core and with GPUs.")
  flags.register_validator(
      "threads", _valid_threads,
      message="--threads must be auto, default or INTRA:INTER with two "
              "positive numbers (e.g. 1:2).")
  flags.DEFINE_string("workdir", None, "Run folder: config, checkpoints, logs.")
  common.define_scene_flags()
  flags.DEFINE_integer("steps", None, "Shortcut for --override=train.max_steps=N.",
                       lower_bound=1)
  flags.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored",
                                         "multi_worker"],
                    "tf.distribute strategy (auto: multi_worker when TF_CONFIG "
                    "names a cluster, mirrored on >1 GPU, else one device).")
  flags.DEFINE_string("prior", None, "Patch prior for the appearance term: "
                      "'default' or a path written by regnerf-train-prior.")
  flags.DEFINE_integer("image_every", 0, "Steps between TensorBoard previews.",
                       lower_bound=0)
  flags.DEFINE_bool("quiet", False, "No progress bar.")
  flags.DEFINE_string("eval_views", "8", "Held-out views scored after "
                      "training: a number (the first N), 'all' or 'none'.")
  flags.register_validator(
      "eval_views", lambda v: parse_eval_views(v) is not None,
      message="--eval_views must be a number >= 1, 'all' or 'none'.")


def _valid_threads(value: str) -> bool:
  try:
    machine.parse_threads(value)
  except ValueError:
    return False
  return True


def set_threads(spec: str) -> str:
  """Sets TensorFlow's threads as ``--threads`` asks; returns what was set
  and why, for the start line.

  Raises:
    app.UsageError: explicit threads asked for after TensorFlow started in
      this process (when regnerf-train runs inside another Python program).
  """
  intra, inter, why = machine.training_threads(spec)
  try:
    machine.apply_threads(intra, inter)
  except RuntimeError as e:
    if spec.strip().lower() != "auto":
      raise app.UsageError(f"--threads={spec}: {e}") from None
    why = "kept, TensorFlow had already started in this process"
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
  if not intra and not inter:
    return f"threads: TensorFlow's default ({why})"
  return (f"threads: {intra or 'default'} intra-op, {inter or 'default'} "
          f"inter-op ({why})")


def parse_eval_views(value: str):
  """'none' → 0, 'all' → -1, 'N' → N; None when malformed."""
  value = str(value).strip().lower()
  if value in ("none", "all"):
    return {"none": 0, "all": -1}[value]
  try:
    n = int(value)
  except ValueError:
    return None
  return n if n >= 1 else None


def build_config(preset: str | None, overrides, steps=None,
                 workdir: str | None = None):
  """The preset with the overrides; without a preset, the config of the run
  in ``workdir`` (with the overrides), else :data:`DEFAULT_PRESET`'s."""
  parsed = dict(configs.parse_override(o) for o in overrides)
  if steps is not None:
    parsed["train.max_steps"] = steps
  if preset is None:
    run = run_folder.run_config(workdir) if workdir else None
    if run is not None:
      return run.replace(**parsed)
    preset = DEFAULT_PRESET
  return configs.get_preset(preset, **parsed)


def resolve_precision(config, requested: str, overrides,
                      workdir: str | None) -> tuple[object, str]:
  """``config`` with the precision ``--precision`` asks for, and why.

  Raises:
    app.UsageError: ``--precision`` and an override of model.precision
      disagree.
  """
  parsed = dict(configs.parse_override(o) for o in overrides)
  overridden = parsed.get("model.precision")
  if requested != "auto":
    if overridden is not None and overridden != requested:
      raise app.UsageError(
          f"--precision={requested} and --override=model.precision="
          f"{overridden} disagree; give one of them.")
    return (config.replace(**{"model.precision": requested}),
            "--precision")
  if overridden is not None:
    return config, "--override=model.precision"
  run = run_folder.run_config(workdir) if workdir else None
  if run is not None:
    return (config.replace(**{"model.precision": run.model.precision}),
            f"the run in {workdir}")
  native, why = machine.native_bfloat16()
  return (config.replace(**{"model.precision": "mixed_bfloat16" if native
                            else "float32"}), f"auto: {why}")


def load_prior(spec: str | None):
  if not spec:
    return None
  from regnerf_tf import flows  # pylint: disable=import-outside-toplevel
  if spec == "default":
    return flows.load_default_prior()
  return flows.load_prior(spec)


def check_workdir_is_not_a_scene(workdir: str | None, source: dict) -> None:
  """Refuses a run folder that is the scene folder, or any scene folder: the
  run's files would be written among the photos and camera files."""
  if not workdir or not os.path.isdir(workdir):
    return
  same = (source.get("source") == "folder" and os.path.realpath(workdir)
          == os.path.realpath(source["scene_dir"]))
  try:
    layout = readers.detect_format(workdir)
  except FileNotFoundError:
    layout = None
  if same or layout is not None:
    raise app.UsageError(
        f"--workdir={workdir} is a scene folder ({layout or 'the scene'} "
        "layout); the run's config, checkpoints and logs would be written "
        "among its photos and camera files. Give a run folder of its own, "
        "e.g. --workdir=runs/<name>.")


def main(argv):
  del argv
  if FLAGS.restart and FLAGS.resume_with_changes:
    raise app.UsageError("--restart starts a new run, --resume_with_changes "
                         "continues the old one: give one of them.")
  if FLAGS.workdir is not None and not FLAGS.workdir.strip():
    raise app.UsageError("--workdir is empty; give the run folder (it is "
                         "created if needed), or leave the flag out to train "
                         "without saving anything.")
  if (FLAGS.restart or FLAGS.resume_with_changes) and not FLAGS.workdir:
    raise app.UsageError("--restart and --resume_with_changes need --workdir.")
  threads = set_threads(FLAGS.threads)
  config = build_config(FLAGS.preset, FLAGS.override, FLAGS.steps,
                        FLAGS.workdir)
  config, precision_reason = resolve_precision(
      config, FLAGS.precision, FLAGS.override,
      None if FLAGS.restart else FLAGS.workdir)
  if FLAGS.prior and config.reg.appearance_weight <= 0:
    raise app.UsageError(
        f"--prior={FLAGS.prior} would not be used: it is the patch prior of "
        f"the appearance term, which config {config.name!r} leaves out "
        "(reg.appearance_weight=0). Drop --prior, or choose a preset with the "
        "appearance term (e.g. llff3, dtu3) or "
        "--override=reg.appearance_weight=...")
  source = common.resolve_scene_source(FLAGS.workdir)
  check_workdir_is_not_a_scene(FLAGS.workdir, source)
  strategy = distribute.make_strategy(FLAGS.strategy)
  if FLAGS.restart:
    if distribute.task_info(strategy)[0] is not None:  # one of several workers
      raise app.UsageError(
          "--restart is for single-process training: with several workers, "
          "rename or remove the old run folder before starting them.")
    moved = run_folder.move_aside(FLAGS.workdir)
    if moved and not FLAGS.quiet:
      print(f"Moved the previous run in {FLAGS.workdir} to {moved}.")
  common.check_scene(FLAGS.workdir, source)
  scene = common.load_scene(source, config.data.n_views)
  config.check_scene_kind(scene.kind, f"scene {scene.name}")
  if FLAGS.workdir and distribute.is_chief(strategy):
    os.makedirs(FLAGS.workdir, exist_ok=True)
    common.record_scene(FLAGS.workdir, scene, source)
  prior = load_prior(FLAGS.prior)
  if config.reg.appearance_weight > 0 and prior is None:
    prior = load_prior("default")
  if not FLAGS.quiet:
    print(f"regnerf-train: preset {config.name}, scene {scene.name} "
          f"({scene.kind}), input views "
          f"{[int(r['view_index']) for r in scene.train]}, "
          f"{len(scene.test)} held-out views, {config.train.max_steps} steps, "
          f"{strategy.num_replicas_in_sync} replica(s), "
          f"{config.model.precision} ({precision_reason}), {threads}.")
  model = training.train(
      config, scene.train, FLAGS.workdir,
      preview_record=scene.test[0] if scene.test else None,
      patch_prior=prior, strategy=strategy, verbose=not FLAGS.quiet,
      image_every=FLAGS.image_every,
      resume_with_changes=FLAGS.resume_with_changes)
  count = parse_eval_views(FLAGS.eval_views)
  records = scene.test if count == -1 else scene.test[:count]
  if records and FLAGS.workdir and distribute.is_chief(strategy):

    def progress(i, n, view, psnr):
      if not FLAGS.quiet:
        print(f"  held-out view {i}/{n} (index {view}): PSNR {psnr:.2f} dB",
              flush=True)

    if not FLAGS.quiet:
      print(f"Scoring {len(records)} held-out view(s) at step "
            f"{training.current_step(model)} (--eval_views=none skips "
            "this)...", flush=True)
    summary = evaluation.score_heldout(model, records, FLAGS.workdir,
                                       progress)
    if not FLAGS.quiet:
      print(f"Held-out PSNR over {len(summary['views'])} views: "
            f"{summary['mean_psnr']:.2f} dB, SSIM {summary['mean_ssim']:.3f}")
  return 0


def run():
  """Console-script entry point."""
  common.run_app(main, define_flags, __name__)


if __name__ == "__main__":
  sys.exit(run())
