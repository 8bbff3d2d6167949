"""The README's Python examples run as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_python_example_runs(index, capsys):
  code = compile(EXAMPLES[index], f"README.md example {index}", "exec")
  if '"/data/' in EXAMPLES[index] or "# needs:" in EXAMPLES[index]:
    return  # needs the reader's data or a demo run: compiled (syntax) only
  exec(code, {})
  printed = capsys.readouterr().out
  for expected in re.findall(r"#\s*(\(.*\))\s*$", EXAMPLES[index], re.M):
    assert expected.replace(" ", "") in printed.replace(" ", "").replace("\n", "")


def test_readme_names_the_two_commands():
  text = README.read_text()
  assert "make test" in text and "make demo" in text
  makefile = (README.parent / "Makefile").read_text()
  assert "\ndemo:" in makefile and "\ntest:" in makefile
