"""A catalogue of hostile inputs, built from the shared real scenes.

Think of a user with a phone and a laptop: photos copied off the phone, a
scene folder dragged between disks, a run folder reused for another try, a
laptop that died while saving. Each case builds one such input in ``tmp_path``
from small copies of the real scenes in ``<repo>/../shared/data`` (never
touched), runs the command (the CLIs in-process through ``common.run_app``,
as the console scripts do) or the Python call, and checks

* the outcome: the exception type of a Python call, or the exit code of a
  command (2 and one ``regnerf-<x>: error:`` paragraph, no traceback);
* that the message names the file, field or flag at fault (and says what to
  do, where the code does);
* that nothing was written: the file tree of the case's folder (the scene
  copies, the run folder, and a work folder that must not appear) has the
  same paths, sizes and modification times before and after.

Cases are grouped by the categories of issue 16. A case whose current
behaviour is wrong keeps asserting the right behaviour and is marked
``xfail(strict=True)`` with the bug it shows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import logging
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from typing import Any

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags
from PIL import Image

from regnerf_tf import checkpoints, configs, errors, run_folder, scenes
from regnerf_tf import export as export_lib
from regnerf_tf import model as model_lib
from regnerf_tf.cli import common
from regnerf_tf.cli import eval as eval_cli
from regnerf_tf.cli import export as export_cli
from regnerf_tf.cli import render as render_cli
from regnerf_tf.cli import train as train_cli
from regnerf_tf.datasets import image_ops
from tests.run_folder_test import TINY

FLAGS = flags.FLAGS
SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
FERN = SHARED / "llff" / "fern"
SCAN24 = SHARED / "dtu" / "scan24"
LEGO = SHARED / "nerf_synthetic" / "lego"

pytestmark = [
    pytest.mark.skipif(not all(p.is_dir() for p in (FERN, SCAN24, LEGO)),
                       reason=f"shared real scenes not found under {SHARED}"),
    pytest.mark.large,
]

PROGRAMS = {train_cli: "regnerf-train", eval_cli: "regnerf-eval",
            render_cli: "regnerf-render", export_cli: "regnerf-export"}
# Tiny runs: 2 steps, a checkpoint after each (ckpt-1, ckpt-2).
RUN_FLAGS = ("--steps=2", "--quiet", "--eval_views=none",
             *[f"--override={o}" for o in TINY],
             "--override=train.checkpoint_every=1")
FERN_FACTOR = 6  # 504×378 → 84×63, exactly
DTU_FACTOR = 10  # 400×300 → 40×30 (4:3, as the DTU calibration)
LEGO_FRAMES = {"train": 4, "test": 2}


# ----------------------------------------------------------------------------
# Small copies of the real scenes.
# ----------------------------------------------------------------------------


def _box(image: np.ndarray, factor: int) -> np.ndarray:
  return image_ops.to_uint8(image_ops.downsample(image, factor, "area"))


def copy_fern(target: pathlib.Path) -> pathlib.Path:
  """fern: its poses_bounds.npy and 20 images at 1/6 of images_8's size."""
  (target / "images_8").mkdir(parents=True)
  shutil.copy(FERN / "poses_bounds.npy", target)
  for image in sorted((FERN / "images_8").iterdir()):
    iio.imwrite(target / "images_8" / image.name,
                _box(iio.imread(image), FERN_FACTOR))
  return target


def copy_scan24(target: pathlib.Path) -> pathlib.Path:
  """scan24: its cameras_sphere.npz, 49 images and masks at 40×30."""
  target.mkdir(parents=True)
  shutil.copy(SCAN24 / "cameras_sphere.npz", target)
  for folder, is_mask in (("images_4", False), ("mask_4", True)):
    (target / folder).mkdir()
    for image in sorted((SCAN24 / folder).iterdir()):
      pixels = iio.imread(image)
      small = _box(pixels, DTU_FACTOR)
      if is_mask:  # object only where the whole block is object
        small = np.where(small == 255, 255, 0).astype(np.uint8)
      iio.imwrite(target / folder / image.name, small)
  return target


def copy_lego(target: pathlib.Path) -> pathlib.Path:
  """lego: the first frames of its train and test splits (100×100 RGBA)."""
  target.mkdir(parents=True)
  for split, count in LEGO_FRAMES.items():
    meta = json.loads((LEGO / f"transforms_{split}.json").read_text())
    meta["frames"] = meta["frames"][:count]
    (target / f"transforms_{split}.json").write_text(json.dumps(meta, indent=1))
    (target / split).mkdir()
    for frame in meta["frames"]:
      name = frame["file_path"].split("/")[-1] + ".png"
      shutil.copy(LEGO / split / name, target / split / name)
  return target


# ----------------------------------------------------------------------------
# Running a command in-process, as its console script does.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
  """What a call did: exit code (commands), output, or the exception."""
  code: int | None
  out: str = ""
  err: str = ""
  error: BaseException | None = None


@contextlib.contextmanager
def _restored_logging():
  """absl's app.run installs its log handler and verbosity: undo both."""
  root = logging.getLogger()
  handlers, level = list(root.handlers), root.level
  verbosity = FLAGS["verbosity"].value if "verbosity" in FLAGS else None
  try:
    yield
  finally:
    root.handlers[:] = handlers
    root.setLevel(level)
    if verbosity is not None:
      FLAGS["verbosity"].value = verbosity


def run_command(module, argv, capsys=None) -> Outcome:
  """``regnerf-<x> argv`` in this process through ``common.run_app`` (flags
  defined, parsed by absl, ``main`` guarded); the flags are removed after.
  Output is captured with ``capsys`` when given."""
  program = PROGRAMS[module]
  app.define_help_flags()  # once per process, by the first app.run
  before = set(FLAGS)
  saved_argv = sys.argv
  sys.argv = [program, *map(str, argv)]
  if capsys is not None:
    capsys.readouterr()
  outcome = Outcome(code=None)
  try:
    with _restored_logging():
      common.run_app(module.main, module.define_flags, module.__name__)
    outcome.code = 0
  except SystemExit as e:
    outcome.code = 0 if e.code is None else e.code
  except Exception as e:  # pylint: disable=broad-except
    outcome.error = e  # a bug: the command would show a traceback
  finally:
    sys.argv = saved_argv
    FLAGS.unparse_flags()
    for name in set(FLAGS) - before:
      delattr(FLAGS, name)
  if capsys is not None:
    captured = capsys.readouterr()
    outcome.out, outcome.err = captured.out, captured.err
  return outcome


# ----------------------------------------------------------------------------
# A case: how to build the hostile input, what must happen.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Command:
  """``regnerf-<x> argv`` (``module`` is one of the CLI modules)."""
  module: Any
  argv: tuple[str, ...]


class Accepted(Exception):
  """Raised by the guards when a refused input reached the expensive work."""


ACCEPTED = "accepted"  # Case.expect of an input that must be read correctly


@dataclasses.dataclass(frozen=True)
class Case:
  """One hostile input.

  Attributes:
    id: readable test id.
    build: ``build(kit)`` writes the input into ``kit.root`` and returns the
      call: a :class:`Command` or a function of no arguments. It names the
      texts the message must contain (a file, a flag) with ``kit.blame``.
    expect: the exception type of a Python call, the exit code of a command
      (2: refused with one paragraph), or ACCEPTED (``check`` decides).
    says: regular expressions the message must match (what to do, found).
    bug: the observed wrong behaviour; the case is then a strict xfail.
    check: for ACCEPTED cases, ``check(result, kit)`` asserts what was read.
  """
  id: str
  build: Callable[["Kit"], Any]
  expect: type[BaseException] | int | str
  says: tuple[str, ...] = ()
  bug: str = ""
  check: Callable[[Any, "Kit"], None] | None = None


