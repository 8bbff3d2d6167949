"""A run folder records its scene, so later commands need only --workdir; the
end-of-training evaluation is visible, limitable and logged."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf
from absl import app, flags

from regnerf_tf import machine
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
  assert "the synthetic scene --train_views=0,4,8 (from" in printed
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


# --- a run folder is never silently repurposed ---------------------------------


def _tiny_run(workdir, steps=4, **extra):
  from regnerf_tf import scenes, training  # pylint: disable=import-outside-toplevel
  cfg = training_test.tiny_preset(**{"train.max_steps": steps, **extra})
  scene = scenes.synthetic_scene(height=24, width=32)
  return cfg, scene, training.train(cfg, scene.train, str(workdir),
                                    verbose=False)


def test_a_different_config_is_refused_and_the_folder_is_untouched(tmp_path):
  from regnerf_tf import errors, training  # pylint: disable=import-outside-toplevel
  cfg, scene, _ = _tiny_run(tmp_path)
  before = {n: (tmp_path / n).read_bytes() for n in ("config.json",)}
  listing = sorted(os.listdir(tmp_path))
  other = cfg.replace(**{"reg.depth_tv_weight_start": 10.0,
                         "train.lr_init": 1e-3})
  with pytest.raises(errors.InputError) as info:
    training.train(other, scene.train, str(tmp_path), verbose=False)
  text = str(info.value)
  start = cfg.reg.depth_tv_weight_start
  for fact in (f"reg.depth_tv_weight_start: {start!r} in the run, 10.0 now",
               "train.lr_init", "--restart", "--resume_with_changes",
               "another --workdir"):
    assert fact in text, (fact, text)
  assert (tmp_path / "config.json").read_bytes() == before["config.json"]
  assert sorted(os.listdir(tmp_path)) == listing
  # Longer training is a different run too (its schedules stretch).
  with pytest.raises(errors.InputError, match="train.max_steps: 4 in the run"):
    training.train(cfg.replace(**{"train.max_steps": 8}), scene.train,
                   str(tmp_path), verbose=False)


def test_operational_fields_may_change_and_are_recorded(tmp_path):
  from regnerf_tf import run_folder, training  # pylint: disable=import-outside-toplevel
  cfg, scene, _ = _tiny_run(tmp_path, steps=4)
  original = (tmp_path / "config.json").read_bytes()
  changed = cfg.replace(**{"train.log_every": 1, "train.render_chunk": 512})
  training.train(changed, scene.train, str(tmp_path), verbose=False)
  assert (tmp_path / "config.json").read_bytes() == original
  [entry] = run_folder.read_history(str(tmp_path))
  assert entry["how"] == "operational" and entry["step"] == 4
  assert entry["changes"] == {
      "train.log_every": [cfg.train.log_every, 1],
      "train.render_chunk": [cfg.train.render_chunk, 512]}
  assert run_folder.run_config(str(tmp_path)) == changed


def test_resume_with_changes_continues_and_keeps_the_history(tmp_path):
  from regnerf_tf import checkpoints, errors, run_folder, training  # pylint: disable=import-outside-toplevel
  cfg, scene, _ = _tiny_run(tmp_path, steps=4)
  original = (tmp_path / "config.json").read_bytes()
  longer = cfg.replace(**{"train.max_steps": 8, "model.num_samples": 12})
  model = training.train(longer, scene.train, str(tmp_path), verbose=False,
                         resume_with_changes=True)
  assert training.current_step(model) == 8  # continued from step 4
  assert (tmp_path / "config.json").read_bytes() == original
  [entry] = run_folder.read_history(str(tmp_path))
  assert entry["how"] == "resume_with_changes" and entry["step"] == 4
  assert entry["changes"] == {"model.num_samples": [8, 12],
                              "train.max_steps": [4, 8]}
  assert run_folder.run_config(str(tmp_path)) == longer
  assert checkpoints.latest_step(str(tmp_path)) == 8
  # Rendering uses the run's config as continued.
  assert training.load_run(str(tmp_path)).config.model.num_samples == 12
  # The continued config is now the run's own; the first one is not.
  training.train(longer, scene.train, str(tmp_path), verbose=False)
  with pytest.raises(errors.InputError, match="model.num_samples: 12 in the run"):
    training.train(cfg, scene.train, str(tmp_path), verbose=False)


def test_train_without_a_preset_resumes_the_runs_config(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  argv = [f"--workdir={workdir}", "--quiet", "--eval_views=none"]
  assert _run_cli(train_cli, ["--preset=dtu3_small_mipnerf", "--synthetic",
                              "--steps=2", *argv,
                              *[f"--override={o}" for o in TINY]]) == 0
  with open(os.path.join(workdir, "config.json")) as f:
    first = json.load(f)
  # Run again with nothing but the folder: the run's preset and overrides.
  assert _run_cli(train_cli, argv) == 0
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f) == first
  assert not os.path.exists(os.path.join(workdir, "history.json"))
  # Another preset named explicitly is refused.
  with pytest.raises(Exception, match="holds a run with another config"):
    _run_cli(train_cli, ["--preset=dtu3_small", *argv])


def test_restart_moves_the_old_run_aside(tmp_path, capsys):
  workdir = tmp_path / "run"
  base = [f"--workdir={workdir}", "--quiet", "--eval_views=none",
          "--synthetic", *[f"--override={o}" for o in TINY]]
  assert _run_cli(train_cli, ["--preset=dtu3_small", "--steps=2", *base]) == 0
  old_config = (workdir / "config.json").read_bytes()
  with pytest.raises(Exception, match="another config"):
    _run_cli(train_cli, ["--preset=dtu3_small", "--steps=3", *base])
  assert _run_cli(train_cli, ["--preset=dtu3_small", "--steps=3", "--restart",
                              *base]) == 0
  [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
  assert (aside / "config.json").read_bytes() == old_config
  assert json.loads((workdir / "config.json").read_text())["train"][
      "max_steps"] == 3
  with pytest.raises(Exception, match="give one of them"):
    _run_cli(train_cli, ["--restart", "--resume_with_changes", *base])


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_the_machine_and_then_the_run(
    tmp_path, monkeypatch, capsys, native):
  monkeypatch.setattr(machine, "native_bfloat16",
                      lambda: (native, "the machine says so"))
  workdir = tmp_path / "run"
  base = [f"--workdir={workdir}", "--eval_views=none", "--synthetic",
          "--steps=2", *[f"--override={o}" for o in TINY]]
  assert _run_cli(train_cli, ["--preset=dtu3_small", *base]) == 0
  expected = "mixed_bfloat16" if native else "float32"
  recorded = json.loads((workdir / "config.json").read_text())
  assert recorded["model"]["precision"] == expected
  assert f"{expected} (auto: the machine says so)" in capsys.readouterr().out
  # Resumed on a machine that says the opposite: the run keeps its own
  # precision (auto would otherwise change the config and be refused).
  monkeypatch.setattr(machine, "native_bfloat16",
                      lambda: (not native, "the other machine"))
  assert _run_cli(train_cli, ["--preset=dtu3_small", *base]) == 0
  assert f"{expected} (the run in {workdir})" in capsys.readouterr().out
  assert json.loads((workdir / "config.json").read_text()) == recorded


def test_precision_flag_and_override_must_agree(tmp_path):
  base = [f"--workdir={tmp_path / 'run'}", "--synthetic", "--steps=1",
          "--quiet", "--eval_views=none", "--precision=float32",
          *[f"--override={o}" for o in TINY]]
  with pytest.raises(app.UsageError, match="disagree"):
    _run_cli(train_cli, ["--preset=dtu3_small", *base,
                         "--override=model.precision=mixed_bfloat16"])
  assert _run_cli(train_cli, ["--preset=dtu3_small", *base]) == 0
  assert json.loads((tmp_path / "run" / "config.json").read_text())[
      "model"]["precision"] == "float32"
