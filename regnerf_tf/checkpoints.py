"""Training checkpoints: TensorFlow checkpoints whose variables match by name.

A run folder keeps its checkpoints in ``checkpoints/``::

  checkpoints/ckpt-<step>.index             one checkpoint per save, named
  checkpoints/ckpt-<step>.data-00000-of-00001   by its training step
  checkpoints/checkpoint                    TensorFlow's list, newest last

They are written by ``tf.train.Checkpoint`` through a
``tf.train.CheckpointManager`` that keeps the last ``train.keep_checkpoints``.
Each variable is stored under a name: the network's weights under their Keras
paths (``mlp/trunk_0/kernel``), the optimizer's slots under theirs below
``optimizer/`` (``optimizer/mlp_trunk_0_kernel_momentum``), the step as
``step``. Restoring
matches names and shapes, so a checkpoint of another network is refused with
the first differences named, and any TensorFlow program can read one
(``tf.train.load_checkpoint``; :func:`read_arrays` decodes the names).

**Kills.** TensorFlow writes a checkpoint's files and only then replaces the
list file (atomically, by a rename). A process killed at any moment leaves a
list that names complete checkpoints only; the pieces of an interrupted save
are deleted by :func:`remove_unlisted` when the run resumes.

**Corruption.** :func:`restore` tries the listed checkpoints newest first. One
that cannot be read (a truncated or missing file) is reported and the one
before it is used; when none can be read, :class:`errors.InputError` names the
files and what to do. Keeping at least two checkpoints is what makes the
fallback possible.

**Old runs.** Runs written before this format kept one ``checkpoint.npz``
whose arrays match by position. It is still read when the folder holds no
readable checkpoint of the new format; the next save writes the new format
beside it, and the new format wins from then on.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import zipfile
from typing import Callable

import numpy as np
import tensorflow as tf

from regnerf_tf import errors

FOLDER = "checkpoints"
NAME = "ckpt"
STATE = "checkpoint"  # TensorFlow's list of the folder's checkpoints
LEGACY = "checkpoint.npz"
STEP = "step"
_ROOT = "variables"  # the attribute of tf.train.Checkpoint holding them all
# What TensorFlow raises on a truncated or damaged checkpoint file.
_UNREADABLE = (tf.errors.OpError, ValueError, AssertionError, IndexError,
               KeyError, OSError, RuntimeError)
_NUMBERED = re.compile(rf"^{NAME}-(\d+)(\.index|\.data-\d+-of-\d+|_temp.*)?$")


def folder(workdir: str) -> str:
  return os.path.join(workdir, FOLDER)


def named_variables(model, with_optimizer: bool = True) -> dict:
  """{name: variable} of what a checkpoint holds for ``model`` (a RegNeRF).

  The optimizer is built first when it is not (its slots must exist to be
  saved or restored).
  """
  names = {v.path: v for v in model.mlp.weights}
  optimizer = model.optimizer
  if with_optimizer:
    if not optimizer.built:
      optimizer.build(model.mlp.trainable_variables)
    for v in optimizer.variables:
      if v is not optimizer.iterations:
        # Keras numbers optimizers per process (adam, adam_1, ...): the
        # stored name replaces that first part with "optimizer".
        names["optimizer/" + v.path.split("/", 1)[-1]] = v
  names[STEP] = optimizer.iterations  # the step, also for a model to render
  expected = len(model.mlp.weights) + (
      len(optimizer.variables) if with_optimizer else 1)
  if len(names) != expected:
    raise AssertionError("two variables share a name: "
                         f"{len(names)} names for {expected} variables")
  return names


class Writer:
  """Saves ``model``'s checkpoints into ``<run_dir>/checkpoints``.

  Keeps the newest ``keep`` (older ones are deleted after a new one is
  complete). Create it once the model and its optimizer are built.
  """

  def __init__(self, model, run_dir: str, keep: int):
    self._checkpoint = tf.train.Checkpoint(**{_ROOT: named_variables(model)})
    self._manager = tf.train.CheckpointManager(
        self._checkpoint, folder(run_dir), max_to_keep=keep,
        checkpoint_name=NAME)

  def save(self, step: int) -> str:
    """Writes the checkpoint of ``step``; returns its path prefix."""
    # TensorFlow logs an INFO line per save (through absl), which the
    # command lines' default verbosity (INFO) would print into the progress.
    loggers = [logging.getLogger(n) for n in ("absl", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger, level in zip(loggers, levels):
      logger.setLevel(max(level, logging.WARNING))
    try:
      return self._manager.save(checkpoint_number=int(step))
    finally:
      for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def _step_of(prefix: str) -> int:
  match = _NUMBERED.match(os.path.basename(prefix))
  if not match:
    raise ValueError(f"{prefix} is not a checkpoint of this project")
  return int(match.group(1))


def listed(workdir: str) -> list[str]:
  """Path prefixes of ``workdir``'s checkpoints, newest first.

  From TensorFlow's list file; when that file is missing (deleted by hand,
  or never written because the first save was interrupted), from the
  ``.index`` files present, except those of a save still in progress (its
  ``ckpt-<n>_temp`` folder is there: TensorFlow merges the ``.index`` from it
  and deletes it when the checkpoint is complete).
  """
  directory = folder(workdir)
  if not os.path.isdir(directory):
    return []
  state = None
  if os.path.exists(os.path.join(directory, STATE)):
    try:
      state = tf.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError):  # unparsable list file
      state = None
  if state is not None:
    prefixes = [p if os.path.isabs(p) else os.path.join(directory, p)
                for p in state.all_model_checkpoint_paths]
  else:
    prefixes = [p[:-len(".index")] for p in
                glob.glob(os.path.join(glob.escape(directory), f"{NAME}-*.index"))]
    prefixes = [p for p in prefixes if not _interrupted(p)]
  prefixes = [p for p in prefixes if _NUMBERED.match(os.path.basename(p))]
  return sorted(prefixes, key=_step_of, reverse=True)


# What np.load raises on a damaged .npz (a zip without its directory, cut
# short inside a member, a member that is not an array).
_LEGACY_UNREADABLE = (OSError, ValueError, KeyError, EOFError,
                      zipfile.BadZipFile)


def check_folder(workdir: str) -> None:
  """Refuses a ``checkpoints`` entry of ``workdir`` that is not a folder."""
  path = folder(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise errors.InputError(
        f"{path} is a file; in a run folder that name holds the run's "
        f"checkpoints. Move the file away (or use another --workdir), then "
        "run the same command again.")


def latest_step(workdir: str) -> int | None:
  """The step of the newest listed checkpoint (or of an old-format one)."""
  prefixes = listed(workdir)
  if prefixes:
    return _step_of(prefixes[0])
  legacy = os.path.join(workdir, LEGACY)
  if os.path.exists(legacy):
    try:
      with np.load(legacy, allow_pickle=False) as f:
        return int(f["step"])
    except _LEGACY_UNREADABLE:
      return None
  return None


def exists(workdir: str) -> bool:
  """Whether ``workdir`` holds any checkpoint (readable or not)."""
  return bool(listed(workdir)) or os.path.exists(os.path.join(workdir, LEGACY))


def _decode(key: str) -> str | None:
  """The variable name of a checkpoint key under ``variables/`` (else None)."""
  suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
  if not key.startswith(_ROOT + "/") or not key.endswith(suffix):
    return None
  local = key[len(_ROOT) + 1:-len(suffix)]
  # TensorFlow escapes "." as ".." and "/" as ".S" in object names.
  return re.sub(r"\.(.)", lambda m: {".": ".", "S": "/"}[m.group(1)], local)


def _shapes(prefix: str) -> dict[str, tuple]:
  reader = tf.train.load_checkpoint(prefix)
  out = {}
  for key, shape in reader.get_variable_to_shape_map().items():
    name = _decode(key)
    if name is not None:
      out[name] = tuple(shape)
  return out


def read_arrays(path: str) -> dict[str, np.ndarray]:
  """{variable name: array} of a checkpoint, and its step under ``"step"``.

  ``path`` is a checkpoint's prefix or a run folder (its newest checkpoint,
  or its old-format ``checkpoint.npz``, whose names are positional).
  """
  if os.path.isdir(path):
    prefixes = listed(path)
    if not prefixes:
      legacy = os.path.join(path, LEGACY)
      if os.path.exists(legacy):
        with np.load(legacy, allow_pickle=False) as f:
          return {k: f[k] for k in f.files}
      raise errors.MissingFileError(f"{path} holds no checkpoint.")
    path = prefixes[0]
  reader = tf.train.load_checkpoint(path)
  out = {}
  for key in reader.get_variable_to_shape_map():
    name = _decode(key)
    if name is not None:
      out[name] = reader.get_tensor(key)
  return out


def _check_names(prefix: str, variables: dict, partial: bool) -> None:
  """Refuses a checkpoint whose names or shapes differ from the model's."""
  stored = _shapes(prefix)
  missing = [n for n in variables if n not in stored]  # in the model's order
  extra = [] if partial else sorted(set(stored) - set(variables))
  wrong = [f"{n}: {stored[n]} in the file, {tuple(v.shape)} in the model"
           for n, v in variables.items()
           if n in stored and tuple(stored[n]) != tuple(v.shape)]
  if missing or extra or wrong:
    parts = []
    if missing:
      parts.append(f"missing {_few(missing)}")
    if extra:
      parts.append(f"not in the model {_few(extra)}")
    if wrong:
      parts.append(f"shapes differ: {_few(wrong)}")
    raise errors.CheckpointMismatchError(
        f"Checkpoint {prefix} does not fit this model ({'; '.join(parts)}). "
        "It was written with a different model or optimizer config: use "
        "the config of the run that wrote it, or another --workdir.")


