"""docs/architecture.md names every module of the package, so it stays a map."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def _modules() -> list[str]:
  found = []
  for folder in ("regnerf_tf", "flows", "datasets"):
    for path in sorted((ROOT / folder).rglob("*.py")):
      rel = path.relative_to(ROOT)
      if (path.name.endswith("_test.py") or "dummy_data" in rel.parts
          or path.name == "make_dummy_data.py"):
        continue
      found.append(rel.as_posix())
  return found


def test_every_module_is_named_in_the_architecture_doc():
  text = DOC.read_text()
  missing = []
  for module in _modules():
    parts = module.split("/")
    if len(parts) > 2 and parts[0] == "datasets" and parts[1].endswith("_sparse"):
      named = f"datasets/{parts[1]}/" in text  # a TFDS builder, as a folder
    else:
      named = f"`{module}`" in text
    if not named:
      missing.append(module)
  assert not missing, f"docs/architecture.md does not name {missing}"


def test_the_doc_names_no_module_that_does_not_exist():
  import re  # pylint: disable=import-outside-toplevel
  named = set(re.findall(r"`((?:regnerf_tf|flows|datasets)/[\w/]+\.py)`",
                         DOC.read_text()))
  assert named <= set(_modules()), sorted(named - set(_modules()))
