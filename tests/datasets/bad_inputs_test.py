"""Hostile scene folders: every kind of bad input is refused with a clear message.

Each case asserts the exception type (``errors.InputError`` or
``errors.MissingFileError``) and that the message names the file, what was
expected and what was found. Scenes are tiny and written to ``tmp_path``; the
``Kit`` classes below edit one layout's camera file in place:

=================  ===========================================================
``llff``           ``poses_bounds.npy`` + ``images_8/`` (10 views)
``dtu_idr``        ``cameras_sphere.npz`` + ``image/`` + ``mask/`` (49 views)
``dtu_official``   ``Rectified/scan7`` + ``Calibration/cal18`` + ``idrmasks``
``blender``        ``transforms_train.json`` + ``train/`` (3 frames)
=================  ===========================================================
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import struct
import types
import zlib
from collections.abc import Callable

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import scenes
from regnerf_tf.datasets import builder_utils
from regnerf_tf.datasets import readers
from regnerf_tf.datasets.dtu_sparse import dtu_sparse_dataset_builder
from regnerf_tf.datasets.llff_sparse import llff_sparse_dataset_builder
from tests.datasets.readers_test import write_idr_scan
from tests.datasets.readers_test import write_llff_scene

LAYOUTS = ("llff", "dtu_idr", "dtu_official", "blender")
DTU_SIZE = (12, 16)  # H, W: 4:3 like the 1600×1200 DTU calibration.

# ----------------------------------------------------------------------------
# Scene kits: write a small valid scene, then break one thing.
# ----------------------------------------------------------------------------


class Kit:
  """A valid scene of one layout and ways to edit its cameras.

  Attributes:
    layout: one of LAYOUTS.
    path: the scene folder passed to the loaders.
    pose_file: the file holding camera 1 (edited by ``edit_camera(1, ...)``).
    images: image files in view order.
    masks: mask files in view order (DTU only).
  """

  layout: str
  path: pathlib.Path
  pose_file: pathlib.Path
  images: list[pathlib.Path]
  masks: list[pathlib.Path] = []

  def edit_camera(self, i: int, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replaces camera i's [3, 4] matrix M by fn(M) (LLFF/Blender: [R|t];
    DTU: the projection P)."""
    raise NotImplementedError

  def drop_camera(self) -> None:
    """Removes the last camera from the camera file(s) (not Blender)."""
    raise NotImplementedError


class LlffKit(Kit):
  layout = "llff"

  def __init__(self, root: pathlib.Path, num: int = 10):
    self.path, _ = write_llff_scene(root, num=num)
    self.pose_file = self.path / "poses_bounds.npy"
    self.images = sorted((self.path / "images_8").iterdir())

  def load(self) -> np.ndarray:
    return np.load(self.pose_file)

  def save(self, data: np.ndarray) -> None:
    np.save(self.pose_file, data)

  def edit_camera(self, i, fn):
    data = self.load()
    pose = data[i, :15].reshape(3, 5)
    pose[:, :4] = fn(pose[:, :4].copy())
    data[i, :15] = pose.reshape(-1)
    self.save(data)

  def drop_camera(self):
    self.save(self.load()[:-1])


class IdrKit(Kit):
  layout = "dtu_idr"

  def __init__(self, root: pathlib.Path, num: int = 49):
    self.path = write_idr_scan(root, num=num, size=DTU_SIZE)
    self.pose_file = self.path / "cameras_sphere.npz"
    self.images = sorted((self.path / "image").iterdir())
    self.masks = sorted((self.path / "mask").iterdir())

  def cameras(self) -> dict[str, np.ndarray]:
    with np.load(self.pose_file) as data:
      return dict(data)

  def edit_camera(self, i, fn):
    cams = self.cameras()
    cams[f"world_mat_{i}"][:3] = fn(cams[f"world_mat_{i}"][:3].copy())
    np.savez(self.pose_file, **cams)

  def drop_camera(self):
    cams = self.cameras()
    del cams[f"world_mat_{len(self.images) - 1}"]
    np.savez(self.pose_file, **cams)


