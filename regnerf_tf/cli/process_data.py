"""regnerf-process-data: a folder of photos (or a video) → a COLMAP scene folder.

Example::

  regnerf-process-data --input=~/photos/plant --output=scenes/plant
  regnerf-train --preset=llff3_small --scene_dir=scenes/plant --workdir=runs/plant

Writes ``<output>/images/`` (the photos upright, EXIF orientation applied, as
PNG or JPEG), ``images_2/``, ``images_4/``, ``images_8/`` (downscaled copies),
``sparse/0/`` (the COLMAP model: cameras, images, points3D) and
``database.db``. Structure from motion runs through ``pycolmap`` (optional
extra: ``pip install -e ".[colmap]"``): SIFT features, exhaustive matching
and incremental mapping, on the CPU unless pycolmap finds a GPU. The scene
folder then loads like any other (:func:`regnerf_tf.datasets.readers.read_colmap`).

Sparse captures are this project's point, but structure from motion needs
overlap: register more photos than you will train on (e.g. 20 around the
object), and choose the input views among them (--train_views) or use the
canonical split (every 8th view held out, the inputs spread over the rest).
"""

from __future__ import annotations

import os
import shutil
import sys
import time

from absl import app, flags

from regnerf_tf.cli import common

FLAGS = flags.FLAGS
DOWNSCALES = (2, 4, 8)
MIN_REGISTERED = 3
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def define_flags():
  """Declares the flags (at run time; see regnerf_tf.cli.train)."""
  flags.DEFINE_string("input", None, "A folder of photos (PNG/JPEG/TIFF) or a "
                      "video file.")
  flags.DEFINE_string("output", None, "The scene folder to write (new or "
                      "empty).")
  flags.DEFINE_integer("frames", 40, "Frames taken evenly from a video.",
                       lower_bound=3)
  flags.DEFINE_enum("camera_model", "OPENCV", ["SIMPLE_PINHOLE", "PINHOLE",
                                               "SIMPLE_RADIAL", "RADIAL",
                                               "OPENCV"],
                    "COLMAP camera model (one camera shared by all photos).")
  flags.DEFINE_integer("max_size", 1600, "Photos whose longer side is larger "
                       "are downscaled to it in images/ (0 keeps them).",
                       lower_bound=0)
  flags.DEFINE_bool("quiet", False, "No progress messages.")


def _quiet(text: str) -> None:
  del text


def import_pycolmap():
  """pycolmap, or an error that says how to install it."""
  from regnerf_tf import errors  # pylint: disable=import-outside-toplevel
  try:
    import pycolmap  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise errors.MissingFileError(
        "regnerf-process-data needs pycolmap (structure from motion), which "
        "is an optional extra: pip install -e \".[colmap]\" (or pip install "
        "\"regnerf-tf[colmap]\"), then run the same command again.") from None
  return pycolmap


