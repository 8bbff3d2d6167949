"""Flags and helpers shared by the command-line entry points."""

from __future__ import annotations

import errno
import json
import os
import sys
import textwrap
import traceback

from absl import app, flags

from regnerf_tf import atomic
from regnerf_tf import errors
from regnerf_tf import fast_render
from regnerf_tf import scenes

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
  flags.DEFINE_bool("allow_view_overlap", False, "Accept input views that "
                    "are also held-out views (an experiment: the held-out "
                    "scores then include memorised views).")
  flags.DEFINE_enum("image_order", "auto", ["auto", "text", "number"],
                    "How a --scene_dir's image files pair with the rows of "
                    "its camera file (LLFF, IDR/NeuS): 'auto' refuses names "
                    "whose text and number orders differ (IMG_1, IMG_10, "
                    "IMG_2); 'text' is the order LLFF's imgs2poses.py writes.")
  flags.DEFINE_enum("exif", "auto", ["auto", "stored", "displayed"],
                    "Which pixels a --scene_dir's cameras describe for photos "
                    "with an EXIF orientation tag: 'stored' (COLMAP, LLFF's "
                    "imgs2poses.py), 'displayed' (tools that turn photos "
                    "first), or 'auto' (from the declared image size; refused "
                    "when both fit).")
  flags.DEFINE_integer("downscale", 1, "Train and render the scene at 1/N of "
                       "the resolution its source gives (area filter; e.g. 4 "
                       "for 1600-pixel photos from regnerf-process-data).",
                       lower_bound=1)
  flags.DEFINE_enum("layout", "auto", ["auto", "forward", "object"],
                    "For a --scene_dir holding a capture (COLMAP model, or "
                    "instant-ngp/nerfstudio transforms.json): 'forward' "
                    "(forward-facing, LLFF-style NDC rays), 'object' (object-"
                    "centric), or 'auto' (chosen from the cameras).")


SCENE_FILE = "scene.json"  # in a run folder: where its scene came from
# Options of how a --scene_dir's files are read ("auto" unless given).
FOLDER_OPTIONS = ("image_order", "exif", "layout")


def define_renderer_flags(fast_by_default: bool):
  """The flags choosing the renderer (:mod:`regnerf_tf.fast_render`).

  ``fast_by_default``: the fast path unless ``--exact`` (regnerf-render,
  regnerf-export), or the exact one unless ``--fast`` (regnerf-eval).
  """
  if fast_by_default:
    flags.DEFINE_bool("exact", False, "Render every sample (the exact "
                      "renderer) instead of the fast path, which skips "
                      "samples in empty space and behind opaque surfaces "
                      "and runs the MLP in bfloat16 where that is native.")
  else:
    flags.DEFINE_bool("fast", False, "Render with the fast path (skips "
                      "samples in empty space and behind opaque surfaces; "
                      "bfloat16 where native) instead of the exact renderer.")
  flags.DEFINE_enum("precision", "auto", list(fast_render.PRECISIONS),
                    "The fast path's MLP precision; auto: bfloat16 where the "
                    "machine has it natively (AVX512_BF16, AMX, GPUs of "
                    "compute capability 8.0+), float32 elsewhere.")
  flags.DEFINE_integer("render_samples", None, "The fast path's samples per "
                       "ray and level (default: the run's model.num_samples; "
                       "fewer is faster and approximate, see "
                       "benchmarks/RESULTS.md).", lower_bound=2)


def make_renderer(model, scene):
  """The model, or its fast renderer over ``scene``'s training views, as the
  renderer flags ask; with a one-line description of which rendered."""
  fast = not FLAGS.exact if "exact" in FLAGS else FLAGS.fast
  if not fast:
    if FLAGS.render_samples is not None or FLAGS.precision != "auto":
      raise app.UsageError(
          "--render_samples and --precision choose the fast path's settings; "
          "the exact renderer has none. Drop them, or render with the fast "
          "path.")
    return model, "exact renderer (every sample, float32)"
  options = fast_render.FastOptions(samples=FLAGS.render_samples,
                                    precision=FLAGS.precision)
  renderer = fast_render.FastRenderer.for_records(model, scene.train, options)
  return renderer, renderer.summary()


