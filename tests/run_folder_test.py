"""A run folder records its scene, so later commands need only --workdir; the
end-of-training evaluation is visible, limitable and logged."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf
from absl import flags

from regnerf_tf.cli import common
from regnerf_tf.cli import eval as eval_cli
from regnerf_tf.cli import train as train_cli
from tests import training_test
from tests.render_cli_test import _run_cli

FLAGS = flags.FLAGS
TINY = ["model.net_depth=2", "model.net_width=16", "model.skip_layer=0",
        "model.net_width_viewdirs=8", "model.num_samples=8",
        "model.max_deg_point=4", "train.batch_size=64",
        "train.patch_batch_size=64", "train.log_every=2",
        "train.checkpoint_every=2"]


def _train(workdir, *extra):
  argv = ["--preset=dtu3_small", f"--workdir={workdir}", "--steps=3",
          "--quiet", *[f"--override={o}" for o in TINY], *extra]
  return _run_cli(train_cli, argv)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  assert _train(workdir, "--synthetic", "--train_views=0,4,8",
                "--eval_views=2") == 0
  return workdir


def _eval_events(workdir):
  folder = os.path.join(workdir, "tensorboard", "eval")
  scalars = {}
  for name in sorted(os.listdir(folder)):
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(folder, name)):
      for value in event.summary.value:
        scalars.setdefault(value.tag, {})[event.step] = float(
            tf.make_ndarray(value.tensor))
  return scalars


def test_the_run_folder_records_its_scene(run):
  with open(os.path.join(run, common.SCENE_FILE)) as f:
    recorded = json.load(f)
  assert recorded["source"] == {"source": "synthetic",
                                "train_views": [0, 4, 8]}
  assert recorded["train_views"] == [0, 4, 8]
  assert recorded["kind"] == "blender" and recorded["test_views"]


def test_later_commands_need_only_the_workdir(run, tmp_path, capsys):
  out = tmp_path / "eval"
  assert _run_cli(eval_cli, [f"--workdir={run}", f"--output_dir={out}",
                             "--max_views=2"]) == 0
  printed = capsys.readouterr().out
  assert "the synthetic scene (from" in printed
  assert "view 1/2" in printed and "view 2/2" in printed
  report = json.loads((out / "metrics.json").read_text())
  # The recorded split: views other than the training views 0, 4, 8.
  assert len(report["per_image"]) == 2
  assert not {r["view_index"] for r in report["per_image"]} & {0, 4, 8}


def test_another_scene_in_the_same_folder_is_refused(run, tmp_path):
  other = tmp_path / "not_a_scene"
  other.mkdir()
  with pytest.raises(Exception, match="holds a run trained on the synthetic "
                     "scene") as info:
    _train(run, f"--scene_dir={other}")
  assert "Use another --workdir" in str(info.value)
  # The same scene, given again or not at all, resumes (nothing to do).
  assert _train(run, "--eval_views=none") == 0


def test_end_of_training_scores_are_limited_logged_and_shown(run, tmp_path,
                                                             capsys):
  with open(os.path.join(run, "heldout_psnr.json")) as f:
    heldout = json.load(f)
  assert len(heldout["views"]) == 2 and len(heldout["ssim"]) == 2
  events = _eval_events(run)
  assert events["heldout/psnr"] == {3: pytest.approx(heldout["mean_psnr"],
                                                     rel=1e-5)}
  assert events["heldout/ssim"] == {3: pytest.approx(heldout["mean_ssim"],
                                                     rel=1e-5)}
  # Steps 1 and 3 (the last) are logged although log_every is 2.
  assert {1, 2, 3} <= set(training_test.tensorboard_scalars(run)["loss"])
  skipped = str(tmp_path / "skipped")
  assert _run_cli(train_cli, [
      "--preset=dtu3_small", f"--workdir={skipped}", "--steps=1",
      "--synthetic", "--eval_views=none",
      *[f"--override={o}" for o in TINY]]) == 0
  printed = capsys.readouterr().out
  assert not os.path.exists(os.path.join(skipped, "heldout_psnr.json"))
  assert "Scoring" not in printed


@pytest.mark.parametrize("value", ["0", "-3", "some"])
def test_malformed_eval_views_name_the_flag(value, tmp_path):
  with pytest.raises(flags.IllegalFlagValueError, match="--eval_views"):
    _train(str(tmp_path), "--synthetic", f"--eval_views={value}")
