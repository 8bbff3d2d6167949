"""Keeps the Bazel BUILD file in step with the source tree.

Every Python module of regnerf_tf/, flows/ and datasets/ has one py_library and
every test file one py_test, with dependencies read from the imports. After
adding or removing a module, regenerate the file with

    .venv/bin/python tests/bazel_build_test.py --write
"""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = {"regnerf_tf": "regnerf_tf", "flows": "regnerf_tf.flows",
            "datasets": "regnerf_tf.datasets"}
# Import name → PyPI distribution (as named in requirements_lock.txt).
THIRD_PARTY = {
    "absl": "absl-py", "imageio": "imageio", "keras": "keras",
    "numpy": "numpy", "pytest": "pytest", "scipy": "scipy",
    "skimage": "scikit-image", "tensorflow": "tensorflow",
    "tensorflow_datasets": "tensorflow-datasets",
    "tensorflow_probability": "tensorflow-probability", "tf_keras": "tf-keras",
    "etils": "etils", "imageio_ffmpeg": "imageio-ffmpeg",
    "hypothesis": "hypothesis", "matplotlib": "matplotlib",
    "PIL": "pillow", "ray": "ray",
}
HEADER = '''\
# Bazel targets (rules_python, bzlmod): one py_library per module, one py_test
# per test file. Generated from the imports by tests/bazel_build_test.py --write;
# tests/bazel_build_test.py fails when this file and the tree disagree.

load("@pypi//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_library", "py_test")

package(default_visibility = ["//visibility:public"])

licenses(["notice"])

exports_files(["setup.cfg"])
'''


def _source_files():
  files = []
  for folder in PACKAGES:
    for path in sorted((ROOT / folder).rglob("*.py")):
      rel = path.relative_to(ROOT)
      if "dummy_data" in rel.parts or path.name.endswith("_test.py"):
        continue
      files.append(rel)
  return files


def _test_files():
  tests = []
  for folder in ("tests",) + tuple(PACKAGES):
    for path in sorted((ROOT / folder).rglob("*_test.py")):
      rel = path.relative_to(ROOT)
      if "dummy_data" not in rel.parts:
        tests.append(rel)
  return tests


