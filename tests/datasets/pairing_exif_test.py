"""Image ↔ camera pairing and EXIF orientation, on copies of the shared scenes.

Pairing: the tools of every listed layout write camera rows in the text order
of the image names; names whose text and number orders differ are refused
unless an order is chosen, stray files are ignored, one view in two files is
refused.

EXIF: every reader returns images as displayed (checked against Pillow's own
``ImageOps.exif_transpose`` on a real photo saved with each tag as PNG, JPEG
and TIFF), and turns the cameras with them when the cameras describe the
stored pixels, so that every displayed pixel keeps the ray it has in the
untagged scene (checked with LLFF cameras written for the stored pixels by
closed forms).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from regnerf_tf import errors, scenes
from regnerf_tf.datasets import orientation, readers

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
FERN = SHARED / "llff" / "fern"
SCAN24 = SHARED / "dtu" / "scan24"
LEGO = SHARED / "nerf_synthetic" / "lego"
FERN_VIEWS = [0, 7, 13]  # a few views keep the tests fast
INVERSE_TAG = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}

pytestmark = pytest.mark.skipif(not FERN.is_dir(),
                                reason="shared scenes not present")


@pytest.fixture(scope="module")
def fern_original():
  return readers.read_llff(str(FERN), views=FERN_VIEWS)


@pytest.fixture(scope="module")
def fern_names():
  return sorted(os.listdir(FERN / "images_8"))


def _fern_copy(root: pathlib.Path, names=None, poses=None) -> pathlib.Path:
  """fern with images_8 files renamed (``names[i]`` for row i), poses set."""
  scene = root / "fern"
  (scene / "images_8").mkdir(parents=True)
  originals = sorted(os.listdir(FERN / "images_8"))
  for i, name in enumerate(originals):
    shutil.copy(FERN / "images_8" / name,
                scene / "images_8" / (names[i] if names else name))
  data = np.load(FERN / "poses_bounds.npy") if poses is None else poses
  np.save(scene / "poses_bounds.npy", data)
  return scene


def _assert_same_views(records, originals):
  assert len(records) == len(originals)
  for r, o in zip(records, originals):
    assert int(r["view_index"]) == int(o["view_index"])
    np.testing.assert_array_equal(r["image"], o["image"])
    np.testing.assert_allclose(r["camtoworld"], o["camtoworld"], atol=1e-5)
    np.testing.assert_allclose(r["intrinsics"], o["intrinsics"], atol=1e-4)
    np.testing.assert_allclose(r["scene_camtoworlds"], o["scene_camtoworlds"],
                               atol=1e-5)
    np.testing.assert_allclose(r["world_transform"], o["world_transform"],
                               atol=1e-5)


# ----------------------------------------------------------------------------
# Pairing.
# ----------------------------------------------------------------------------


def _unpadded(order: str) -> list[str]:
  """IMG_1..IMG_20, listed so that row i gets the i-th name in ``order``."""
  names = [f"IMG_{i}.png" for i in range(1, 21)]
  if order == "text":
    return sorted(names)
  return names  # already in number order


def test_unpadded_names_are_refused_naming_both_orders(tmp_path):
  scene = _fern_copy(tmp_path, _unpadded("text"))
  with pytest.raises(errors.InputError) as e:
    readers.read_llff(str(scene), views=[0])
  message = str(e.value)
  assert "images_8" in message
  assert "sorted as text they read IMG_1.png, IMG_10.png" in message
  assert "by number IMG_1.png, IMG_2.png" in message
  assert "--image_order=text" in message and "--image_order=number" in message


@pytest.mark.parametrize("written_in", ["text", "number"])
def test_chosen_order_pairs_each_image_with_its_row(tmp_path, fern_original,
                                                    written_in):
  scene = _fern_copy(tmp_path, _unpadded(written_in))
  records = readers.read_llff(str(scene), views=FERN_VIEWS,
                              image_order=written_in)
  _assert_same_views(records, fern_original)
  other = "number" if written_in == "text" else "text"
  wrong = readers.read_llff(str(scene), views=FERN_VIEWS, image_order=other)
  assert not all(np.array_equal(w["image"], o["image"])
                 for w, o in zip(wrong, fern_original))


def _write_colmap(scene: pathlib.Path, names, text: bool = False,
                  shift: float = 0.0) -> pathlib.Path:
  """sparse/0/images.{bin,txt} registering row i of fern as ``names[i]``.

  COLMAP ran on the full-size JPEGs, so the names end in .JPG while
  images_8 holds PNGs. Only the centres matter here: identity rotations with
  t = −C (every image also gets two 2D points, which the reader skips).
  """
  centres = np.load(FERN / "poses_bounds.npy")[:, :15].reshape(-1, 3, 5)[:, :, 3]
  folder = scene / "sparse" / "0"
  folder.mkdir(parents=True)
  jpgs = [n.rsplit(".", 1)[0] + ".JPG" for n in names]
  order = np.random.default_rng(0).permutation(len(names))  # any file order
  if text:
    lines = ["# Image list with two lines of data per image:"]
    for i in order:
      t = -(centres[i] + shift)
      x, y, z = (float(v) for v in t)
      lines.append(f"{i + 1} 1 0 0 0 {x!r} {y!r} {z!r} 1 {jpgs[i]}")
      lines.append("10.5 20.5 -1 11.5 21.5 7")
    path = folder / "images.txt"
    path.write_text("\n".join(lines) + "\n")
    return path
  data = struct.pack("<Q", len(names))
  for i in order:
    t = -(centres[i] + shift)
    data += struct.pack("<I7dI", i + 1, 1, 0, 0, 0, *t, 1)
    data += jpgs[i].encode() + b"\x00" + struct.pack("<Q", 2)
    data += struct.pack("<ddq", 10.5, 20.5, -1) * 2
  path = folder / "images.bin"
  path.write_bytes(data)
  return path


@pytest.mark.parametrize("written_in", ["text", "number"])
@pytest.mark.parametrize("as_text", [False, True])
def test_the_colmap_model_settles_the_order(tmp_path, fern_original,
                                            written_in, as_text):
  """LLFF's imgs2poses.py leaves sparse/0 next to the images: its camera
  centres tell which names the rows belong to."""
  names = _unpadded(written_in)
  scene = _fern_copy(tmp_path, names)
  _write_colmap(scene, names, text=as_text)
  _assert_same_views(readers.read_llff(str(scene), views=FERN_VIEWS),
                     fern_original)


def test_a_colmap_model_of_other_cameras_settles_nothing(tmp_path):
  names = _unpadded("text")
  scene = _fern_copy(tmp_path, names)
  _write_colmap(scene, names, shift=1.0)
  with pytest.raises(errors.InputError) as e:
    readers.read_llff(str(scene), views=[0])
  assert "images.bin did not settle it" in str(e.value)
  assert "neither order" in str(e.value)


def test_a_truncated_colmap_model_is_named(tmp_path):
  names = _unpadded("text")
  scene = _fern_copy(tmp_path, names)
  path = _write_colmap(scene, names)
  path.write_bytes(path.read_bytes()[:200])
  with pytest.raises(errors.InputError, match=r"images\.bin ends inside"):
    readers.read_llff(str(scene), views=[0])


def test_image_order_reaches_the_reader_through_scenes(tmp_path):
  scene = _fern_copy(tmp_path, _unpadded("text"))
  with pytest.raises(errors.InputError, match="image_order"):
    scenes.from_folder(str(scene), 3)
  loaded = scenes.from_folder(str(scene), 3, image_order="text")
  reference = scenes.from_folder(str(FERN), 3)
  for got, want in zip(loaded.train, reference.train):
    np.testing.assert_array_equal(got["image"], want["image"])


def test_image_order_is_refused_where_the_camera_file_names_images():
  with pytest.raises(errors.InputError, match=r"blender scene.*image_order"):
    scenes.from_folder(str(LEGO), 3, image_order="text")


def test_stray_files_are_ignored(tmp_path, fern_original, fern_names):
  scene = _fern_copy(tmp_path)
  folder = scene / "images_8"
  (folder / f"._{fern_names[0]}").write_bytes(b"\x00\x05\x16\x07AppleDouble")
  shutil.copy(folder / fern_names[3], folder / ".hidden.png")
  (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
  (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
  (folder / "notes.txt").write_text("shot on a phone")
  (folder / "thumbs").mkdir()
  _assert_same_views(readers.read_llff(str(scene), views=FERN_VIEWS),
                     fern_original)


def test_count_mismatch_names_the_files_not_counted(tmp_path, fern_names):
  scene = _fern_copy(tmp_path)
  (scene / "images_8" / fern_names[0]).unlink()
  (scene / "images_8" / "Thumbs.db").write_bytes(b"\xd0\xcf")
  with pytest.raises(errors.InputError) as e:
    readers.read_llff(str(scene), views=[1])
  assert "19 images in images_8/ (not counted as images: Thumbs.db)" in str(
      e.value)
  assert "20 rows in poses_bounds.npy" in str(e.value)


def test_one_view_in_two_files_is_refused(tmp_path, fern_names):
  scene = _fern_copy(tmp_path)
  stem = fern_names[4].rsplit(".", 1)[0]
  Image.open(FERN / "images_8" / fern_names[4]).convert("RGB").save(
      scene / "images_8" / f"{stem}.jpg", quality=95)
  with pytest.raises(errors.InputError) as e:
    readers.read_llff(str(scene), views=[0])
  assert f"{stem}.jpg, {stem}.png" in str(e.value)


@pytest.mark.skipif(not SCAN24.is_dir(), reason="shared DTU scan absent")
def test_idr_layout_unpadded_names(tmp_path):
  scene = tmp_path / "scan24"
  scene.mkdir()
  shutil.copy(SCAN24 / "cameras_sphere.npz", scene)
  (scene / "image").mkdir()
  originals = sorted(os.listdir(SCAN24 / "images_4"))
  text_order = sorted(f"{i}.png" for i in range(len(originals)))
  for name, new in zip(originals, text_order):
    os.symlink(SCAN24 / "images_4" / name, scene / "image" / new)
  with pytest.raises(errors.InputError, match=r"cameras_sphere\.npz"):
    readers.read_dtu_idr(str(scene), views=[0], use_masks=False)
  got = readers.read_dtu_idr(str(scene), views=[2, 30], use_masks=False,
                             image_order="text")
  want = readers.read_dtu_idr(str(SCAN24), views=[2, 30], use_masks=False)
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g["image"], w["image"])


# ----------------------------------------------------------------------------
# EXIF orientation of single images.
# ----------------------------------------------------------------------------


def _save_tagged(pixels: np.ndarray, path: pathlib.Path, tag: int) -> None:
  exif = Image.Exif()
  exif[orientation.EXIF_ORIENTATION_TAG] = tag
  options = {"quality": 95} if path.suffix == ".jpg" else {}
  Image.fromarray(pixels).save(path, exif=exif.tobytes(), **options)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
@pytest.mark.parametrize("tag", range(1, 9))
def test_read_image_shows_a_real_photo_as_displayed(tmp_path, suffix, tag):
  shown = np.asarray(Image.open(FERN / "images_8" / "image000.png")
                     .convert("RGB"))
  stored = orientation.to_display(shown, INVERSE_TAG[tag])
  path = tmp_path / f"photo{suffix}"
  _save_tagged(stored, path, tag)
  with Image.open(path) as image:
    assert image.getexif()[orientation.EXIF_ORIENTATION_TAG] == tag
    by_pillow = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
  got = readers.read_image(str(path))
  np.testing.assert_array_equal(got, by_pillow)  # Pillow's own reading.
  if suffix != ".jpg":  # lossless: exactly the photo as taken
    np.testing.assert_array_equal(got, shown)
  stored_got, tag_got = readers.read_stored(str(path))
  assert tag_got == tag
  assert stored_got.shape == stored.shape


@pytest.mark.parametrize("tag", range(1, 9))
def test_pixel_map_agrees_with_the_turned_pixels(tag):
  h, w = 5, 7
  index = np.arange(h * w).reshape(h, w)
  shown = orientation.to_display(index, tag)
  assert shown.shape == orientation.displayed_size((h, w), tag)
  a = orientation.pixel_map(tag, (h, w))
  for row in range(h):
    for col in range(w):
      x, y, _ = a @ np.array([col + 0.5, row + 0.5, 1.0])
      assert shown[int(np.floor(y)), int(np.floor(x))] == index[row, col]


# ----------------------------------------------------------------------------
# EXIF orientation of whole scenes: cameras that agree with the display.
# ----------------------------------------------------------------------------


def _stored_poses(tag: int) -> np.ndarray:
  """fern's poses_bounds.npy rewritten for the stored pixels of ``tag``.

  LLFF columns are [down, right, back, centre, (H, W, f)]; the stored grid's
  down and right axes follow from the pixel map of each tag.
  """
  data = np.load(FERN / "poses_bounds.npy")
  raw = data[:, :15].reshape(-1, 3, 5).copy()
  down, right = raw[:, :, 0].copy(), raw[:, :, 1].copy()
  if tag == 3:
    raw[:, :, 0], raw[:, :, 1] = -down, -right
  elif tag == 6:  # x' = H - y, y' = x
    raw[:, :, 0], raw[:, :, 1] = -right, down
  elif tag == 8:  # x' = y, y' = W - x
    raw[:, :, 0], raw[:, :, 1] = right, -down
  if tag in (6, 8):
    raw[:, [0, 1], 4] = raw[:, [1, 0], 4]
  return np.concatenate([raw.reshape(-1, 15), data[:, 15:]], axis=1)


def _tagged_fern(root: pathlib.Path, tag: int,
                 poses: np.ndarray) -> pathlib.Path:
  scene = root / "fern"
  (scene / "images_8").mkdir(parents=True)
  for name in sorted(os.listdir(FERN / "images_8")):
    shown = np.asarray(Image.open(FERN / "images_8" / name).convert("RGB"))
    _save_tagged(orientation.to_display(shown, INVERSE_TAG[tag]),
                 scene / "images_8" / name, tag)
  np.save(scene / "poses_bounds.npy", poses)
  return scene


@pytest.mark.parametrize("tag,exif", [(6, "auto"), (8, "auto"), (3, "stored"),
                                      (6, "stored")])
def test_cameras_of_stored_pixels_are_turned_with_the_image(
    tmp_path, fern_original, tag, exif):
  scene = _tagged_fern(tmp_path, tag, _stored_poses(tag))
  records = readers.read_llff(str(scene), views=FERN_VIEWS, exif=exif)
  _assert_same_views(records, fern_original)


@pytest.mark.parametrize("tag,exif", [(6, "auto"), (2, "displayed"),
                                      (3, "displayed")])
def test_cameras_of_displayed_pixels_are_kept(tmp_path, fern_original, tag,
                                              exif):
  scene = _tagged_fern(tmp_path, tag, np.load(FERN / "poses_bounds.npy"))
  records = readers.read_llff(str(scene), views=FERN_VIEWS, exif=exif)
  _assert_same_views(records, fern_original)


def test_a_180_degree_tag_is_refused_naming_both_readings(tmp_path):
  scene = _tagged_fern(tmp_path, 3, np.load(FERN / "poses_bounds.npy"))
  with pytest.raises(errors.InputError) as e:
    readers.read_llff(str(scene), views=[0])
  message = str(e.value)
  assert "EXIF orientation 3 (rotated 180°)" in message
  assert "image000.png" in message and "poses_bounds.npy" in message
  assert "exif='stored'" in message and "exif='displayed'" in message


def test_a_mirror_tag_cannot_keep_stored_cameras(tmp_path):
  scene = _tagged_fern(tmp_path, 2, np.load(FERN / "poses_bounds.npy"))
  with pytest.raises(errors.InputError, match="mirrored"):
    readers.read_llff(str(scene), views=[0], exif="stored")


def test_portrait_and_landscape_photos_are_refused_naming_exif(tmp_path,
                                                              fern_names):
  scene = _fern_copy(tmp_path)
  landscape = np.asarray(Image.open(FERN / "images_8" / fern_names[5]))
  _save_tagged(landscape, scene / "images_8" / fern_names[5], 6)  # portrait
  with pytest.raises(errors.InputError) as e:
    readers.read_llff(str(scene), views=[0], exif="displayed")
  assert "image005.png" in str(e.value) and "EXIF" in str(e.value)


def test_exif_reading_reaches_the_reader_through_scenes(tmp_path):
  scene = _tagged_fern(tmp_path, 3, _stored_poses(3))
  with pytest.raises(errors.InputError, match="rotated 180"):
    scenes.from_folder(str(scene), 3)
  loaded = scenes.from_folder(str(scene), 3, exif="stored")
  reference = scenes.from_folder(str(FERN), 3)
  for got, want in zip(loaded.test, reference.test):
    np.testing.assert_array_equal(got["image"], want["image"])
    np.testing.assert_allclose(got["camtoworld"], want["camtoworld"],
                               atol=1e-5)


def test_unknown_exif_reading_is_refused():
  with pytest.raises(errors.InputError, match="exif must be one of"):
    readers.read_llff(str(FERN), views=[0], exif="rotate")


# ----------------------------------------------------------------------------
# The command line: one paragraph, nothing written; the choice is recorded.
# ----------------------------------------------------------------------------


def _train(args):
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(__file__).resolve().parents[2]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  env.pop("REGNERF_TF_TRACEBACK", None)
  tiny = ["--preset=llff3_small", "--quiet", "--eval_views=none", "--steps=1",
          "--override=model.net_depth=2", "--override=model.net_width=16",
          "--override=model.skip_layer=0", "--override=train.batch_size=64",
          "--override=train.patch_batch_size=32", "--override=reg.patch_size=4",
          "--override=model.num_samples=8"]
  return subprocess.run([sys.executable, "-m", "regnerf_tf.cli.train"] + tiny
                        + args, cwd=root, env=env, capture_output=True,
                        text=True, timeout=600)


@pytest.mark.large
def test_cli_refuses_then_records_the_chosen_order(tmp_path):
  scene = _fern_copy(tmp_path, _unpadded("text"))
  work = tmp_path / "run"
  refused = _train([f"--scene_dir={scene}", f"--workdir={work}"])
  assert refused.returncode == 2, refused.stderr[-2000:]
  assert "Traceback" not in refused.stderr
  text = " ".join(refused.stderr[refused.stderr.index("regnerf-train: error:"):]
                  .split())
  assert "IMG_10.png" in text and "--image_order=text" in text
  assert not work.exists() or not any(work.iterdir())
  done = _train([f"--scene_dir={scene}", f"--workdir={work}",
                 "--image_order=text"])
  assert done.returncode == 0, done.stderr[-3000:]
  import json  # pylint: disable=import-outside-toplevel
  recorded = json.loads((work / "scene.json").read_text())
  assert recorded["source"]["image_order"] == "text"
  assert "exif" not in recorded["source"]  # "auto" is not recorded


# ----------------------------------------------------------------------------
# Photo formats.
# ----------------------------------------------------------------------------


def test_a_cmyk_jpeg_is_read_as_rgb(tmp_path):
  """4 channels that are not RGBA: once taken for RGB + alpha."""
  path = tmp_path / "print.jpg"
  Image.open(FERN / "images_8" / "image000.png").convert("CMYK").save(
      path, quality=95)
  got = readers.read_image(str(path))
  with Image.open(path) as image:
    assert image.mode == "CMYK"
    want = np.asarray(image.convert("RGB"))
  assert got.shape == want.shape and got.shape[-1] == 3
  np.testing.assert_array_equal(got, want)


def test_heic_photos_are_named_with_what_to_do(tmp_path, fern_names):
  scene = _fern_copy(tmp_path)
  (scene / "images_8" / fern_names[2]).unlink()
  (scene / "images_8" / "IMG_0002.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
  with pytest.raises(errors.InputError) as e:
    readers.read_llff(str(scene), views=[0])
  assert "IMG_0002.HEIC" in str(e.value)
  assert "convert them to JPEG or PNG" in str(e.value)


# ----------------------------------------------------------------------------
# A folder of photos given as the scene.
# ----------------------------------------------------------------------------


def test_the_image_folder_of_a_scene_points_to_its_scene():
  with pytest.raises(errors.MissingFileError) as e:
    readers.detect_format(str(FERN / "images_8"))
  assert f"the image folder of the llff scene {FERN}" in str(e.value)


def test_photos_without_cameras_point_to_process_data(tmp_path, fern_names):
  photos = tmp_path / "phone"
  photos.mkdir()
  for name in fern_names[:5]:
    shutil.copy(FERN / "images_8" / name, photos / name)
  with pytest.raises(errors.MissingFileError) as e:
    scenes.from_folder(str(photos), 3)
  assert "holds 5 photos but no cameras" in str(e.value)
  assert f"regnerf-process-data --input={photos}" in str(e.value)
