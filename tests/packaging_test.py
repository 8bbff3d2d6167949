"""The package's shape: metadata, layout and import names."""

import configparser
import os
import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _setup_cfg():
  parser = configparser.ConfigParser()
  parser.read(ROOT / "setup.cfg")
  return parser


def test_pyproject_holds_only_the_build_system_table():
  data = tomllib.loads((ROOT / "pyproject.toml").read_text())
  assert list(data) == ["build-system"]
  assert data["build-system"]["build-backend"] == "setuptools.build_meta"


def test_dependencies_are_pinned_ranges():
  options = _setup_cfg()["options"]
  reqs = [r.strip() for r in options["install_requires"].splitlines()
          if r.strip()]
  names = {r.split(">")[0].split("<")[0].split("=")[0].strip(): r for r in reqs}
  for name in ("tensorflow", "tensorflow-probability", "tf-keras", "keras",
               "tensorflow-datasets", "numpy", "absl-py", "imageio"):
    assert name in names, f"{name} missing from install_requires"
    assert ">=" in names[name] and "<" in names[name], names[name]
  assert names["tensorflow"] == "tensorflow>=2.21,<2.22"
  assert names["tensorflow-probability"].startswith("tensorflow-probability>=0.25")
  extras = _setup_cfg()["options.extras_require"]
  assert "pytest" in extras["tests"]
  assert "tensorflow[and-cuda]" in extras["and-cuda"]


def test_subpackages_install_under_regnerf_tf_never_top_level():
  options = _setup_cfg()["options"]
  package_dir = dict(
      line.replace(" ", "").split("=") for line in
      options["package_dir"].splitlines() if line.strip())
  assert package_dir["regnerf_tf.flows"] == "flows"
  assert package_dir["regnerf_tf.datasets"] == "datasets"
  packages = options["packages"].split()
  assert "datasets" not in packages and "flows" not in packages


def test_top_level_layout():
  allowed = {"regnerf_tf", "flows", "datasets", "tests", "benchmarks", "docs",
             "setup.cfg", "BUILD",
             "README.md", "Makefile", ".ci", "pyproject.toml", "MODULE.bazel",
             ".bazelversion", ".bazelrc", "requirements_lock.txt", ".gitignore",
             ".git", ".venv", ".pytest_cache", "LICENSE"}
  tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.split()
  if not tracked:  # not a git checkout (e.g. an sdist): look at the disk
    tracked = [p.name for p in ROOT.iterdir()]
  top = {path.split("/")[0] for path in tracked}
  assert top <= allowed, f"unexpected top-level entries: {top - allowed}"
  for required in ("regnerf_tf", "flows", "datasets", "tests", "setup.cfg",
                   "BUILD", "README.md", "Makefile", "pyproject.toml"):
    assert required in top or (ROOT / required).exists()
  assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_source_tree_import_without_installation(tmp_path):
  """From a bare checkout on PYTHONPATH (as Bazel runs it) the subpackages load
  as regnerf_tf.flows / regnerf_tf.datasets and no top-level `datasets` module
  appears."""
  code = (
      "import sys\n"
      "sys.meta_path[:] = [f for f in sys.meta_path\n"
      "                    if 'editable' not in repr(f).lower()]\n"
      f"sys.path.insert(0, {str(ROOT)!r})\n"
      "import regnerf_tf.flows, regnerf_tf.datasets\n"
      "print(regnerf_tf.flows.__file__)\n"
      "print(regnerf_tf.datasets.__file__)\n"
      "assert 'datasets' not in sys.modules and 'flows' not in sys.modules\n")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.split()
  assert lines[0] == str(ROOT / "flows" / "__init__.py")
  assert lines[1] == str(ROOT / "datasets" / "__init__.py")


def test_installed_import_names():
  import regnerf_tf
  import regnerf_tf.datasets
  import regnerf_tf.flows
  assert regnerf_tf.__version__ == _setup_cfg()["metadata"]["version"]
  assert pathlib.Path(regnerf_tf.flows.__file__).parent.name == "flows"
  assert pathlib.Path(regnerf_tf.datasets.__file__).parent.name == "datasets"


def test_all_entry_points_import_together():
  """Entry points must not define clashing absl flags at import time."""
  import importlib
  for name in ("regnerf_tf.cli.train", "regnerf_tf.cli.demo",
               "regnerf_tf.cli.eval", "regnerf_tf.cli.render",
               "regnerf_tf.cli.export",
               "regnerf_tf.flows.train_prior", "regnerf_tf.flows.evaluate_prior"):
    module = importlib.import_module(name)
    assert callable(getattr(module, "run", None) or getattr(module, "main"))
  options = _setup_cfg()["options.entry_points"]["console_scripts"]
  for line in options.strip().splitlines():
    target = line.split("=")[1].strip()
    module_name, func = target.split(":")
    assert callable(getattr(importlib.import_module(module_name), func))
