"""Random colour patches for training and evaluating the patch prior.

Sources of images (all return a list of uint8 [H, W, 3] arrays):

* :func:`load_skimage_photos`: the colour photographs bundled in the
  scikit-image wheel (offline, the default source);
* :func:`load_folder_images`: every image file in a folder (recursively);
* :func:`load_tfds_images`: the ``image`` feature of any TFDS image dataset.

Held-out split: the bottom ``holdout_fraction`` of the rows of every image
(after an optional rescaling to several scales) gives the held-out patches,
the rest gives the training patches, so no held-out patch overlaps a training
patch. Patches are drawn with a seeded ``numpy.random.Generator``, every image
with the same weight.

Dequantisation: 8-bit colours ``k ∈ {0..255}`` become ``(k + u) / 256`` with
``u ~ U[0, 1)`` drawn by stateless TF ops from ``(seed, step)``, so a resumed
run sees exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Sequence

import numpy as np
import tensorflow as tf

from regnerf_tf import errors

# Natural colour photographs bundled with scikit-image (no network needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket",
                  "motorcycle_left", "motorcycle_right")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp",
                    ".gif")
QUANTISATION_LEVELS = 256
SOURCES = ("skimage", "folder", "tfds")


def to_rgb_uint8(image: np.ndarray, where: str = "image") -> np.ndarray:
  """Any 2-D grey, RGB or RGBA image → uint8 [H, W, 3].

  Args:
    image: [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]; uint8, uint16, bool or
      float in [0, 1].
    where: a name for error messages.

  Returns:
    uint8 [H, W, 3].
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise errors.InputError(f"Expected {where} of shape [H, W], [H, W, 1], "
                     f"[H, W, 3] or [H, W, 4]. Received shape {image.shape}.")
  image = image[..., :3] if image.shape[-1] == 4 else image
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.dtype == np.uint8:
    return image
  if image.dtype == np.uint16:
    return (image >> 8).astype(np.uint8)
  if image.dtype == bool:
    return image.astype(np.uint8) * 255
  if np.issubdtype(image.dtype, np.floating):
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
  raise errors.InputError(f"Expected {where} with dtype uint8, uint16, bool or float "
                   f"in [0, 1]. Received dtype {image.dtype}.")


def load_skimage_photos(names: Sequence[str] = SKIMAGE_PHOTOS
                       ) -> list[np.ndarray]:
  """The colour photographs shipped inside the scikit-image wheel.

  Args:
    names: any of :data:`SKIMAGE_PHOTOS` (``motorcycle_left``/``_right`` are
      the two views of ``skimage.data.stereo_motorcycle``).

  Returns:
    List of uint8 [H, W, 3].
  """
  import skimage.data  # pylint: disable=g-import-not-at-top

  images = []
  for name in names:
    if name in ("motorcycle_left", "motorcycle_right"):
      left, right, _ = skimage.data.stereo_motorcycle()
      image = left if name == "motorcycle_left" else right
    elif name in SKIMAGE_PHOTOS:
      image = getattr(skimage.data, name)()
    else:
      raise errors.InputError(f"Expected scikit-image photo names from "
                       f"{SKIMAGE_PHOTOS}. Received {name!r}.")
    images.append(to_rgb_uint8(image, f"skimage.data.{name}"))
  return images