class OfficialKit(Kit):
  """``Rectified/scan7``, ``Calibration/cal18`` and ``idrmasks/scan7``."""
  layout = "dtu_official"

  def __init__(self, root: pathlib.Path, num: int = 49):
    idr = IdrKit(root / "idr", num)
    top = root / "official"
    calibration = top / "Calibration" / "cal18"
    self.path = top / "Rectified" / "scan7"
    for folder in (calibration, self.path, top / "idrmasks" / "scan7"):
      folder.mkdir(parents=True)
    cams = idr.cameras()
    self.images, self.masks = [], []
    for i, (image, mask) in enumerate(zip(idr.images, idr.masks)):
      np.savetxt(calibration / f"pos_{i + 1:03d}.txt", cams[f"world_mat_{i}"][:3])
      self.images.append(self.path / f"rect_{i + 1:03d}_3_r5000.png")
      self.masks.append(top / "idrmasks" / "scan7" / f"{i:03d}.png")
      shutil.copy(image, self.images[-1])
      shutil.copy(mask, self.masks[-1])
    self.pose_file = calibration / "pos_002.txt"

  def edit_camera(self, i, fn):
    path = self.pose_file.with_name(f"pos_{i + 1:03d}.txt")
    np.savetxt(path, fn(np.loadtxt(path)))

  def drop_camera(self):
    self.pose_file.with_name(f"pos_{len(self.images):03d}.txt").unlink()


class BlenderKit(Kit):
  layout = "blender"

  def __init__(self, root: pathlib.Path, num: int = 3, size=(10, 10)):
    self.path = root / "chair"
    (self.path / "train").mkdir(parents=True)
    self.pose_file = self.path / "transforms_train.json"
    self.images = [self.path / "train" / f"r_{i}.png" for i in range(num)]
    frames = []
    for i, image in enumerate(self.images):
      pose = np.eye(4)
      pose[:3, 3] = [0.1 * i, 0.0, 4.0]
      iio.imwrite(image, np.full(size + (4,), 60 * i, np.uint8))
      frames.append({"file_path": f"./train/r_{i}", "transform_matrix": pose.tolist()})
    self.save({"camera_angle_x": 0.69, "frames": frames})

  def load(self) -> dict:
    return json.loads(self.pose_file.read_text())

  def save(self, meta: dict) -> None:
    self.pose_file.write_text(json.dumps(meta))

  def edit_camera(self, i, fn):
    meta = self.load()
    pose = np.array(meta["frames"][i]["transform_matrix"])
    pose[:3] = fn(pose[:3].copy())
    meta["frames"][i]["transform_matrix"] = pose.tolist()
    self.save(meta)


KITS = {k.layout: k for k in (LlffKit, IdrKit, OfficialKit, BlenderKit)}
LOADERS = {"readers": readers.from_directory, "scenes": scenes.from_folder}


@pytest.fixture(params=LAYOUTS)
def kit(request, tmp_path) -> Kit:
  return KITS[request.param](tmp_path)


@pytest.fixture(params=sorted(LOADERS))
def load(request) -> Callable[[str], object]:
  """``readers.from_directory`` or ``scenes.from_folder`` on a path."""
  return lambda path: LOADERS[request.param](str(path))


def refused(error: type[Exception], call: Callable[[], object], *facts: str) -> str:
  """Asserts ``call()`` raises ``error`` whose message contains every fact."""
  with pytest.raises(error) as info:
    call()
  message = str(info.value)
  for fact in facts:
    assert fact in message, f"{fact!r} is missing from the message {message!r}"
  return message