def scene_source_from_flags() -> dict | None:
  """What the scene flags name, as recorded in a run folder's scene.json
  (None when no scene flag is given)."""
  source = _scene_source()
  if source is not None and FLAGS.downscale != 1:  # recorded only when given
    source["downscale"] = FLAGS.downscale
  return source


def _scene_source() -> dict | None:
  sources = [bool(FLAGS.scene_dir), bool(FLAGS.tfds), FLAGS.synthetic]
  if sum(sources) > 1:
    raise app.UsageError("Give exactly one of --scene_dir, --tfds (with "
                         "--scene) or --synthetic.")
  folder_only = [f"--{name}" for name, given in (
      ("allow_view_overlap", FLAGS.allow_view_overlap),
      *((name, FLAGS[name].value != "auto") for name in FOLDER_OPTIONS))
      if given]
  tfds_only = [f"--{name}" for name in ("scene", "data_dir", "manual_dir")
               if FLAGS[name].value]
  if not FLAGS.tfds and tfds_only:
    raise app.UsageError(
        f"{' and '.join(tfds_only)} belong to --tfds (a scene within a TFDS "
        "dataset); without --tfds they would be ignored. Give --tfds, or "
        "drop them (a folder is --scene_dir).")
  if not any(sources):
    return None
  if not FLAGS.scene_dir and folder_only:
    raise app.UsageError(
        f"{' and '.join(folder_only)} apply to the files of a --scene_dir; "
        f"with {'--tfds' if FLAGS.tfds else '--synthetic'} they would be "
        "ignored. Drop them.")
  views = None
  if FLAGS.train_views:
    try:
      views = [int(v) for v in FLAGS.train_views]
    except ValueError:
      raise app.UsageError(
          f"--train_views={','.join(FLAGS.train_views)} must be 0-based view "
          "indices separated by commas, e.g. --train_views=1,10,19.") from None
    if FLAGS.tfds:
      raise app.UsageError(
          "--train_views applies to --scene_dir and --synthetic; a TFDS split "
          f"({FLAGS.tfds}, {FLAGS.scene or '?'}_train) fixes its input views. "
          "Use the dataset config with the view count you want (e.g. "
          "dtu_sparse/6view), or the scene folder with --train_views.")
  if FLAGS.synthetic:
    return {"source": "synthetic", "train_views": views}
  if FLAGS.scene_dir:
    if not os.path.isdir(FLAGS.scene_dir):
      raise app.UsageError(f"--scene_dir {FLAGS.scene_dir} is not a folder.")
    source = {"source": "folder",
              "scene_dir": os.path.abspath(FLAGS.scene_dir),
              "train_views": views}
    if FLAGS.allow_view_overlap:  # recorded only when given
      source["allow_view_overlap"] = True
    for name in FOLDER_OPTIONS:  # recorded if not "auto"
      if FLAGS[name].value != "auto":
        source[name] = FLAGS[name].value
    return source
  if not FLAGS.scene:
    raise app.UsageError("--tfds needs --scene (e.g. --scene=fern).")
  return {"source": "tfds", "tfds": FLAGS.tfds, "scene": FLAGS.scene,
          "data_dir": (os.path.abspath(FLAGS.data_dir) if FLAGS.data_dir
                       else None),
          "manual_dir": (os.path.abspath(FLAGS.manual_dir)
                         if FLAGS.manual_dir else None)}


def load_scene(source: dict, n_views: int):
  """The Scene a source record (see :func:`scene_source_from_flags`) names."""
  scene = _load_scene(source, n_views)
  factor = int(source.get("downscale", 1))
  return scenes.downsample(scene, factor) if factor > 1 else scene