def _few(items: list[str], limit: int = 4) -> str:
  shown = ", ".join(items[:limit])
  return shown + (f" and {len(items) - limit} more" if len(items) > limit
                  else "")


def _read(prefix: str, variables: dict, partial: bool) -> None:
  _check_names(prefix, variables, partial)
  status = tf.train.Checkpoint(**{_ROOT: variables}).read(prefix)
  status.assert_existing_objects_matched()
  status.expect_partial()  # the names were checked above; not save_counter


def restore(model, workdir: str, *, with_optimizer: bool = True,
            log: Callable[[str], None] | None = print) -> int | None:
  """Restores the newest readable checkpoint of ``workdir`` into ``model``.

  Args:
    model: a built RegNeRF.
    workdir: the run folder.
    with_optimizer: also the optimizer's state (to resume training); False
      restores the network's weights and the step only (to render).
    log: where the fallback messages go (None: nowhere).

  Returns:
    the restored step, or None when ``workdir`` holds no checkpoint.

  Raises:
    errors.CheckpointMismatchError: the checkpoint belongs to another model.
    errors.InputError: checkpoints exist but none can be read.
  """
  variables = named_variables(model, with_optimizer)
  failures = []
  for prefix in listed(workdir):
    try:
      _read(prefix, variables, partial=not with_optimizer)
    except errors.CheckpointMismatchError:
      raise
    except _UNREADABLE as e:
      failures.append((prefix, _first_line(e)))
      continue
    step = _step_of(prefix)
    if failures and log is not None:
      log(_fallback_message(failures, f"{prefix} (step {step})"))
    return step
  legacy = os.path.join(workdir, LEGACY)
  if os.path.exists(legacy):
    try:
      step = _restore_legacy(model, legacy, with_optimizer)
    except errors.CheckpointMismatchError:
      raise
    except _LEGACY_UNREADABLE as e:
      failures.append((legacy, _first_line(e)))
    else:
      if log is not None:
        if failures:
          log(_fallback_message(failures, f"{legacy} (step {step})"))
        log(f"Read {legacy} (step {step}), a checkpoint of the format "
            f"before {FOLDER}/; new checkpoints go to {folder(workdir)}.")
      return step
  if not failures:
    return None
  tried = "; ".join(f"{p}: {e}" for p, e in failures)
  raise errors.InputError(
      f"No checkpoint in {workdir} can be read ({tried}). They are truncated "
      "or damaged (a full disk, a copy cut short). Restore the run folder "
      f"from a backup, or delete {folder(workdir)} (and {LEGACY}, if "
      "present) to train the same config from step 0.")


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"


