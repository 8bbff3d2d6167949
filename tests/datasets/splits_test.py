"""The canonical RegNeRF splits, pinned (reference §2)."""

from __future__ import annotations

import pytest

from regnerf_tf.datasets import splits


def test_dtu_pixelnerf_split():
  assert splits.DTU_TRAIN_ORDER == (25, 22, 28, 40, 44, 48, 0, 8, 13)
  assert splits.DTU_EXCLUDED == (3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37,
                                 38, 39)
  assert splits.dtu_test_views() == [1, 2, 9, 10, 11, 12, 14, 15, 23, 24, 26, 27,
                                     29, 30, 31, 32, 33, 34, 35, 41, 42, 43, 45,
                                     46, 47]
  assert splits.dtu_train_views(3) == [25, 22, 28]
  assert splits.dtu_train_views(6) == [25, 22, 28, 40, 44, 48]
  assert splits.dtu_train_views(9) == [25, 22, 28, 40, 44, 48, 0, 8, 13]
  everything = (set(splits.dtu_train_views(9)) | set(splits.DTU_EXCLUDED)
                | set(splits.dtu_test_views()))
  assert everything == set(range(49))
  assert not set(splits.dtu_train_views(9)) & set(splits.dtu_test_views())


def test_dtu_scans():
  assert splits.DTU_SCANS == (8, 21, 30, 31, 34, 38, 40, 41, 45, 55, 63, 82, 103,
                              110, 114)
  assert set(splits.DTU_IDR_MASK_SCANS) <= set(splits.DTU_SCANS)


@pytest.mark.parametrize("num_images, num_views, expected", [
    (20, 3, [1, 10, 19]),
    (20, 6, [1, 4, 7, 12, 15, 19]),
    (20, 9, [1, 3, 5, 7, 10, 12, 14, 17, 19]),
    (62, 3, [1, 30, 61]),
])
def test_llff_train_views(num_images, num_views, expected):
  assert splits.llff_train_views(num_images, num_views) == expected


def test_llff_round_half_to_even():
  # Pool of 10 → linspace(0, 9, 4) = [0, 3, 6, 9]; pool of 11 (13 images)
  # → linspace(0, 10, 5) = [0, 2.5, 5, 7.5, 10] → round half to even [0, 2, 5, 8, 10].
  pool = [i for i in range(13) if i % 8]
  assert splits.llff_train_views(13, 5) == [pool[p] for p in (0, 2, 5, 8, 10)]


def test_llff_test_views():
  assert splits.llff_test_views(20) == [0, 8, 16]
  assert splits.llff_test_views(62) == [0, 8, 16, 24, 32, 40, 48, 56]


def test_bad_counts_raise():
  with pytest.raises(ValueError, match="num_views"):
    splits.dtu_train_views(10)
  with pytest.raises(ValueError, match="num_views"):
    splits.llff_train_views(5, 5)
