"""Canonical train/test view splits of the RegNeRF benchmarks (reference §2).

All indices are 0-based positions in a scene's image list: for DTU the image
``rect_{i+1:03d}_3_r5000.png`` (or ``world_mat_i`` of IDR/NeuS cameras), for LLFF
the i-th image in sorted filename order.
"""

from __future__ import annotations

import numpy as np

from regnerf_tf import errors

# DTU, pixelNeRF split (`dtu_split_type = 'pixelnerf'`). The first n entries of
# the train order are the n input views.
DTU_TRAIN_ORDER: tuple[int, ...] = (25, 22, 28, 40, 44, 48, 0, 8, 13)
DTU_EXCLUDED: tuple[int, ...] = (3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37,
                                 38, 39)
DTU_TEST: tuple[int, ...] = tuple(
    i for i in range(49) if i not in DTU_TRAIN_ORDER and i not in DTU_EXCLUDED)
DTU_NUM_IMAGES = 49

# The 15 DTU scans RegNeRF evaluates on (pixelNeRF's test scans).
DTU_SCANS: tuple[int, ...] = (8, 21, 30, 31, 34, 38, 40, 41, 45, 55, 63, 82,
                              103, 110, 114)
# IDR scans: their RegNeRF masks live in a `mask/` sub-folder (pitfall P12).
DTU_IDR_MASK_SCANS: tuple[int, ...] = (40, 55, 63, 110, 114)

LLFF_SCENES: tuple[str, ...] = ("fern", "flower", "fortress", "horns", "leaves",
                                "orchids", "room", "trex")
LLFF_HOLD = 8

NUM_VIEWS_CHOICES: tuple[int, ...] = (3, 6, 9)


def _check_num_views(num_views: int, maximum: int) -> None:
  if not isinstance(num_views, (int, np.integer)) or not 1 <= num_views <= maximum:
    raise errors.InputError(f"num_views must be an integer in [1, {maximum}]; "
                     f"received {num_views!r}.")


def dtu_train_views(num_views: int) -> list[int]:
  """The first ``num_views`` views of the pixelNeRF train order (1 ≤ n ≤ 9)."""
  _check_num_views(num_views, len(DTU_TRAIN_ORDER))
  return list(DTU_TRAIN_ORDER[:num_views])


def dtu_test_views() -> list[int]:
  """The 25 DTU test views; identical for every number of input views."""
  return list(DTU_TEST)


def llff_test_views(num_images: int, hold: int = LLFF_HOLD) -> list[int]:
  """Every ``hold``-th image, starting at 0 (``llffhold = 8``)."""
  if num_images < 1:
    raise errors.InputError(f"An LLFF scene needs at least one image; got {num_images}.")
  return list(range(0, num_images, hold))


def llff_train_views(num_images: int, num_views: int,
                     hold: int = LLFF_HOLD) -> list[int]:
  """n input views spread evenly over the train pool (reference §2.2, P13).

  The pool is every image that is not a test image. The chosen pool positions
  are ``round(v)`` for v in ``linspace(0, k - 1, n)``, k the pool size, with
  round-half-to-even like Python's ``round``.

  Args:
    num_images: number of images in the scene.
    num_views: number of input views n.
    hold: hold-out period.

  Returns:
    n sorted indices into the scene's full image list.
  """
  pool = [i for i in range(num_images) if i % hold != 0]
  if not pool:
    raise errors.InputError(f"The LLFF scene has {num_images} image(s), all held out "
                     "for testing; at least 2 images are needed.")
  _check_num_views(num_views, len(pool))
  positions = np.round(np.linspace(0, len(pool) - 1, num_views)).astype(int)
  return [pool[p] for p in positions]
