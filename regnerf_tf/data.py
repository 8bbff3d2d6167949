"""tf.data pipelines: per-view records → ray batches (reference §1, §5).

Records come from :func:`regnerf_tf.datasets.readers.from_directory` (a list of
dicts) or from the TFDS builders (``tfds.load('dtu_sparse/3view', split=...)``, a
``tf.data.Dataset`` of the same fields). Rays are dicts with the named fields
of :mod:`regnerf_tf.rays`, built the way the scene's kind
(:mod:`regnerf_tf.scene_kinds`) asks.

Training batches are ``{"rays": {...[B, ...]}, "rgb": [B, 3]}`` with a fixed
global batch size B. Ray generation happens in TensorFlow inside the pipeline,
for the sampled pixels only; its randomness is stateless and derived from
(seed, step), so the stream is the same on every run with the same seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import rays as rays_lib
from regnerf_tf import scene_kinds
from regnerf_tf import unobserved

BATCHINGS = ("single_image", "all_images")


def _to_str(value: Any) -> str:
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
    return _to_str(value.item())
  return str(value)


def _as_records(source: Any) -> list[Mapping[str, Any]]:
  if isinstance(source, tf.data.Dataset):
    return list(source.as_numpy_iterator())
  if isinstance(source, Mapping):
    return [source]
  return list(source)


def load_views(source: tf.data.Dataset | Iterable[Mapping[str, Any]]
               ) -> dict[str, Any]:
  """Stacks the views of one scene.

  Args:
    source: records of one scene (a list from ``from_directory`` or a TFDS
      split such as ``tfds.load('llff_sparse/3view', split='fern_train')``).

  Returns:
    dict with ``images`` uint8 [N, H, W, 3], ``camtoworlds`` float32 [N, 3, 4],
    ``intrinsics`` float32 [N, 3, 3], ``near``/``far`` float32 [N],
    ``view_indices`` int32 [N], ``masks`` uint8 [N, H, W, 1] or None,
    ``kind`` and ``scene`` (str).
  """
  records = sorted(_as_records(source), key=lambda r: int(r["view_index"]))
  if not records:
    raise errors.InputError("No views to load: the record source is empty. Check the "
                     "split name and that the scene folder holds images.")
  kinds = {_to_str(r["kind"]) for r in records}
  scenes = {_to_str(r["scene"]) for r in records}
  if len(kinds) != 1 or len(scenes) != 1:
    raise errors.InputError(f"Expected the views of one scene; received scenes "
                     f"{sorted(scenes)} of kinds {sorted(kinds)}. Load a "
                     "per-scene split such as 'scan114_train'.")
  shapes = {np.shape(r["image"]) for r in records}
  if len(shapes) != 1:
    raise errors.InputError(f"All views of a scene must have the same image size; "
                     f"received shapes {sorted(shapes)}.")
  has_mask = all("mask" in r and bool(r.get("has_mask", True)) for r in records)
  return {
      "images": np.stack([np.asarray(r["image"], np.uint8) for r in records]),
      "camtoworlds": np.stack([np.asarray(r["camtoworld"], np.float32)
                               for r in records]),
      "intrinsics": np.stack([np.asarray(r["intrinsics"], np.float32)
                              for r in records]),
      "near": np.array([r["near"] for r in records], np.float32),
      "far": np.array([r["far"] for r in records], np.float32),
      "view_indices": np.array([r["view_index"] for r in records], np.int32),
      "masks": (np.stack([np.asarray(r["mask"], np.uint8) for r in records])
                if has_mask else None),
      "kind": kinds.pop(),
      "scene": scenes.pop(),
  }


def scene_cameras(source: tf.data.Dataset | Iterable[Mapping[str, Any]]
                  ) -> dict[str, np.ndarray]:
  """All cameras of the scene (train and test), for the unobserved-pose sampler.

  Returns:
    ``camtoworlds`` float32 [M, 3, 4], ``intrinsics`` float32 [M, 3, 3] and
    ``bounds`` float32 [M, 2] (LLFF: scaled depth bounds; DTU: 0.5/3.5).
  """
  first = next(iter(_as_records(source)), None)
  if first is None:
    raise errors.InputError("No records: cannot read the scene's cameras.")
  return {"camtoworlds": np.asarray(first["scene_camtoworlds"], np.float32),
          "intrinsics": np.asarray(first["scene_intrinsics"], np.float32),
          "bounds": np.asarray(first["scene_bounds"], np.float32)}


# ----------------------------------------------------------------------------
# Pipelines.
# ----------------------------------------------------------------------------


def make_train_dataset(source: tf.data.Dataset | Iterable[Mapping[str, Any]],
                       *, batch_size: int = 4096,
                       batching: str = "single_image", seed: int = 0,
                       num_replicas: int = 1,
                       prefetch: int | None = tf.data.AUTOTUNE,
                       start_step: int = 0) -> tf.data.Dataset:
  """Endless stream of training ray batches.

  ``"single_image"`` (the release, pitfall P9): each step draws one training
  view uniformly, then ``batch_size`` pixels of it uniformly with replacement.
  ``"all_images"``: each step draws ``batch_size`` pixels uniformly with
  replacement from all pixels of all training views. Step s uses the stateless
  seed (seed, s), so the stream is reproducible.

  Args:
    source: records of one scene's training views.
    batch_size: global rays per step.
    batching: "single_image" or "all_images".
    seed: integer seed.
    num_replicas: the batch must split evenly across this many replicas.
    prefetch: buffer size for ``prefetch`` (None: no prefetch).
    start_step: index of the first batch (resume without replaying the
      stream: batch s is a function of (seed, s) only).

  Returns:
    ``tf.data.Dataset`` of {"rays": ray dict with [B, 3] / [B, 1] fields,
    "rgb": float32 [B, 3] in [0, 1]}, B = batch_size.
  """
  if batching not in BATCHINGS:
    raise errors.InputError(f"batching must be one of {BATCHINGS}; received "
                     f"{batching!r}.")
  if batch_size < 1 or num_replicas < 1 or batch_size % num_replicas:
    raise errors.InputError(f"batch_size ({batch_size}) must be a positive multiple of "
                     f"num_replicas ({num_replicas}).")
  views = load_views(source)
  kind = views["kind"]
  scene_kinds.get(kind)
  num, height, width = views["images"].shape[:3]
  images = tf.constant(views["images"])
  camtoworlds = tf.constant(views["camtoworlds"])
  intrinsics = tf.constant(views["intrinsics"])
  near = tf.constant(views["near"])
  far = tf.constant(views["far"])

  def sample(step: tf.Tensor) -> dict[str, Any]:
    key = tf.stack([tf.constant(seed, tf.int64), step])
    view_key, pix_key = tf.unstack(
        tf.random.experimental.stateless_split(key, num=2))
    if batching == "single_image":
      view = tf.random.stateless_uniform([], view_key, 0, num, tf.int32)
      view = tf.fill([batch_size], view)
    else:
      view = tf.random.stateless_uniform([batch_size], view_key, 0, num,
                                         tf.int32)
    flat = tf.random.stateless_uniform([batch_size], pix_key, 0,
                                       height * width, tf.int32)
    pix_y, pix_x = flat // width, flat % width
    rays = rays_lib.rays_at_pixels(
        pix_x, pix_y, tf.gather(camtoworlds, view),
        tf.gather(intrinsics, view), height, width, kind,
        tf.gather(near, view), tf.gather(far, view))
    rgb = tf.gather_nd(images, tf.stack([view, pix_y, pix_x], -1))
    return {"rays": rays, "rgb": tf.cast(rgb, tf.float32) / 255.0}

  dataset = tf.data.Dataset.counter(start_step).map(
      sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if prefetch is not None:
    dataset = dataset.prefetch(prefetch)
  return dataset


def training_stream(source: tf.data.Dataset | Iterable[Mapping[str, Any]],
                    config, *,
                    cameras: tf.data.Dataset | Iterable[Mapping[str, Any]]
                    | None = None,
                    start_step: int = 0, num_replicas: int = 1,
                    endless: bool = False) -> tf.data.Dataset:
  """The batches ``RegNeRF.fit`` trains on, as ``config`` says.

  Turns a scene's training views (a TFDS split such as
  ``tfds.load('dtu_sparse/3view', split='scan114_train')``, or records from
  ``regnerf_tf.scenes``) into the stream of observed-ray batches
  (``config.train.batch_size`` rays, ``config.train.batching``) zipped with
  unobserved-view patches (``config.train.patch_batch_size`` rays) whenever
  the config uses them (depth smoothness or the appearance prior)::

    config = regnerf_tf.configs.get_preset("dtu3")
    model = regnerf_tf.model.RegNeRF(config)
    model.compile()                    # Adam with the config's schedule
    model.fit(regnerf_tf.data.training_stream(train_split, config))

  Batch ``s`` depends only on (``config.train.seed``, ``s``), so the stream is
  the same on every run.

  Args:
    source: records of the scene's training views.
    config: a :class:`regnerf_tf.configs.Config`.
    cameras: records carrying the scene's cameras for the unobserved-pose
      bank (each record's ``scene_camtoworlds`` etc.); default ``source``.
    start_step: index of the first batch (a resumed run starts at its step).
    num_replicas: replicas the global batch is split across.
    endless: repeat forever (then ``fit`` needs ``steps_per_epoch``);
      by default the stream holds the ``config.train.max_steps -
      start_step`` batches left in the schedule, so one epoch is the run.

  Returns:
    ``tf.data.Dataset`` of {"rays", "rgb"[, "patch_rays"]} batches.
  """
  t = config.train
  remaining = t.max_steps - start_step
  if not endless and remaining < 1:
    raise errors.InputError(
        f"start_step {start_step} leaves no batches: the schedule ends at "
        f"train.max_steps={t.max_steps}. Raise train.max_steps or pass "
        "endless=True.")
  records = _as_records(source)
  views = load_views(records)
  config.check_scene_kind(views["kind"], "the training views' scene")
  height, width = views["images"].shape[1:3]
  dataset = make_train_dataset(
      records, batch_size=t.batch_size, batching=t.batching, seed=t.seed,
      num_replicas=num_replicas, prefetch=None, start_step=start_step)
  if config.uses_patches:
    patch_ds, _ = unobserved.scene_patch_dataset(
        scene_cameras(records if cameras is None else cameras),
        views["kind"], height, width, config, start_step=start_step)
    dataset = tf.data.Dataset.zip((dataset, patch_ds)).map(
        lambda batch, patch: {**batch, "patch_rays": patch})
  if not endless:
    dataset = dataset.take(remaining)
  return dataset.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(source: tf.data.Dataset | Iterable[Mapping[str, Any]]
                      ) -> tf.data.Dataset:
  """One element per view: the full image of rays and its targets.

  Returns:
    ``tf.data.Dataset`` of {"rays": ray dict with [H, W, ...] fields, "rgb":
    float32 [H, W, 3], "mask": float32 [H, W, 1] in [0, 1] (all ones when the
    scene has no masks), "view_index": int32}.
  """
  views = load_views(source)
  kind = views["kind"]
  num, height, width = views["images"].shape[:3]
  masks = views["masks"]
  if masks is None:
    masks = np.full((num, height, width, 1), 255, np.uint8)
  tensors = {"image": views["images"], "mask": masks,
             "camtoworld": views["camtoworlds"],
             "intrinsics": views["intrinsics"], "near": views["near"],
             "far": views["far"], "view_index": views["view_indices"]}

  def to_rays(view: dict[str, tf.Tensor]) -> dict[str, Any]:
    rays = rays_lib.view_rays(view["camtoworld"], view["intrinsics"], height,
                              width, kind, view["near"], view["far"])
    return {"rays": rays, "rgb": tf.cast(view["image"], tf.float32) / 255.0,
            "mask": tf.cast(view["mask"], tf.float32) / 255.0,
            "view_index": view["view_index"]}

  return tf.data.Dataset.from_tensor_slices(tensors).map(to_rays)
