"""Every Python example in the READMEs runs as pasted from the repository root.

An example whose last comment on a line is ``# (...)`` must print what is in
the parentheses. The serving example needs an export of the demo run
(``# needs: make demo, regnerf-export``): the test makes a small one at that
path in a temporary folder and runs the example there, in a process that
never imports regnerf_tf.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
READMES = [README, ROOT / "datasets" / "README.md", ROOT / "flows" / "README.md"]
EXAMPLES = [(path.relative_to(ROOT).as_posix(), i, code)
            for path in READMES
            for i, code in enumerate(
                re.findall(r"```python\n(.*?)```", path.read_text(), re.S))]
NEEDS_EXPORT = "# needs: make demo, regnerf-export"


def _expected(code):
  return [e[1:-1] for e in re.findall(r"#\s*(\(.*\))\s*$", code, re.M)]


def _check_printed(code, printed):
  for expected in _expected(code):
    assert expected.replace(" ", "") in printed.replace(" ", "").replace(
        "\n", ""), (expected, printed)


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory):
  """``runs/demo/export`` as `make demo` + regnerf-export would leave it (a
  small network, the demo's synthetic scene and its cameras)."""
  from regnerf_tf import configs, export, model as model_lib, scenes
  folder = tmp_path_factory.mktemp("serving")
  config = configs.get_preset("demo_small", **{
      "model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
      "model.num_samples": 8})
  scene = scenes.synthetic_scene()
  record = scene.train[0]
  export.export_saved_model(
      model_lib.RegNeRF(config), str(folder / "runs" / "demo" / "export"),
      scene.kind, near=float(record["near"]), far=float(record["far"]),
      cameras=export.serving_cameras(scene, path_frames=4))
  return folder


@pytest.mark.parametrize("readme,index", [(r, i) for r, i, _ in EXAMPLES])
def test_readme_python_example_runs(readme, index, capsys, request,
                                    monkeypatch):
  code = next(c for r, i, c in EXAMPLES if (r, i) == (readme, index))
  if "../shared/data" in code and not (ROOT.parent / "shared" / "data").is_dir():
    pytest.skip(f"the shared scenes are not at {ROOT.parent / 'shared' / 'data'}")
  if NEEDS_EXPORT in code:
    folder = request.getfixturevalue("demo_export")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": ""}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_printed(code, result.stdout)
    return
  monkeypatch.chdir(ROOT)  # paths in the examples are relative to the root
  exec(compile(code, f"{readme} example {index}", "exec"), {})
  _check_printed(code, capsys.readouterr().out)


def test_examples_state_what_they_print():
  # Every example but the serving one's `assert` shows its output.
  for readme, index, code in EXAMPLES:
    assert _expected(code), f"{readme} example {index} shows no output"


def test_readme_names_the_two_commands():
  text = README.read_text()
  assert "make test" in text and "make demo" in text
  makefile = (README.parent / "Makefile").read_text()
  assert "\ndemo:" in makefile and "\ntest:" in makefile
