"""Property-based fuzzing of the scene readers with hostile files.

Hypothesis writes one hostile file into an otherwise valid tiny scene (the kits
of ``bad_inputs_test``) and reads the scene. The reader must either return
well-formed records or raise a documented error, ``errors.InputError`` or
``errors.MissingFileError``; any other exception (KeyError, IndexError,
TypeError, ZeroDivisionError, LinAlgError, ``tf.errors.*``, ...) is a bug.

Fuzzed files:

* images (LLFF, DTU image and mask, Blender): random bytes, prefixes of valid
  PNG/JPEG files, valid PNGs with a few bytes changed, and valid PNGs of random
  size, channel count and bit depth;
* LLFF ``poses_bounds.npy``: random arrays of any shape and dtype (floats with
  NaN/inf, integers, bools, complex, strings, datetimes, pickled objects),
  random bytes, and the valid array with some entries mutated or rows
  dropped/repeated;
* DTU ``cameras_sphere.npz``: random archives of random arrays, random bytes,
  the valid cameras with entries mutated or the 3×3 part multiplied by a random
  matrix; DTU ``pos_*.txt``: random text and random numbers;
* Blender ``transforms_train.json``: random JSON values (``st.recursive``) and
  the valid file with one field replaced by a random JSON value.

``derandomize=True`` keeps CI deterministic; the whole file runs in well under
40 s on two CPU cores.
"""

from __future__ import annotations

import io
import json
import pathlib
import tempfile
from collections.abc import Callable

import hypothesis.extra.numpy as hnp
import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regnerf_tf import errors
from regnerf_tf.datasets import readers
from tests.datasets.bad_inputs_test import BlenderKit, IdrKit, Kit, LlffKit
from tests.datasets.bad_inputs_test import OfficialKit, encoded

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
# Entry mutations are cheap (no images change) and find the subtle cases.
FUZZ_MORE = settings(FUZZ, max_examples=150)
NUM_VIEWS = 3  # Views per fuzzed scene: small, so that each example is cheap.

RECORD_SHAPES = {"camtoworld": (3, 4), "intrinsics": (3, 3),
                 "world_transform": (4, 4)}


# ----------------------------------------------------------------------------
# The property.
# ----------------------------------------------------------------------------


def assert_well_formed(records: list[dict]) -> None:
  """Records as documented in ``readers``: shapes, dtypes, finite cameras."""
  assert isinstance(records, list) and records
  num = records[0]["scene_camtoworlds"].shape[0]
  for r in records:
    h, w, c = r["image"].shape
    assert r["image"].dtype == np.uint8 and c == 3 and h > 0 and w > 0
    if "mask" in r:
      assert r["mask"].dtype == np.uint8 and r["mask"].shape == (h, w, 1)
    for key, shape in RECORD_SHAPES.items():
      assert r[key].shape == shape and r[key].dtype == np.float32, key
    assert r["scene_camtoworlds"].shape == (num, 3, 4)
    assert r["scene_intrinsics"].shape == (num, 3, 3)
    assert r["scene_bounds"].shape == (num, 2)
    for key in ("camtoworld", "intrinsics", "world_transform", "scene_camtoworlds",
                "scene_intrinsics", "scene_bounds"):
      assert np.all(np.isfinite(r[key])), key
    rotation = r["camtoworld"][:, :3].astype(np.float64)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-2)
    assert r["intrinsics"][0, 0] > 0 and r["intrinsics"][1, 1] > 0
    assert 0 < r["near"] < r["far"] and np.isfinite(r["far"])
    assert 0 <= r["view_index"] < num


def check_reader(read: Callable[[], list[dict]]) -> None:
  """``read()`` returns well-formed records or raises a documented error."""
  try:
    records = read()
  except (errors.InputError, errors.MissingFileError) as e:
    assert str(e)
    return
  assert_well_formed(records)


def fuzz_scene(kit_class: type[Kit], edit: Callable[[Kit], None], **kwargs) -> None:
  """Writes a small valid scene, applies ``edit`` and checks the reader."""
  with tempfile.TemporaryDirectory() as tmp:
    kit = kit_class(pathlib.Path(tmp), num=NUM_VIEWS)
    edit(kit)
    check_reader(lambda: readers.from_directory(str(kit.path), **kwargs))


# ----------------------------------------------------------------------------
# Strategies.
# ----------------------------------------------------------------------------

PNG = encoded(".png", (12, 16))
JPEG = encoded(".jpg", (12, 16))


def _flip(data: bytes, changes: list[tuple[int, int]]) -> bytes:
  out = bytearray(data)
  for position, value in changes:
    out[position % len(out)] = value
  return bytes(out)


def _png_of(pixels: np.ndarray) -> bytes:
  return iio.imwrite("<bytes>", pixels, extension=".png")


SIDE = st.integers(1, 30)
image_bytes = st.one_of(
    st.binary(max_size=600),
    st.integers(0, len(PNG)).map(lambda n: PNG[:n]),
    st.integers(0, len(JPEG)).map(lambda n: JPEG[:n]),
    st.lists(st.tuples(st.integers(0, len(PNG)), st.integers(0, 255)),
             min_size=1, max_size=4).map(lambda c: _flip(PNG, c)),
    hnp.arrays(np.uint8, st.tuples(SIDE, SIDE)
               | st.tuples(SIDE, SIDE, st.sampled_from([3, 4]))).map(_png_of),
    hnp.arrays(np.uint16, st.tuples(SIDE, SIDE)).map(_png_of),
)

