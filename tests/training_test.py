"""Training plumbing: checkpoints, resume after interruption, the CLI."""

import json
import os

import keras
import numpy as np
import pytest

from regnerf_tf import configs, scenes, training

TINY = {"model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
        "model.net_width_viewdirs": 8, "model.num_samples": 8,
        "model.max_deg_point": 6, "train.batch_size": 64,
        "train.patch_batch_size": 32, "reg.patch_size": 4,
        "train.max_steps": 12, "train.checkpoint_every": 4,
        "train.log_every": 2, "reg.depth_tv_decay_steps": 6,
        "reg.anneal_steps": 6, "train.lr_delay_steps": 3}


@pytest.fixture(scope="module")
def scene():
  return scenes.synthetic_scene(height=24, width=32)


class _Interrupt(keras.callbacks.Callback):
  def __init__(self, at_step):
    super().__init__()
    self.at_step = at_step

  def on_train_batch_end(self, batch, logs=None):
    if int(self.model.optimizer.iterations) == self.at_step:
      raise KeyboardInterrupt


def tiny_preset(**extra):
  return configs.get_preset("dtu3_small", **{**TINY, **extra})


def checkpoint_arrays(workdir):
  with np.load(os.path.join(workdir, training.CHECKPOINT)) as f:
    return {k: f[k] for k in f.files}


def tensorboard_scalars(workdir):
  """{tag: {step: value}} of the run's training scalars (later wins)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  folder = os.path.join(workdir, "tensorboard", "train")
  scalars = {}
  for name in sorted(os.listdir(folder)):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
      for value in event.summary.value:
        scalars.setdefault(value.tag, {})[event.step] = float(
            tf.make_ndarray(value.tensor))
  return scalars


def test_interrupted_run_resumes_to_the_samecheckpoint_arrays(tmp_path, scene, monkeypatch):
  cfg = configs.get_preset("dtu3_small", **TINY)
  full = str(tmp_path / "full")
  model = training.train(cfg, scene.train, full, verbose=False)
  assert int(model.optimizer.iterations) == 12
  assert os.path.exists(os.path.join(full, training.FINAL_WEIGHTS))
  assert json.loads(open(os.path.join(full, "config.json")).read())["name"] == "dtu3_small"

  broken = str(tmp_path / "broken")
  original_fit = keras.Model.fit

  def fit_with_interrupt(self, *args, **kwargs):
    kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [_Interrupt(6)]
    return original_fit(self, *args, **kwargs)

  monkeypatch.setattr(keras.Model, "fit", fit_with_interrupt)
  with pytest.raises(KeyboardInterrupt):
    training.train(cfg, scene.train, broken, verbose=False)
  monkeypatch.setattr(keras.Model, "fit", original_fit)
  assert int(checkpoint_arrays(broken)["step"]) == 4  # last checkpoint before the stop
  resumed = training.train(cfg, scene.train, broken, verbose=False)
  assert int(resumed.optimizer.iterations) == 12
  a, b = checkpoint_arrays(full), checkpoint_arrays(broken)
  assert set(a) == set(b)
  for key in a:
    np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)
  # Training again with a finished run is a no-op.
  again = training.train(cfg, scene.train, broken, verbose=False)
  assert int(again.optimizer.iterations) == 12


def test_checkpoint_rejects_a_different_model(tmp_path, scene):
  cfg = configs.get_preset("dtu3_small", **{**TINY, "train.max_steps": 4})
  training.train(cfg, scene.train, str(tmp_path), verbose=False)
  wider = cfg.replace(**{"model.net_width": 32})
  with pytest.raises(ValueError, match="different model config"):
    training.train(wider, scene.train, str(tmp_path), verbose=False)
  with open(os.path.join(tmp_path, training.CHECKPOINT), "wb") as f:
    f.write(b"not a checkpoint")
  with pytest.raises(ValueError, match="unreadable"):
    training.train(cfg.replace(**{"train.max_steps": 8}), scene.train,
                   str(tmp_path), verbose=False)


def test_load_run_restores_the_trained_model(tmp_path, scene):
  cfg = configs.get_preset("dtu3_small", **{**TINY, "train.max_steps": 4})
  model = training.train(cfg, scene.train, str(tmp_path), verbose=False)
  loaded = training.load_run(str(tmp_path))
  assert loaded.config == cfg
  rays = {k: v[:1, :8] for k, v in
          __import__("regnerf_tf.data", fromlist=["x"]).view_rays(
              scene.test[0]["camtoworld"], scene.test[0]["intrinsics"], 24, 32,
              "blender", 1.5, 6.0).items()}
  np.testing.assert_allclose(loaded(rays)["rgb"].numpy(),
                             model(rays)["rgb"].numpy(), atol=1e-6)
  with pytest.raises(FileNotFoundError, match="config"):
    training.load_run(str(tmp_path / "nothing"))
