"""Non-finite steps: skipped without touching the weights, counted, and K in a
row stop training with a message naming the causes and the last checkpoint."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import data, errors, model as model_lib, scenes, training
from tests import model_test
from tests import training_test


class _Recorder(keras.callbacks.Callback):
  """Weights, Adam slots, step and the logs after every batch."""

  def __init__(self):
    super().__init__()
    self.states, self.logs = [], []

  def on_train_batch_end(self, batch, logs=None):
    self.states.append((
        [v.numpy().copy() for v in self.model.mlp.weights],
        [np.array(v.numpy()) for v in self.model.optimizer.variables],
        training.current_step(self.model)))
    self.logs.append({k: float(np.asarray(v).reshape(-1)[0])
                      for k, v in logs.items()})


def _poison(batch, value, half=False):
  bad = dict(batch)
  rgb = np.array(batch["rgb"])
  rgb[len(rgb) // 2 if half else 0:] = value
  bad["rgb"] = rgb
  return bad


def _fit(model, batches):
  stacked = tf.nest.map_structure(lambda *xs: np.stack(xs), *batches)
  recorder = _Recorder()
  model.fit(tf.data.Dataset.from_tensor_slices(stacked),
            steps_per_epoch=len(batches), epochs=1, verbose=0,
            callbacks=[recorder])
  return recorder


def _assert_same_state(a, b):
  for x, y in zip(a[0] + a[1][1:], b[0] + b[1][1:]):  # [0] is the step
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_a_non_finite_step_leaves_weights_and_adam_state_untouched(value):
  model = model_lib.build_model(model_test.tiny_config())
  batches = [model_test.make_batch(seed=s) for s in range(4)]
  batches[2] = _poison(batches[2], value)
  rec = _fit(model, batches)
  steps = [s[2] for s in rec.states]
  assert steps == [1, 2, 3, 4]  # the skipped step still advances the counter
  _assert_same_state(rec.states[1], rec.states[2])
  assert not np.array_equal(rec.states[2][0][0], rec.states[3][0][0])
  assert [l["nonfinite"] for l in rec.logs] == [0.0, 0.0, 1.0, 0.0]
  # The epoch means leave the skipped step out instead of turning NaN.
  assert all(np.isfinite(l["loss"]) for l in rec.logs)
  assert all(np.isfinite(w).all() for w in rec.states[-1][0])


def test_one_replica_with_a_nan_makes_every_replica_skip():
  devices = tf.config.list_logical_devices("CPU")
  if len(devices) < 2:
    pytest.skip("needs two logical CPU devices (set up in conftest)")
  strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
  model = model_lib.build_model(model_test.tiny_config(), strategy=strategy)
  batches = [model_test.make_batch(seed=s) for s in range(3)]
  batches[1] = _poison(batches[1], np.nan, half=True)  # replica 1's share
  rec = _fit(model, batches)
  assert [s[2] for s in rec.states] == [1, 2, 3]
  _assert_same_state(rec.states[0], rec.states[1])
  assert [l["nonfinite"] for l in rec.logs] == [0.0, 1.0, 0.0]


def _poisoned_datasets(first_bad_step):
  """training_stream whose batches have NaN colours from ``first_bad_step`` on."""
  original = data.training_stream

  def make(source, config, *, start_step=0, **kwargs):
    ds = original(source, config, start_step=start_step, **kwargs)

    def poison(index, batch):
      step = tf.cast(index, tf.int64) + start_step + 1
      factor = tf.where(step >= first_bad_step, np.nan, 1.0)
      return {**batch, "rgb": batch["rgb"] * factor}

    return ds.enumerate().map(poison)

  return make


def test_k_consecutive_non_finite_steps_stop_training_with_a_message(
    tmp_path, monkeypatch):
  scene = scenes.synthetic_scene(height=24, width=32)
  cfg = training_test.tiny_preset(**{
      "train.max_steps": 40, "train.checkpoint_every": 2,
      "train.max_nonfinite_steps": 3})
  monkeypatch.setattr(data, "training_stream", _poisoned_datasets(6))
  with pytest.raises(errors.DivergenceError) as info:
    training.train(cfg, scene.train, str(tmp_path), verbose=False)
  message = str(info.value)
  ckpt = os.path.join(str(tmp_path), "checkpoints", "ckpt-4")
  # Steps 6, 7, 8 are non-finite: training stops at 8; the checkpoint at
  # step 6 is not written (mid-streak), so step 4 is the last good one.
  for fact in ("step 8", "3 consecutive", "learning rate", "near/far",
               "NaN/inf in the images or poses", ckpt, "(step 4)",
               "train.max_nonfinite_steps"):
    assert fact in message, (fact, message)
  saved = training_test.checkpoint_arrays(str(tmp_path))
  assert int(saved["step"]) == 4
  weights = [k for k in saved if k.startswith("mlp/")]
  assert weights and all(np.isfinite(saved[k]).all() for k in weights)
  assert not os.path.exists(os.path.join(str(tmp_path), training.FINAL_WEIGHTS))


def test_a_short_non_finite_streak_is_survived_and_counted(tmp_path,
                                                           monkeypatch):
  scene = scenes.synthetic_scene(height=24, width=32)
  cfg = training_test.tiny_preset(**{"train.max_steps": 8,
                                     "train.max_nonfinite_steps": 3})
  original = data.training_stream

  def two_bad_steps(source, config, *, start_step=0, **kwargs):
    ds = original(source, config, start_step=start_step, **kwargs)

    def poison(index, batch):
      step = index + start_step + 1
      bad = tf.logical_or(tf.equal(step, 3), tf.equal(step, 4))
      return {**batch, "rgb": batch["rgb"] * tf.where(bad, np.nan, 1.0)}

    return ds.enumerate().map(poison)

  monkeypatch.setattr(data, "training_stream", two_bad_steps)
  seen = []
  original_end = training.TrainingMonitor.on_train_batch_end

  def spy(self, batch, logs=None):
    original_end(self, batch, logs)
    seen.append(logs["skipped_steps"])

  monkeypatch.setattr(training.TrainingMonitor, "on_train_batch_end", spy)
  model = training.train(cfg, scene.train, str(tmp_path), verbose=False)
  assert training.current_step(model) == 8
  assert seen == [0, 0, 1, 2, 2, 2, 2, 2]
  assert all(np.isfinite(v.numpy()).all() for v in model.mlp.weights)
  events = training_test.tensorboard_scalars(str(tmp_path))
  assert events["skipped_steps"][8] == 2.0