class Kit:
  """Builds one case's inputs below ``root`` (the case's tmp_path).

  Scenes and runs are copied from the module's small copies, so that a case
  may break anything it likes; ``work`` is a run folder that does not exist.
  """

  def __init__(self, root: pathlib.Path, pristine: dict[str, pathlib.Path],
               monkeypatch):
    self.root = root
    self.pristine = pristine
    self.monkeypatch = monkeypatch
    self.work = root / "work"
    self.facts: list[str] = []  # texts the message must contain
    self.writable: list[pathlib.Path] = []  # where a success may write
    self.expected: Any = None  # for the check of an ACCEPTED case
    self._copies: dict[str, pathlib.Path] = {}

  def scene(self, name: str, where: str | None = None) -> pathlib.Path:
    """A copy of scene ``name`` ("fern", "scan24", "lego") at ``where``."""
    key = where or name
    if key not in self._copies:
      self._copies[key] = self.root / key
      shutil.copytree(self.pristine[name], self._copies[key])
    return self._copies[key]

  def run(self, name: str = "fern_run", where: str = "run") -> pathlib.Path:
    """A copy of a trained run whose scene.json names a copy of its scene."""
    path = self.root / where
    shutil.copytree(self.pristine[name], path)
    record = json.loads((path / common.SCENE_FILE).read_text())
    scene = {"fern_run": "fern", "dtu_run": "scan24"}[name]
    record["source"]["scene_dir"] = str(self.scene(scene))
    (path / common.SCENE_FILE).write_text(json.dumps(record))
    return path

  def blame(self, *facts: Any) -> None:
    """The message must contain each of these (files, fields, flags)."""
    self.facts.extend(str(f) for f in facts)

  def allow(self, path: pathlib.Path) -> None:
    """A call that succeeds may write below ``path``."""
    self.writable.append(path)


def train(kit: Kit, *extra: str, preset: str = "llff3_small",
          scene: str | pathlib.Path = "fern",
          workdir: pathlib.Path | None = None) -> Command:
  """regnerf-train of a tiny run of a copy of ``scene`` (or a path)."""
  scene_dir = kit.scene(scene) if isinstance(scene, str) else scene
  return Command(train_cli, (f"--preset={preset}", f"--scene_dir={scene_dir}",
                             f"--workdir={workdir or kit.work}", *RUN_FLAGS,
                             *extra))


def evaluate(kit: Kit, *extra: str, run: str = "fern_run") -> Command:
  """regnerf-eval of a copy of a trained run (one held-out view)."""
  return Command(eval_cli, (f"--workdir={kit.run(run)}", "--max_views=1",
                            *extra))


def render(kit: Kit, *extra: str) -> Command:
  """regnerf-render of a copy of the fern run: a 2-frame GIF."""
  return Command(render_cli, (f"--workdir={kit.run()}", "--frames=2",
                              "--scale=0.1", "--quiet",
                              f"--output={kit.root / 'video.gif'}", *extra))


def export(kit: Kit, *extra: str) -> Command:
  """regnerf-export of a copy of the fern run."""
  return Command(export_cli, (f"--workdir={kit.run()}", "--quiet",
                              f"--output={kit.root / 'exported'}", *extra))


def named(kit: Kit, facts: tuple[str, ...], command: Command) -> Command:
  """``command``, whose message must name each of ``facts``."""
  kit.blame(*facts)
  return command


def with_flags(command: Command, *extra: str) -> Command:
  """``command`` with more flags (a later value of a flag wins)."""
  return Command(command.module, command.argv + extra)


# ----------------------------------------------------------------------------
# Editing the copies.
# ----------------------------------------------------------------------------


def fern_image(kit: Kit, i: int = 1, where: str | None = None) -> pathlib.Path:
  """Image ``i`` of a fern copy (image 1 is an input view of fern)."""
  return kit.scene("fern", where) / "images_8" / f"image{i:03d}.png"


def replace_image(path: pathlib.Path, data: bytes,
                  suffix: str | None = None) -> pathlib.Path:
  """Writes ``data`` in place of ``path`` (under a new suffix if given)."""
  target = path.with_suffix(suffix) if suffix else path
  path.unlink()
  target.write_bytes(data)
  return target


def encode(pixels: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
  """``pixels`` encoded by Pillow as ``fmt`` (PNG, JPEG), converted to
  ``mode`` (L, P, CMYK) first."""
  image = Image.fromarray(pixels)
  if mode == "P":
    image = image.convert("P", palette=Image.Palette.ADAPTIVE)
  elif mode:
    image = image.convert(mode)
  buffer = io.BytesIO()
  image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
  return buffer.getvalue()


def png16(pixels: np.ndarray) -> bytes:
  """A 16-bit RGB PNG of uint8 ``pixels`` (value × 257), as a raw
  developer or a scanner writes one (Pillow cannot encode it)."""
  wide = (pixels.astype(">u2") * 257).reshape(pixels.shape[0], -1)
  raw = b"".join(b"\x00" + row.tobytes() for row in wide)

  def chunk(tag, body):
    return (struct.pack(">I", len(body)) + tag + body
            + struct.pack(">I", zlib.crc32(tag + body)))
  header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 16, 2,
                       0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
          + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def poses(kit: Kit) -> pathlib.Path:
  return kit.scene("fern") / "poses_bounds.npy"


def edit_json(path: pathlib.Path, edit: Callable[[Any], Any]) -> None:
  path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def truncate(path: pathlib.Path, size: int | None = None) -> None:
  """Cuts ``path`` to ``size`` bytes (default: half), as a full disk does."""
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2 if size is None else size)


def checkpoint_files(run: pathlib.Path, step: int | None = None
                     ) -> list[pathlib.Path]:
  """The .index and .data files of a run's checkpoints (of one ``step``)."""
  pattern = f"ckpt-{step}.*" if step is not None else "ckpt-*"
  return sorted((run / "checkpoints").glob(pattern))


def dtu_official(kit: Kit) -> pathlib.Path:
  """scan24 in the official layout: Rectified/scan24 + Calibration/cal18."""
  idr = kit.scene("scan24")
  top = kit.root / "DTU"
  scan = top / "Rectified" / "scan24"
  calibration = top / "Calibration" / "cal18"
  scan.mkdir(parents=True)
  calibration.mkdir(parents=True)
  with np.load(idr / "cameras_sphere.npz") as cams:
    for i in range(49):
      shutil.copy(idr / "images_4" / f"{i:06d}.png",
                  scan / f"rect_{i + 1:03d}_3_r5000.png")
      np.savetxt(calibration / f"pos_{i + 1:03d}.txt",
                 cams[f"world_mat_{i}"][:3])
  return scan


# ============================================================================
# The catalogue.
# ============================================================================

# ----------------------------------------------------------------------------
# (1) Image ↔ pose pairing and stray files.
# ----------------------------------------------------------------------------
# Photos copied off a phone are named IMG_1 … IMG_20; poses_bounds.npy has
# rows, not names.


def renamed_fern(kit: Kit, names: Callable[[int], str]) -> pathlib.Path:
  """A fern copy whose image i is renamed ``names(i)`` (row order kept)."""
  scene = kit.scene("fern")
  folder = scene / "images_8"
  for i, path in enumerate(sorted(folder.iterdir())):
    path.rename(folder / names(i))
  return scene


def unpadded_names(kit: Kit) -> Command:
  """IMG_1..IMG_20 listed in the text order imgs2poses.py writes rows in."""
  text_order = sorted(f"IMG_{i}.png" for i in range(1, 21))
  scene = renamed_fern(kit, lambda i: text_order[i])
  kit.blame(scene / "images_8", "IMG_10.png", "IMG_2.png")
  return train(kit, scene=scene)


