"""regnerf-process-data on the 20 shared fern photos, against LLFF's poses.

Structure from motion (pycolmap, an optional extra) recovers fern's cameras;
after a similarity alignment (Umeyama, computed here) they must agree with
the poses of ``poses_bounds.npy`` to < 1° in rotation and < 2 % of the
scene's extent in camera centre. Skipped when pycolmap is not installed.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

import numpy as np
import pytest

from regnerf_tf import errors
from regnerf_tf.cli import process_data
from regnerf_tf.datasets import colmap, readers

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
FERN = SHARED / "llff" / "fern"

pytestmark = pytest.mark.skipif(not FERN.is_dir(),
                                reason=f"the shared fern photos are not at {FERN}")


def _similarity(source: np.ndarray, target: np.ndarray):
  """(s, Q, t) minimising |s Q source + t − target|² (Umeyama, 1991)."""
  mu_s, mu_t = source.mean(0), target.mean(0)
  a, b = source - mu_s, target - mu_t
  u, d, vt = np.linalg.svd(b.T @ a)
  sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
  q = u @ sign @ vt
  s = (d * np.diag(sign)).sum() / (a ** 2).sum()
  return s, q, mu_t - s * q @ mu_s


@pytest.mark.large
def test_fern_photos_give_fern_cameras(tmp_path):
  pytest.importorskip("pycolmap")
  photos = tmp_path / "phone"
  shutil.copytree(FERN / "images_8", photos)
  lines = []
  scene = process_data.process_photos(str(photos), str(tmp_path / "fern"),
                                      log=lines.append)
  assert any("Registered 20 of 20 photos" in line for line in lines), lines
  assert any("a forward capture" in line for line in lines), lines
  model = colmap.read_model(os.path.join(scene, "sparse", "0"))
  assert [im.name for im in model.images] == sorted(os.listdir(photos))
  raw = np.load(FERN / "poses_bounds.npy")[:, :15].reshape(-1, 3, 5)
  want_centres = raw[:, :, 3]
  want_rotations = np.stack([raw[:, :, 1], raw[:, :, 0], -raw[:, :, 2]], -1)
  centres = np.stack([im.centre for im in model.images])
  rotations = np.stack([im.camtoworld[:, :3] for im in model.images])
  s, q, t = _similarity(centres, want_centres)
  aligned = s * centres @ q.T + t
  extent = np.ptp(want_centres, axis=0).max()
  centre_error = np.linalg.norm(aligned - want_centres, axis=1).max() / extent
  cos = (np.trace(np.swapaxes(q @ rotations, 1, 2) @ want_rotations,
                  axis1=1, axis2=2) - 1) / 2
  rotation_error = np.degrees(np.arccos(np.clip(cos, -1, 1))).max()
  print(f"fern: rotation error {rotation_error:.3f}°, centre error "
        f"{100 * centre_error:.3f} % of the extent")
  assert rotation_error < 1.0 and centre_error < 0.02
  records = readers.from_directory(scene, views=[0], factor=2)
  assert records[0]["kind"] == "llff"
  assert records[0]["image"].shape == (189, 252, 3)


def test_too_few_photos_say_what_to_do(tmp_path):
  pytest.importorskip("pycolmap")
  photos = tmp_path / "two"
  photos.mkdir()
  for name in sorted(os.listdir(FERN / "images_8"))[:2]:
    shutil.copy(FERN / "images_8" / name, photos / name)
  with pytest.raises(errors.InputError, match="at least 3"):
    process_data.process_photos(str(photos), str(tmp_path / "out"), log=None)
  assert not (tmp_path / "out").exists()


def test_without_pycolmap_the_error_says_how_to_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "pycolmap", None)
  with pytest.raises(errors.MissingFileError, match=r"\.\[colmap\]"):
    process_data.process_photos(str(FERN / "images_8"), str(tmp_path / "out"),
                                log=None)
  assert not (tmp_path / "out").exists()


def test_an_output_that_holds_files_is_refused(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  (out / "notes.txt").write_text("mine")
  with pytest.raises(errors.InputError, match="not an empty folder"):
    process_data.process_photos(str(FERN / "images_8"), str(out), log=None)
  assert (out / "notes.txt").read_text() == "mine"


def test_frames_are_taken_evenly_from_a_video(tmp_path):
  """A phone video: --frames evenly spaced frames, upright, at its size."""
  import imageio.v3 as iio  # pylint: disable=import-outside-toplevel
  names = sorted(os.listdir(FERN / "images_8"))
  frames = np.stack([iio.imread(FERN / "images_8" / n)[:368, :496, :3]
                     for n in names])
  video = tmp_path / "walk.mp4"
  iio.imwrite(video, frames, fps=10, codec="libx264")
  photos = process_data.collect_photos(str(video), 5)
  assert [name for name, _ in photos] == [
      f"frame_{i:05d}.png" for i in (0, 5, 10, 14, 19)]
  assert {image.shape for _, image in photos} == {(368, 496, 3)}
  for (_, image), i in zip(photos, (0, 5, 10, 14, 19)):
    # Lossy video: close to the photo it was made from, far from the others.
    assert np.abs(image.astype(float) - frames[i]).mean() < 8
    assert np.abs(image.astype(float) - frames[(i + 7) % 20]).mean() > 10
