"""Pieces shared by the ``dtu_sparse`` and ``llff_sparse`` TFDS builders."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from regnerf_tf import errors
from regnerf_tf.datasets import readers

VERSION = tfds.core.Version("1.0.0")
RELEASE_NOTES = {"1.0.0": "Initial release."}


class ClassProperty:
  """A read-only class attribute descriptor (TFDS reads ``code_path`` on the class)."""

  def __init__(self, value: Any):
    self._value = value

  def __get__(self, instance: Any, owner: Any = None) -> Any:
    return self._value


@dataclasses.dataclass
class SparseViewConfig(tfds.core.BuilderConfig):
  """A number of input views and how images are downsampled.

  Attributes:
    num_views: input views per scene (3, 6 or 9 in the paper).
    resize: "release" (centre-2×2 bilinear, as RegNeRF's code, pitfall P1) or
      "area" (true box filter). For LLFF it is only used when a scene has no
      pre-downsampled ``images_8/`` folder.
    factor: downsampling factor (DTU 4 → 400×300, LLFF 8 → 504×378).
  """
  num_views: int = 3
  resize: str = "release"
  factor: int = 4


def camera_features(with_mask: bool) -> tfds.features.FeaturesDict:
  """The per-view record of ``regnerf_tf.datasets.readers`` as TFDS features."""
  features: dict[str, Any] = {
      "image": tfds.features.Image(shape=(None, None, 3)),
      "camtoworld": tfds.features.Tensor(shape=(3, 4), dtype=np.float32),
      "intrinsics": tfds.features.Tensor(shape=(3, 3), dtype=np.float32),
      "near": tfds.features.Scalar(dtype=np.float32),
      "far": tfds.features.Scalar(dtype=np.float32),
      "scene": tfds.features.Text(),
      "view_index": tfds.features.Scalar(dtype=np.int32),
      "file_name": tfds.features.Text(),
      "kind": tfds.features.Text(),
      "scene_camtoworlds": tfds.features.Tensor(shape=(None, 3, 4),
                                                dtype=np.float32),
      "scene_intrinsics": tfds.features.Tensor(shape=(None, 3, 3),
                                               dtype=np.float32),
      "scene_bounds": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
      "world_transform": tfds.features.Tensor(shape=(4, 4), dtype=np.float32),
      "has_mask": tfds.features.Scalar(dtype=np.bool_),
  }
  if with_mask:
    features["mask"] = tfds.features.Image(shape=(None, None, 1))
  return tfds.features.FeaturesDict(features)


def to_example(record: readers.Record, with_mask: bool) -> dict[str, Any]:
  keys = camera_features(with_mask).keys()
  return {k: record[k] for k in keys}


def find_manual_scenes(root: str, kinds: Sequence[str], looked_for: str,
                       instructions: str) -> dict[str, tuple[str, str]]:
  """The scenes in ``manual_dir`` (:func:`readers.find_scenes`).

  Args:
    root: the builder's ``manual_dir``.
    kinds: scene formats to accept.
    looked_for: the files that make a scene, for the error message.
    instructions: the builder's manual download instructions.

  Raises:
    errors.MissingFileError: ``root`` does not exist, cannot be listed, or
      holds no scene.
  """
  try:
    scenes = readers.find_scenes(root, kinds)
  except errors.MissingFileError as e:
    raise errors.MissingFileError(
        f"Cannot read manual_dir {root}: {e}\nPass a readable --manual_dir "
        f"that holds the scenes.\n{instructions}") from e
  if not scenes:
    seen = sorted(n.rstrip("/") for n in tf.io.gfile.listdir(root))
    raise errors.MissingFileError(
        f"No scene found in manual_dir {root}. Looked for {looked_for}. "
        f"Entries of manual_dir: {seen or 'none'}; none of them has those "
        f"files.\n{instructions}")
  return scenes


def split_generators(
    scenes: Mapping[str, tuple[str, str]],
    generate: Callable[[Sequence[tuple[str, str, str, str]]], Iterator[Any]],
) -> dict[str, Iterator[Any]]:
  """``train``, ``test`` over all scenes and ``<scene>_train``/``<scene>_test``.

  Args:
    scenes: {name: (format, path)} from :func:`readers.find_scenes`.
    generate: list of (name, format, path, split) → example iterator.
  """
  jobs = {"train": [], "test": []}
  for name, (kind, path) in scenes.items():
    for split in ("train", "test"):
      jobs[split].append((name, kind, path, split))
      jobs[f"{name}_{split}"] = [(name, kind, path, split)]
  return {split: generate(job) for split, job in jobs.items()}