def collect_photos(source: str, frames: int) -> list[tuple[str, object]]:
  """[(file name, uint8 [H, W, 3] upright pixels)] of a folder or video."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from regnerf_tf import errors  # pylint: disable=import-outside-toplevel
  from regnerf_tf.datasets import readers  # pylint: disable=import-outside-toplevel
  if os.path.isfile(source) and source.lower().endswith(VIDEO_EXTENSIONS):
    import imageio.v3 as iio  # pylint: disable=import-outside-toplevel
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    try:
      # ffmpeg counts the frames without handing them to Python.
      count = imageio_ffmpeg.count_frames_and_secs(source)[0]
      keep = set(np.linspace(0, count - 1, min(frames, count)).round().astype(
          int).tolist())
      photos = [(f"frame_{i:05d}.png", np.asarray(frame)[..., :3])
                for i, frame in enumerate(iio.imiter(source)) if i in keep]
    except Exception as e:  # pylint: disable=broad-except
      raise errors.InputError(f"Could not read the video {source} ({e}); "
                              "expected a video ffmpeg can decode.") from None
    return photos
  if not os.path.isdir(source):
    raise errors.MissingFileError(
        f"--input={source} is neither a folder of photos nor a video file "
        f"({', '.join(VIDEO_EXTENSIONS)}).")
  names, ignored = readers.list_photos(source)
  if not names:
    raise errors.InputError(
        f"{source} holds no PNG/JPEG/TIFF photo{readers.ignored_note(ignored)}."
        " Give the folder of the photos.")
  photos = []
  for name in names:
    image = readers.read_image(os.path.join(source, name))  # upright
    if image.shape[-1] < 3:
      image = np.repeat(image[..., :1], 3, axis=-1)
    photos.append((name, image[..., :3]))
  return photos


def _shrink(image, max_size: int):
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  h, w = image.shape[:2]
  if not max_size or max(h, w) <= max_size:
    return image
  scale = max_size / max(h, w)
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def write_images(photos, output: str, max_size: int) -> list[str]:
  """Writes images/ and the downscaled copies; returns the file names."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from regnerf_tf.datasets import image_ops  # pylint: disable=import-outside-toplevel
  folders = {1: os.path.join(output, "images")}
  folders.update({f: os.path.join(output, f"images_{f}") for f in DOWNSCALES})
  for folder in folders.values():
    os.makedirs(folder, exist_ok=True)
  names = []
  size = None
  for name, image in photos:
    image = _shrink(image, max_size)
    size = size or image.shape[:2]
    stem, ext = os.path.splitext(name)
    ext = ".jpg" if ext.lower() in (".jpg", ".jpeg") else ".png"
    out_name = stem + ext
    options = {"quality": 95} if ext == ".jpg" else {}
    Image.fromarray(image).save(os.path.join(folders[1], out_name), **options)
    for factor in DOWNSCALES:
      small = image_ops.to_uint8(image_ops.downsample(
          np.asarray(image, np.float64), factor, "area"))
      Image.fromarray(small).save(os.path.join(folders[factor], out_name),
                                  **options)
    names.append(out_name)
  return names


def run_sfm(output: str, camera_model: str, total: int,
            say=print) -> None:
  """Features, matches and the incremental mapper into ``output/sparse/0``."""
  from regnerf_tf import errors  # pylint: disable=import-outside-toplevel
  pycolmap = import_pycolmap()
  pycolmap.logging.minloglevel = 2  # COLMAP's per-step INFO/WARNING lines
  database = os.path.join(output, "database.db")
  images = os.path.join(output, "images")
  reader = pycolmap.ImageReaderOptions()
  reader.camera_model = camera_model
  start = time.time()
  say(f"[1/3] Features of {total} photos (SIFT)...")
  pycolmap.extract_features(database, images,
                            camera_mode=pycolmap.CameraMode.SINGLE,
                            reader_options=reader)
  say(f"[2/3] Matching every pair ({total * (total - 1) // 2} pairs)... "
       f"({time.time() - start:.0f} s)")
  pycolmap.match_exhaustive(database)
  say(f"[3/3] Incremental mapping... ({time.time() - start:.0f} s)")
  work = os.path.join(output, ".sparse_work")
  os.makedirs(work, exist_ok=True)
  models = pycolmap.incremental_mapping(database, images, work)
  best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
  registered = 0 if best is None else best.num_reg_images()
  if registered < MIN_REGISTERED or registered < total:
    shutil.rmtree(work, ignore_errors=True)
    if registered >= MIN_REGISTERED:
      missing = sorted(set(os.listdir(images))
                       - {im.name for im in best.images.values()})
      say(f"Note: {len(missing)} photo(s) did not register: {missing[:8]}.")
    if registered < MIN_REGISTERED:
      raise errors.InputError(
          f"Structure from motion registered {registered} of {total} photos "
          f"(at least {MIN_REGISTERED} are needed, and far more for reliable "
          "poses). Sparse captures are the point of this project, but poses "
          "need overlap: take more photos of the scene (e.g. 20 with about "
          "two thirds overlap between neighbours), run regnerf-process-data "
          "on all of them, and train on a few (the canonical split or "
          "--train_views), holding out the rest.")
  if registered < total:
    _keep_registered(output, {im.name for im in best.images.values()})
  target = os.path.join(output, "sparse", "0")
  os.makedirs(target, exist_ok=True)
  best.write(target)
  shutil.rmtree(work, ignore_errors=True)
  say(f"Registered {registered} of {total} photos; "
       f"{len(best.points3D)} 3D points; mean reprojection error "
       f"{best.compute_mean_reprojection_error():.2f} px "
       f"({time.time() - start:.0f} s).")


