"""Command-line errors read as one paragraph: what, where, what to do.

Each case runs a real command in a subprocess and checks the exit code, that
stderr holds ``<program>: error:`` with the path or flag named, and that no
Python traceback is shown unless asked for.
"""

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from regnerf_tf.cli import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--preset=dtu3_small", "--synthetic", "--quiet",
        "--eval_views=none", "--override=model.net_depth=2",
        "--override=model.net_width=16", "--override=model.skip_layer=0",
        "--override=train.batch_size=64", "--override=train.patch_batch_size=32",
        "--override=reg.patch_size=4"]


def _run(module, args, env=None):
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  full_env.pop(common.TRACEBACK_ENV, None)
  full_env.update(env or {})
  return subprocess.run([sys.executable, "-m", f"regnerf_tf.cli.{module}"]
                        + args, cwd=ROOT, env=full_env, capture_output=True,
                        text=True, timeout=600)


def _paragraph(result, program):
  """The error paragraph of ``result``'s stderr (asserting its form)."""
  assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  start = result.stderr.index(f"{program}: error:")
  return " ".join(result.stderr[start:].split())


@pytest.mark.large
def test_a_run_folder_that_is_a_file(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("not a run folder")
  text = _paragraph(_run("train", TINY + [f"--workdir={path}"]), "regnerf-train")
  assert str(path) in text and "file" in text
  assert path.read_text() == "not a run folder"
  # The traceback on request, same exit code.
  shown = _run("train", TINY + [f"--workdir={path}"],
               env={common.TRACEBACK_ENV: "1"})
  assert shown.returncode == 2 and "Traceback" in shown.stderr


@pytest.mark.large
def test_a_run_folder_below_a_file(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("x")
  text = _paragraph(_run("train", TINY + [f"--workdir={path}/run"]),
                    "regnerf-train")
  assert "notes.txt" in text and "not a folder" in text


@pytest.mark.large
def test_damaged_checkpoints_and_missing_runs(tmp_path):
  work = tmp_path / "run"
  work.mkdir()
  (work / "checkpoint.npz").write_bytes(b"cut short")
  text = _paragraph(_run("train", TINY + [f"--workdir={work}"]), "regnerf-train")
  assert "checkpoint.npz" in text and "can be read" in text and "backup" in text
  text = _paragraph(_run("eval", [f"--workdir={tmp_path / 'nothing'}"]),
                    "regnerf-eval")
  assert "nothing" in text and "regnerf-train" in text


@pytest.mark.large
def test_bad_overrides_and_flags_name_the_field(tmp_path):
  text = _paragraph(_run("train", TINY + [
      f"--workdir={tmp_path / 'a'}", "--override=train.max_steps=abc"]),
                    "regnerf-train")
  assert "max_steps" in text and "abc" in text
  # Flag values are checked by the flag library, which names the flag.
  result = _run("train", TINY + [f"--workdir={tmp_path / 'b'}", "--steps=0"])
  assert result.returncode != 0 and "--steps" in result.stderr
  assert "Traceback" not in result.stderr
  text = _paragraph(_run("train", TINY + ["--threads=0:1"]), "regnerf-train")
  assert "--threads=0:1" in text and "INTRA:INTER" in text
  assert ".." not in text  # one full stop, whoever wrote the message
  result = _run("export", [f"--workdir={tmp_path}", "--output=x", "--chunk=0"])
  assert result.returncode != 0 and "--chunk" in result.stderr
  assert not os.path.exists(tmp_path / "a" / "config.json")
  # A usage error found while running: the paragraph, not the help text.
  text = _paragraph(_run("train", [f"--workdir={tmp_path / 'c'}"]),
                    "regnerf-train")
  assert "--scene_dir" in text and "--help" in text
  assert "flags:" not in text


def test_os_errors_say_what_to_do():
  full = common.explain_os_error(
      OSError(errno.ENOSPC, "No space left on device", "/runs/a/x.npz"))
  assert "/runs/a/x.npz" in full and "disk is full" in full
  assert "resumes" in full
  ro = common.explain_os_error(
      OSError(errno.EROFS, "Read-only file system", "/mnt/cd/run"))
  assert "/mnt/cd/run" in ro and "read-only" in ro and "--workdir" in ro
  odd = common.explain_os_error(OSError(errno.EIO, "Input/output error", "/x"))
  assert odd.startswith("Input/output error (/x).")


def test_tensorflow_file_errors_are_explained_and_others_are_not():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  error = tf.errors.ResourceExhaustedError(
      None, None, "/runs/a/checkpoints/ckpt-5_temp/part-00000; No space "
      "left on device")
  text = common.explain_tf_io_error(error)
  assert "ckpt-5_temp" in text and "disk is full" in text
  assert common.explain_tf_io_error(
      tf.errors.InvalidArgumentError(None, None, "shape mismatch")) is None
  assert common.explain_tf_io_error(OSError("No space left on device")) is None


def test_the_guard_returns_2_and_keeps_bugs_loud(capsys):
  from regnerf_tf import errors  # pylint: disable=import-outside-toplevel

  def refuses(argv):
    raise errors.InputError("Expected a scene; found nothing. Give --scene_dir.")

  assert common.guarded(refuses, "regnerf-x")([]) == 2
  err = capsys.readouterr().err
  assert err.startswith("regnerf-x: error: Expected a scene") and "Traceback" not in err

  def bug(argv):
    return np.zeros(2)[5]

  with pytest.raises(IndexError):
    common.guarded(bug, "regnerf-x")([])


@pytest.mark.large
def test_an_unknown_isa_cap_in_the_environment():
  text = _paragraph(_run("train", TINY + ["--steps=1"],
                         env={"ONEDNN_MAX_CPU_ISA": "AVX3"}), "regnerf-train")
  assert "ONEDNN_MAX_CPU_ISA=AVX3" in text and "AVX512_CORE" in text
  assert "unset ONEDNN_MAX_CPU_ISA" in text
