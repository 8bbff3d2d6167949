"""Training plumbing: checkpoints, resume after interruption, the CLI."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from regnerf_tf import checkpoints, configs, errors, scenes, training
from regnerf_tf import model as model_lib

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
  """{name: array} of the newest checkpoint of a run folder (with "step")."""
  return checkpoints.read_arrays(workdir)


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
  with pytest.raises(ValueError, match="model.net_width: 16 in the run, 32 now"):
    training.train(wider, scene.train, str(tmp_path), verbose=False)
  # Even when continuing on purpose, the checkpoint's names and shapes refuse
  # another network.
  with pytest.raises(errors.CheckpointMismatchError):
    training.train(wider, scene.train, str(tmp_path), verbose=False,
                   resume_with_changes=True)
  assert not os.path.exists(os.path.join(tmp_path, "history.json"))
  # Without the run's config.json, too.
  os.remove(os.path.join(tmp_path, "config.json"))
  with pytest.raises(errors.CheckpointMismatchError) as info:
    training.train(wider, scene.train, str(tmp_path), verbose=False)
  assert "mlp/trunk_0/kernel: (36, 16) in the file, (36, 32) in the model" in str(
      info.value)
  deeper = cfg.replace(**{"model.net_depth": 3})
  with pytest.raises(errors.CheckpointMismatchError, match="missing mlp/trunk_2"):
    training.train(deeper, scene.train, str(tmp_path), verbose=False)


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def test_checkpoints_are_named_tensorflow_checkpoints(tmp_path, scene):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  cfg = configs.get_preset("dtu3_small", **{**TINY, "train.max_steps": 4})
  model = training.train(cfg, scene.train, str(tmp_path), verbose=False)
  prefix = os.path.join(tmp_path, "checkpoints", "ckpt-4")
  assert tf.train.latest_checkpoint(os.path.join(tmp_path, "checkpoints")) == prefix
  arrays = checkpoints.read_arrays(prefix)
  expected = {v.path: v.numpy() for v in model.mlp.weights}
  expected.update({"optimizer/" + v.path.split("/")[-1]: v.numpy()
                   for v in model.optimizer.variables
                   if v is not model.optimizer.iterations})
  expected["step"] = 4
  assert set(arrays) == set(expected)
  assert "mlp/trunk_0/kernel" in arrays and "optimizer/mlp_rgb_bias_velocity" in arrays
  for name, value in expected.items():
    np.testing.assert_array_equal(arrays[name], value, err_msg=name)


def test_keeps_the_last_n_checkpoints(tmp_path, scene):
  cfg = configs.get_preset("dtu3_small", **{
      **TINY, "train.checkpoint_every": 2, "train.keep_checkpoints": 2})
  training.train(cfg, scene.train, str(tmp_path), verbose=False)
  assert [os.path.basename(p) for p in checkpoints.listed(str(tmp_path))] == [
      "ckpt-12", "ckpt-10"]
  assert sorted(os.listdir(tmp_path / "checkpoints")) == [
      "checkpoint", "ckpt-10.data-00000-of-00001", "ckpt-10.index",
      "ckpt-12.data-00000-of-00001", "ckpt-12.index"]
  with pytest.raises(ValueError, match="keep_checkpoints"):
    cfg.replace(**{"train.keep_checkpoints": 0})


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(
    tmp_path, scene, capsys):
  cfg = tiny_preset()  # checkpoints at 4, 8, 12
  reference = str(tmp_path / "reference")
  training.train(cfg, scene.train, reference, verbose=False)
  work = str(tmp_path / "work")
  shutil.copytree(reference, work)
  os.remove(os.path.join(work, training.FINAL_WEIGHTS))
  _truncate(os.path.join(work, "checkpoints", "ckpt-12.data-00000-of-00001"))
  capsys.readouterr()
  model = training.train(cfg, scene.train, work, verbose=False)
  message = capsys.readouterr().out
  assert "ckpt-12" in message and "ckpt-8 (step 8)" in message, message
  assert int(model.optimizer.iterations) == 12
  a, b = checkpoint_arrays(reference), checkpoint_arrays(work)
  assert set(a) == set(b)
  for key in a:  # steps 9..12 trained again give the uninterrupted run
    np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)
  # No readable checkpoint at all: one message naming each file.
  for prefix in checkpoints.listed(work):
    _truncate(prefix + ".data-00000-of-00001")
  with pytest.raises(errors.InputError) as info:
    training.train(cfg, scene.train, work, verbose=False)
  text = str(info.value)
  for step in (4, 8, 12):
    assert f"ckpt-{step}" in text
  assert "delete" in text and "backup" in text
  with pytest.raises(errors.InputError, match="can be read"):
    training.load_run(work)


def test_leftovers_of_an_interrupted_save_are_removed(tmp_path, scene):
  cfg = configs.get_preset("dtu3_small", **{**TINY, "train.max_steps": 4})
  work = tmp_path / "run"
  training.train(cfg, scene.train, str(work), verbose=False)
  folder = work / "checkpoints"
  (folder / "ckpt-8.data-00000-of-00001").write_bytes(b"half")
  (folder / "ckpt-8_temp").mkdir()
  (folder / "ckpt-8_temp" / "part-00000-of-00001.index").write_bytes(b"x")
  (folder / "notes.txt").write_text("mine")
  assert checkpoints.remove_unlisted(str(work)) == [
      "ckpt-8.data-00000-of-00001", "ckpt-8_temp"]
  assert sorted(os.listdir(folder)) == [
      "checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index", "notes.txt"]


def test_a_kill_during_the_first_save_resumes_from_step_0(tmp_path, scene,
                                                          capsys):
  """Killed while TensorFlow merged the first checkpoint's index: no list
  file yet, an empty ``ckpt-<n>.index`` beside its ``ckpt-<n>_temp`` folder.
  That save never finished, so the run starts again from step 0 (found by a
  sweep whose worker was killed right after the first checkpoint appeared)."""
  cfg = configs.get_preset("dtu3_small", **{**TINY, "train.max_steps": 4})
  reference = str(tmp_path / "reference")
  training.train(cfg, scene.train, reference, verbose=False)
  work = tmp_path / "run"
  folder = work / "checkpoints"
  folder.mkdir(parents=True)
  (folder / "ckpt-2.data-00000-of-00001").write_bytes(b"\0" * 64)
  (folder / "ckpt-2.index").write_bytes(b"")
  (folder / "ckpt-2_temp").mkdir()
  (folder / "ckpt-2_temp" / "part-00000-of-00001.index").write_bytes(b"x")
  assert checkpoints.listed(str(work)) == []
  assert checkpoints.latest_step(str(work)) is None
  model = training.train(cfg, scene.train, str(work), verbose=False)
  assert int(model.optimizer.iterations) == 4
  assert not (folder / "ckpt-2_temp").exists()
  a, b = checkpoint_arrays(reference), checkpoint_arrays(str(work))
  for key in a:  # the same run as one never interrupted
    np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)
  # A complete checkpoint whose list file was deleted by hand still counts.
  os.remove(folder / "checkpoint")
  assert [os.path.basename(p) for p in checkpoints.listed(str(work))] == [
      "ckpt-4"]
  assert checkpoints.unlisted(str(work)) == []


def test_an_old_npz_checkpoint_is_still_read(tmp_path, scene, capsys):
  cfg = tiny_preset()
  reference = str(tmp_path / "reference")
  training.train(cfg, scene.train, reference, verbose=False)
  # The reference's state at step 4: its ckpt-4 alone (without TensorFlow's
  # list file, the .index files present are the checkpoints).
  first = str(tmp_path / "first")
  shutil.copytree(reference, first)
  folder = os.path.join(first, "checkpoints")
  for name in os.listdir(folder):
    if not name.startswith("ckpt-4."):
      os.remove(os.path.join(folder, name))
  model = model_lib.build_model(cfg)
  assert checkpoints.restore(model, first) == 4
  # An old run folder: config.json and the positional checkpoint.npz of step 4.
  old = str(tmp_path / "old")
  os.makedirs(old)
  arrays = {f"w{i}": v.numpy() for i, v in enumerate(model.mlp.weights)}
  arrays.update({f"o{i}": np.asarray(v.numpy())
                 for i, v in enumerate(model.optimizer.variables)})
  arrays["step"] = np.asarray(4, np.int64)
  np.savez(os.path.join(old, checkpoints.LEGACY), **arrays)
  with open(os.path.join(first, "config.json")) as src, open(
      os.path.join(old, "config.json"), "w") as dst:
    dst.write(src.read())
  assert checkpoints.latest_step(old) == 4
  rendered = training.load_run(old)
  np.testing.assert_array_equal(rendered.mlp.weights[0].numpy(), arrays["w0"])
  assert training.current_step(rendered) == 4
  capsys.readouterr()
  resumed = training.train(cfg, scene.train, old, verbose=False)
  assert "checkpoint.npz (step 4)" in capsys.readouterr().out
  assert int(resumed.optimizer.iterations) == 12
  a, b = checkpoint_arrays(reference), checkpoint_arrays(old)
  for key in a:
    np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)
  assert checkpoints.latest_step(old) == 12  # the new format wins from now on
  # An old checkpoint of another network is refused by its shapes.
  wider = str(tmp_path / "wider")
  os.makedirs(wider)
  np.savez(os.path.join(wider, checkpoints.LEGACY),
           **{**arrays, "w0": np.zeros((36, 99), np.float32)})
  with pytest.raises(errors.CheckpointMismatchError, match=r"\(36, 99\)"):
    training.train(cfg, scene.train, wider, verbose=False)
  with open(os.path.join(wider, checkpoints.LEGACY), "wb") as f:
    f.write(b"not a checkpoint")
  with pytest.raises(errors.InputError, match="can be read"):
    training.train(cfg, scene.train, wider, verbose=False)


def test_load_run_restores_the_trained_model(tmp_path, scene):
  cfg = configs.get_preset("dtu3_small", **{**TINY, "train.max_steps": 4})
  model = training.train(cfg, scene.train, str(tmp_path), verbose=False)
  loaded = training.load_run(str(tmp_path))
  assert loaded.config == cfg
  assert training.current_step(loaded) == 4
  rays = {k: v[:1, :8] for k, v in
          __import__("regnerf_tf.rays", fromlist=["x"]).view_rays(
              scene.test[0]["camtoworld"], scene.test[0]["intrinsics"], 24, 32,
              "blender", 1.5, 6.0).items()}
  np.testing.assert_allclose(loaded(rays)["rgb"].numpy(),
                             model(rays)["rgb"].numpy(), atol=1e-6)
  with pytest.raises(FileNotFoundError, match="config"):
    training.load_run(str(tmp_path / "nothing"))
  # A run folder whose checkpoints/ is empty is refused, not rendered untrained.
  empty = tmp_path / "empty"
  (empty / "checkpoints").mkdir(parents=True)
  shutil.copy(tmp_path / "config.json", empty / "config.json")
  with pytest.raises(FileNotFoundError, match="does not hold a checkpoint"):
    training.load_run(str(empty))