def load_folder_images(folder: str, max_images: int | None = None
                      ) -> list[np.ndarray]:
  """Every image file under ``folder`` (sorted, recursive).

  Args:
    folder: a directory holding .png/.jpg/... files.
    max_images: keep at most this many (the first in sorted order).

  Returns:
    List of uint8 [H, W, 3].
  """
  import imageio.v3 as iio  # pylint: disable=g-import-not-at-top

  if not os.path.isdir(folder):
    raise errors.MissingFileError(
        f"Expected a folder of images for --source=folder. {folder!r} is not "
        "a directory.")
  paths = sorted(
      os.path.join(root, f) for root, _, files in os.walk(folder)
      for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
  if max_images is not None:
    paths = paths[:max_images]
  if not paths:
    raise errors.MissingFileError(
        f"Expected image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder!r}; "
        "found none.")
  images = []
  for path in paths:
    try:
      image = iio.imread(path)
    except Exception as e:  # pylint: disable=broad-except
      raise errors.InputError(f"Could not read image {path!r}: {e}") from e
    if image.ndim == 4:  # Animated GIF / multi-page: first frame.
      image = image[0]
    images.append(to_rgb_uint8(image, path))
  return images


def load_tfds_images(name: str, split: str = "train",
                     max_images: int | None = 500,
                     data_dir: str | None = None,
                     image_key: str | None = None) -> list[np.ndarray]:
  """Images of a TFDS dataset (downloaded/prepared by TFDS if needed).

  Args:
    name: a TFDS name, e.g. ``"tf_flowers"`` or ``"oxford_flowers102"``.
    split: TFDS split string.
    max_images: keep at most this many images.
    data_dir: TFDS data directory (None = TFDS default).
    image_key: feature holding the image; default: ``"image"`` or the only
      image feature.

  Returns:
    List of uint8 [H, W, 3].
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  ds = tfds.load(name, split=split, data_dir=data_dir)
  spec = ds.element_spec
  if image_key is None:
    if not isinstance(spec, dict):
      raise errors.InputError(f"Expected TFDS dataset {name!r} to yield a dict of "
                       f"features. Received element spec {spec}.")
    candidates = [k for k, s in spec.items()
                  if hasattr(s, "shape") and s.shape.rank == 3 and
                  s.dtype == tf.uint8]
    image_key = "image" if "image" in spec else (
        candidates[0] if len(candidates) == 1 else None)
    if image_key is None:
      raise errors.InputError(f"Expected TFDS dataset {name!r} to have an 'image' "
                       f"feature (or exactly one uint8 [H, W, C] feature). "
                       f"Features: {sorted(spec)}; pass image_key.")
  if max_images is not None:
    ds = ds.take(max_images)
  images = [to_rgb_uint8(ex[image_key], f"{name}[{image_key}]")
            for ex in tfds.as_numpy(ds)]
  if not images:
    raise errors.InputError(f"TFDS dataset {name!r} split {split!r} has no images.")
  return images


def image_pyramid(images: Iterable[np.ndarray],
                  scales: Sequence[float]) -> list[np.ndarray]:
  """Every image at every scale (anti-aliased ``skimage.transform.rescale``)."""
  from skimage import transform  # pylint: disable=g-import-not-at-top

  out = []
  for image in images:
    for scale in scales:
      if not 0.0 < scale <= 1.0:
        raise errors.InputError(f"Expected scales in (0, 1]. Received {scale}.")
      if scale == 1.0:
        out.append(image)
      else:
        small = transform.rescale(image, scale, channel_axis=-1,
                                  anti_aliasing=True, preserve_range=True)
        out.append(np.clip(np.round(small), 0, 255).astype(np.uint8))
  return out


def split_rows(image: np.ndarray, holdout_fraction: float
              ) -> tuple[np.ndarray, np.ndarray]:
  """Top rows for training, bottom ``holdout_fraction`` of rows held out."""
  rows = image.shape[0]
  cut = rows - int(round(rows * holdout_fraction))
  return image[:cut], image[cut:]


def random_patches(images: Sequence[np.ndarray], num: int, patch_size: int,
                   rng: np.random.Generator) -> np.ndarray:
  """``num`` random S×S crops; every usable image is equally likely.

  Args:
    images: uint8 [H, W, 3] arrays; ones smaller than S are skipped.
    num: number of patches.
    patch_size: S.
    rng: the random generator.

  Returns:
    uint8 [num, S, S, 3].
  """
  usable = [im for im in images
            if im.shape[0] >= patch_size and im.shape[1] >= patch_size]
  if not usable:
    raise errors.InputError(f"Expected at least one image of at least {patch_size}×"
                     f"{patch_size} pixels. Received {len(images)} smaller "
                     "ones.")
  which = rng.integers(len(usable), size=num)
  out = np.empty((num, patch_size, patch_size, 3), np.uint8)
  for i, image in enumerate(usable):
    idx = np.flatnonzero(which == i)
    if idx.size == 0:
      continue
    windows = np.lib.stride_tricks.sliding_window_view(
        image, (patch_size, patch_size), axis=(0, 1))  # [h, w, 3, S, S]
    r = rng.integers(windows.shape[0], size=idx.size)
    c = rng.integers(windows.shape[1], size=idx.size)
    out[idx] = np.moveaxis(windows[r, c], 1, -1)
  return out


@dataclasses.dataclass(frozen=True)
class PatchBank:
  """uint8 training and held-out patches, [N, S, S, 3] each."""
  train: np.ndarray
  heldout: np.ndarray

  @property
  def patch_size(self) -> int:
    return int(self.train.shape[1])


def make_patch_bank(images: Sequence[np.ndarray], patch_size: int = 8,
                    num_train: int = 200_000, num_heldout: int = 10_000,
                    holdout_fraction: float = 0.2,
                    scales: Sequence[float] = (1.0, 0.5),
                    seed: int = 0) -> PatchBank:
  """Random training and held-out patches from ``images``.

  Args:
    images: uint8 [H, W, 3] arrays.
    patch_size: S.
    num_train: number of training patches.
    num_heldout: number of held-out patches.
    holdout_fraction: fraction of each image's rows (at the bottom) that is
      held out, in (0, 1).
    scales: every image is also used rescaled by these factors.
    seed: seed of the ``numpy.random.Generator``.

  Returns:
    A :class:`PatchBank`.
  """
  if not 0.0 < holdout_fraction < 1.0:
    raise errors.InputError(f"Expected 0 < holdout_fraction < 1. Received "
                     f"{holdout_fraction}.")
  rng = np.random.default_rng(seed)
  train_parts, heldout_parts = [], []
  for image in image_pyramid(images, scales):
    top, bottom = split_rows(image, holdout_fraction)
    train_parts.append(top)
    heldout_parts.append(bottom)
  return PatchBank(
      train=random_patches(train_parts, num_train, patch_size, rng),
      heldout=random_patches(heldout_parts, num_heldout, patch_size, rng))


def load_images(source: str, folder: str | None = None,
                tfds_name: str | None = None, tfds_split: str = "train",
                tfds_data_dir: str | None = None,
                max_images: int | None = 500) -> list[np.ndarray]:
  """Images of one of :data:`SOURCES`: uint8 [H, W, 3] arrays."""
  if source == "skimage":
    return load_skimage_photos()
  if source == "folder":
    if not folder:
      raise errors.InputError("--source=folder needs --folder=<directory of images>.")
    return load_folder_images(folder, max_images)
  if source == "tfds":
    if not tfds_name:
      raise errors.InputError("--source=tfds needs --tfds_name=<dataset>, e.g. "
                       "tf_flowers.")
    return load_tfds_images(tfds_name, tfds_split, max_images, tfds_data_dir)
  raise errors.InputError(f"Expected --source in {SOURCES}. Received {source!r}.")


def make_bank_from_config(data: dict[str, Any],
                          tfds_data_dir: str | None = None) -> PatchBank:
  """The patch bank described by the ``data`` dict stored in a prior's JSON."""
  images = load_images(data["source"], data.get("folder"),
                       data.get("tfds_name"), data.get("tfds_split", "train"),
                       tfds_data_dir, data.get("max_images"))
  return make_patch_bank(
      images, data["patch_size"], data["num_train_patches"],
      data["num_heldout_patches"], data["holdout_fraction"],
      tuple(data["scales"]), data["seed"])


def dequantize(patches: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """uint8 patches [..., S, S, 3] → float32 ``(k + u) / 256``, u ~ U[0, 1)."""
  k = tf.cast(patches, tf.float32)
  u = tf.random.stateless_uniform(tf.shape(k), seed=seed, dtype=tf.float32)
  return (k + u) / float(QUANTISATION_LEVELS)


def _augment(patches: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Random horizontal flips and 90° rotations, one per patch."""
  bits = tf.random.stateless_uniform([tf.shape(patches)[0], 2], seed=seed,
                                     maxval=2, dtype=tf.int32)
  flipped = tf.where(bits[:, 0, None, None, None] > 0,
                     tf.reverse(patches, axis=[2]), patches)
  rotated = tf.transpose(tf.reverse(flipped, axis=[1]), [0, 2, 1, 3])
  return tf.where(bits[:, 1, None, None, None] > 0, rotated, flipped)


def train_dataset(train: np.ndarray, batch_size: int, seed: int,
                  start_step: int, end_step: int,
                  augment: bool = True) -> tf.data.Dataset:
  """Batches for steps ``[start_step, end_step)``, each a function of the step.

  Args:
    train: uint8 [N, S, S, 3] training patches.
    batch_size: patches per batch.
    seed: run seed.
    start_step: first step (inclusive).
    end_step: last step (exclusive).
    augment: random flips / 90° rotations.

  Returns:
    A dataset of float32 [batch_size, S, S, 3] dequantised patches in [0, 1).
  """
  bank = tf.constant(train)
  n = int(train.shape[0])

  def make_batch(step):
    base = tf.stack([tf.constant(seed, tf.int64), step])
    idx = tf.random.stateless_uniform([batch_size], seed=base, maxval=n,
                                      dtype=tf.int64)
    patches = tf.gather(bank, idx)
    if augment:
      patches = _augment(patches, base + [0, 1 << 40])
    return dequantize(patches, base + [0, 2 << 40])

  ds = tf.data.Dataset.range(start_step, end_step)
  return ds.map(make_batch, num_parallel_calls=2,
                deterministic=True).prefetch(4)


def dequantize_fixed(patches: np.ndarray, seed: int) -> tf.Tensor:
  """uint8 [N, S, S, 3] → float32, dequantised with noise fixed by ``seed``."""
  return dequantize(tf.constant(patches),
                    tf.constant([seed, 7], tf.int64))
