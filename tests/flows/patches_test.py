"""Tests of patch sources, the held-out split and the step-seeded pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf.flows import patches


def test_skimage_photos_are_offline_rgb_uint8():
  images = patches.load_skimage_photos(("astronaut", "motorcycle_left"))
  assert [im.shape for im in images] == [(512, 512, 3), (500, 741, 3)]
  assert all(im.dtype == np.uint8 for im in images)
  with pytest.raises(ValueError, match="Expected scikit-image photo names"):
    patches.load_skimage_photos(("camera_obscura",))


def test_folder_source(tmp_path):
  import imageio.v3 as iio
  rng = np.random.default_rng(0)
  (tmp_path / "sub").mkdir()
  iio.imwrite(tmp_path / "a.png", rng.integers(0, 255, (20, 30, 3), np.uint8))
  iio.imwrite(tmp_path / "sub" / "b.png", rng.integers(0, 255, (16, 16), np.uint8))
  (tmp_path / "notes.txt").write_text("not an image")
  images = patches.load_folder_images(str(tmp_path))
  assert [im.shape for im in images] == [(20, 30, 3), (16, 16, 3)]
  with pytest.raises(FileNotFoundError, match="Expected a folder of images"):
    patches.load_folder_images(str(tmp_path / "missing"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="Expected image files"):
    patches.load_folder_images(str(tmp_path / "empty"))


def test_heldout_patches_come_from_the_bottom_rows_only():
  # Rows 0..79 hold colour 10, the bottom 20 rows colour 200.
  image = np.full((100, 60, 3), 10, np.uint8)
  image[80:] = 200
  bank = patches.make_patch_bank([image], patch_size=4, num_train=500,
                                 num_heldout=200, holdout_fraction=0.2,
                                 scales=(1.0,), seed=0)
  assert bank.train.shape == (500, 4, 4, 3) and bank.train.dtype == np.uint8
  assert bank.heldout.shape == (200, 4, 4, 3)
  assert np.all(bank.train == 10)
  assert np.all(bank.heldout == 200)
  again = patches.make_patch_bank([image], 4, 500, 200, 0.2, (1.0,), seed=0)
  np.testing.assert_array_equal(again.train, bank.train)


def test_random_patches_are_crops_of_the_image():
  image = np.arange(12 * 10 * 3, dtype=np.int64).reshape(12, 10, 3) % 251
  image = image.astype(np.uint8)
  out = patches.random_patches([image], 50, 3, np.random.default_rng(1))
  windows = np.lib.stride_tricks.sliding_window_view(image, (3, 3), axis=(0, 1))
  windows = np.moveaxis(windows, 2, -1).reshape(-1, 3, 3, 3)
  for p in out:
    assert np.any(np.all(windows == p, axis=(1, 2, 3)))
  with pytest.raises(ValueError, match="at least 3×3"):
    patches.random_patches([image[:2]], 5, 3, np.random.default_rng(1))


def test_dequantisation_stays_inside_the_bins():
  k = tf.constant(np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
                  .repeat(3, axis=-1))
  x = patches.dequantize(k, tf.constant([0, 1], tf.int64)).numpy()
  lo = k.numpy() / 256.0
  assert np.all(x >= lo) and np.all(x < lo + 1.0 / 256.0)
  assert np.std(x - lo) > 0.5 / 256.0 / 4  # Not a constant offset.


def test_train_dataset_is_a_function_of_the_step():
  bank = np.random.default_rng(0).integers(0, 255, (100, 4, 4, 3), np.uint8)
  full = [b.numpy() for b in patches.train_dataset(bank, 8, seed=3,
                                                    start_step=0, end_step=4)]
  resumed = [b.numpy() for b in patches.train_dataset(bank, 8, seed=3,
                                                       start_step=2, end_step=4)]
  assert len(full) == 4 and full[0].shape == (8, 4, 4, 3)
  np.testing.assert_array_equal(full[2], resumed[0])
  np.testing.assert_array_equal(full[3], resumed[1])
  assert not np.array_equal(full[0], full[1])
  other_seed = next(iter(patches.train_dataset(bank, 8, 4, 0, 1))).numpy()
  assert not np.array_equal(other_seed, full[0])


def test_to_rgb_uint8_rejects_bad_shapes():
  with pytest.raises(ValueError, match=r"Expected img of shape \[H, W\]"):
    patches.to_rgb_uint8(np.zeros((4, 4, 2), np.uint8), "img")
  np.testing.assert_array_equal(
      patches.to_rgb_uint8(np.ones((2, 2), np.float32)), np.full((2, 2, 3), 255))


def test_tfds_source_with_mocked_dataset():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=4):
    images = patches.load_tfds_images("tf_flowers", max_images=3)
    same = patches.load_images("tfds", tfds_name="tf_flowers", max_images=3)
  assert len(images) == 3
  assert all(im.ndim == 3 and im.shape[-1] == 3 and im.dtype == np.uint8
             for im in images)
  np.testing.assert_array_equal(images[0], same[0])