def _module_name(rel: pathlib.PurePath) -> str:
  parts = list(rel.with_suffix("").parts)
  parts[0] = PACKAGES[parts[0]]
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _target_name(rel: pathlib.PurePath) -> str:
  parts = list(rel.with_suffix("").parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  if parts[0] == "tests":
    parts = parts[1:]
  return "_".join(parts) if parts != ["regnerf_tf"] else "regnerf_tf"


def _imports(path: pathlib.Path) -> set[str]:
  tree = ast.parse(path.read_text())
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names.add(node.module)
      names.update(f"{node.module}.{a.name}" for a in node.names)
  return names


# Top-level folders whose modules tests may import (not installed packages).
HELPER_FOLDERS = ("tests", "benchmarks")


def _test_helpers(rel: pathlib.PurePath) -> list[pathlib.PurePath]:
  """Modules of tests/ and benchmarks/ a test file imports, transitively."""
  found, todo = [], [rel]
  while todo:
    for name in sorted(_imports(ROOT / todo.pop())):
      parts = name.split(".")
      if parts[0] not in HELPER_FOLDERS or len(parts) < 2:
        continue
      helper = pathlib.PurePath(*parts).with_suffix(".py")
      init = pathlib.PurePath(parts[0], "__init__.py")
      for path in (init, helper):
        if (ROOT / path).is_file() and path != rel and path not in found:
          found.append(path)
          todo.append(path)
  return sorted(found)


def expected_targets() -> list[dict]:
  sources = _source_files()
  by_module = {_module_name(rel): rel for rel in sources}
  targets = []

  def deps_of(rel, own=None):
    internal, external = set(), set()
    for name in _imports(ROOT / rel):
      top = name.split(".")[0]
      if top in THIRD_PARTY:
        external.add(THIRD_PARTY[top])
      if top == "regnerf_tf" or name in by_module:
        # The longest module prefix that is one of ours.
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
          candidate = ".".join(parts[:i])
          if candidate in by_module:
            if by_module[candidate] != own:
              internal.add(":" + _target_name(by_module[candidate]))
            break
    # A module needs its package __init__ files; everything is imported under
    # regnerf_tf, so every target needs the root package.
    for i in range(1, len(rel.parts)):
      init = pathlib.PurePath(*rel.parts[:i], "__init__.py")
      if init in sources:
        internal.add(":" + _target_name(init))
    internal.add(":regnerf_tf")
    if own is not None:
      internal.discard(":" + _target_name(own))
    return sorted(internal) + [f'requirement("{e}")' for e in sorted(external)]

  for rel in sources:
    target = {"kind": "py_library", "name": _target_name(rel),
              "srcs": [str(rel)], "deps": deps_of(rel, own=rel)}
    if rel == pathlib.PurePath("regnerf_tf/__init__.py"):
      target["data"] = ["setup.cfg"]
      target["imports"] = ["."]
    data = sorted(str(p.relative_to(ROOT)) for p in (ROOT / rel.parent).glob("*")
                  if p.suffix in (".h5", ".json", ".bib", ".md", ".txt")
                  and rel.name == "__init__.py")
    if data:
      target["data"] = target.get("data", []) + data
    targets.append(target)
  for rel in _test_files():
    helpers = _test_helpers(rel)
    deps = deps_of(rel)
    for helper in helpers:
      deps += deps_of(helper)
    deps += ['requirement("pytest")']
    internal = sorted({d for d in deps if d.startswith(":")})
    external = sorted({d for d in deps if not d.startswith(":")})
    target = {"kind": "py_test", "name": _target_name(rel),
              "srcs": [str(rel)] + [str(h) for h in helpers],
              "deps": internal + external}
    if rel.parts[0] == "tests":
      target["srcs"].append("tests/conftest.py")
    target["main"] = str(rel)
    target["data"] = ["//:setup.cfg"]
    targets.append(target)
  return targets


def render(targets: list[dict]) -> str:
  out = [HEADER]
  for t in targets:
    lines = [f'{t["kind"]}(', f'    name = "{t["name"]}",']
    for key in ("srcs", "main", "imports", "data", "deps"):
      if key not in t:
        continue
      value = t[key]
      if isinstance(value, str):
        lines.append(f'    {key} = "{value}",')
        continue
      items = [v if v.startswith("requirement(") else f'"{v}"' for v in value]
      if len(items) == 1:
        lines.append(f"    {key} = [{items[0]}],")
      else:
        lines.append(f"    {key} = [")
        lines.extend(f"        {item}," for item in items)
        lines.append("    ],")
    lines.append(")")
    out.append("\n".join(lines))
  return "\n\n".join(out) + "\n"


def parse_build(text: str) -> dict[str, dict]:
  """Reads the BUILD file (Starlark is Python syntax for these statements)."""
  tree = ast.parse(text)
  found = {}
  for node in tree.body:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
      continue
    call = node.value
    kind = getattr(call.func, "id", None)
    if kind not in ("py_library", "py_test"):
      continue
    kwargs = {k.arg: k.value for k in call.keywords}
    name = ast.literal_eval(kwargs["name"])
    srcs = ast.literal_eval(kwargs["srcs"])
    found[name] = {"kind": kind, "srcs": srcs}
  return found


def test_build_file_matches_source_tree():
  text = (ROOT / "BUILD").read_text()
  assert text == render(expected_targets()), (
      "BUILD is out of date with the source tree; regenerate it with "
      "`.venv/bin/python tests/bazel_build_test.py --write`.")


def test_every_module_has_a_library_and_every_test_a_py_test():
  found = parse_build((ROOT / "BUILD").read_text())
  libs = {s for t in found.values() if t["kind"] == "py_library"
          for s in t["srcs"]}
  tests = {t["srcs"][0] for t in found.values() if t["kind"] == "py_test"}
  assert {str(p) for p in _source_files()} == libs
  assert {str(p) for p in _test_files()} == tests
  # Labels are rules_python's, never an internal monorepo's.
  text = (ROOT / "BUILD").read_text()
  assert "//third_party" not in text and "google3" not in text
  module = (ROOT / "MODULE.bazel").read_text()
  assert 'bazel_dep(name = "rules_python"' in module
  lock = (ROOT / "requirements_lock.txt").read_text()
  for dist in sorted(set(THIRD_PARTY.values())):
    if f'requirement("{dist}")' in text:
      assert any(line.lower().startswith(dist.lower().replace("-", "_") + "==")
                 or line.lower().startswith(dist.lower() + "==")
                 for line in lock.splitlines()), dist


if __name__ == "__main__":
  if "--write" in sys.argv:
    (ROOT / "BUILD").write_text(render(expected_targets()))
    print(f"wrote {ROOT / 'BUILD'}")
  else:
    print(render(expected_targets()))