def one_view_in_two_files(kit: Kit) -> Command:
  path = fern_image(kit, 4)
  Image.open(path).convert("RGB").save(path.with_suffix(".jpg"), quality=95)
  kit.blame("image004.jpg, image004.png")
  return train(kit)


def heic_among_the_photos(kit: Kit) -> Command:
  path = fern_image(kit, 7)
  path.unlink()
  path.with_suffix(".HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
  kit.blame("image007.HEIC", "19 images", "20 rows")
  return train(kit)


def stray_files_are_ignored(kit: Kit):
  """Finder and Explorer leave ._*, .DS_Store and Thumbs.db behind."""
  scene = kit.scene("fern")
  folder = scene / "images_8"
  (folder / "._image000.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
  (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
  (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
  kit.expected = scenes.from_folder(str(kit.pristine["fern"]), 3)
  return lambda: scenes.from_folder(str(scene), 3)


def same_views_as_the_clean_copy(scene, kit: Kit) -> None:
  for got, want in zip(scene.train + scene.test,
                       kit.expected.train + kit.expected.test):
    np.testing.assert_array_equal(got["image"], want["image"])
    np.testing.assert_array_equal(got["camtoworld"], want["camtoworld"])


PAIRING = [
    Case("names_without_zero_padding", unpadded_names, 2,
         ("sorted as text", "sorted by number", "--image_order=text",
          "--image_order=number")),
    Case("names_without_zero_padding_order_misspelt", lambda kit: named(
        kit, ("--image_order=sideways",), train(kit, "--image_order=sideways")),
         2,
         ("auto", "text", "number")),
    Case("the_same_photo_as_jpeg_and_png", one_view_in_two_files, 2,
         ("the same view in 2 files", "Keep one format")),
    Case("an_iphone_heic_among_the_photos", heic_among_the_photos, 2,
         ("not counted as images", "convert them to JPEG or PNG")),
    Case("finder_and_explorer_leftovers", stray_files_are_ignored, ACCEPTED,
         check=same_views_as_the_clean_copy),
    Case("image_order_for_a_blender_scene", lambda kit: named(
        kit, ("image_order",), train(kit, "--image_order=text",
                                     preset="dtu3_small", scene="lego")), 2,
         ("blender scene", "camera file names each image")),
    Case("image_order_with_the_synthetic_scene", lambda kit: named(
        kit, ("--image_order",), Command(train_cli, (
            "--preset=dtu3_small", "--synthetic", "--image_order=text",
            f"--workdir={kit.work}", *RUN_FLAGS))), 2,
         ("would be ignored",)),
]

# ----------------------------------------------------------------------------
# (2) EXIF orientation.
# ----------------------------------------------------------------------------
# A phone stores pixels as the sensor saw them and a tag that turns them.


def save_tagged(path: pathlib.Path, pixels: np.ndarray, tag: int) -> None:
  exif = Image.Exif()
  exif[0x0112] = tag
  Image.fromarray(pixels).save(path, exif=exif.tobytes())


def tag_every_photo(kit: Kit, tag: int) -> pathlib.Path:
  """The fern copy's photos stored turned by ``tag``, shown upright."""
  from regnerf_tf.datasets import orientation  # pylint: disable=import-outside-toplevel
  inverse = {6: 8, 8: 6}.get(tag, tag)
  scene = kit.scene("fern")
  for path in sorted((scene / "images_8").iterdir()):
    shown = np.asarray(Image.open(path).convert("RGB"))
    save_tagged(path, orientation.to_display(shown, inverse), tag)
  return scene


def upside_down_photos(kit: Kit) -> Command:
  scene = tag_every_photo(kit, 3)
  kit.blame("image000.png", "EXIF orientation 3", "poses_bounds.npy")
  return train(kit, scene=scene)


def mirrored_selfies_with_stored_cameras(kit: Kit) -> Command:
  scene = tag_every_photo(kit, 2)
  kit.blame("image000.png", "mirrored")
  return train(kit, "--exif=stored", scene=scene)


def one_portrait_photo(kit: Kit) -> Command:
  path = fern_image(kit, 5)
  save_tagged(path, np.asarray(Image.open(path).convert("RGB")), 6)
  kit.blame("image005.png", "EXIF orientation tags")
  return train(kit, "--exif=displayed")


def tagged_photo_is_read_upright(kit: Kit):
  """One JPEG with tag 6, read as Pillow itself shows it."""
  from PIL import ImageOps  # pylint: disable=import-outside-toplevel
  from regnerf_tf.datasets import readers  # pylint: disable=import-outside-toplevel
  path = kit.root / "IMG_0001.jpg"
  save_tagged(path, np.asarray(Image.open(fern_image(kit, 0))), 6)
  with Image.open(path) as image:
    kit.expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
  return lambda: readers.read_image(str(path))


def equals_expected(result, kit: Kit) -> None:
  np.testing.assert_array_equal(result, kit.expected)


EXIF = [
    Case("upside_down_photos_and_unknown_poses", upside_down_photos, 2,
         ("--exif=stored", "--exif=displayed", "COLMAP")),
    Case("mirrored_photos_with_cameras_of_the_stored_pixels",
         mirrored_selfies_with_stored_cameras, 2, ("negative focal",)),
    Case("one_portrait_photo_among_landscape_ones", one_portrait_photo, 2,
         ("portrait", "Resize, turn or remove")),
    Case("exif_with_a_tfds_scene", lambda kit: named(
        kit, ("--exif",), Command(train_cli, (
            "--preset=dtu3_small", "--tfds=dtu_sparse/3view",
            "--scene=scan24", "--exif=stored", f"--workdir={kit.work}",
            *RUN_FLAGS))), 2, ("would be ignored",)),
    Case("a_phone_jpeg_turned_90_degrees", tagged_photo_is_read_upright,
         ACCEPTED, check=equals_expected),
]

# ----------------------------------------------------------------------------
# (3) A run folder is never silently repurposed.
# ----------------------------------------------------------------------------


def resume(kit: Kit, *extra: str, **kwargs) -> Command:
  """The fern run's own command again, in a copy of the run, plus ``extra``."""
  run = kit.run()
  kit.blame(run)
  return train(kit, *extra, workdir=run, **kwargs)


def copied_scene_folder(kit: Kit) -> Command:
  """The run's scene given from a copy on another disk (both exist)."""
  run = kit.run()
  copy = kit.scene("fern", "USB stick/fern")
  kit.blame(copy, run / common.SCENE_FILE)
  return train(kit, scene=copy, workdir=run)


def moved_scene_folder(kit: Kit) -> Command:
  """The run's scene moved to another disk: the recorded folder is gone. The
  same scene and views are accepted, and scene.json follows the move."""
  run = kit.run()
  moved = kit.root / "USB stick" / "fern"
  moved.parent.mkdir()
  shutil.move(kit.scene("fern"), moved)
  kit.blame(moved, run / common.SCENE_FILE)
  kit.allow(run / common.SCENE_FILE)
  kit.expected = (moved, kit.root / "fern")
  return train(kit, scene=moved, workdir=run)


def scene_json_names_the_moved_folder(outcome, kit: Kit) -> None:
  del outcome
  moved, old = kit.expected
  record = json.loads((kit.root / "run" / common.SCENE_FILE).read_text())
  assert record["source"]["scene_dir"] == str(moved)
  assert record["moved_from"] == [str(old)]


def moved_scene_folder_is_another_scene(kit: Kit) -> Command:
  """The recorded folder is gone and the folder given holds another scene
  of the same name and kind (fern without its last 4 photos, so other
  views): refused, naming what differs."""
  run = kit.run()
  shutil.rmtree(kit.scene("fern"))
  other = kit.scene("fern", "USB stick/fern")
  for image in sorted((other / "images_8").iterdir())[-4:]:
    image.unlink()
  rows = np.load(other / "poses_bounds.npy")
  np.save(other / "poses_bounds.npy", rows[:-4])
  kit.blame(other)
  return train(kit, scene=other, workdir=run)


def damaged_run_file(name: str, damage: Callable[[pathlib.Path], None],
                     program: str = "train"):
  """Damages ``name`` in a copy of the fern run; then the run's own
  command (``train``) or ``regnerf-eval --workdir`` alone (``eval``)."""
  def build(kit: Kit) -> Command:
    run = kit.run()
    damage(run / name)
    kit.blame(run / name)
    if program == "train":
      return train(kit, workdir=run)
    return Command(eval_cli, (f"--workdir={run}", "--max_views=1"))
  return build


def config_from_a_newer_version(path: pathlib.Path) -> None:
  edit_json(path, lambda c: {**c, "model": {**c["model"], "hash_grid": True}})


def workdir_is_the_scene_folder(kit: Kit) -> Command:
  scene = kit.scene("fern")
  kit.blame(scene)
  return train(kit, workdir=scene)


def export_into_the_run_folder(kit: Kit) -> Command:
  command = export(kit)
  run = kit.root / "run"
  kit.blame(run)
  return with_flags(command, f"--output={run}")


RUN_FOLDER = [
    Case("longer_training_in_the_same_folder",
         lambda kit: resume(kit, "--steps=4"), 2,
         (r"train\.max_steps: 2 in the run, 4 now", "--restart",
          "--resume_with_changes", "another --workdir")),
    Case("another_preset_in_the_same_folder",
         lambda kit: resume(kit, preset="llff3_small_mipnerf"), 2,
         ("holds a run with another config", r"reg\.anneal_steps: 128 in the "
          r"run, 0 now", r"train\.grad_clip_norm", r"and 2 more", "--restart")),
    Case("a_changed_override", lambda kit: resume(
        kit, "--override=model.num_samples=16"), 2,
         (r"model\.num_samples: 8 in the run, 16 now",)),
    Case("a_copy_of_the_scene_folder_on_another_disk", copied_scene_folder, 2,
         ("holds a run trained on --scene_dir=", "Use another --workdir")),
    Case("the_scene_folder_moved_to_another_disk", moved_scene_folder, 0,
         (r"The run's scene folder moved from .* \(the same scene and views\)",),
         check=scene_json_names_the_moved_folder),
    Case("the_scene_folder_moved_and_replaced_by_another_scene",
         moved_scene_folder_is_another_scene, 2,
         ("which no longer exists", "holds another scene",
          r"train_views: \[1, 10, 19\] in the run")),
    Case("other_input_views_in_the_same_folder",
         lambda kit: resume(kit, "--train_views=2,10,18"), 2,
         ("train_views",)),
    Case("config_json_cut_short",
         damaged_run_file("config.json", truncate), 2,
         ("is not a config this version can read", "move the old run away")),
    Case("config_json_of_a_newer_version",
         damaged_run_file("config.json", config_from_a_newer_version), 2,
         ("hash_grid", "is not a config this version can read")),
    Case("history_json_damaged",
         damaged_run_file("history.json", lambda p: p.write_text("{")), 2,
         ("cannot be read", "backup")),
    Case("history_json_edited_by_hand", damaged_run_file(
        "history.json", lambda p: p.write_text('{"entries": [{"step": 2}]}')),
         2, ("cannot be read",)),
    Case("scene_json_damaged_and_only_the_workdir_given",
         damaged_run_file("scene.json", truncate, "eval"), 2,
         ("--scene_dir",)),
    Case("resume_with_changes_without_a_workdir",
         lambda kit: Command(train_cli, (
             "--preset=llff3_small", f"--scene_dir={kit.scene('fern')}",
             "--resume_with_changes", *RUN_FLAGS)), 2,
         ("--resume_with_changes", "--workdir")),
    Case("workdir_is_the_scene_folder", workdir_is_the_scene_folder, 2,
         ("--workdir",)),
    Case("export_output_is_the_run_folder", export_into_the_run_folder, 2,
         ("--output",)),
]

# ----------------------------------------------------------------------------
# (4) Checkpoints survive their own corruption.
# ----------------------------------------------------------------------------
# The fern run holds ckpt-1 and ckpt-2 (the newest).


def damaged_checkpoints(damage: Callable[[Kit, pathlib.Path], None],
                        command: Callable[[Kit], Command] = evaluate,
                        may_write: str = "run/eval"):
  """Damages a copy of the fern run's checkpoints, then runs ``command``;
  if it succeeds, it may write below ``may_write``."""
  def build(kit: Kit) -> Command:
    call = command(kit)
    damage(kit, kit.root / "run")
    kit.allow(kit.root / may_write)
    return call
  return build


def cut_newest(kit: Kit, run: pathlib.Path) -> None:
  truncate(run / "checkpoints" / "ckpt-2.data-00000-of-00001")
  kit.blame(run / "checkpoints" / "ckpt-2")


def lose_newest_index(kit: Kit, run: pathlib.Path) -> None:
  (run / "checkpoints" / "ckpt-2.index").unlink()
  kit.blame(run / "checkpoints" / "ckpt-2")


def list_a_lost_checkpoint(kit: Kit, run: pathlib.Path) -> None:
  """The list names ckpt-3, whose files a copy cut short never wrote."""
  (run / "checkpoints" / "checkpoint").write_text(
      'model_checkpoint_path: "ckpt-3"\n'
      'all_model_checkpoint_paths: "ckpt-1"\n'
      'all_model_checkpoint_paths: "ckpt-2"\n'
      'all_model_checkpoint_paths: "ckpt-3"\n')
  kit.blame(run / "checkpoints" / "ckpt-3")


def garble_list(kit: Kit, run: pathlib.Path) -> None:
  (run / "checkpoints" / "checkpoint").write_bytes(b"\x00\xff garbage {{")


def cut_all(kit: Kit, run: pathlib.Path, size: int | None = None) -> None:
  for path in checkpoint_files(run):
    if path.suffix != ".index" or size == 0:
      truncate(path, size)
  kit.blame(run / "checkpoints" / "ckpt-1", run / "checkpoints" / "ckpt-2")


def no_checkpoint_yet(kit: Kit, run: pathlib.Path) -> None:
  """Killed before the first checkpoint: config.json but no checkpoints/."""
  shutil.rmtree(run / "checkpoints")
  (run / "final.weights.h5").unlink()
  kit.blame(run / "checkpoints")


def damaged_old_format(kit: Kit, run: pathlib.Path) -> None:
  """A run of the format before checkpoints/, its checkpoint.npz cut short
  (a copy interrupted: the zip archive lacks its directory)."""
  shutil.rmtree(run / "checkpoints")
  path = run / "checkpoint.npz"
  np.savez(path, w0=np.zeros(4096, np.float32), step=np.int64(2))
  truncate(path)
  kit.blame(path)


def damaged_old_format_in_a_notebook(kit: Kit, run: pathlib.Path) -> None:
  """As :func:`damaged_old_format`, for a call that answers without a message."""
  damaged_old_format(kit, run)
  kit.facts.clear()


def checkpoints_is_a_file(kit: Kit, run: pathlib.Path) -> None:
  shutil.rmtree(run / "checkpoints")
  (run / "checkpoints").write_text("notes")
  kit.blame(run / "checkpoints")


def latest_step(kit: Kit):
  """In a notebook: which step does this run folder hold?"""
  run = kit.run()
  return lambda: checkpoints.latest_step(str(run))


def no_step(step, kit: Kit) -> None:
  del kit
  assert step is None, f"latest_step read step {step} from a damaged file"


def metrics_step(step: int):
  def check(outcome: Outcome, kit: Kit) -> None:
    metrics = kit.root / "run" / "eval" / "metrics.json"
    report = json.loads(metrics.read_text())
    assert report["step"] == step, report["step"]
  return check


FELL_BACK = ("Could not read the newest checkpoint", "Using the previous "
             "complete one", "trained again")
NONE_READABLE = ("can be read", "backup", "delete")
CHECKPOINTS = [
    Case("eval_newest_cut_short", damaged_checkpoints(cut_newest), 0,
         FELL_BACK + (r"ckpt-1 \(step 1\)",), check=metrics_step(1)),
    Case("eval_newest_index_never_copied",
         damaged_checkpoints(lose_newest_index), 0,
         FELL_BACK + (r"ckpt-1 \(step 1\)",), check=metrics_step(1)),
    Case("eval_list_names_a_checkpoint_never_copied",
         damaged_checkpoints(list_a_lost_checkpoint), 0,
         FELL_BACK + (r"ckpt-2 \(step 2\)",), check=metrics_step(2)),
    Case("eval_list_file_garbled", damaged_checkpoints(garble_list), 0,
         check=metrics_step(2)),
    Case("eval_all_cut_short", damaged_checkpoints(cut_all), 2, NONE_READABLE),
    Case("render_all_zero_bytes", damaged_checkpoints(
        lambda kit, run: cut_all(kit, run, 0), render), 2, NONE_READABLE),
    Case("export_all_cut_short", damaged_checkpoints(cut_all, export), 2,
         NONE_READABLE),
    Case("resume_training_all_cut_short", damaged_checkpoints(cut_all, resume),
         2, NONE_READABLE),
    Case("eval_killed_before_the_first_checkpoint",
         damaged_checkpoints(no_checkpoint_yet), 2,
         ("does not hold a checkpoint", "regnerf-train")),
    Case("latest_step_of_an_old_format_checkpoint_cut_short",
         damaged_checkpoints(damaged_old_format_in_a_notebook, latest_step),
         ACCEPTED,
         check=no_step),
    Case("eval_old_format_checkpoint_cut_short",
         damaged_checkpoints(damaged_old_format), 2, NONE_READABLE),
    Case("resume_training_checkpoints_is_a_file",
         damaged_checkpoints(checkpoints_is_a_file, resume), 2, ()),
    Case("resume_training_newest_cut_short",
         damaged_checkpoints(cut_newest, resume, "run"), 0,
         FELL_BACK + (r"ckpt-1 \(step 1\)",)),
]

# ----------------------------------------------------------------------------
# (5) Errors read as one paragraph in every command.
# ----------------------------------------------------------------------------


def refuse_folders_below(kit: Kit, folder: pathlib.Path, code: int) -> None:
  """``os.makedirs`` fails with ``code`` below ``folder`` (a read-only disk
  or a folder without permission, for any user including root)."""
  makedirs = os.makedirs

  def refusing(name, *args, **kwargs):
    path = pathlib.Path(os.path.abspath(name))
    if path == folder or folder in path.parents:
      raise OSError(code, os.strerror(code), str(name))
    return makedirs(name, *args, **kwargs)
  kit.monkeypatch.setattr(os, "makedirs", refusing)
  kit.blame(folder)


def train_on_a_read_only_disk(kit: Kit) -> Command:
  command = train(kit)
  refuse_folders_below(kit, kit.work, errno.EROFS)
  return command


def eval_into(kit: Kit, output: str, code: int | None = None) -> Command:
  """regnerf-eval --output_dir=<output> (below the case folder); with
  ``code``, creating it fails so."""
  command = evaluate(kit, f"--output_dir={kit.root / output}")
  if code is not None:
    refuse_folders_below(kit, kit.root / output, code)
  return command


def a_file_named(kit: Kit, name: str, text: str = "mine") -> pathlib.Path:
  path = kit.root / name
  path.write_text(text)
  kit.blame(path)
  return path


def flag(kit: Kit, make: Callable[..., Command], value: str) -> Command:
  """``make(kit, value)``; the message must name the flag of ``value``."""
  kit.blame(value.split("=", 1)[0])
  return make(kit, value)


def broken_image(data: Callable[[np.ndarray], bytes], suffix: str | None = None,
                 where: str | None = None):
  """regnerf-train on a fern copy whose image 1 is replaced by
  ``data(its pixels)``."""
  def build(kit: Kit) -> Command:
    path = fern_image(kit, where=where)
    path = replace_image(path, data(iio.imread(path)), suffix)
    kit.blame(path)
    return train(kit, scene=path.parent.parent)
  return build


def broken_poses(edit: Callable[[pathlib.Path, np.ndarray], None]):
  """regnerf-train on a fern copy whose poses_bounds.npy is rewritten."""
  def build(kit: Kit) -> Command:
    path = poses(kit)
    edit(path, np.load(path))
    kit.blame(path)
    return train(kit)
  return build


def nan_bound(path: pathlib.Path, data: np.ndarray) -> None:
  data[3, 16] = np.nan
  np.save(path, data)


def broken_dtu_cameras(kit: Kit) -> Command:
  path = kit.scene("scan24") / "cameras_sphere.npz"
  truncate(path)
  kit.blame(path)
  return train(kit, preset="dtu3_small", scene="scan24")


def comma_separated_calibration(kit: Kit):
  """In a notebook: scenes.from_folder of the official DTU layout whose
  pos_001.txt was saved from a spreadsheet, comma-separated."""
  scan = dtu_official(kit)
  path = kit.root / "DTU" / "Calibration" / "cal18" / "pos_001.txt"
  np.savetxt(path, np.loadtxt(path), delimiter=",")
  kit.blame(path)
  return lambda: scenes.from_folder(str(scan))


def broken_blender(edit: Callable[[dict], dict], raw: str | None = None):
  """regnerf-train on a lego copy whose transforms_train.json is edited
  (or replaced by ``raw`` text)."""
  def build(kit: Kit) -> Command:
    path = kit.scene("lego") / "transforms_train.json"
    if raw is not None:
      path.write_text(raw)
    else:
      edit_json(path, edit)
    kit.blame(path)
    return train(kit, preset="dtu3_small", scene="lego")
  return build


def degrees(meta: dict) -> dict:
  return {**meta, "camera_angle_x": 39.6}


def absolute_paths(meta: dict) -> dict:
  for frame in meta["frames"]:
    frame["file_path"] = "/home/alice/lego/" + frame["file_path"][2:]
  return meta


CLI_ERRORS = [
    # Files and folders.
    Case("eval_output_dir_is_a_file", lambda kit: (
        a_file_named(kit, "results"), eval_into(kit, "results"))[1], 2,
         ("A file of that name is in the way",)),
    Case("eval_output_dir_below_a_file", lambda kit: (
        a_file_named(kit, "results"), eval_into(kit, "results/eval"))[1], 2,
         ("not a folder",)),
    Case("eval_output_dir_without_permission",
         lambda kit: eval_into(kit, "shared/eval", errno.EACCES), 2,
         ("Permission denied", "Choose a folder you can write to")),
    Case("train_on_a_read_only_disk", train_on_a_read_only_disk, 2,
         ("read-only", "--workdir")),
    Case("scene_dir_misspelt", lambda kit: (
        kit.blame(kit.root / "fren"), train(kit, scene=kit.root / "fren"))[1],
         2, ("is not a folder",)),
    Case("scene_dir_is_the_poses_file", lambda kit: (
        kit.blame(poses(kit)), train(kit, scene=poses(kit)))[1], 2,
         ("is not a folder",)),
    Case("render_camera_path_missing", lambda kit: (
        kit.blame(kit.root / "my_path.json"),
        render(kit, f"--path={kit.root / 'my_path.json'}"))[1], 2,
         ("does not exist",)),
    Case("render_output_a_mov", lambda kit: render(
        kit, f"--output={kit.root / 'video.mov'}"), 2,
         (r"--output must end in one of \('\.mp4', '\.gif'\)",)),
    # Flag values.
    Case("steps_negative", lambda kit: flag(kit, train, "--steps=-1"), 2,
         ("not a positive integer",)),
    Case("steps_not_a_number", lambda kit: flag(kit, train, "--steps=abc"), 2,
         ("invalid literal", "'abc'")),
    Case("render_zero_frames", lambda kit: flag(kit, render, "--frames=0"), 2,
         ("not a positive integer",)),
    Case("eval_unknown_lpips_net",
         lambda kit: flag(kit, evaluate, "--lpips_net=squeeze"), 2,
         ("one of <alex|vgg>",)),
    Case("preset_misspelt", lambda kit: (
        kit.blame("'llff3small'"), train(kit, preset="llff3small"))[1], 2,
         ("Unknown preset", "choose one of", "llff3_small")),
    Case("override_field_misspelt", lambda kit: (
        kit.blame("train.max_step"),
        train(kit, "--override=train.max_step=5"))[1], 2,
         ("Unknown config field", "max_steps")),
    Case("override_without_a_value", lambda kit: (
        kit.blame("train.max_steps"),
        train(kit, "--override=train.max_steps"))[1], 2,
         ("must look like 'section.field=value'",)),
    Case("override_zero_views", lambda kit: (
        kit.blame("n_views"), train(kit, "--override=data.n_views=0"))[1], 2,
         ("must be > 0", r"data\.n_views=\.\.\.")),
    Case("train_views_not_numbers", lambda kit: (
        kit.blame("--train_views", "one"),
        train(kit, "--train_views=one,two,three"))[1], 2, ()),
    Case("train_views_beyond_the_scene", lambda kit: (
        kit.blame("[40]", "train_views"),
        train(kit, "--train_views=1,2,40"))[1], 2, ("do not exist",)),
    # Scene files, through the command.
    Case("empty_photo_in_a_folder_with_spaces_and_accents",
         broken_image(lambda pixels: b"", where="Téléphone/fern été"), 2,
         (r"empty \(0 bytes\)",)),
    Case("greyscale_photo_among_colour_ones",
         broken_image(lambda pixels: encode(pixels, "PNG", "L")), 2,
         ("channel", "RGB")),
    Case("poses_bounds_transposed",
         broken_poses(lambda path, data: np.save(path, data.T)), 2,
         (r"\(17, 20\)", r"\[N, 17\]")),
    Case("poses_bounds_saved_as_text",
         broken_poses(lambda path, data: np.savetxt(path, data)), 2,
         ("Could not read", "NumPy .npy")),
    Case("poses_bounds_nan_bound", broken_poses(nan_bound), 2,
         ("NaN",)),
    Case("poses_bounds_as_integers", broken_poses(
        lambda path, data: np.save(path, data.astype(np.int64))), 2, ()),
    Case("poses_bounds_flattened", broken_poses(
        lambda path, data: np.save(path, data.ravel())), 2,
         (r"\(340,\)", r"\[N, 17\]")),
    Case("dtu_cameras_download_cut_short", broken_dtu_cameras, 2,
         ("Could not read", r"\.npz")),
    Case("dtu_calibration_comma_separated", comma_separated_calibration,
         errors.InputError, ("not a list of numbers", "3×4 projection")),
    Case("blender_field_of_view_in_degrees", broken_blender(degrees), 2,
         (r"camera_angle_x is 39\.6", r"\(0, π\)")),
    Case("blender_frames_with_absolute_paths", broken_blender(absolute_paths),
         2, ("r_0", "does not exist")),
    Case("blender_json_edited_by_hand", broken_blender(
        None, '{"camera_angle_x": 0.69, "frames": [],}'), 2,
         ("not UTF-8 JSON",)),
]

# ----------------------------------------------------------------------------
# (6) Nothing accepted then ignored, or silently wrong.
# ----------------------------------------------------------------------------


def scene_flags_ignored(kit: Kit, *extra: str) -> Command:
  """regnerf-train with scene flags that the chosen source does not use."""
  kit.blame(extra[-1].split("=", 1)[0])
  return Command(train_cli, (f"--workdir={kit.work}", *RUN_FLAGS, *extra))


def read_photo(data: Callable[[np.ndarray], bytes], suffix: str | None = None):
  """scenes.from_folder of a fern copy whose image 1 is ``data(pixels)``;
  the check compares the record with what an image viewer shows."""
  def build(kit: Kit):
    path = fern_image(kit)
    pixels = iio.imread(path)
    path = replace_image(path, data(pixels), suffix)
    kit.expected = viewed(path)
    return lambda: scenes.from_folder(str(kit.scene("fern")))
  return build


def viewed(path: pathlib.Path) -> np.ndarray:
  """The 8-bit RGB pixels an image viewer shows (Pillow's conversion)."""
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


def shows_the_photo(scene, kit: Kit) -> None:
  [record] = [r for r in scene.train if int(r["view_index"]) == 1]
  difference = np.abs(record["image"].astype(int) - kit.expected.astype(int))
  assert difference.max() <= 1, (
      f"image 1 is read {difference.mean():.1f} levels off on average (at "
      f"most {difference.max()}) from what a viewer shows")


def export_into_the_photos(kit: Kit) -> Command:
  photos = kit.scene("fern") / "images_8"
  kit.blame(photos)
  return with_flags(export(kit), f"--output={photos}")


SILENTLY_WRONG = [
    # A config of the other scene family, in training and evaluation.
    Case("train_llff_preset_on_a_dtu_scan", lambda kit: named(
        kit, ("llff3_small", "scan24"),
        train(kit, preset="llff3_small", scene="scan24")), 2,
         (r"dtu3\* preset",)),
    Case("train_dtu_preset_on_an_llff_scene", lambda kit: named(
        kit, ("dtu3_small", "fern"), train(kit, preset="dtu3_small")), 2,
         (r"llff3\* preset",)),
    Case("eval_llff_run_on_a_dtu_scan", lambda kit: named(
        kit, ("llff3_small", "scan24"),
        evaluate(kit, f"--scene_dir={kit.scene('scan24')}")), 2,
         (r"dtu3\* preset",)),
    Case("eval_dtu_run_on_an_llff_scene", lambda kit: named(
        kit, ("dtu3_small", "fern"),
        evaluate(kit, f"--scene_dir={kit.scene('fern')}", run="dtu_run")), 2,
         (r"llff3\* preset",)),
    Case("render_llff_run_on_a_dtu_scan", lambda kit: named(
        kit, ("llff3_small", "scan24"),
        render(kit, f"--scene_dir={kit.scene('scan24')}")), 2,
         (r"dtu3\* preset",)),
    # Input views.
    Case("train_views_listed_twice", lambda kit: named(
        kit, ("[2]",), train(kit, "--train_views=1,2,2")), 2,
         ("more than once",)),
    Case("train_views_that_are_held_out", lambda kit: named(
        kit, ("[8]", "--allow_view_overlap"),
        train(kit, "--train_views=1,8,12")), 2,
         ("both input views and held-out views",)),
    Case("train_views_with_tfds_ignored", lambda kit: scene_flags_ignored(
        kit, "--preset=llff3_small", "--tfds=llff_sparse/3view",
        "--scene=fern", f"--data_dir={kit.root / 'tfds'}",
        "--train_views=1,2,3"), 2, ()),
    Case("scene_name_with_synthetic_ignored", lambda kit: scene_flags_ignored(
        kit, "--preset=dtu3_small", "--synthetic", "--scene=fern"), 2, ()),
    Case("empty_workdir_flag", lambda kit: named(
        kit, ("--workdir",), with_flags(train(kit), "--workdir=")), 2, ()),
    Case("prior_given_to_a_config_without_the_appearance_term",
         lambda kit: named(kit, ("--prior", "appearance_weight"),
                           train(kit, "--prior=default")), 2, ()),
    Case("eval_max_views_zero", lambda kit: named(
        kit, ("--max_views",), evaluate(kit, "--max_views=0")), 2, ()),
    Case("eval_max_views_negative", lambda kit: named(
        kit, ("--max_views",), evaluate(kit, "--max_views=-1")), 2, ()),
    Case("export_output_is_the_photos_folder", export_into_the_photos, 2,
         ("--output",)),
    # Photos in formats other than 8-bit RGB: read as a viewer shows them.
    Case("photo_from_a_print_workflow_in_cmyk", read_photo(
        lambda pixels: encode(pixels, "JPEG", "CMYK"), ".jpg"), ACCEPTED,
         check=shows_the_photo),
    Case("photo_compressed_to_a_palette_png", read_photo(
        lambda pixels: encode(pixels, "PNG", "P")), ACCEPTED,
         check=shows_the_photo),
    Case("png_renamed_to_jpg", read_photo(
        lambda pixels: encode(pixels, "PNG"), ".jpg"), ACCEPTED,
         check=shows_the_photo),
    Case("sixteen_bit_png_from_a_raw_developer", read_photo(png16), ACCEPTED,
         check=shows_the_photo),
]

# ----------------------------------------------------------------------------
# COLMAP captures (regnerf-process-data's output, or a model one already has).
# ----------------------------------------------------------------------------


def colmap_capture(kit: Kit, text: bool = True) -> pathlib.Path:
  """The small fern copy as a COLMAP capture (its exact cameras)."""
  from tests.datasets import colmap_test  # pylint: disable=import-outside-toplevel
  scene = colmap_test.write_fern_model(kit.root, kit.scene("fern") / "images_8",
                                       text=text)
  kit.allow(scene)  # (written by the case itself)
  return scene


def colmap_fisheye(kit: Kit) -> Command:
  scene = colmap_capture(kit)
  cameras = scene / "sparse" / "0" / "cameras.txt"
  cameras.write_text("1 OPENCV_FISHEYE 84 63 70 70 42 31.5 0.1 0 0 0\n")
  kit.writable.remove(scene)
  kit.blame("OPENCV_FISHEYE", "image_undistorter")
  return train(kit, scene=scene)


def colmap_photo_deleted(kit: Kit) -> Command:
  scene = colmap_capture(kit)
  (scene / "images" / "image004.png").unlink()
  kit.writable.remove(scene)
  kit.blame("image004.png", "registered")
  return train(kit, scene=scene)


def colmap_images_cut_short(kit: Kit) -> Command:
  scene = colmap_capture(kit, text=False)
  truncate(scene / "sparse" / "0" / "images.bin", 300)
  kit.writable.remove(scene)
  kit.blame("images.bin", "ends inside")
  return train(kit, scene=scene)


def nerfstudio_capture(kit: Kit, **change) -> Command:
  """The small fern copy as a nerfstudio capture, with ``change`` applied to
  its transforms.json (a key set to None is removed)."""
  from tests.datasets import transforms_test  # pylint: disable=import-outside-toplevel
  scene = transforms_test.write_fern_capture(
      kit.root, kit.scene("fern") / "images_8", ascii=True, **change)
  return train(kit, scene=scene)


def downscaled_scene(kit: Kit):
  """--downscale=2 in a notebook: the scene at half its resolution."""
  scene = kit.scene("fern")
  kit.expected = scenes.downsample(scenes.from_folder(str(scene), 3), 2)
  return lambda: common.load_scene({"source": "folder", "scene_dir": str(scene),
                                    "train_views": None, "downscale": 2}, 3)


def same_pixels_as_expected(scene, kit: Kit) -> None:
  assert scene.train[0]["image"].shape == (31, 42, 3)
  for got, want in zip(scene.train, kit.expected.train):
    np.testing.assert_array_equal(got["image"], want["image"])
    np.testing.assert_array_equal(got["intrinsics"], want["intrinsics"])


COLMAP = [
    Case("colmap_fisheye_camera", colmap_fisheye, 2, ("supported:",)),
    Case("colmap_registered_photo_deleted", colmap_photo_deleted, 2,
         ("copy them back",)),
    Case("colmap_images_file_cut_short", colmap_images_cut_short, 2,
         ("Re-export the model",)),
    Case("nerfstudio_capture_without_points", lambda kit: named(
        kit, ("transforms.json", "ply_file_path"),
        nerfstudio_capture(kit, ply_file_path=None)), 2,
         ("ns-process-data", "regnerf-process-data")),
    Case("nerfstudio_fisheye_capture", lambda kit: named(
        kit, ("transforms.json", "OPENCV_FISHEYE"),
        nerfstudio_capture(kit, camera_model="OPENCV_FISHEYE")), 2,
         ("perspective",)),
    Case("nerfstudio_capture_with_k3", lambda kit: named(
        kit, ("k3 of frames[0]",), nerfstudio_capture(kit, k3=0.02)), 2,
         ("OPENCV camera model",)),
    Case("layout_for_an_llff_scene", lambda kit: named(
        kit, ("--layout",), train(kit, "--layout=object")), 2,
         ("applies to captures",)),
    Case("downscale_zero", lambda kit: named(
        kit, ("--downscale=0",), train(kit, "--downscale=0")), 2, ()),
    Case("downscale_in_a_notebook", downscaled_scene, ACCEPTED,
         check=same_pixels_as_expected),
]

CATALOGUE = {"pairing": PAIRING, "exif": EXIF, "run_folder": RUN_FOLDER,
             "checkpoints": CHECKPOINTS, "cli_errors": CLI_ERRORS,
             "silently_wrong": SILENTLY_WRONG, "colmap": COLMAP}


# ----------------------------------------------------------------------------
# Running the catalogue.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, pathlib.Path]:
  """Small copies of the three scenes; a tiny llff3_small run of fern
  (ckpt-1, ckpt-2) and a dtu3_small run of scan24 made from it. The fern
  copy lives at a path with spaces and accents, as on a laptop."""
  root = tmp_path_factory.mktemp("pristine")
  paths = {"fern": copy_fern(root / "Mes scènes" / "fern 2024"),
           "scan24": copy_scan24(root / "scan24"),
           "lego": copy_lego(root / "lego")}
  paths["fern_run"] = root / "fern_run"
  outcome = run_command(train_cli, [
      "--preset=llff3_small", f"--scene_dir={paths['fern']}",
      f"--workdir={paths['fern_run']}", *RUN_FLAGS])
  assert outcome.code == 0 and outcome.error is None, outcome
  paths["dtu_run"] = dtu_run_like(paths["fern_run"], root / "dtu_run",
                                  paths["scan24"])
  return paths


def dtu_run_like(fern_run: pathlib.Path, target: pathlib.Path,
                 scan: pathlib.Path) -> pathlib.Path:
  """A run of dtu3_small on scan24, made from the fern run: the same
  network (the two small presets differ in rays, not in weights), with the
  dtu3_small config and the scan's scene.json. Training it would only cost
  time."""
  shutil.copytree(fern_run, target)
  config = run_folder.original_config(str(fern_run))
  overrides = {k: v for k, v in run_folder.differences(
      configs.get_preset("llff3_small"), config).items() if k != "name"}
  dtu = configs.get_preset("dtu3_small",
                           **{k: after for k, (_, after) in overrides.items()})
  (target / run_folder.CONFIG).write_text(dtu.to_json())
  record = json.loads((target / common.SCENE_FILE).read_text())
  record["source"]["scene_dir"] = str(scan)
  record.update(name="scan24", kind="dtu")
  (target / common.SCENE_FILE).write_text(json.dumps(record))
  return target


def snapshot(root: pathlib.Path) -> dict[str, tuple]:
  """{relative path: (kind, size, mtime)} of everything below ``root``."""
  tree = {}
  for folder, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(folder, name)
      info = os.lstat(path)
      is_dir = os.path.isdir(path)
      tree[os.path.relpath(path, root)] = (
          "dir" if is_dir else "file", 0 if is_dir else info.st_size,
          info.st_mtime_ns)
  return tree


def changes(before: dict, after: dict, allowed: list[str]) -> list[str]:
  """What was added, removed or modified, outside ``allowed`` (relative
  paths; their parent folders may change too)."""
  def free(rel):
    return any(rel == a or rel.startswith(a + os.sep) or
               a.startswith(rel + os.sep) for a in allowed)
  out = [f"added {p}" for p in sorted(set(after) - set(before)) if not free(p)]
  out += [f"removed {p}" for p in sorted(set(before) - set(after))
          if not free(p)]
  out += [f"modified {p}" for p in sorted(set(before) & set(after))
          if before[p] != after[p] and not free(p)]
  return out


def guard(monkeypatch) -> None:
  """A refused input must be refused before the work: training, rendering,
  writing an export. Reaching it raises Accepted (fast, and clear)."""
  def refuse(what):
    def raising(*args, **kwargs):
      raise Accepted(f"{what} started: the input was accepted")
    return raising
  monkeypatch.setattr(keras.Model, "fit", refuse("training"))
  load_prior = train_cli.load_prior

  def no_prior(spec):
    if spec:
      refuse("loading the patch prior")()
    return load_prior(spec)
  monkeypatch.setattr(train_cli, "load_prior", no_prior)
  monkeypatch.setattr(model_lib.RegNeRF, "render_chunked", refuse("rendering"))
  monkeypatch.setattr(tf.saved_model, "save", refuse("writing the export"))
  renderer = getattr(export_lib, "_Renderer", None)  # traced before saving
  if renderer is not None:
    monkeypatch.setattr(renderer, "__init__", refuse("building the export"))


def perform(call, capsys) -> tuple[Outcome, Any]:
  """(what a command or Python call did, the call's return value)."""
  if isinstance(call, Command):
    return run_command(call.module, call.argv, capsys), None
  try:
    return Outcome(code=None), call()
  except Exception as e:  # pylint: disable=broad-except
    return Outcome(code=None, error=e), None


def message_of(case: Case, call, outcome: Outcome) -> str:
  """The text the user reads, checked against ``says`` and the blame."""
  if not isinstance(call, Command):
    return str(outcome.error) if outcome.error is not None else ""
  program = PROGRAMS[call.module]
  assert not isinstance(outcome.error, Accepted), (
      f"{program} did not refuse the input: {outcome.error}")
  if case.expect == 0:
    return " ".join((outcome.out + outcome.err).split())
  assert outcome.error is None, (
      f"{program} ended with a traceback: {outcome.error!r}")
  assert "Traceback" not in outcome.err, outcome.err[-3000:]
  assert outcome.code == case.expect, (outcome.code, outcome.err[-3000:])
  start = outcome.err.find(f"{program}: error:")
  assert start >= 0, f"no '{program}: error:' paragraph in {outcome.err!r}"
  paragraph = outcome.err[start:].strip()
  assert "\n\n" not in paragraph, f"more than one paragraph: {paragraph!r}"
  return " ".join(paragraph.split())


def _params():
  return [pytest.param(category, case, id=f"{category}-{case.id}", marks=(
      [pytest.mark.xfail(strict=True, reason="BUG: " + case.bug)]
      if case.bug else []))
          for category, table in CATALOGUE.items() for case in table]


@pytest.fixture(autouse=True)
def _no_traceback_env(monkeypatch):
  monkeypatch.delenv(common.TRACEBACK_ENV, raising=False)


@pytest.mark.parametrize("category, case", _params())
def test_hostile_input(category, case, pristine, tmp_path, monkeypatch,
                       capsys):
  del category  # in the test id
  kit = Kit(tmp_path, pristine, monkeypatch)
  call = case.build(kit)
  if case.expect not in (0, ACCEPTED):
    guard(monkeypatch)
  before = snapshot(tmp_path)
  outcome, result = perform(call, capsys)
  after = snapshot(tmp_path)

  message = message_of(case, call, outcome)
  if case.expect == ACCEPTED or case.expect == 0:
    assert outcome.error is None, f"refused: {outcome.error!r}"
    if isinstance(call, Command):
      assert outcome.code == 0, (outcome.code, outcome.err[-3000:])
  elif isinstance(case.expect, type):
    assert isinstance(outcome.error, case.expect), (
        f"expected {case.expect.__name__}, got {outcome.error!r}")
  for pattern in case.says:
    assert re.search(pattern, message), (
        f"{pattern!r} is not in the message: {message!r}")
  for fact in kit.facts:
    assert fact in message, f"{fact!r} is not named in the message: {message!r}"
  written = changes(before, after, [os.path.relpath(p, tmp_path)
                                    for p in kit.writable])
  assert not written, f"the call changed files: {written}"
  if case.check is not None:
    case.check(outcome if isinstance(call, Command) else result, kit)


# ----------------------------------------------------------------------------
# Beside the catalogue: a path with spaces and accents, and the console script.
# ----------------------------------------------------------------------------


def test_a_scene_folder_with_spaces_and_accents(pristine, tmp_path, capsys):
  """The fern run was trained from ".../Mes scènes/fern 2024": the run folder
  records the path as given, and regnerf-eval with only --workdir finds it."""
  run = pristine["fern_run"]
  record = json.loads((run / common.SCENE_FILE).read_text())
  assert record["source"]["scene_dir"] == str(pristine["fern"])
  assert record["name"] == "fern 2024" and record["train_views"] == [1, 10, 19]
  assert sorted(p.name for p in checkpoint_files(run)) == [
      "ckpt-1.data-00000-of-00001", "ckpt-1.index",
      "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
  outcome = run_command(eval_cli, [f"--workdir={run}", "--max_views=1",
                                   f"--output_dir={tmp_path / 'eval'}"], capsys)
  assert outcome.code == 0 and outcome.error is None, outcome
  assert f"Scene: --scene_dir={pristine['fern']} (from" in outcome.out
  report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
  assert report["scene"] == "fern 2024" and report["step"] == 2


def test_the_console_script_refuses_as_in_process(pristine, tmp_path,
                                                  monkeypatch, capsys):
  """One case end to end: the installed regnerf-train in a process of its own
  gives the exit code and the paragraph of the in-process run, and writes
  nothing."""
  kit = Kit(tmp_path, pristine, monkeypatch)
  command = broken_image(lambda pixels: encode(pixels, "PNG", "L"))(kit)
  before = snapshot(tmp_path)
  inside = run_command(command.module, command.argv, capsys)
  script = pathlib.Path(sys.executable).parent / "regnerf-train"
  launch = ([str(script)] if script.exists()
            else [sys.executable, "-m", "regnerf_tf.cli.train"])
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  env.pop(common.TRACEBACK_ENV, None)
  result = subprocess.run(launch + list(command.argv), env=env, text=True,
                          capture_output=True, timeout=600, check=False,
                          cwd=pathlib.Path(__file__).resolve().parents[1])
  assert snapshot(tmp_path) == before
  assert result.returncode == inside.code == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr

  def paragraph(err):
    return " ".join(err[err.index("regnerf-train: error:"):].split())
  assert paragraph(result.stderr) == paragraph(inside.err)
  assert "image001.png has 1 channel(s)" in paragraph(result.stderr)