def _load_scene(source: dict, n_views: int):
  views = source.get("train_views")
  if source["source"] == "synthetic":
    return (scenes.synthetic_scene(train_views=views) if views
            else scenes.synthetic_scene())
  if source["source"] == "folder":
    if not os.path.isdir(source["scene_dir"]):
      raise app.UsageError(
          f"The scene folder {source['scene_dir']} is gone; give the scene "
          "again with --scene_dir (or --tfds/--synthetic).")
    return scenes.from_folder(
        source["scene_dir"], n_views, train_views=views,
        allow_overlap=bool(source.get("allow_view_overlap", False)),
        **{name: source.get(name, "auto") for name in FOLDER_OPTIONS})
  return scenes.from_tfds(source["tfds"], source["scene"], source["data_dir"],
                          source["manual_dir"])


def read_scene_record(workdir: str | None) -> dict | None:
  """``<workdir>/scene.json`` (source, name, kind, views), or None."""
  if not workdir:
    return None
  path = os.path.join(workdir, SCENE_FILE)
  if not os.path.isfile(path):
    return None
  with open(path, "rb") as f:
    text = f.read()
  try:
    record = json.loads(text)
    source = record["source"]
    if not isinstance(source, dict) or source.get("source") not in (
        "folder", "tfds", "synthetic"):
      raise ValueError(f"its source is {source!r:.80}")
  except (ValueError, KeyError, TypeError) as e:
    raise errors.InputError(
        f"{path} cannot be read ({type(e).__name__}: {e}); it records which "
        "scene the run was trained on. Restore it from a backup, or delete it "
        "and give the run's scene again (--scene_dir, --tfds with --scene, or "
        "--synthetic).") from None
  return record


def read_scene_file(workdir: str | None) -> dict | None:
  """The source recorded in ``<workdir>/scene.json``, or None."""
  record = read_scene_record(workdir)
  return None if record is None else record["source"]


def resolve_scene_source(workdir: str | None = None) -> dict:
  """The source the flags name, or else the one ``workdir`` was trained on."""
  source = scene_source_from_flags()
  if source is not None:
    return source
  source = read_scene_file(workdir)
  if source is None:
    raise app.UsageError(
        "Give exactly one of --scene_dir, --tfds (with --scene) or "
        "--synthetic" + (f": {workdir} records no scene ({SCENE_FILE} is "
                         "written by regnerf-train)." if workdir else "."))
  print(f"Scene: {describe_source(source)} (from "
        f"{os.path.join(workdir, SCENE_FILE)}).", flush=True)
  return source


def load_scene_from_flags(n_views: int, workdir: str | None = None):
  """The Scene the flags name, or else the one ``workdir`` was trained on."""
  return load_scene(resolve_scene_source(workdir), n_views)


def describe_source(source: dict) -> str:
  if source["source"] == "synthetic":
    text = "the synthetic scene"
  elif source["source"] == "folder":
    text = f"--scene_dir={source['scene_dir']}"
  else:
    text = f"--tfds={source['tfds']} --scene={source['scene']}"
  if source.get("train_views"):
    text += " --train_views=" + ",".join(map(str, source["train_views"]))
  if source.get("allow_view_overlap"):
    text += " --allow_view_overlap"
  if source.get("downscale", 1) != 1:
    text += f" --downscale={source['downscale']}"
  for name in FOLDER_OPTIONS:
    if name in source:
      text += f" --{name}={source[name]}"
  return text


_SOURCE_FLAGS = {"scene_dir": "--scene_dir", "tfds": "--tfds",
                 "scene": "--scene", "train_views": "--train_views",
                 "allow_view_overlap": "--allow_view_overlap",
                 "image_order": "--image_order", "exif": "--exif",
                 "layout": "--layout", "downscale": "--downscale",
                 "data_dir": "--data_dir", "manual_dir": "--manual_dir",
                 "source": "the kind of scene"}


def _source_changes(recorded: dict, source: dict) -> str:
  order = list(_SOURCE_FLAGS)
  keys = sorted(set(recorded) | set(source),
                key=lambda k: order.index(k) if k in order else len(order))
  return "; ".join(f"{_SOURCE_FLAGS.get(k, k)}: {recorded.get(k)!r} in the run, "
                   f"{source.get(k)!r} now" for k in keys
                   if recorded.get(k) != source.get(k))


