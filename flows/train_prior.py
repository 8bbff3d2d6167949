r"""Trains a RealNVP patch prior: ``regnerf-train-prior``.

Examples::

  # The shipped default (offline: scikit-image's bundled photographs).
  regnerf-train-prior --output=flows/weights/default_prior_8x8

  # Your own photographs, or any TFDS image dataset.
  regnerf-train-prior --source=folder --folder=/data/photos --output=my_prior
  regnerf-train-prior --source=tfds --tfds_name=tf_flowers --output=my_prior

Training runs ``--steps`` steps of ``model.fit`` on random dequantised patches,
in chunks of ``--steps_per_epoch`` steps (one Keras progress bar each). After
every chunk the model and optimizer state go to ``--checkpoint_dir`` (default
``<output>.ckpt/``), written atomically; rerunning the same command after a
kill resumes from there with exactly the batches an uninterrupted run would
have seen. At the end the held-out bits/dim is printed and the prior is written
atomically to ``<output>.json`` + ``<output>.weights.h5``, loadable with
``regnerf_tf.flows.load_prior(<output>)``; the checkpoint folder is then
removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402  pylint: disable=g-import-not-at-top
import tensorflow as tf  # noqa: E402

from regnerf_tf import atomic
from regnerf_tf import errors
from regnerf_tf.flows import patches as patches_lib  # noqa: E402
from regnerf_tf.flows import prior as prior_lib  # noqa: E402
from regnerf_tf.flows import realnvp  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Declares the flags (at run time, so entry points can share a process)."""
  flags.DEFINE_enum("source", "skimage", patches_lib.SOURCES,
                    "Where patches come from: the photographs bundled with "
                    "scikit-image (offline), a folder of images, or a TFDS "
                    "dataset.")
  flags.DEFINE_string("folder", None, "Image folder for --source=folder.")
  flags.DEFINE_string("tfds_name", None, "TFDS dataset for --source=tfds, e.g. "
                      "tf_flowers.")
  flags.DEFINE_string("tfds_split", "train", "TFDS split for --source=tfds.")
  flags.DEFINE_string("tfds_data_dir", None, "TFDS data_dir (default: TFDS's).")
  flags.DEFINE_integer("max_images", 500, "At most this many images from a "
                       "folder or TFDS dataset.")
  flags.DEFINE_integer("patch_size", 8, "Patch side S (patches are S×S×3).")
  flags.DEFINE_integer("num_couplings", 12, "Affine coupling layers.")
  flags.DEFINE_integer("hidden_units", 192, "Width of each coupling MLP.")
  flags.DEFINE_integer("num_hidden_layers", 2, "Hidden layers per coupling MLP.")
  flags.DEFINE_float("log_scale_bound", 2.0, "Bound of each |log-scale|.")
  flags.DEFINE_float("alpha", 0.05, "Logit preprocessing constant.")
  flags.DEFINE_integer("steps", 8000, "Training steps (batches).")
  flags.DEFINE_integer("epochs", None, "If set, train epochs × steps_per_epoch "
                       "steps instead of --steps.")
  flags.DEFINE_integer("steps_per_epoch", 500, "Steps per Keras epoch; a "
                       "checkpoint is written after each.")
  flags.DEFINE_integer("batch_size", 256, "Patches per step.")
  flags.DEFINE_float("learning_rate", 1e-3, "Peak Adam learning rate (cosine "
                     "decay to 1% over the run).")
  flags.DEFINE_integer("num_train_patches", 200_000, "Size of the training "
                       "patch bank (flips and rotations augment it).")
  flags.DEFINE_integer("num_heldout_patches", 10_000, "Held-out patches.")
  flags.DEFINE_float("holdout_fraction", 0.2, "Bottom fraction of every "
                     "image's rows that is held out.")
  flags.DEFINE_list("scales", ["1", "0.5"], "Image scales patches are cut at.")
  flags.DEFINE_string("output", "patch_prior_8x8", "Output stem: writes "
                      "<output>.json and <output>.weights.h5.")
  flags.DEFINE_string("checkpoint_dir", None, "Resumable checkpoints (default "
                      "<output>.ckpt).")
  flags.DEFINE_integer("seed", 0, "Seed of patch sampling, dequantisation, "
                       "augmentation and initialisation.")
  flags.DEFINE_bool("jit_compile", True, "XLA-compile the train step (about "
                    "1.5× faster on CPU).")
  flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 1 progress bar, "
                       "2 one line per epoch, 0 silent.")