def zero_pixel_png(width: int = 16) -> bytes:
  """A well-formed PNG header declaring 0×width pixels (no encoder writes one)."""
  def chunk(tag: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + tag + body
            + struct.pack(">I", zlib.crc32(tag + body)))
  header = struct.pack(">IIBBBBB", width, 0, 8, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
          + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def encoded(extension: str, size=(12, 16)) -> bytes:
  pixels = np.random.default_rng(0).integers(0, 256, size + (3,), dtype=np.uint8)
  return iio.imwrite("<bytes>", pixels, extension=extension)


# ----------------------------------------------------------------------------
# Image files.
# ----------------------------------------------------------------------------

def first_half(data: bytes) -> bytes:
  return data[:len(data) // 2]


UNDECODABLE = ("Could not decode", "Expected a readable PNG/JPEG/TIFF")
BAD_IMAGES = {
    "truncated_png": (lambda: first_half(encoded(".png")), UNDECODABLE),
    "truncated_jpeg": (lambda: first_half(encoded(".jpg")), UNDECODABLE),
    "corrupt_random_bytes": (lambda: np.random.default_rng(1).bytes(300),
                             UNDECODABLE),
    "zero_bytes": (lambda: b"", ("is empty (0 bytes)",
                                  "expected a PNG, JPEG or TIFF")),
    "zero_pixels": (zero_pixel_png, ("declares 16×0 pixels",
                                     "expected at least 1×1")),
}


@pytest.mark.parametrize("bad", sorted(BAD_IMAGES))
def test_bad_image_file(kit, load, bad):
  make, facts = BAD_IMAGES[bad]
  kit.images[1].write_bytes(make())
  refused(errors.InputError, lambda: load(kit.path), kit.images[1].name, *facts)


def test_images_of_different_sizes(kit, load):
  # 11×9 is not an integer multiple of any scene's size (DTU downsamples those).
  iio.imwrite(kit.images[1], np.zeros((9, 11, 3), np.uint8))
  refused(errors.InputError, lambda: load(kit.path), kit.images[1].name,
          "is 11×9 pixels", "expected")


@pytest.mark.parametrize("layout", ["dtu_idr", "dtu_official"])
@pytest.mark.parametrize("bad", ["wrong_size", "unreadable"])
def test_bad_dtu_mask(tmp_path, load, layout, bad):
  kit = KITS[layout](tmp_path)
  # View 22 is a DTU train view and is read by both loaders.
  if bad == "wrong_size":
    iio.imwrite(kit.masks[22], np.zeros((7, 9), np.uint8))
    facts = ("is 9×7 pixels", f"expected {DTU_SIZE[1]}×{DTU_SIZE[0]}")
  else:
    kit.masks[22].write_bytes(b"\x89PNG not really")
    facts = ("Could not decode", "Expected a readable PNG/JPEG")
  refused(errors.InputError, lambda: load(kit.path), kit.masks[22].name, *facts)


# ----------------------------------------------------------------------------
# Camera files.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_pose_file(tmp_path, load, layout):
  kit = KITS[layout](tmp_path)
  if layout == "dtu_official":
    shutil.rmtree(kit.pose_file.parent)
    facts = ("No DTU calibration found", "pos_001.txt", "Calibration/cal18")
  else:
    kit.pose_file.unlink()
    facts = (kit.pose_file.name, "No known scene layout", "its entries are")
  refused(errors.MissingFileError, lambda: load(kit.path), *facts)


# Blender has no "fewer poses" case: frames name their image files, so files
# that no frame lists are simply unused.
COUNT_MISMATCHES = {
    "llff-fewer_poses": (errors.InputError, ("10 images", "9 rows",
                                             "poses_bounds.npy")),
    "dtu_idr-fewer_poses": (errors.InputError, ("49 images", "48 cameras",
                                                "cameras_sphere.npz")),
    "dtu_official-fewer_poses": (errors.MissingFileError, ("pos_049.txt",
                                                           "missing")),
    "llff-more_poses": (errors.InputError, ("9 images", "10 rows")),
    "dtu_idr-more_poses": (errors.InputError, ("48 images", "49 cameras")),
    "dtu_official-more_poses": (errors.MissingFileError,
                                ("rect_049_3_r5000.png", "missing")),
    "blender-more_poses": (errors.MissingFileError, ("r_2.png", "does not exist")),
}


@pytest.mark.parametrize("case", sorted(COUNT_MISMATCHES))
def test_pose_count_differs_from_image_count(tmp_path, load, case):
  layout, kind = case.split("-")
  kit = KITS[layout](tmp_path)
  if kind == "fewer_poses":
    kit.drop_camera()
  else:
    kit.images[-1].unlink()
  error, facts = COUNT_MISMATCHES[case]
  refused(error, lambda: load(kit.path), *facts)


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_pose(kit, load, value):
  def poison(m):
    m[0, 3] = value
    return m
  kit.edit_camera(1, poison)
  refused(errors.InputError, lambda: load(kit.path), kit.pose_file.name,
          "NaN or infinite", "expected finite")


NOT_ROTATIONS = {
    "scaled": (np.diag([2.0, 2.0, 2.0]), "scaled or sheared"),
    "sheared": (np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                "scaled or sheared"),
    "reflection": (np.diag([1.0, 1.0, -1.0]), "a reflection"),
}


@pytest.mark.parametrize("layout", ["llff", "blender"])
@pytest.mark.parametrize("bad", sorted(NOT_ROTATIONS))
def test_camtoworld_not_a_rotation(tmp_path, load, layout, bad):
  kit = KITS[layout](tmp_path)
  matrix, found = NOT_ROTATIONS[bad]
  kit.edit_camera(1, lambda m: np.concatenate([m[:, :3] @ matrix, m[:, 3:]], 1))
  refused(errors.InputError, lambda: load(kit.path), kit.pose_file.name, found,
          "expected a rotation (orthonormal, det +1")


@pytest.mark.parametrize("layout", ["dtu_idr", "dtu_official"])
def test_dtu_projection_sheared(tmp_path, load, layout):
  kit = KITS[layout](tmp_path)
  shear = NOT_ROTATIONS["sheared"][0]
  kit.edit_camera(1, lambda p: np.concatenate([p[:, :3] @ shear, p[:, 3:]], 1))
  refused(errors.InputError, lambda: load(kit.path), kit.pose_file.name,
          "skew/fx", "expected a pinhole camera", "sheared")


@pytest.mark.parametrize("layout", ["dtu_idr", "dtu_official"])
def test_dtu_projection_scaled_or_reflected_is_the_same_camera(tmp_path, layout):
  """P is homogeneous: s·P (any s ≠ 0, including −1) is the same camera."""
  kit = KITS[layout](tmp_path)
  before = readers.from_directory(str(kit.path), views=[1])[0]
  kit.edit_camera(1, lambda p: -3.0 * p)
  after = readers.from_directory(str(kit.path), views=[1])[0]
  np.testing.assert_allclose(after["camtoworld"], before["camtoworld"], atol=1e-5)
  np.testing.assert_allclose(after["intrinsics"], before["intrinsics"], rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("near,far", [(5.0, 5.0), (6.0, 5.0), (0.0, 5.0),
                                      (-1.0, 5.0)],
                         ids=["near_equals_far", "near_above_far", "zero_near",
                              "negative_near"])
def test_llff_bad_bounds(tmp_path, load, near, far):
  kit = LlffKit(tmp_path)
  data = kit.load()
  data[4, 15:] = near, far
  kit.save(data)
  refused(errors.InputError, lambda: load(kit.path), "Row 4", kit.pose_file.name,
          f"near = {near:g}, far = {far:g}", "expected 0 < near < far")


def test_llff_bad_hwf(tmp_path, load):
  kit = LlffKit(tmp_path)
  data = kit.load()
  data[2, 14] = 0.0  # focal length.
  kit.save(data)
  refused(errors.InputError, lambda: load(kit.path), "Row 2", kit.pose_file.name,
          "[H, W, focal] = [96.0, 128.0, 0.0]", "expected positive")


def test_blender_bad_field_of_view(tmp_path, load):
  kit = BlenderKit(tmp_path)
  kit.save({**kit.load(), "camera_angle_x": 0})
  refused(errors.InputError, lambda: load(kit.path), kit.pose_file.name,
          "camera_angle_x is 0.0", "a number in (0, π)")


class _OpensAFile:
  """Unpickling this creates ``path``: proof that a file was unpickled."""

  def __init__(self, path: pathlib.Path):
    self.path = path

  def __reduce__(self):
    return (open, (str(self.path), "w"))


@pytest.mark.parametrize("layout", ["llff", "dtu_idr"])
def test_pickled_arrays_are_refused_unopened(tmp_path, load, layout):
  kit = KITS[layout](tmp_path / "scene")
  marker = tmp_path / "unpickled"
  payload = np.array([_OpensAFile(marker)], dtype=object)
  if layout == "llff":
    np.save(kit.pose_file, payload, allow_pickle=True)
  else:
    np.savez(kit.pose_file, world_mat_0=payload)
  refused(errors.InputError, lambda: load(kit.path), kit.pose_file.name,
          "without pickle", "object arrays are refused")
  assert not marker.exists()


def test_npz_given_as_npy_is_refused(tmp_path, load):
  kit = LlffKit(tmp_path)
  archive = io.BytesIO()
  np.savez(archive, kit.load())
  kit.pose_file.write_bytes(archive.getvalue())  # An archive under the .npy name.
  refused(errors.InputError, lambda: load(kit.path), kit.pose_file.name,
          "holds a .npz archive", "expected a NumPy .npy array")


# ----------------------------------------------------------------------------
# Folders.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty", "does_not_exist", "is_a_file"])
def test_bad_scene_folder(tmp_path, load, kind):
  path = tmp_path / "scene"
  if kind == "empty":
    path.mkdir()
    facts = ("No known scene layout", "the folder is empty", "poses_bounds.npy",
             "cameras.npz", "transforms_train.json")
  elif kind == "does_not_exist":
    facts = ("Expected a scene folder", "it does not exist")
  else:
    path.write_text("hello")
    facts = ("Expected a scene folder", "a file, not a folder")
  refused(errors.MissingFileError, lambda: load(path), str(path), *facts)


# ----------------------------------------------------------------------------
# TFDS builders: manual_dir and split names.
# ----------------------------------------------------------------------------

BUILDERS = {"llff_sparse": llff_sparse_dataset_builder.Builder,
            "dtu_sparse": dtu_sparse_dataset_builder.Builder}


def split_generators(name: str, manual_dir: pathlib.Path) -> dict:
  """The builder's ``_split_generators`` without building anything."""
  builder = BUILDERS[name](data_dir=str(manual_dir.parent / "tfds"))
  return builder._split_generators(types.SimpleNamespace(manual_dir=manual_dir))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_manual_dir_does_not_exist(tmp_path, name):
  manual = tmp_path / "nope"
  refused(errors.MissingFileError, lambda: split_generators(name, manual),
          f"Cannot read manual_dir {manual}", "does not exist",
          "Pass a readable --manual_dir")


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_manual_dir_without_scenes(tmp_path, name):
  manual = tmp_path / "manual"
  (manual / "notes").mkdir(parents=True)
  refused(errors.MissingFileError, lambda: split_generators(name, manual),
          f"No scene found in manual_dir {manual}", "Looked for",
          "Entries of manual_dir: ['notes']")


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
def test_manual_dir_without_permission(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  manual.chmod(0)
  try:
    refused(errors.MissingFileError,
            lambda: split_generators("llff_sparse", manual),
            f"Cannot read manual_dir {manual}", "Permission denied")
  finally:
    manual.chmod(0o755)


def test_manual_dir_that_cannot_be_listed(tmp_path, monkeypatch):
  """The chmod 000 case for any user: listing raises PermissionDeniedError."""
  manual = tmp_path / "manual"
  manual.mkdir()

  def denied(path):
    raise tf.errors.PermissionDeniedError(None, None, f"{path}; Permission denied")
  monkeypatch.setattr(tf.io.gfile, "listdir", denied)
  refused(errors.MissingFileError,
          lambda: builder_utils.find_manual_scenes(str(manual), ("llff",), "x", ""),
          f"Cannot read manual_dir {manual}", "Permission denied", "chmod")


def test_llff_builder_finds_scene(tmp_path):
  LlffKit(tmp_path / "manual")
  assert set(split_generators("llff_sparse", tmp_path / "manual")) == {
      "train", "test", "toy_train", "toy_test"}


def test_tfds_split_that_does_not_exist(monkeypatch):
  jobs = builder_utils.split_generators(
      {"fern": ("llff", "."), "trex": ("llff", ".")}, lambda job: None)
  fake = types.SimpleNamespace(is_prepared=lambda: True,
                               info=types.SimpleNamespace(splits=dict(jobs)))
  monkeypatch.setattr("tensorflow_datasets.builder", lambda *a, **k: fake)
  refused(errors.InputError,
          lambda: scenes.from_tfds("llff_sparse/3view", "horns"),
          "llff_sparse/3view has no split 'horns_train'",
          "scenes available: ['fern', 'trex']")


def test_tfds_not_built_without_manual_dir(monkeypatch, tmp_path):
  fake = types.SimpleNamespace(is_prepared=lambda: False, data_dir=str(tmp_path))
  monkeypatch.setattr("tensorflow_datasets.builder", lambda *a, **k: fake)
  refused(errors.MissingFileError,
          lambda: scenes.from_tfds("llff_sparse/3view", "fern"),
          f"is not built in {tmp_path}", "pass --manual_dir")


# ----------------------------------------------------------------------------
# View indices.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("views", [[99], [-1], [0.5]], ids=["above", "negative",
                                                            "not_integer"])
def test_views_out_of_range(kit, views):
  num = len(kit.images)
  facts = (("must be integers", f"below {num}") if views == [0.5]
           else (f"Requested views {views} do not exist", f"indices 0..{num - 1}"))
  refused(errors.InputError,
          lambda: readers.from_directory(str(kit.path), views=views), *facts)


@pytest.mark.parametrize("kwargs,facts", [
    ({"train_views": [99]}, ("train_views: views [99] do not exist",)),
    ({"test_views": [0, 42]}, ("test_views: views [42] do not exist",)),
    ({"train_views": []}, ("train_views is empty",)),
    ({"n_views": 0}, ("n_views must be a positive integer", "received 0")),
], ids=["train_view", "test_view", "no_train_views", "zero_n_views"])
def test_scene_views_out_of_range(tmp_path, kwargs, facts):
  kit = LlffKit(tmp_path)
  refused(errors.InputError, lambda: scenes.from_folder(str(kit.path), **kwargs),
          *facts)