any_dtype = st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(),
                      hnp.unsigned_integer_dtypes(), hnp.boolean_dtypes(),
                      hnp.complex_number_dtypes(), hnp.unicode_string_dtypes(),
                      hnp.datetime64_dtypes())
any_array = st.one_of(
    hnp.arrays(any_dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                           max_side=20)),
    st.lists(st.integers() | st.text(max_size=5) | st.none(), min_size=1,
             max_size=4).map(lambda v: np.array(v + [{"pickled": 1}], dtype=object)),
)
# (row, column, value) changes applied to a valid camera array; LLFF columns
# 3, 8, 13 are the translation, 4, 9, 14 H, W, focal and 15, 16 the bounds.
entry_changes = st.lists(
    st.tuples(st.integers(0, NUM_VIEWS - 1),
              st.sampled_from([3, 4, 8, 9, 13, 14, 15, 16]) | st.integers(0, 16),
              st.floats(allow_nan=True, allow_infinity=True)),
    min_size=1, max_size=4)


def _npy(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  np.save(buffer, array, allow_pickle=True)
  return buffer.getvalue()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  return buffer.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (st.lists(children, max_size=5)
                      | st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=25)
# Where a random JSON value replaces part of a valid transforms file.
BLENDER_FIELDS = ("meta", "camera_angle_x", "frames", "frame", "file_path",
                  "transform_matrix", "matrix_row", "matrix_entry")


def _replace_blender_field(meta: dict, field: str, frame: int, index: int,
                           value: object) -> object:
  if field == "meta":
    return value
  if field in ("camera_angle_x", "frames"):
    meta[field] = value
    return meta
  target = meta["frames"][frame]
  if field == "frame":
    meta["frames"][frame] = value
  elif field in ("file_path", "transform_matrix"):
    target[field] = value
  elif field == "matrix_row":
    target["transform_matrix"][index % 4] = value
  else:
    target["transform_matrix"][index % 4][index // 4 % 4] = value
  return meta


# ----------------------------------------------------------------------------
# Tests.
# ----------------------------------------------------------------------------


def _write_image(attribute: str, data: bytes) -> Callable[[Kit], None]:
  return lambda kit: getattr(kit, attribute)[1].write_bytes(data)


@pytest.mark.parametrize("kit_class,attribute", [
    (LlffKit, "images"), (IdrKit, "images"), (IdrKit, "masks"),
    (BlenderKit, "images")], ids=["llff_image", "dtu_image", "dtu_mask",
                                  "blender_image"])
@FUZZ
@given(data=image_bytes)
def test_fuzz_image_files(kit_class, attribute, data):
  fuzz_scene(kit_class, _write_image(attribute, data))


@FUZZ
@given(content=st.one_of(any_array.map(_npy), st.binary(max_size=400)))
def test_fuzz_poses_bounds_file(content):
  fuzz_scene(LlffKit, lambda kit: kit.pose_file.write_bytes(content))


@FUZZ_MORE
@given(changes=entry_changes, rows=st.integers(0, 2 * NUM_VIEWS))
def test_fuzz_poses_bounds_entries(changes, rows):
  def edit(kit):
    data = kit.load()
    for row, column, value in changes:
      data[row, column] = value
    kit.save(data[np.arange(rows) % NUM_VIEWS])
  fuzz_scene(LlffKit, edit)


camera_keys = st.sampled_from([f"world_mat_{i}" for i in range(NUM_VIEWS + 1)]
                              + ["scale_mat_0", "other"])


@FUZZ
@given(content=st.one_of(
    st.dictionaries(camera_keys, any_array, max_size=5).map(_npz),
    st.binary(max_size=400),
    st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b)))
def test_fuzz_cameras_file(content):
  fuzz_scene(IdrKit, lambda kit: kit.pose_file.write_bytes(content))


@FUZZ_MORE
@given(changes=entry_changes,
       multiplier=st.none() | hnp.arrays(
           np.float64, (3, 3), elements=st.floats(-3, 3, allow_subnormal=False)))
def test_fuzz_camera_entries(changes, multiplier):
  def edit(kit):
    for view, entry, value in changes:
      def change(p, entry=entry, value=value):
        p[entry // 4 % 3, entry % 4] = value
        return p
      kit.edit_camera(view, change)
    if multiplier is not None:  # Turns K R into an arbitrary 3×3 matrix.
      kit.edit_camera(0, lambda p: np.concatenate([multiplier @ p[:, :3], p[:, 3:]],
                                                  1))
  fuzz_scene(IdrKit, edit)


@FUZZ
@given(text=st.one_of(
    st.text(max_size=80),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=14).map(
        lambda v: " ".join(str(x) for x in v))))
def test_fuzz_dtu_official_camera_text(text):
  fuzz_scene(OfficialKit, lambda kit: kit.pose_file.write_text(text),
             num_images=NUM_VIEWS)


@FUZZ
@given(meta=st.one_of(
    json_values,
    st.fixed_dictionaries({"camera_angle_x": json_values, "frames": json_values})))
def test_fuzz_blender_json_values(meta):
  fuzz_scene(BlenderKit, lambda kit: kit.save(meta))


@FUZZ
@given(field=st.sampled_from(BLENDER_FIELDS), frame=st.integers(0, NUM_VIEWS - 1),
       index=st.integers(0, 15), value=json_values)
def test_fuzz_blender_json_fields(field, frame, index, value):
  fuzz_scene(BlenderKit, lambda kit: kit.save(_replace_blender_field(
      kit.load(), field, frame, index, value)))
