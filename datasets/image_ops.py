"""Image downsampling used when building datasets (NumPy, float64 internally).

Two filters:

* ``"release"``: what RegNeRF's DTU loader actually computes (pitfall P1): its
  ``cv2.resize`` call passes the interpolation flag in the ``dst`` slot, so OpenCV
  uses bilinear interpolation. For an integer factor f bilinear resampling reads
  the source at ``f * x + (f - 1) / 2``: for even f the mean of the central 2×2
  pixels of each f×f block, for odd f the block's centre pixel.
* ``"area"``: the mean of each f×f block (a true box / area filter).

Images whose height or width is not a multiple of the factor are cropped at the
bottom/right to the nearest multiple first.
"""

from __future__ import annotations

import numpy as np

from regnerf_tf import errors

FILTERS = ("release", "area")


def downsample(image: np.ndarray, factor: int, method: str = "release"
               ) -> np.ndarray:
  """Downsamples by an integer factor.

  Args:
    image: [H, W] or [H, W, C] array (any numeric dtype).
    factor: integer ≥ 1.
    method: "release" (centre-2×2 bilinear, as the release) or "area".

  Returns:
    float64 [H // factor, W // factor(, C)] in the input's value range.
  """
  if method not in FILTERS:
    raise errors.InputError(f"Downsampling method must be one of {FILTERS}; received "
                     f"{method!r}.")
  if int(factor) != factor or factor < 1:
    raise errors.InputError(f"The downsampling factor must be a positive integer; "
                     f"received {factor!r}.")
  factor = int(factor)
  image = np.asarray(image, np.float64)
  if factor == 1:
    return image
  h, w = image.shape[0] // factor, image.shape[1] // factor
  if h == 0 or w == 0:
    raise errors.InputError(f"Image of shape {image.shape} is smaller than the "
                     f"downsampling factor {factor}.")
  blocks = image[:h * factor, :w * factor].reshape(
      (h, factor, w, factor) + image.shape[2:])
  if method == "area":
    return blocks.mean(axis=(1, 3))
  mid = factor // 2
  if factor % 2:
    return blocks[:, mid, :, mid]
  return blocks[:, mid - 1:mid + 1, :, mid - 1:mid + 1].mean(axis=(1, 3))


def to_uint8(image: np.ndarray) -> np.ndarray:
  """Rounds a [0, 255] float image to uint8 (round half to even)."""
  return np.clip(np.round(image), 0, 255).astype(np.uint8)
