"""Multi-worker training on localhost, XLA and mixed precision of the step."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import checkpoints, configs, distribute, model as model_lib
from tests.model_test import make_batch, tiny_config


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_make_strategy_choices(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  assert distribute.make_strategy("default").num_replicas_in_sync == 1
  assert distribute.is_chief(distribute.make_strategy("default"))
  with pytest.raises(ValueError, match="strategy"):
    distribute.make_strategy("tpu_pod")
  with pytest.raises(ValueError, match="TF_CONFIG"):
    distribute.make_strategy("multi_worker")
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(ValueError, match="JSON"):
    distribute.make_strategy("auto")


@pytest.mark.large
def test_two_workers_on_localhost_end_with_identical_weights(tmp_path):
  ports = [_free_port(), _free_port()]
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "regnerf_tf.cli.train", "--preset=dtu3_small",
         "--synthetic", "--steps=4", f"--workdir={workdir}", "--quiet",
         "--strategy=multi_worker"]
  cmd += [f"--override={k}={v}" for k, v in {
      "model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
      "model.net_width_viewdirs": 8, "model.num_samples": 8,
      "train.batch_size": 64, "train.patch_batch_size": 32,
      "reg.patch_size": 4, "train.checkpoint_every": 2,
      "train.log_every": 2}.items()]
  procs = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               TF_CONFIG=json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}}))
    procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outputs = []
  for proc in procs:
    try:
      outputs.append(proc.communicate(timeout=600)[0])
    finally:
      if proc.poll() is None:
        proc.kill()
  for proc, out in zip(procs, outputs):
    assert proc.returncode == 0, out[-3000:]
  chief = checkpoints.read_arrays(str(workdir))
  worker = checkpoints.read_arrays(str(workdir / ".worker_1"))
  assert int(chief["step"]) == int(worker["step"]) == 4
  assert set(chief) == set(worker)
  for key in chief:
    np.testing.assert_array_equal(chief[key], worker[key], err_msg=key)
  assert (workdir / "config.json").exists()
  assert not (workdir / ".worker_1" / "config.json").exists()


def _one_step(cfg, batch):
  model = model_lib.build_model(cfg)
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  logs = model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0).history
  return model, logs


def test_xla_train_step_matches_the_graph_step():
  base = tiny_config(**{"train.randomized": False, "model.density_noise": 0.0})
  batch = make_batch()
  graph_model, graph_logs = _one_step(base, batch)
  xla_model, xla_logs = _one_step(base.replace(**{"train.jit_compile": True}),
                                  batch)
  for key in ("loss", "color_loss", "depth_tv"):
    assert xla_logs[key][0] == pytest.approx(graph_logs[key][0], rel=1e-4,
                                             abs=1e-6)
  for a, b in zip(graph_model.mlp.weights, xla_model.mlp.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
  rays = batch["rays"]
  np.testing.assert_allclose(xla_model.render_chunked(rays, 16)["rgb"].numpy(),
                             xla_model(rays)["rgb"].numpy(), atol=1e-5)


def test_mixed_bfloat16_step_keeps_rendering_in_float32():
  cfg = tiny_config(**{"model.precision": "mixed_bfloat16"})
  model, logs = _one_step(cfg, make_batch())
  assert model.mlp.trunk[0].compute_dtype == "bfloat16"
  assert model.mlp.trunk[0].kernel.dtype == "float32"
  assert all(np.isfinite(v[0]) for v in logs.values())
  out = model(make_batch()["rays"])
  assert out["rgb"].dtype == tf.float32 and out["depth"].dtype == tf.float32
  assert keras.mixed_precision.global_policy().name == "float32"