def _keep_registered(output: str, registered: set[str]) -> None:
  """Moves photos that did not register to ``unregistered/`` (the readers
  pair every image with a camera)."""
  aside = os.path.join(output, "unregistered")
  for folder in ["images"] + [f"images_{f}" for f in DOWNSCALES]:
    for name in os.listdir(os.path.join(output, folder)):
      if name not in registered:
        os.makedirs(os.path.join(aside, folder), exist_ok=True)
        os.replace(os.path.join(output, folder, name),
                   os.path.join(aside, folder, name))


def process_photos(source: str, output: str, *, frames: int = 40,
                   camera_model: str = "OPENCV", max_size: int = 1600,
                   log=print) -> str:
  """A scene folder at ``output`` from the photos (or video) at ``source``.

  The folder appears only when complete (written as ``<output>.partial``
  first). ``log`` receives progress lines (None: silent). Returns ``output``.

  Raises:
    errors.InputError: ``output`` is not new or empty; fewer than 3 photos;
      photos of several sizes; fewer than 3 photos registered.
    errors.MissingFileError: pycolmap is not installed; ``source`` missing.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  from regnerf_tf import errors  # pylint: disable=import-outside-toplevel
  from regnerf_tf.datasets import colmap, readers  # pylint: disable=import-outside-toplevel
  say = log or _quiet
  output = os.path.abspath(output)
  if os.path.exists(output) and (not os.path.isdir(output)
                                 or os.listdir(output)):
    raise errors.InputError(
        f"The output {output} exists and is not an empty folder; give a new "
        "folder for the scene (nothing there is overwritten).")
  import_pycolmap()  # before any work: say how to install it
  photos = collect_photos(os.path.abspath(source), frames)
  if len(photos) < MIN_REGISTERED:
    raise errors.InputError(
        f"{source} gives {len(photos)} photo(s); structure from motion needs "
        f"at least {MIN_REGISTERED}, and about 20 overlapping ones for "
        "reliable poses (train on a few of them afterwards).")
  sizes = sorted({p[1].shape[:2] for p in photos})
  if len(sizes) > 1:
    raise errors.InputError(
        f"The photos in {source} have {len(sizes)} sizes as displayed "
        f"({sizes[:4]}); one camera is estimated for all of them, so they "
        "must share one size and orientation (portrait or landscape). Keep "
        "the photos of one camera and orientation.")
  partial = output + ".partial"
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  try:
    say(f"Writing {len(photos)} photos (upright) and copies at 1/"
         f"{', 1/'.join(map(str, DOWNSCALES))} to {output}...")
    write_images(photos, partial, max_size)
    run_sfm(partial, camera_model, len(photos), say)
  except BaseException:
    shutil.rmtree(partial, ignore_errors=True)
    raise
  if os.path.isdir(output):
    os.rmdir(output)
  os.replace(partial, output)
  model = colmap.read_model(os.path.join(output, "sparse", "0"))
  layout, spread = readers.camera_layout(
      np.stack([im.camtoworld for im in model.images]))
  preset = "llff3_small" if layout == "forward" else "dtu3_small"
  longest = max(photos[0][1].shape[:2]) if max_size == 0 else min(
      max(photos[0][1].shape[:2]), max_size)
  downscale = next((f for f in (1,) + DOWNSCALES if longest / f <= 640), 8)
  flag = f" --downscale={downscale}" if downscale > 1 else ""
  say(f"Done: a {layout} capture (view directions within {spread:.0f}° of "
       f"their mean). Train with: regnerf-train --preset={preset} "
       f"--scene_dir={output}{flag} --workdir=runs/<name>")
  return output


def main(argv):
  del argv
  if not FLAGS.input or not FLAGS.output:
    raise app.UsageError("Give --input (a folder of photos or a video) and "
                         "--output (the scene folder to write).")
  process_photos(FLAGS.input, FLAGS.output, frames=FLAGS.frames,
                 camera_model=FLAGS.camera_model, max_size=FLAGS.max_size,
                 log=None if FLAGS.quiet else (
                     lambda text: print(text, flush=True)))
  return 0


def run():
  """Console-script entry point."""
  common.run_app(main, define_flags, __name__)


if __name__ == "__main__":
  sys.exit(run())
