"""Choosing a ``tf.distribute`` strategy, and who writes files.

RegNeRF's train step (``model.RegNeRF.train_step``) is written for any
strategy: the per-replica loss is divided by the number of replicas, gradients
are summed across replicas, then clipped; randomness is stateless and derived
from (seed, step, replica id). What remains here is the choice of strategy
and the chief/worker roles under multi-worker training (``TF_CONFIG``).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from regnerf_tf import errors

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
  """Returns a strategy.

  Args:
    name: "default" (one device), "mirrored" (all local GPUs, or all logical
      CPUs if there are no GPUs), "multi_worker" (``TF_CONFIG`` cluster), or
      "auto" (multi_worker when ``TF_CONFIG`` names more than one task,
      mirrored when there is more than one GPU, else default).
  """
  if name not in STRATEGIES:
    raise errors.InputError(f"strategy must be one of {STRATEGIES}; received {name!r}.")
  if name == "auto":
    if _cluster_size() > 1:
      name = "multi_worker"
    elif len(tf.config.list_logical_devices("GPU")) > 1:
      name = "mirrored"
    else:
      name = "default"
  if name == "multi_worker":
    if _cluster_size() < 1:
      raise errors.InputError("strategy=multi_worker needs TF_CONFIG describing the "
                       "cluster (see the README's multi-worker section).")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)
  return tf.distribute.get_strategy()


def _cluster_size() -> int:
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    return 0
  try:
    cluster = json.loads(raw).get("cluster", {})
  except json.JSONDecodeError as e:
    raise errors.InputError(f"TF_CONFIG is not valid JSON: {e}") from e
  return sum(len(v) for v in cluster.values())


def task_info(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
  """(task type, task id) of this process; (None, 0) without a cluster."""
  resolver = getattr(strategy, "cluster_resolver", None)
  task_type = getattr(resolver, "task_type", None) if resolver else None
  if not task_type:
    return None, 0
  return task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the process that owns the run's files."""
  task_type, task_id = task_info(strategy)
  if task_type is None:
    return True
  cluster = strategy.cluster_resolver.cluster_spec().as_dict()
  if "chief" in cluster:
    return task_type == "chief"
  return task_type == "worker" and task_id == 0


def worker_dir(workdir: str, strategy: tf.distribute.Strategy) -> str:
  """Where this process writes: ``workdir`` for the chief, a private
  ``workdir/.worker_<id>`` for the other workers (they must write their copy of
  every collective save somewhere, and never over the chief's files)."""
  if is_chief(strategy):
    return workdir
  _, task_id = task_info(strategy)
  return os.path.join(workdir, f".worker_{task_id}")
