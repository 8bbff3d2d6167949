"""Writes dummy_data/ for the dtu_sparse builder test: synthetic, no real images.

Official DTU layout with two scans (scan8: flat mask folder; scan114: an IDR
scan with masks in mask/), 49 views each at 64×48 pixels. Cameras sit on a
sphere around the origin and look at it; masks are a disc around the projected
origin. Run: python datasets/dtu_sparse/make_dummy_data.py
"""

from __future__ import annotations

import pathlib

import imageio.v3 as iio
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent / "dummy_data"
SIZE = (48, 64)  # H, W; the cameras are calibrated at 1600×1200 as in DTU.


def _projection(i: int) -> np.ndarray:
  """P = K [R | t] of view i, in 1600×1200 pixel units."""
  azimuth = np.deg2rad(-60 + 120 * (i % 7) / 6)
  elevation = np.deg2rad(20 + 30 * (i // 7) / 6)
  centre = 600.0 * np.array([np.sin(azimuth) * np.cos(elevation),
                             -np.sin(elevation),
                             -np.cos(azimuth) * np.cos(elevation)])
  z = -centre / np.linalg.norm(centre)
  x = np.cross(np.array([0.0, 1.0, 0.0]), z)
  x /= np.linalg.norm(x)
  y = np.cross(z, x)
  rotation = np.stack([x, y, z])  # world → camera rows.
  k = np.array([[2890.0, 0.0, 800.0], [0.0, 2890.0, 600.0], [0.0, 0.0, 1.0]])
  return k @ np.concatenate([rotation, -(rotation @ centre)[:, None]], 1)


def main() -> None:
  calib = HERE / "Calibration" / "cal18"
  calib.mkdir(parents=True, exist_ok=True)
  yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
  for i in range(49):
    p = _projection(i)
    np.savetxt(calib / f"pos_{i + 1:03d}.txt", p, fmt="%.6f")
  for scan, nested in (("scan8", False), ("scan114", True)):
    images = HERE / "Rectified" / scan
    images.mkdir(parents=True, exist_ok=True)
    masks = HERE / "idrmasks" / scan / ("mask" if nested else "")
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(49):
      image = np.stack([(xx * 4 + 5 * i) % 256, (yy * 5 + 3 * i) % 256,
                        np.full(SIZE, 40 * (i % 6))], -1).astype(np.uint8)
      iio.imwrite(images / f"rect_{i + 1:03d}_3_r5000.png", image)
      centre = _projection(i) @ np.array([0.0, 0.0, 0.0, 1.0])
      cx, cy = centre[:2] / centre[2] * SIZE[1] / 1600
      mask = (((xx - cx) ** 2 + (yy - cy) ** 2) < 15 ** 2) * 255
      iio.imwrite(masks / f"{i:03d}.png", mask.astype(np.uint8))


if __name__ == "__main__":
  main()