def _moved(recorded: dict, source: dict) -> bool:
  """The run's scene folder is gone and ``source`` is the same otherwise."""
  return (recorded.get("source") == source.get("source") == "folder"
          and not os.path.isdir(recorded["scene_dir"])
          and {k: v for k, v in recorded.items() if k != "scene_dir"}
          == {k: v for k, v in source.items() if k != "scene_dir"})


def check_scene(workdir: str | None, source: dict) -> None:
  """Refuses a run folder trained on another scene (before anything is
  loaded): the folder would no longer say what it holds. A scene folder that
  moved (the recorded one is gone) is accepted here and checked against the
  recorded scene by :func:`record_scene`."""
  recorded = read_scene_file(workdir)
  if recorded is None or recorded == source or _moved(recorded, source):
    return
  raise app.UsageError(
      f"{workdir} holds a run trained on {describe_source(recorded)}, not "
      f"{describe_source(source)} ({_source_changes(recorded, source)}; see "
      f"{os.path.join(workdir, SCENE_FILE)}). Use another --workdir for this "
      "scene, or give the run's own scene (or none: it is read from the "
      "folder).")


def record_scene(workdir: str, scene, source: dict) -> None:
  """Writes ``<workdir>/scene.json`` once (see :func:`check_scene`).

  When the run's scene folder moved, the scene now given must be the one
  recorded (kind, input and held-out views; the folder may be renamed);
  scene.json then names the new folder and keeps the old ones under
  ``moved_from``.
  """
  check_scene(workdir, source)
  path = os.path.join(workdir, SCENE_FILE)
  found = {"name": scene.name, "kind": scene.kind,
           "train_views": [int(r["view_index"]) for r in scene.train],
           "test_views": [int(r["view_index"]) for r in scene.test]}
  record = read_scene_record(workdir)
  if record is None:
    atomic.write_json(path, {"source": source, **found})
    return
  if record["source"] == source:
    return
  differs = [f"{k}: {record.get(k)!r} in the run, {v!r} in "
             f"{source['scene_dir']}" for k, v in found.items()
             if k != "name" and record.get(k) != v]  # a folder may be renamed
  if differs:
    raise app.UsageError(
        f"The run in {workdir} was trained on {record['source']['scene_dir']}, "
        f"which no longer exists, and {source['scene_dir']} holds another "
        f"scene ({'; '.join(differs)}). Give the folder the run's scene moved "
        "to, or use another --workdir.")
  moved_from = record.get("moved_from", []) + [record["source"]["scene_dir"]]
  atomic.write_json(path, {**record, **found, "source": source,
                           "moved_from": moved_from})
  print(f"The run's scene folder moved from {moved_from[-1]} to "
        f"{source['scene_dir']} (the same scene and views); {path} now names "
        "the new folder.", flush=True)


TRACEBACK_ENV = "REGNERF_TF_TRACEBACK"  # set to 1: errors show the traceback


def run_app(main, define_flags, module_name: str) -> None:
  """Declares the flags, makes ``--help`` list them, and runs ``main``.

  absl's ``--help`` shows the flags of the module named by ``sys.argv[0]``;
  for a console script that is the generated wrapper, so the entry point's
  flags (and the shared scene flags) are registered for it. ``main`` runs
  under :func:`guarded`: a deliberate error is one paragraph and exit code 2.
  """
  define_flags()
  if "verbose" not in FLAGS:
    flags.DEFINE_bool("verbose", False, "On an error, also print the Python "
                      f"traceback (so does {TRACEBACK_ENV}=1).")
  for module in (module_name, __name__):
    for flag in FLAGS.get_flags_for_module(module):
      FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  program = program_name()
  app.run(guarded(main, program), flags_parser=flags_parser(program))


def flags_parser(program: str):
  """Parses the command line; a bad flag value is one paragraph, exit 2.

  absl's own parser prints "FATAL Flags parsing error" and exits 1; here the
  flag library's message (which names the flag and the value) is reported
  like every other error.
  """

  def parse(argv):
    try:
      return FLAGS(argv)
    except flags.Error as e:
      text = str(e).rstrip()
      text += "" if text.endswith((".", "?", "!")) else "."
      sys.exit(report_error(program, f"{text} (--help lists the flags.)", e))

  return parse