def _fallback_message(failures, used: str) -> str:
  bad = "; ".join(f"{p} ({e})" for p, e in failures)
  return (f"Could not read the newest checkpoint(s): {bad}. Using the "
          f"previous complete one, {used}; the steps since then are trained "
          "again.")


def _restore_legacy(model, path: str, with_optimizer: bool) -> int:
  """Reads an old ``checkpoint.npz`` (weights and optimizer slots by position)."""
  with np.load(path, allow_pickle=False) as f:
    arrays = {k: f[k] for k in f.files}
  weights = model.mlp.weights
  stored = sum(1 for k in arrays if re.fullmatch(r"w\d+", k))
  if stored != len(weights):
    raise errors.CheckpointMismatchError(
        f"Checkpoint {path} holds {stored} weight arrays; the model has "
        f"{len(weights)}. It was written with a different model config: use "
        "the config of the run that wrote it, or another --workdir.")
  for i, variable in enumerate(weights):
    value = arrays[f"w{i}"]
    if tuple(variable.shape) != value.shape:
      raise errors.CheckpointMismatchError(
          f"Checkpoint {path}: weight {variable.path} has shape {value.shape}, "
          f"the model expects {tuple(variable.shape)}. It was written with a "
          "different model config.")
  for i, variable in enumerate(weights):
    variable.assign(arrays[f"w{i}"])
  if with_optimizer:
    if not model.optimizer.built:
      model.optimizer.build(model.mlp.trainable_variables)
    for i, variable in enumerate(model.optimizer.variables):
      if f"o{i}" in arrays:
        variable.assign(arrays[f"o{i}"])
  model.optimizer.iterations.assign(int(arrays["step"]))
  return int(arrays["step"])


def _interrupted(prefix: str) -> bool:
  """Whether the save of ``prefix`` did not finish: its temporary folder is
  still there."""
  return bool(glob.glob(glob.escape(prefix) + "_temp*"))


def unlisted(workdir: str) -> list[str]:
  """Names in ``checkpoints/`` of the pieces of unfinished saves: files and
  folders named like checkpoints (``ckpt-<n>…``) that TensorFlow's list does
  not name (:func:`listed`: without a list file, the complete ``.index``
  files), so also the pieces of an interrupted first save."""
  directory = folder(workdir)
  if not os.path.isdir(directory):
    return []
  keep = {os.path.basename(p) for p in listed(workdir)}
  names = []
  for name in sorted(os.listdir(directory)):
    match = _NUMBERED.match(name)
    if not match:
      continue
    in_progress = (match.group(2) or "").startswith("_temp")
    if in_progress or f"{NAME}-{match.group(1)}" not in keep:
      names.append(name)
  return names


def remove_unlisted(workdir: str) -> list[str]:
  """Deletes the pieces of saves that a killed process did not finish
  (:func:`unlisted`); returns the removed names."""
  removed = unlisted(workdir)
  for name in removed:
    path = os.path.join(folder(workdir), name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  return removed