def data_config_from_flags() -> dict[str, Any]:
  """Everything needed to rebuild the same patch bank (stored in the JSON)."""
  return {
      "source": FLAGS.source,
      "folder": FLAGS.folder,
      "tfds_name": FLAGS.tfds_name,
      "tfds_split": FLAGS.tfds_split,
      "max_images": FLAGS.max_images,
      "patch_size": FLAGS.patch_size,
      "num_train_patches": FLAGS.num_train_patches,
      "num_heldout_patches": FLAGS.num_heldout_patches,
      "holdout_fraction": FLAGS.holdout_fraction,
      "scales": [float(s) for s in FLAGS.scales],
      "seed": FLAGS.seed,
  }


def make_model(flow_config: dict[str, Any], total_steps: int,
               learning_rate: float, jit_compile: bool,
               seed: int) -> realnvp.PatchFlow:
  """A compiled PatchFlow with Adam and a cosine learning-rate decay."""
  keras.utils.set_random_seed(seed)
  model = realnvp.PatchFlow(**flow_config)
  model.build()
  schedule = keras.optimizers.schedules.CosineDecay(
      learning_rate, decay_steps=max(total_steps, 1), alpha=0.01)
  model.compile(
      optimizer=keras.optimizers.Adam(schedule, global_clipnorm=10.0),
      jit_compile=jit_compile)
  return model


class _Checkpointer:
  """Atomic, resumable checkpoints: ``ckpt.keras`` + ``state.json``."""

  def __init__(self, folder: str):
    self.folder = folder
    self.model_path = os.path.join(folder, "ckpt.keras")
    self.state_path = os.path.join(folder, "state.json")

  def load(self, expected: dict[str, Any]):
    """Returns (model, state) from the folder, or (None, None)."""
    if not os.path.isfile(self.state_path):
      return None, None
    with open(self.state_path, encoding="utf-8") as f:
      state = json.load(f)
    if state.get("run") != expected:
      raise errors.InputError(
          f"The checkpoint in {self.folder!r} was written by a run with other "
          f"settings:\n  checkpoint: {state.get('run')}\n  now:        "
          f"{expected}\nDelete the folder or pass a different "
          "--checkpoint_dir/--output.")
    model = keras.saving.load_model(self.model_path, compile=True)
    return model, state

  def save(self, model: keras.Model, state: dict[str, Any]) -> None:
    atomic.write_with(self.model_path, model.save)
    atomic.write_json(self.state_path, state)


class _CheckpointCallback(keras.callbacks.Callback):
  """Writes a checkpoint after every epoch and keeps the run state current."""

  def __init__(self, checkpointer: _Checkpointer, state: dict[str, Any]):
    super().__init__()
    self.checkpointer = checkpointer
    self.state = state
    self._t_epoch = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._t_epoch = time.time()

  def on_epoch_end(self, epoch, logs=None):
    self.state["epochs_done"] = epoch + 1
    self.state["train_seconds"] += time.time() - self._t_epoch
    self.checkpointer.save(self.model, self.state)