def program_name() -> str:
  """``regnerf-train`` for both the console script and ``python -m``."""
  name = os.path.basename(sys.argv[0]) if sys.argv else ""
  if name.endswith(".py"):  # python -m regnerf_tf.cli.train
    return "regnerf-" + name[:-len(".py")]
  return name or "regnerf"


def guarded(main, program: str):
  """``main`` that turns the errors a user can fix into one paragraph.

  :class:`regnerf_tf.errors.RegNeRFError`, a usage error raised while
  running, and the OS errors of files and folders (a full or read-only
  disk, a run folder that is a file, a missing path) print ``program: error:``
  and the message on stderr and return 2; the traceback only with
  ``--verbose`` or ``REGNERF_TF_TRACEBACK=1``. Anything else is a bug and
  keeps its traceback.
  """

  def wrapped(argv):
    try:
      return main(argv)
    except errors.RegNeRFError as e:
      return report_error(program, str(e), e)
    except app.UsageError as e:
      return report_error(program, f"{e} (--help lists the flags.)", e)
    except OSError as e:
      return report_error(program, explain_os_error(e), e)
    except Exception as e:  # pylint: disable=broad-except
      text = explain_tf_io_error(e)
      if text is None:
        raise
      return report_error(program, text, e)

  return wrapped


def show_traceback() -> bool:
  if os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
    return True
  try:
    return FLAGS["verbose"].value is True
  except KeyError:
    return False


def report_error(program: str, text: str, error: BaseException) -> int:
  """Prints ``text`` as one paragraph on stderr (and the traceback when
  asked for); returns the exit code 2."""
  if show_traceback():
    traceback.print_exception(error)
  sys.stdout.flush()
  print(textwrap.fill(f"{program}: error: {text}", width=100,
                      break_long_words=False, break_on_hyphens=False),
        file=sys.stderr, flush=True)
  return 2


_WHAT_TO_DO = {
    "ENOSPC": "The disk is full. Free space there or point the command at "
              "another disk; a training run resumes from its last checkpoint.",
    "EDQUOT": "The disk quota is used up. Free space or use another disk.",
    "EROFS": "That file system is read-only. Choose a folder you can write "
             "to (--workdir, --output).",
    "EACCES": "Permission denied. Choose a folder you can write to, or fix "
              "its permissions.",
    "EPERM": "The operation is not permitted there. Choose another folder.",
    "ENOTDIR": "A part of that path is a file, not a folder. Choose another "
               "path, or move the file away.",
    "EEXIST": "A file of that name is in the way where a folder is needed. "
              "Choose another path, or move the file away.",
    "EISDIR": "That path is a folder where a file is expected. Give the "
              "file's path.",
    "ENOENT": "Check the path (it is relative to the current folder unless "
              "it starts with /).",
}


def explain_os_error(error: OSError) -> str:
  """What went wrong with which path, and what to do."""
  name = errno.errorcode.get(error.errno, "")
  path = error.filename
  where = f" ({path})" if path else ""
  what = error.strerror or str(error)
  return f"{what}{where}. " + _WHAT_TO_DO.get(
      name, "Check the path and the disk, then run the same command again.")


_TF_IO = (("No space left on device", "ENOSPC"),
          ("Read-only file system", "EROFS"),
          ("Permission denied", "EACCES"),
          ("Not a directory", "ENOTDIR"),
          ("is not a directory", "ENOTDIR"),
          ("Disk quota exceeded", "EDQUOT"))


def explain_tf_io_error(error: BaseException) -> str | None:
  """The paragraph for a TensorFlow file-system error (its C++ file writer
  raises ``tf.errors.OpError``, not ``OSError``), or None for any other."""
  if not type(error).__module__.startswith("tensorflow"):
    return None
  message = str(error).strip().splitlines()[0] if str(error).strip() else ""
  for needle, name in _TF_IO:
    if needle in str(error):
      return f"{message}. {_WHAT_TO_DO[name]}"
  return None
