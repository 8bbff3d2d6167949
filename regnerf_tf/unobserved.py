"""Unobserved views: the pose bank and the stream of patch rays (RegNeRF §4.1–4.2).

The pose bank is sampled once per scene from all cameras of the scene (train
and test, as the release does; reference pitfall P10). Each training step then
draws P patches of S×S pixels: every patch picks its own pose from the bank and
its own top-left corner; pixels inside a patch are row-major, so reshaping the
flat rays to [P, S, S] gives [patch, row, column].

Which poses a scene gets is its kind's sampler
(:meth:`regnerf_tf.scene_kinds.SceneKind.sample_poses`): around the object for
object-centred scenes, in front of the cameras for forward-facing ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import rays as rays_lib
from regnerf_tf import scene_kinds


def pose_bank(kind: str, camtoworlds: np.ndarray, bounds: np.ndarray | None,
              n: int, seed: int, radius: float = 1.0,
              focus_jitter: float = 0.125) -> np.ndarray:
  """Samples ``n`` unobserved camera-to-world poses for a scene.

  Args:
    kind: the record kind (:mod:`regnerf_tf.scene_kinds`).
    camtoworlds: [M, 3, 4] all cameras of the scene, in the records' axes.
    bounds: [M, 2] near/far of every camera (used for LLFF).
    n: number of poses.
    seed: NumPy seed.
    radius: scale of the sampling box.
    focus_jitter: look-at jitter for object-centric scenes.

  Returns:
    float32 [n, 3, 4] poses in the same axes as ``camtoworlds``.
  """
  poses = scene_kinds.get(kind).sample_poses(
      camtoworlds, bounds, n, np.random.default_rng(seed), radius,
      focus_jitter)
  return poses.astype(np.float32)


def make_patch_dataset(poses: np.ndarray, intrinsics: np.ndarray, height: int,
                       width: int, kind: str, patch_size: int,
                       num_patches: int, seed: int, near: float | None = None,
                       far: float | None = None,
                       start_step: int = 0) -> tf.data.Dataset:
  """Endless stream of patch rays from the pose bank.

  Step s uses the stateless seed (seed, s), so the stream restarts exactly
  where it was after a resume: pass ``start_step``.

  Args:
    poses: [K, 3, 4] pose bank.
    intrinsics: [3, 3] K (the release uses the inverse of the mean K⁻¹ of
      all the scene's cameras).
    height, width: image size of the unobserved views.
    kind: record kind (:mod:`regnerf_tf.scene_kinds`).
    patch_size: S.
    num_patches: P patches per step (global).
    seed: integer seed.
    near, far: ray bounds for kinds without fixed bounds.
    start_step: index of the first element.

  Returns:
    ``tf.data.Dataset`` of ray dicts with [P·S·S, 3] / [P·S·S, 1] fields.
  """
  if patch_size > min(height, width):
    raise errors.InputError(f"patch_size {patch_size} does not fit into images of "
                     f"{width}×{height}.")
  poses_t = tf.constant(poses, tf.float32)
  k_t = tf.constant(intrinsics, tf.float32)
  num_poses = poses.shape[0]
  s = patch_size
  offsets_y, offsets_x = tf.meshgrid(tf.range(s), tf.range(s), indexing="ij")
  offsets_y = tf.reshape(offsets_y, [-1])
  offsets_x = tf.reshape(offsets_x, [-1])

  def sample(step):
    key = tf.stack([tf.constant(seed, tf.int64), step])
    k_pose, k_x, k_y = tf.unstack(
        tf.random.experimental.stateless_split(key, num=3))
    pose_idx = tf.random.stateless_uniform([num_patches], k_pose, 0, num_poses,
                                           tf.int32)
    x0 = tf.random.stateless_uniform([num_patches], k_x, 0, width - s + 1,
                                     tf.int32)
    y0 = tf.random.stateless_uniform([num_patches], k_y, 0, height - s + 1,
                                     tf.int32)
    pix_x = tf.reshape(x0[:, None] + offsets_x[None], [-1])
    pix_y = tf.reshape(y0[:, None] + offsets_y[None], [-1])
    c2w = tf.repeat(tf.gather(poses_t, pose_idx), s * s, axis=0)
    n = num_patches * s * s
    near_t = None if near is None else tf.fill([n], float(near))
    far_t = None if far is None else tf.fill([n], float(far))
    return rays_lib.rays_at_pixels(pix_x, pix_y, c2w, k_t, height, width, kind,
                                   near_t, far_t)

  return tf.data.Dataset.counter(start_step).map(
      sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def scene_patch_dataset(cameras: dict[str, Any], kind: str, height: int,
                        width: int, config, seed: int | None = None,
                        start_step: int = 0
                        ) -> tuple[tf.data.Dataset, np.ndarray]:
  """Pose bank + patch stream for a scene and a :class:`Config`.

  Args:
    cameras: ``data.scene_cameras(records)`` (camtoworlds, intrinsics, bounds).
    kind: record kind.
    height, width: image size.
    config: :class:`regnerf_tf.configs.Config`.
    seed: defaults to ``config.train.seed``.

  Returns:
    (patch ray dataset, the pose bank [K, 3, 4]).
  """
  seed = config.train.seed if seed is None else seed
  bank = pose_bank(kind, cameras["camtoworlds"], cameras.get("bounds"),
                   config.effective_n_random_poses, seed,
                   config.train.random_pose_radius,
                   config.train.random_pose_focus_jitter)
  # The release averages the inverse intrinsics (pixtocam) of all cameras.
  k_mean = np.linalg.inv(np.mean(np.linalg.inv(
      np.asarray(cameras["intrinsics"], np.float64)), axis=0))
  near, far = scene_kinds.get(kind).patch_bounds(cameras["bounds"])
  s = config.reg.patch_size
  num_patches = config.train.patch_batch_size // (s * s)
  dataset = make_patch_dataset(bank, k_mean, height, width, kind, s,
                               num_patches, seed + 1, near, far, start_step)
  return dataset, bank