def train(argv_command: str) -> dict[str, Any]:
  """Runs the training described by FLAGS; returns the saved metadata."""
  t_start = time.time()
  steps_per_epoch = FLAGS.steps_per_epoch
  if FLAGS.epochs is not None:
    total_steps = FLAGS.epochs * steps_per_epoch
  else:
    total_steps = FLAGS.steps
  if total_steps < 1 or steps_per_epoch < 1 or FLAGS.batch_size < 1:
    raise errors.InputError("Expected --steps (or --epochs), --steps_per_epoch and "
                     "--batch_size >= 1.")
  if total_steps % steps_per_epoch:
    raise errors.InputError(f"Expected --steps ({total_steps}) to be a multiple of "
                     f"--steps_per_epoch ({steps_per_epoch}).")
  num_epochs = total_steps // steps_per_epoch
  flow_config = {
      "patch_size": FLAGS.patch_size,
      "num_couplings": FLAGS.num_couplings,
      "hidden_units": FLAGS.hidden_units,
      "num_hidden_layers": FLAGS.num_hidden_layers,
      "log_scale_bound": FLAGS.log_scale_bound,
      "alpha": FLAGS.alpha,
      "mask_seed": FLAGS.seed,
  }
  data = data_config_from_flags()
  run = {"flow": flow_config, "data": data, "total_steps": total_steps,
         "steps_per_epoch": steps_per_epoch, "batch_size": FLAGS.batch_size,
         "learning_rate": FLAGS.learning_rate}

  logging.info("Building the patch bank from source %s.", FLAGS.source)
  bank = patches_lib.make_bank_from_config(data, FLAGS.tfds_data_dir)
  heldout = patches_lib.dequantize_fixed(bank.heldout, seed=FLAGS.seed + 1)
  print(f"Patches: {bank.train.shape[0]} training, {bank.heldout.shape[0]} "
        f"held-out, {FLAGS.patch_size}×{FLAGS.patch_size}×3.", flush=True)

  ckpt = _Checkpointer(FLAGS.checkpoint_dir or FLAGS.output + ".ckpt")
  model, state = ckpt.load(run)
  if model is None:
    model = make_model(flow_config, total_steps, FLAGS.learning_rate,
                       FLAGS.jit_compile, FLAGS.seed)
    state = {"run": run, "epochs_done": 0, "train_seconds": 0.0}
  else:
    print(f"Resuming from {ckpt.folder} after {state['epochs_done']} of "
          f"{num_epochs} epochs.", flush=True)
    model.jit_compile = FLAGS.jit_compile
  print(f"PatchFlow: {model.count_params()} parameters, {total_steps} steps "
        f"of {FLAGS.batch_size} patches.", flush=True)

  start_step = state["epochs_done"] * steps_per_epoch
  ds = patches_lib.train_dataset(bank.train, FLAGS.batch_size, FLAGS.seed,
                                 start_step, total_steps)
  hist = model.fit(ds, epochs=num_epochs, initial_epoch=state["epochs_done"],
                   steps_per_epoch=steps_per_epoch, shuffle=False,
                   verbose=FLAGS.verbose,
                   callbacks=[_CheckpointCallback(ckpt, state)])
  history = {k: float(v[-1]) for k, v in hist.history.items() if v}

  heldout_bpd = realnvp.mean_bits_per_dim(model, heldout)
  print(f"Held-out NLL: {heldout_bpd:.4f} bits/dim "
        f"({bank.heldout.shape[0]} patches).", flush=True)
  metadata = {
      "command": argv_command,
      "data": data,
      "steps": total_steps,
      "batch_size": FLAGS.batch_size,
      "learning_rate": FLAGS.learning_rate,
      "heldout_bits_per_dim": heldout_bpd,
      "final_train_bits_per_dim": history.get("bits_per_dim"),
      "train_seconds": round(state["train_seconds"], 1),
      "wall_seconds_this_run": round(time.time() - t_start, 1),
      "num_parameters": int(model.count_params()),
      "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
  }
  json_path, weights_path = prior_lib.save_prior(model, FLAGS.output, metadata)
  print(f"Wrote {json_path} and {weights_path} "
        f"({os.path.getsize(weights_path) / 1e6:.2f} MB).", flush=True)
  shutil.rmtree(ckpt.folder, ignore_errors=True)
  return metadata


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  command = " ".join(["regnerf-train-prior"] + sys.argv[1:])
  train(command)


def run() -> None:
  """Console-script entry point (``regnerf-train-prior``)."""
  define_flags()
  # absl's --help lists the flags of the module named by sys.argv[0]; for a
  # console script that is the generated wrapper, so show this module's flags.
  for flag in FLAGS.get_flags_for_module(__name__):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main)


if __name__ == "__main__":
  run()
