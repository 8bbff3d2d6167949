"""Writes dummy_data/ for the llff_sparse builder test: synthetic, no real images.

Two forward-facing scenes: "fern" with 20 views (like the real scene, so the
split is test [0, 8, 16], 3 views [1, 10, 19]) and "room" with 10 views, each
32×24 pixels with a poses_bounds.npy whose hwf column says 256×192 (factor 8).
Run: python datasets/llff_sparse/make_dummy_data.py
"""

from __future__ import annotations

import pathlib

import imageio.v3 as iio
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent / "dummy_data"


def _poses_bounds(num: int, rng: np.random.Generator) -> np.ndarray:
  """[num, 17]: LLFF [down, right, back | t | hwf] rows plus bounds."""
  rows = []
  for i in range(num):
    t = np.array([0.3 * np.cos(i), 0.2 * np.sin(i), 0.05 * i / num])
    # Camera looks along -z of the world; LLFF columns are [down, right, back].
    down, right, back = np.array([0, -1.0, 0]), np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    pose = np.stack([down, right, back, t, [192.0, 256.0, 220.0]], 1)
    bounds = [2.0 + rng.uniform(0, 0.5), 20.0 + rng.uniform(0, 5)]
    rows.append(np.concatenate([pose.reshape(-1), bounds]))
  return np.array(rows)


def main() -> None:
  rng = np.random.default_rng(0)
  for scene, num in (("fern", 20), ("room", 10)):
    folder = HERE / scene / "images_8"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(HERE / scene / "poses_bounds.npy", _poses_bounds(num, rng))
    for i in range(num):
      yy, xx = np.mgrid[0:24, 0:32]
      image = np.stack([xx * 8, yy * 10, np.full_like(xx, 12 * i)], -1)
      iio.imwrite(folder / f"image{i:03d}.png", image.astype(np.uint8))


if __name__ == "__main__":
  main()
