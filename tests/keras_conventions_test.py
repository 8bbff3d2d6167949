"""RegNeRF as a Keras user handles a model: .keras files with the prior on,
Keras' callbacks, evaluate in bounded memory, a summary that names things."""

from __future__ import annotations

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import configs, data, errors, flows, model as model_lib, scenes
from tests import training_test

# training_test's tiny network, with the shipped prior's 8×8 patches.
TINY = {**training_test.TINY, "train.patch_batch_size": 64,
        "reg.patch_size": 8, "train.max_steps": 4, "train.lr_delay_steps": 0,
        "reg.anneal_steps": 2, "train.render_chunk": 128}


@pytest.fixture(scope="module")
def scene():
  return scenes.synthetic_scene(height=24, width=32)


def _config(**extra):
  return configs.get_preset("dtu3_small", **{**TINY, **extra})


def _trained(scene, config, prior=None, steps=2):
  model = model_lib.RegNeRF(config, patch_prior=prior)
  model.compile()
  model.fit(data.training_stream(scene.train, config, endless=True),
            steps_per_epoch=steps, verbose=0)
  return model


def _render(model, scene):
  rays = next(iter(data.make_eval_dataset(scene.test[:1])))["rays"]
  flat = {k: tf.reshape(v, [-1, v.shape[-1]]) for k, v in rays.items()}
  return model(flat)["rgb"].numpy()


def test_keras_file_with_the_shipped_prior_round_trips(scene, tmp_path):
  config = _config(**{"reg.appearance_weight": 1e-3})
  model = _trained(scene, config, flows.load_default_prior())
  path = str(tmp_path / "run.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, model_lib.RegNeRF)
  assert loaded.patch_prior.prior.source == "default"
  for a, b in zip(loaded.mlp.get_weights(), model.mlp.get_weights()):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(_render(loaded, scene), _render(model, scene))
  # Compiled as saved: the optimizer's step and state came back, and fit
  # continues from there.
  assert int(loaded.optimizer.iterations) == 2
  loaded.fit(data.training_stream(scene.train, config, start_step=2),
             verbose=0)
  assert int(loaded.optimizer.iterations) == config.train.max_steps


def test_keras_file_refers_to_a_saved_prior_by_its_stem(scene, tmp_path):
  flow = flows.PatchFlow(patch_size=8, num_couplings=2, hidden_units=8)
  flow.build()
  stem = str(tmp_path / "priors" / "mine")
  flows.save_prior(flow, stem)
  config = _config(**{"reg.appearance_weight": 1e-3})
  # A prior built in memory could not be found again: refused at save time.
  in_memory = _trained(scene, config, flow, steps=1)
  with pytest.raises(errors.InputError, match="save_prior"):
    in_memory.save(str(tmp_path / "lost.keras"))
  model = _trained(scene, config, flows.load_prior(stem), steps=1)
  path = str(tmp_path / "run.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert loaded.patch_prior.prior.source == os.path.abspath(stem)
  for a, b in zip(loaded.patch_prior.prior.get_weights(), flow.get_weights()):
    np.testing.assert_array_equal(a, b)
  shutil.move(str(tmp_path / "priors"), str(tmp_path / "moved"))
  with pytest.raises(errors.MissingFileError, match="mine"):
    keras.models.load_model(path)


def test_summary_names_the_model_its_network_and_its_prior(scene):
  model = model_lib.RegNeRF(_config(**{"reg.appearance_weight": 1e-3}),
                            patch_prior=flows.load_default_prior())
  lines = []
  model.summary(print_fn=lambda line, *a, **k: lines.append(line))
  text = "\n".join(lines)
  assert 'Model: "regnerf"' in text
  assert "mlp (MipNerfMLP)" in text
  assert "Config: dtu3_small; MLP 2×16" in text
  assert "depth smoothness on, appearance on" in text
  assert "Patch prior (PatchFlow" in text and "default" in text


def test_evaluate_renders_whole_views_in_bounded_chunks(scene, monkeypatch):
  config = _config()
  model = _trained(scene, config)
  seen = []
  original = model.render_rays

  def spy(rays, *args, **kwargs):
    seen.append(rays["origins"].shape[0])
    return original(rays, *args, **kwargs)

  monkeypatch.setattr(model, "render_rays", spy)
  views = data.make_eval_dataset(scene.test[:2])
  logs = model.evaluate(views.batch(1), verbose=0, return_dict=True)
  # Traced once per chunk size: every rendering call sees one chunk, never
  # the 24×32 view.
  assert seen and set(seen) == {config.train.render_chunk}
  monkeypatch.undo()
  psnrs = []
  for view in views:
    rgb = model.render_chunked(
        {k: tf.reshape(v, [-1, v.shape[-1]]) for k, v in view["rays"].items()},
        chunk=1024)["rgb"]
    mse = np.mean((np.asarray(rgb) - view["rgb"].numpy().reshape(-1, 3)) ** 2)
    psnrs.append(-10 * np.log10(mse))
  assert logs["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-3)


def test_keras_callbacks_checkpoint_log_and_restore(scene, tmp_path):
  config = _config()
  stream = data.training_stream(scene.train, config, endless=True)
  saved = tmp_path / "best.keras"
  logs = tmp_path / "tb"
  backup = tmp_path / "backup"

  class Stop(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      if epoch == 2:
        raise KeyboardInterrupt

  first = model_lib.RegNeRF(config)
  first.compile()
  with pytest.raises(KeyboardInterrupt):
    first.fit(stream, steps_per_epoch=1, epochs=4, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(str(saved), monitor="loss"),
        keras.callbacks.TensorBoard(str(logs)),
        keras.callbacks.BackupAndRestore(str(backup)),
        Stop()])
  assert saved.is_file()
  checkpoint = keras.models.load_model(str(saved))
  assert int(checkpoint.optimizer.iterations) in (1, 2)
  events = [f for _, _, files in os.walk(logs) for f in files
            if f.startswith("events")]
  assert events
  # A new process: BackupAndRestore brings back the weights and the step
  # after two finished epochs and trains the remaining two.
  second = model_lib.RegNeRF(config)
  second.compile()
  history = second.fit(stream, steps_per_epoch=1, epochs=4, verbose=0,
                       callbacks=[keras.callbacks.BackupAndRestore(
                           str(backup))])
  assert len(history.history["loss"]) == 2
  assert int(second.optimizer.iterations) == 4
