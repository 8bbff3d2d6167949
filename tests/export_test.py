"""Tests for regnerf_tf.export: the SavedModel renders like the Keras model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import configs, data, errors, export, machine, scenes
from regnerf_tf import rays as rays_lib
from regnerf_tf import model as model_lib

HEIGHT, WIDTH = 12, 16
CHUNK = 50  # 192 rays → 4 chunks, the last one padded


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  cfg = configs.get_preset("demo_small", **{
      "model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
      "model.num_samples": 8})
  model = model_lib.RegNeRF(cfg)
  record = scenes.synthetic_scene(height=HEIGHT, width=WIDTH).test[0]
  near, far = float(record["near"]), float(record["far"])
  path = str(tmp_path_factory.mktemp("export") / "saved")
  export.export_saved_model(model, path, "blender", near=near, far=far,
                            chunk=CHUNK)
  rays = rays_lib.view_rays(record["camtoworld"], record["intrinsics"], HEIGHT,
                        WIDTH, "blender", near, far)
  flat = {k: tf.reshape(v, [-1, v.shape[-1]]).numpy() for k, v in rays.items()}
  reference = {k: v.numpy() for k, v in model(flat).items()}
  return {"model": model, "path": path, "record": record, "rays": flat,
          "reference": reference, "loaded": tf.saved_model.load(path)}


def _image_inputs(record):
  return {"camtoworld": tf.constant(record["camtoworld"], tf.float32),
          "intrinsics": tf.constant(record["intrinsics"], tf.float32),
          "height": tf.constant(HEIGHT, tf.int32),
          "width": tf.constant(WIDTH, tf.int32)}


def test_render_rays_matches_model(exported):
  out = exported["loaded"].signatures["render_rays"](
      **{k: tf.constant(v) for k, v in exported["rays"].items()})
  ref = exported["reference"]
  assert out["rgb"].shape == (HEIGHT * WIDTH, 3)
  assert out["depth"].shape == (HEIGHT * WIDTH,)
  assert out["acc"].shape == (HEIGHT * WIDTH,)
  for k in ("rgb", "depth", "acc"):
    np.testing.assert_allclose(out[k].numpy(), ref[k], atol=1e-5, rtol=0)
  # Any N, including fewer rays than a chunk and none at all.
  for n in (1, 7, 0):
    part = exported["loaded"].signatures["render_rays"](
        **{k: tf.constant(v[:n]) for k, v in exported["rays"].items()})
    assert part["rgb"].shape == (n, 3)
    np.testing.assert_allclose(part["rgb"].numpy(), ref["rgb"][:n], atol=1e-5)


def test_render_image_matches_view_rays_and_model(exported):
  out = exported["loaded"].signatures["render_image"](
      **_image_inputs(exported["record"]))
  assert out["image"].shape == (HEIGHT, WIDTH, 3)
  assert out["depth"].shape == (HEIGHT, WIDTH)
  ref = exported["reference"]
  np.testing.assert_allclose(out["image"].numpy().reshape(-1, 3), ref["rgb"],
                             atol=1e-5, rtol=0)
  np.testing.assert_allclose(out["depth"].numpy().reshape(-1), ref["depth"],
                             atol=1e-5, rtol=0)
  # And equal to the stitched output of render_rays.
  stitched = exported["loaded"].signatures["render_rays"](
      **{k: tf.constant(v) for k, v in exported["rays"].items()})
  np.testing.assert_allclose(out["image"].numpy().reshape(-1, 3),
                             stitched["rgb"].numpy(), atol=1e-6)


@pytest.mark.parametrize("kind", ["dtu", "llff", "blender"])
def test_image_rays_equal_view_rays(kind):
  record = scenes.synthetic_scene(height=HEIGHT, width=WIDTH).test[1]
  c2w = np.asarray(record["camtoworld"], np.float32)
  k = np.asarray(record["intrinsics"], np.float32)
  if kind == "dtu":  # an OpenCV camera above the z = 0 plane looking down it
    c2w = np.array([[1, 0, 0, 0.1], [0, 1, 0, -0.2], [0, 0, 1, -1.0]],
                   np.float32)
  expected = rays_lib.view_rays(c2w, k, HEIGHT, WIDTH, kind, 1.5, 6.0)
  got = tf.function(lambda c, kk, h, w: export.image_rays(
      c, kk, h, w, kind, 1.5, 6.0))(tf.constant(c2w), tf.constant(k),
                                    tf.constant(HEIGHT), tf.constant(WIDTH))
  for field in rays_lib.RAY_FIELDS:
    np.testing.assert_allclose(got[field].numpy(), expected[field].numpy(),
                               atol=1e-6, rtol=1e-6, err_msg=field)


def test_wrong_shapes_are_rejected(exported):
  loaded = exported["loaded"]
  rays = {k: tf.constant(v) for k, v in exported["rays"].items()}
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"origins \[5,4\] is not compatible with expected "
                     r"shape \[\?,3\]"):
    loaded.signatures["render_rays"](**{**rays, "origins": tf.zeros([5, 4])})
  with pytest.raises(tf.errors.InvalidArgumentError, match="same N"):
    loaded.signatures["render_rays"](**{**rays, "near": rays["near"][:5]})
  with pytest.raises((tf.errors.InvalidArgumentError, TypeError),
                     match="float"):
    loaded.signatures["render_rays"](
        **{**rays, "near": tf.cast(rays["near"], tf.float64)})
  inputs = _image_inputs(exported["record"])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"camtoworld \[4,4\] is not compatible with "
                     r"expected shape \[3,4\]"):
    loaded.signatures["render_image"](**{**inputs,
                                         "camtoworld": tf.eye(4)})
  with pytest.raises(tf.errors.InvalidArgumentError, match="height >= 3"):
    loaded.signatures["render_image"](**{**inputs,
                                         "height": tf.constant(2)})
  # The Python wrapper checks before calling TensorFlow.
  checked = export.load_and_check(exported["path"])
  assert checked.metadata["kind"] == "blender"
  assert checked.metadata["chunk"] == CHUNK
  assert checked.metadata["render_branches"] == machine.render_branches(0)
  with pytest.raises(ValueError, match=r"origins must have shape \[N, 3\]"):
    checked.render_rays(**{**exported["rays"],
                           "origins": np.zeros([5, 4], np.float32)})
  with pytest.raises(ValueError, match="missing"):
    checked.render_rays(origins=exported["rays"]["origins"])
  with pytest.raises(ValueError, match=r"intrinsics must have shape \[3, 3\]"):
    checked.render_image(exported["record"]["camtoworld"], np.eye(4), 8, 8)
  out = checked.render_rays(**exported["rays"])
  np.testing.assert_allclose(out["rgb"].numpy(), exported["reference"]["rgb"],
                             atol=1e-5)


def test_export_arguments_are_checked(exported):
  with pytest.raises(ValueError, match="needs near and far"):
    export.export_saved_model(exported["model"], "/tmp/unused", "blender")
  with pytest.raises(ValueError, match="near=0.5"):
    export.export_saved_model(exported["model"], "/tmp/unused", "dtu",
                              near=1.0, far=3.5)
  with pytest.raises(ValueError, match="kind"):
    export.export_saved_model(exported["model"], "/tmp/unused", "nerf")


def _run_client(code, cwd, timeout=120) -> str:
  """Runs ``code`` in a fresh Python without regnerf_tf on the path; stdout."""
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
  env.pop("PYTHONPATH", None)
  result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_loads_without_regnerf_tf(exported, tmp_path):
  np.savez(tmp_path / "inputs.npz", **exported["rays"],
           camtoworld=exported["record"]["camtoworld"],
           intrinsics=exported["record"]["intrinsics"])
  code = textwrap.dedent(f"""
      import sys
      import numpy as np
      import tensorflow as tf
      m = tf.saved_model.load({exported["path"]!r})
      x = np.load("inputs.npz")
      fields = ("origins", "directions", "viewdirs", "radii", "near", "far")
      rays = m.signatures["render_rays"](
          **{{k: tf.constant(x[k], tf.float32) for k in fields}})
      image = m.signatures["render_image"](
          camtoworld=tf.constant(x["camtoworld"], tf.float32),
          intrinsics=tf.constant(x["intrinsics"], tf.float32),
          height=tf.constant({HEIGHT}), width=tf.constant({WIDTH}))
      assert "regnerf_tf" not in sys.modules, "regnerf_tf was imported"
      assert not any(n.startswith("regnerf_tf") for n in sys.modules)
      np.savez("outputs.npz", rgb=rays["rgb"].numpy(),
               depth=rays["depth"].numpy(), acc=rays["acc"].numpy(),
               image=image["image"].numpy(), image_depth=image["depth"].numpy())
      print("OK")
      """)
  assert "OK" in _run_client(code, tmp_path)
  out = np.load(tmp_path / "outputs.npz")
  ref = exported["reference"]
  for k in ("rgb", "depth", "acc"):
    np.testing.assert_allclose(out[k], ref[k], atol=1e-5, rtol=0)
  np.testing.assert_allclose(out["image"].reshape(-1, 3), ref["rgb"],
                             atol=1e-5, rtol=0)
  np.testing.assert_allclose(out["image_depth"].reshape(-1), ref["depth"],
                             atol=1e-5, rtol=0)


def test_export_replaces_atomically(exported, tmp_path):
  path = str(tmp_path / "out")
  export.export_saved_model(exported["model"], path, "llff", chunk=32)
  with open(os.path.join(path, "stale.txt"), "w") as f:
    f.write("old")
  export.export_saved_model(exported["model"], path, "llff", chunk=32)
  assert not os.path.exists(os.path.join(path, "stale.txt"))
  assert os.path.exists(os.path.join(path, "saved_model.pb"))
  assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary folders left
  assert export.load_and_check(path).metadata["kind"] == "llff"


def test_export_never_replaces_a_folder_of_other_files(exported, tmp_path):
  """A run folder or a folder of photos given as the output is refused and
  left as it was; an empty folder is used."""
  path = tmp_path / "photos"
  path.mkdir()
  (path / "IMG_1.jpg").write_bytes(b"photo")
  with pytest.raises(errors.InputError, match=r"IMG_1\.jpg.*delete those"):
    export.export_saved_model(exported["model"], str(path), "llff", chunk=32)
  assert sorted(os.listdir(path)) == ["IMG_1.jpg"]
  assert sorted(os.listdir(tmp_path)) == ["photos"]
  empty = tmp_path / "empty"
  empty.mkdir()
  export.export_saved_model(exported["model"], str(empty), "llff", chunk=32)
  assert (empty / "saved_model.pb").exists()


def test_cameras_signature_lets_a_client_ask_for_held_out_views(tmp_path):
  """A client that never imports regnerf_tf renders a held-out view and the
  default path from what the SavedModel itself says."""
  cfg = configs.get_preset("demo_small", **{
      "model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
      "model.num_samples": 8})
  model = model_lib.RegNeRF(cfg)
  scene = scenes.synthetic_scene(height=HEIGHT, width=WIDTH)
  cameras = export.serving_cameras(scene, path_frames=5)
  record = scene.train[0]
  path = str(tmp_path / "saved")
  export.export_saved_model(model, path, "blender", near=float(record["near"]),
                            far=float(record["far"]), chunk=CHUNK,
                            cameras=cameras)
  code = textwrap.dedent(f"""
      import sys
      import numpy as np
      import tensorflow as tf
      served = tf.saved_model.load({path!r})
      cams = served.signatures["cameras"]()
      height, width = cams["image_size"].numpy()
      view = served.signatures["render_image"](
          camtoworld=cams["test_camtoworld"][0],
          intrinsics=cams["test_intrinsics"][0],
          height=tf.constant(height), width=tf.constant(width))
      frame = served.signatures["render_image"](
          camtoworld=cams["render_path"][2],
          intrinsics=cams["render_path_intrinsics"],
          height=tf.constant(height), width=tf.constant(width))
      assert not any(n.startswith("regnerf_tf") for n in sys.modules)
      np.savez("client.npz", view=view["image"].numpy(),
               frame=frame["image"].numpy(),
               kind=cams["kind"].numpy(), convention=cams["convention"].numpy(),
               near=cams["near"].numpy(), far=cams["far"].numpy(),
               index=cams["test_view_index"].numpy(),
               train=cams["train_view_index"].numpy(),
               world=cams["world_transform"].numpy(),
               path=cams["render_path"].numpy())
      print("OK")
      """)
  _run_client(code, tmp_path, timeout=180)
  out = np.load(tmp_path / "client.npz")
  assert out["kind"] == b"blender" and out["convention"] == b"opengl"
  assert (float(out["near"]), float(out["far"])) == pytest.approx(
      (float(record["near"]), float(record["far"])))
  assert list(out["index"]) == [int(r["view_index"]) for r in scene.test]
  assert list(out["train"]) == [int(r["view_index"]) for r in scene.train]
  np.testing.assert_array_equal(out["world"], np.eye(4))
  np.testing.assert_allclose(out["path"], cameras["render_path"])
  # The held-out view the client asked for is the model's rendering of it.
  test = scene.test[0]
  rays = rays_lib.view_rays(test["camtoworld"], test["intrinsics"], HEIGHT, WIDTH,
                        "blender", float(test["near"]), float(test["far"]))
  flat = {k: tf.reshape(v, [-1, v.shape[-1]]) for k, v in rays.items()}
  np.testing.assert_allclose(out["view"].reshape(-1, 3),
                             model(flat)["rgb"].numpy(), atol=1e-5)
  assert out["frame"].shape == (HEIGHT, WIDTH, 3)
  assert np.isfinite(out["frame"]).all()
