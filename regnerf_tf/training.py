"""Training loop plumbing: data, strategy, checkpoints with resume, logging.

:func:`train` runs ``model.fit`` on a scene's records. It survives being
killed: the model and optimizer state are saved every
``config.train.checkpoint_every`` steps (:mod:`regnerf_tf.checkpoints`: the
last ``train.keep_checkpoints`` are kept, a damaged newest one falls back to
the one before), and a new call with the same ``workdir`` restores the latest
checkpoint and continues at the same step with the same data stream and
schedules (everything is a function of ``optimizer.iterations``).

Files in ``workdir``: ``config.json`` (the resolved config), ``checkpoints/``
(weights + optimizer state + step, by name), ``tensorboard/`` (scalars and
held-out images), ``final.weights.h5`` when training ends.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from regnerf_tf import atomic
from regnerf_tf import checkpoints
from regnerf_tf import errors
from regnerf_tf import configs as configs_lib
from regnerf_tf import data as data_lib
from regnerf_tf import distribute
from regnerf_tf import losses
from regnerf_tf import model as model_lib
from regnerf_tf import rays as rays_lib
from regnerf_tf import run_folder

CONFIG = run_folder.CONFIG
FINAL_WEIGHTS = "final.weights.h5"


def current_step(model: keras.Model) -> int:
  """``optimizer.iterations`` as an int, also for distributed variables."""
  value = model.optimizer.iterations.value
  if isinstance(value, tf.distribute.DistributedValues):
    value = tf.distribute.get_strategy().experimental_local_results(value)[0]
  return int(tf.convert_to_tensor(value).numpy())


class TrainingMonitor(keras.callbacks.Callback):
  """Progress bar, rays/s, learning rate, checkpoints, the step limit, images.

  Args:
    config: the run's config.
    workdir: where this process writes checkpoints (None: nowhere); the
      chief's run folder, or a worker's private folder.
    rays_per_step: observed + patch rays per step (for rays/s).
    preview: optional (rays [H, W, ...], rgb [H, W, 3]) of a held-out view to
      render into TensorBoard every ``image_every`` steps.
    image_every: steps between preview images (0 disables).
    verbose: show the progress bar.
    is_chief: only the chief writes TensorBoard files.
  """

  def __init__(self, config: configs_lib.Config, workdir: str | None,
               rays_per_step: int, preview=None, image_every: int = 0,
               verbose: bool = True, is_chief: bool = True):
    super().__init__()
    self.config = config
    self.workdir = workdir
    self.rays_per_step = rays_per_step
    self.preview = preview
    self.image_every = image_every
    self.verbose = verbose
    self.is_chief = is_chief
    self._bar = None
    self._last = None
    self._writer = None
    self.nonfinite_streak = 0  # consecutive skipped steps
    self.nonfinite_total = 0  # skipped steps in this process
    self.last_checkpoint = None  # path prefix of this run's newest checkpoint
    self.last_checkpoint_step = None
    self._checkpoint_writer = None
    self.divergence = None  # the DivergenceError message, once it happened

  def on_train_begin(self, logs=None):
    start = current_step(self.model)
    if self.verbose:
      self._bar = keras.utils.Progbar(self.config.train.max_steps,
                                      stateful_metrics=None, unit_name="step")
      self._bar.update(start)
    if self.workdir and self.is_chief:
      self._writer = tf.summary.create_file_writer(
          os.path.join(self.workdir, "tensorboard", "train"))
    self._last = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    logs = logs if logs is not None else {}
    step = current_step(self.model)
    now = time.perf_counter()
    elapsed, self._last = now - self._last, now
    logs["rays_per_sec"] = self.rays_per_step / max(elapsed, 1e-9)
    t = self.config.train
    if float(logs.pop("nonfinite", 0.0)) > 0:
      self.nonfinite_streak += 1
      self.nonfinite_total += 1
    else:
      self.nonfinite_streak = 0
    logs["skipped_steps"] = self.nonfinite_total
    if self._bar is not None:
      shown = [(k, float(logs[k])) for k in ("loss", "psnr", "rays_per_sec")
               if k in logs]
      self._bar.update(min(step, t.max_steps), values=shown)
    if self._writer is not None and (step % t.log_every == 0 or step == 1
                                     or step >= t.max_steps):
      logs["lr"] = float(losses.log_linear_lr(
          step, t.lr_init, t.lr_final, t.max_steps, t.lr_delay_steps,
          t.lr_delay_mult))
      with self._writer.as_default(step=step):
        for key, value in logs.items():
          tf.summary.scalar(key, float(value))
    if (self._writer is not None and self.preview is not None
        and self.image_every and step % self.image_every == 0):
      rays, rgb = self.preview
      out = self.model.render_chunked(rays)
      depth = out["depth"]
      depth = (depth - tf.reduce_min(depth)) / (
          tf.reduce_max(depth) - tf.reduce_min(depth) + 1e-8)
      with self._writer.as_default(step=step):
        tf.summary.image("heldout/rgb", tf.clip_by_value(out["rgb"], 0, 1)[None])
        tf.summary.image("heldout/depth", depth[None, ..., None])
        tf.summary.image("heldout/target", tf.convert_to_tensor(rgb)[None])
    if self.nonfinite_streak >= t.max_nonfinite_steps:
      self.divergence = self._divergence_message(step)
      self.model.stop_training = True
      return
    # No checkpoint in the middle of a non-finite streak: the last one
    # written stays the last good state to go back to.
    if (self.workdir and self.nonfinite_streak == 0
        and (step % t.checkpoint_every == 0 or step >= t.max_steps)):
      if self._checkpoint_writer is None:
        self._checkpoint_writer = checkpoints.Writer(
            self.model, self.workdir, t.keep_checkpoints)
      self.last_checkpoint = self._checkpoint_writer.save(step)
      self.last_checkpoint_step = step
    if step >= t.max_steps:
      self.model.stop_training = True

  def _divergence_message(self, step: int) -> str:
    t = self.config.train
    if self.workdir and self.last_checkpoint is not None:
      last = (f"The last good checkpoint is {self.last_checkpoint} (step "
              f"{self.last_checkpoint_step}).")
    elif self.workdir and checkpoints.exists(self.workdir):
      last = ("The last good checkpoint is the one this run resumed from "
              f"(step {checkpoints.latest_step(self.workdir)}).")
    else:
      last = "No checkpoint was written by this run."
    return (
        f"Training stopped at step {step}: {self.nonfinite_streak} consecutive "
        "steps had a non-finite loss or gradient (each was skipped; the "
        "weights were not changed). Likely causes: a learning rate too high "
        f"for this scene (train.lr_init={t.lr_init}), near/far bounds that do "
        "not enclose the scene (the records' near/far: check the camera "
        "file's bounds or scale), or "
        "NaN/inf in the images or poses. " + last + " Fix the cause and run "
        "the same command to resume from it (or raise "
        "train.max_nonfinite_steps).")

  def on_train_end(self, logs=None):
    if self._writer is not None:
      self._writer.flush()


def train(config: configs_lib.Config, train_records: Sequence[dict],
          workdir: str | None = None, *,
          all_records: Sequence[dict] | None = None,
          preview_record: dict | None = None,
          patch_prior=None, strategy: tf.distribute.Strategy | None = None,
          verbose: bool = True, image_every: int = 0,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          resume_with_changes: bool = False) -> model_lib.RegNeRF:
  """Trains (or resumes training) and returns the model.

  Args:
    config: resolved config.
    train_records: records of the training views of one scene.
    workdir: folder for config, checkpoints and logs; a checkpoint found there
      is resumed. None trains without saving anything. Under multi-worker
      training every worker resumes from the chief's checkpoint (a shared
      filesystem) and non-chief workers write into ``workdir/.worker_<id>``.
    all_records: records carrying the scene's cameras for the pose bank.
    preview_record: a held-out view to show in TensorBoard.
    patch_prior: frozen prior for the appearance term.
    strategy: a ``tf.distribute`` strategy (default: the current one).
    verbose: progress bar.
    image_every: steps between TensorBoard preview images.
    callbacks: more Keras callbacks, run after the training monitor (so they
      see the step's checkpoint already written).
    resume_with_changes: continue a run in ``workdir`` although ``config``
      differs from its own in fields that change the result; the changes go
      to its ``history.json`` (:mod:`regnerf_tf.run_folder`). Without it such
      a start is refused, naming the fields.

  Returns:
    the trained :class:`RegNeRF`.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.is_chief(strategy)
  own_dir = distribute.worker_dir(workdir, strategy) if workdir else None
  model = model_lib.build_model(config, patch_prior=patch_prior,
                                strategy=strategy)
  step = 0
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    checkpoints.check_folder(workdir)
    changes = run_folder.check_start(workdir, config, resume_with_changes)
    if own_dir and os.path.isdir(own_dir):
      stale = (atomic.remove_stale_temporaries(own_dir)
               + checkpoints.remove_unlisted(own_dir))
      if stale and verbose:
        print(f"Removed {len(stale)} unfinished file(s) of an interrupted "
              f"run from {own_dir}: {stale}")
    with strategy.scope():
      restored = checkpoints.restore(model, workdir)
    if restored is not None:
      step = restored
      if verbose:
        print(f"Resuming from the checkpoint of step {step} in {workdir}.")
    if chief:  # after the restore: a refused run leaves the folder as it was
      run_folder.record_start(workdir, config, changes, step,
                              resume_with_changes)
  t = config.train
  if step >= t.max_steps:
    final = os.path.join(own_dir, FINAL_WEIGHTS) if own_dir else None
    if final and not os.path.exists(final):  # killed after the last step
      save_weights_atomic(model, final)
    return model
  dataset = data_lib.training_stream(
      train_records, config, cameras=all_records, start_step=step,
      num_replicas=strategy.num_replicas_in_sync, endless=True)
  preview = None
  if preview_record is not None:
    views = data_lib.load_views([preview_record])
    rays = rays_lib.view_rays(views["camtoworlds"][0], views["intrinsics"][0],
                              views["images"].shape[1], views["images"].shape[2],
                              views["kind"], views["near"][0], views["far"][0])
    preview = (rays, views["images"][0].astype(np.float32) / 255.0)
  monitor = TrainingMonitor(
      config, own_dir, t.batch_size + (t.patch_batch_size if config.uses_patches
                                       else 0),
      preview=preview, image_every=image_every, verbose=verbose,
      is_chief=chief)
  steps_per_epoch = min(t.log_every, t.max_steps)
  epochs = -(-t.max_steps // steps_per_epoch)
  model.fit(dataset, steps_per_epoch=steps_per_epoch, epochs=epochs,
            initial_epoch=step // steps_per_epoch,
            callbacks=[monitor, *callbacks],
            verbose=0)
  if monitor.divergence:
    raise errors.DivergenceError(monitor.divergence)
  if own_dir:
    save_weights_atomic(model, os.path.join(own_dir, FINAL_WEIGHTS))
  return model


def save_weights_atomic(model: keras.Model, path: str) -> None:
  """``model.save_weights`` under a temporary name, then renamed into place."""
  atomic.write_with(path, model.save_weights)


def log_heldout(workdir: str, step: int, result: dict[str, Any]) -> None:
  """Held-out PSNR (and SSIM) at ``step`` into ``<workdir>/tensorboard/eval``."""
  writer = tf.summary.create_file_writer(
      os.path.join(workdir, "tensorboard", "eval"))
  with writer.as_default(step=step):
    tf.summary.scalar("heldout/psnr", result["mean_psnr"])
    if "mean_ssim" in result:
      tf.summary.scalar("heldout/ssim", result["mean_ssim"])
  writer.flush()


def load_run(workdir: str, patch_prior=None) -> model_lib.RegNeRF:
  """The model of a run folder written by :func:`train` (config + checkpoint).

  Raises:
    FileNotFoundError: naming the missing file when ``workdir`` holds no run.
  """
  config_path = os.path.join(workdir, CONFIG)
  for path, what, present in (
      (config_path, "the run's config", os.path.exists(config_path)),
      (checkpoints.folder(workdir), "a checkpoint", checkpoints.exists(workdir))):
    if not present:  # an empty checkpoints/ would give an untrained model
      raise errors.MissingFileError(
          f"{path} not found: {workdir} does not hold {what}. Point at a "
          "folder written by regnerf-train (or regnerf-demo).")
  config = run_folder.run_config(workdir)
  config = config.replace(**{"reg.appearance_weight": 0.0})  # not needed to render
  model = model_lib.build_model(config, patch_prior=patch_prior)
  checkpoints.restore(model, workdir, with_optimizer=False)
  return model


save_json = atomic.write_json
