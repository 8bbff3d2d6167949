"""regnerf-sweep: grid expansion, aggregation, bad input, and a sweep on Ray.

The unit tests build cells over stand-in scene folders (the readers detect a
layout from its camera file's name) and fake finished run folders whose
metrics have closed-form means. The Ray test runs a 2×2 grid of tiny runs on
the shared fern and scan24 with a local Ray instance, kills the Ray worker of
one cell after its first checkpoint, and checks that the sweep resumes it,
that the tables equal the means recomputed from the run folders, and that a
second invocation runs nothing.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from regnerf_tf import checkpoints, errors, sweep
from regnerf_tf.cli import common

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FERN = SHARED / "llff" / "fern"
SCAN24 = SHARED / "dtu" / "scan24"
# Only the Ray test reads the real scenes; the rest runs without them.
needs_shared = pytest.mark.skipif(
    not (FERN.is_dir() and SCAN24.is_dir()),
    reason=f"the shared scenes are not in {SHARED}")


def _scene(tmp_path, name, camera_file):
  """A folder the readers take for a scene of that layout (its camera file's
  name is what layout detection looks at)."""
  folder = tmp_path / "scenes" / name
  folder.mkdir(parents=True)
  (folder / camera_file).write_bytes(b"")
  return str(folder)


@pytest.fixture
def scene_dirs(tmp_path):
  return [_scene(tmp_path, "fern", "poses_bounds.npy"),
          _scene(tmp_path, "scan24", "cameras_sphere.npz")]


# ---------------------------------------------------------------------------
# Grid expansion.
# ---------------------------------------------------------------------------


def test_the_grid_expands_to_every_scene_view_count_method_and_seed(
    tmp_path, scene_dirs):
  grid = sweep.Grid(scene_dirs=scene_dirs, views=[3, 6],
                    methods=["mipnerf", "regnerf"], seeds=[0, 7],
                    overrides=["train.max_steps=7"])
  cells = sweep.expand(grid, str(tmp_path / "out"))
  assert len(cells) == 2 * 2 * 2 * 2
  assert len({c.workdir for c in cells}) == len(cells)
  by_key = {c.key: c for c in cells}
  cell = by_key["scan24/6view/regnerf-seed7"]
  assert cell.preset == "dtu6" and cell.scene.kind == "dtu"
  assert cell.workdir == str(tmp_path / "out" / "scan24" / "6view"
                             / "regnerf-seed7")
  config = cell.config()
  assert (config.train.max_steps, config.train.seed, config.data.n_views) == (
      7, 7, 6)
  assert config.reg.appearance_weight == 1e-4  # the paper's method has it
  assert by_key["fern/3view/mipnerf-seed0"].preset == "llff3_mipnerf"
  assert by_key["fern/3view/mipnerf-seed0"].config().reg.appearance_weight == 0
  args = cell.train_args()
  assert args[:2] == ["--preset=dtu6", f"--scene_dir={scene_dirs[1]}"]
  assert "--override=train.max_steps=7" in args
  assert "--override=train.seed=7" in args
  # The config's precision, never regnerf-train's machine-dependent auto.
  assert "--precision=float32" in args
  assert args[-2:] == ["--eval_views=none", "--quiet"]
  assert cell.eval_args() == [f"--workdir={cell.workdir}", "--lpips_net=vgg"]


def test_cpu_methods_take_the_view_count_and_templates_the_scene_kind(
    tmp_path, scene_dirs):
  grid = sweep.Grid(scene_dirs=scene_dirs, views=[3, 9],
                    methods=["regnerf_cpu"], downscale=2)
  cells = {c.key: c for c in sweep.expand(grid, str(tmp_path))}
  grid.views, grid.methods = [3], ["{kind}3_small"]
  cells.update({c.key: c for c in sweep.expand(grid, str(tmp_path))})
  nine = cells["fern/9view/regnerf_cpu"]
  assert nine.preset == "llff3_cpu"
  assert (nine.config().data.n_views, nine.config().reg.anneal_steps) == (9, 0)
  assert "--downscale=2" in nine.train_args()
  assert cells["scan24/3view/{kind}3_small"].preset == "dtu3_small"
  assert cells["scan24/3view/{kind}3_small"].workdir.endswith(
      os.path.join("scan24", "3view", "kind3_small"))
  with pytest.raises(errors.InputError, match="llff3_small with data.n_views=3"):
    sweep.expand(sweep.Grid(scene_dirs=scene_dirs, views=[9],
                            methods=["{kind}3_small"]), str(tmp_path))


def test_tfds_scenes_use_the_dataset_config_of_each_view_count(tmp_path):
  grid = sweep.Grid(tfds="dtu_sparse", tfds_scenes=["scan24", "scan114"],
                    views=[3, 9], methods=["mipnerf"],
                    manual_dir=str(tmp_path / "dtu"))
  cells = {c.key: c for c in sweep.expand(grid, str(tmp_path))}
  assert set(cells) == {f"{s}/{n}view/mipnerf" for s in ("scan24", "scan114")
                        for n in (3, 9)}
  assert cells["scan114/9view/mipnerf"].train_args()[:4] == [
      "--preset=dtu9_mipnerf", "--tfds=dtu_sparse/9view", "--scene=scan114",
      f"--manual_dir={tmp_path / 'dtu'}"]


# ---------------------------------------------------------------------------
# Bad input: what was expected, what was found, what to do.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("changes,expected", [
    ({"methods": ["regnerff"]},
     r"expected methods that are a name of .*found 'regnerff'\. Fix --methods"),
    ({"methods": ["{kind}{views}_nope"]},
     r"found no preset 'llff3_nope'"),
    ({"methods": ["freenerf"], "views": [6]},
     r"llff6_freenerf.*Drop that view count"),
    ({"methods": ["llff3_cpu"]},
     r"Config 'llff3_cpu' is for forward-facing LLFF scenes.*scan24"),
    ({"views": []}, r"expected at least one view count \(--views\)"),
    ({"views": [3, 3]}, r"distinct positive view counts"),
    ({"overrides": ["train.seed=3"]}, r"Give the values with --seeds"),
    ({"overrides": ["train.lr_init=-1"]}, r"lr_init must be > 0"),
    ({"tfds": "nerf_synthetic", "tfds_scenes": ["lego"]},
     r"--tfds to be one of \['dtu_sparse', 'llff_sparse'\]"),
])
def test_bad_grids_say_what_was_expected_and_found(tmp_path, scene_dirs,
                                                   changes, expected):
  values = dict(scene_dirs=scene_dirs, views=[3], methods=["mipnerf"])
  values.update(changes)
  with pytest.raises(errors.InputError, match=expected):
    sweep.expand(sweep.Grid(**values), str(tmp_path))


def test_missing_and_wrong_scene_folders_and_an_empty_grid(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(errors.InputError) as e:
    sweep.expand(sweep.Grid(scene_dirs=[missing], methods=["mipnerf"]),
                 str(tmp_path))
  assert re.search(r"expected scene folders .*found .*nowhere, which does "
                   r"not exist\. Fix the path", str(e.value))
  (tmp_path / "photos").mkdir()
  with pytest.raises(errors.InputError, match="No known scene layout"):
    sweep.expand(sweep.Grid(scene_dirs=[str(tmp_path / "photos")]),
                 str(tmp_path))
  with pytest.raises(errors.InputError, match=r"expected at least one scene "
                     r"\(--scene_dirs, or --tfds with --tfds_scenes\).*found "
                     r"an empty grid\. Give them"):
    sweep.expand(sweep.Grid(), str(tmp_path))


def _cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  env.pop(common.TRACEBACK_ENV, None)
  return subprocess.run([sys.executable, "-m", "regnerf_tf.cli.sweep", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)


@pytest.mark.large
def test_the_command_line_prints_the_paragraph_not_a_traceback(tmp_path):
  result = _cli(f"--scene_dirs={tmp_path / 'nowhere'}", "--views=3",
                f"--output={tmp_path / 'out'}")
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  text = " ".join(result.stderr[result.stderr.index("regnerf-sweep: error:"):]
                  .split())
  assert "expected scene folders" in text and "does not exist" in text
  assert "Fix the path" in text
  assert not (tmp_path / "out").exists()


@pytest.mark.large
def test_a_failing_command_fails_its_cell_with_the_commands_paragraph(
    tmp_path, scene_dirs):
  cell = sweep.expand(sweep.Grid(scene_dirs=scene_dirs[:1], views=[3],
                                 methods=["mipnerf"]), str(tmp_path))[0]
  spec = dict(cell.spec(), train_args=cell.train_args()[1:] + [
      "--preset=mipnerf3"], eval_args=cell.eval_args())
  result = sweep.run_cell(spec, "test", 2)
  assert result["state"] == "failed"
  assert result["error"].startswith(
      "regnerf-train: error: Unknown preset 'mipnerf3'; choose one of")
  assert f"(exit code 2; {cell.workdir}" in result["error"]
  row = sweep.cell_result(cell)
  assert (row["state"], row["error"]) == ("failed", result["error"])
  log = open(os.path.join(cell.workdir, sweep.LOG_FILE)).read()
  assert log.count("=== ") == 2  # one attempt: an error is not retried


# ---------------------------------------------------------------------------
# Aggregation over fake finished run folders.
# ---------------------------------------------------------------------------


def _image(psnr, ssim, lpips, masked=None):
  image = {"psnr": psnr, "ssim": ssim, "lpips": lpips, "lpips_net": "vgg",
           "lpips_status": "ok", "ssim_data_range": 1.0}
  if masked:
    image.update(masked_psnr=masked[0], masked_ssim=masked[1],
                 masked_lpips=masked[2])
  return image


def _finish(cell, per_image, step=None):
  """Leaves ``cell``'s run folder as a finished sweep leaves it."""
  os.makedirs(os.path.join(cell.workdir, "eval"))
  config = cell.config()
  with open(os.path.join(cell.workdir, "config.json"), "w") as f:
    f.write(config.to_json())
  with open(os.path.join(cell.workdir, sweep.CELL_FILE), "w") as f:
    json.dump(cell.spec(), f)
  with open(os.path.join(cell.workdir, sweep.METRICS), "w") as f:
    json.dump({"step": config.train.max_steps if step is None else step,
               "ssim_data_range": 1.0, "mean": {}, "per_image": per_image}, f)


# Two images whose average errors have closed forms: (PSNR 20, SSIM 0.75,
# LPIPS 0.2) → (0.01 · 0.5 · 0.2)^(1/3) = 0.1; (30, 0.96, 0.005) → (0.001 ·
# 0.2 · 0.005)^(1/3) = 0.01.
CLOSED_FORM = [(20.0, 0.75, 0.2), (30.0, 0.96, 0.005)]


def test_tables_hold_the_closed_form_means_and_list_failed_cells(
    tmp_path, scene_dirs):
  grid = sweep.Grid(scene_dirs=scene_dirs, views=[3],
                    methods=["mipnerf", "regnerf"])
  cells = {c.key: c for c in sweep.expand(grid, str(tmp_path / "out"))}
  _finish(cells["fern/3view/mipnerf"], [_image(*v) for v in CLOSED_FORM])
  _finish(cells["fern/3view/regnerf"],
          [_image(22.0, 0.5, 0.4), _image(24.0, 0.7, 0.2)])
  _finish(cells["scan24/3view/mipnerf"],
          [_image(10.0, 0.5, 0.5, masked=CLOSED_FORM[0]),
           _image(12.0, 0.3, 0.7, masked=CLOSED_FORM[1])])
  failed = cells["scan24/3view/regnerf"]
  os.makedirs(failed.workdir)
  sweep._write_status(failed.workdir, state="failed",  # pylint: disable=protected-access
                      error="regnerf-train: error: the disk is full")
  results = sweep.aggregate(list(cells.values()))

  llff = results["mean"]["llff"]["variants"]["full"]
  entry = llff["rows"]["mipnerf"]["3"]
  assert entry["psnr"] == pytest.approx(25.0)
  assert entry["ssim"] == pytest.approx(0.855)
  assert entry["lpips"] == pytest.approx(0.1025)
  assert entry["avg_error"] == pytest.approx(0.055)  # (0.1 + 0.01) / 2
  assert llff["rows"]["regnerf"]["3"]["psnr"] == pytest.approx(23.0)
  assert llff["published"]["RegNeRF"]["3"]["psnr"] == 19.08
  assert llff["published"]["mip-NeRF"]["3"]["avg_error"] == 0.246
  dtu = results["mean"]["dtu"]["variants"]
  assert dtu["masked"]["rows"]["mipnerf"]["3"]["avg_error"] == pytest.approx(
      0.055)
  assert dtu["full"]["rows"]["mipnerf"]["3"]["psnr"] == pytest.approx(11.0)
  assert dtu["masked"]["published"]["RegNeRF"]["3"]["psnr"] == 18.89
  # The failed cell: no mean over an incomplete set, and its error is listed.
  missing = dtu["masked"]["rows"]["regnerf"]["3"]
  assert missing["psnr"] is None and not missing["complete"]
  assert missing["not_done"] == ["scan24/3view/regnerf: failed"]
  row = next(r for r in results["cells"] if r["key"] == failed.key)
  assert (row["state"], row["error"]) == (
      "failed", "regnerf-train: error: the disk is full")
  text = sweep.markdown(results)
  assert re.search(r"\| mip-NeRF \| 25\.00 \| 0\.855 \| 0\.10[23] \| 0\.055 \|",
                   text), text
  assert "| RegNeRF (published) | 19.08 | 0.587 | 0.336 | 0.149 |" in text
  assert "| RegNeRF | incomplete (0/1) |" in text
  assert "| scan24/3view/regnerf | failed | regnerf-train: error: the disk " \
         "is full |" in text
  sweep.write_results(results, str(tmp_path / "out"))
  with open(tmp_path / "out" / sweep.RESULTS_JSON) as f:
    assert json.load(f)["cells"] == json.loads(json.dumps(results["cells"]))


def test_unverified_published_numbers_are_marked(tmp_path, scene_dirs):
  cells = sweep.expand(sweep.Grid(scene_dirs=scene_dirs[1:], views=[6],
                                  methods=["regnerf"]), str(tmp_path))
  text = sweep.markdown(sweep.aggregate(cells))
  # Masked PSNR from a named source; SSIM and LPIPS only recalled.
  assert "| RegNeRF (published) | 22.20 | 0.841† | 0.117† | n/a |" in text


def test_a_result_of_another_config_or_step_is_not_finished(tmp_path,
                                                            scene_dirs):
  grid = sweep.Grid(scene_dirs=scene_dirs[:1], views=[3], methods=["mipnerf"])
  cell = sweep.expand(grid, str(tmp_path))[0]
  _finish(cell, [_image(*CLOSED_FORM[0])], step=5)
  assert sweep.finished(cell.spec()) == (
      None, "the metrics are of step 5, not 250000")
  other = sweep.expand(sweep.Grid(scene_dirs=scene_dirs[:1], views=[3],
                                  methods=["mipnerf"],
                                  overrides=["train.lr_init=1e-3"]),
                       str(tmp_path))[0]
  assert sweep.finished(other.spec())[1] == f"{sweep.CELL_FILE} is not this " \
                                            "cell's"
  # run_cell refuses the folder (it holds another cell's run), untouched.
  before = sorted(os.listdir(cell.workdir))
  result = sweep.run_cell(dict(other.spec(), train_args=[], eval_args=[]),
                          "test", 0)
  assert result["state"] == "failed"
  assert "holds the run of another cell" in result["error"]
  assert "train.lr_init" in result["error"] and "another --output" in \
      result["error"]
  assert sorted(os.listdir(cell.workdir)) == before
  row = sweep.cell_result(other)
  assert row["state"] == "not run" and "not this cell's" in row["error"]


def test_operational_overrides_and_a_moved_output_keep_a_cell_finished(
    tmp_path, scene_dirs):
  grid = sweep.Grid(scene_dirs=scene_dirs[:1], views=[3], methods=["mipnerf"])
  cell = sweep.expand(grid, str(tmp_path / "a"))[0]
  _finish(cell, [_image(*CLOSED_FORM[0])])
  os.rename(tmp_path / "a", tmp_path / "b")
  grid.overrides = ["train.checkpoint_every=2500", "train.log_every=7"]
  moved = sweep.expand(grid, str(tmp_path / "b"))[0]
  report, why = sweep.finished(moved.spec())
  assert why == "" and report["per_image"][0]["psnr"] == 20.0
  grid.ssim_release = True  # another evaluation: scored again
  assert sweep.finished(sweep.expand(grid, str(tmp_path / "b"))[0].spec())[
      1] == "the metrics use another SSIM data range"


# ---------------------------------------------------------------------------
# A 2×2 sweep on a local Ray instance.
# ---------------------------------------------------------------------------

STEPS = 150
TINY = {"model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
        "model.net_width_viewdirs": 8, "model.num_samples": 8,
        "model.max_deg_point": 6, "train.batch_size": 64,
        "train.patch_batch_size": 32, "reg.patch_size": 4,
        "train.max_steps": STEPS, "train.checkpoint_every": 10,
        "train.log_every": 10, "train.lr_delay_steps": 3,
        "reg.anneal_steps": 6}
VICTIM = "fern/3view/{kind}3_small"


def _kill_after_first_checkpoint(cell, killed, stop):
  """SIGKILLs the Ray worker running ``cell`` once its training has written
  a checkpoint (and is still running)."""
  while not stop.is_set():
    status = sweep.read_status(cell.workdir)
    step = checkpoints.latest_step(cell.workdir) if os.path.isdir(
        os.path.join(cell.workdir, "checkpoints")) else None
    if (step is not None and step < STEPS
        and status.get("step") == "regnerf-train"):
      killed.update(step=step, worker=status["worker_pid"],
                    train=status["pid"])
      os.kill(status["worker_pid"], signal.SIGKILL)
      return
    time.sleep(0.02)


def _first_logged_steps(workdir):
  """The first step each start of training logged to TensorBoard, in order."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  folder = os.path.join(workdir, "tensorboard", "train")
  firsts = []
  for name in sorted(os.listdir(folder)):
    steps = [e.step for e in tf.compat.v1.train.summary_iterator(
        os.path.join(folder, name)) if e.summary.value]
    firsts.append(min(steps))
  return firsts


def _gone(pid):
  try:
    with open(f"/proc/{pid}/status") as f:
      return "\nState:\tZ" in f.read()  # a zombie no one reaped yet
  except FileNotFoundError:
    return True


@pytest.mark.large
@needs_shared
def test_a_sweep_on_ray_resumes_a_killed_worker_and_skips_finished_cells(
    tmp_path):
  import ray  # pylint: disable=import-outside-toplevel
  grid = sweep.Grid(scene_dirs=[str(FERN), str(SCAN24)], views=[3],
                    methods=["{kind}3_small", "{kind}3_small_mipnerf"],
                    overrides=[f"{k}={v}" for k, v in TINY.items()],
                    downscale=8)
  output = str(tmp_path / "sweep")
  cells = sweep.expand(grid, output)
  victim = next(c for c in cells if c.key == VICTIM)
  killed, stop, lines = {}, threading.Event(), []
  killer = threading.Thread(target=_kill_after_first_checkpoint,
                            args=(victim, killed, stop), daemon=True)
  ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
  try:
    killer.start()
    results = sweep.run_sweep(cells, output, progress=lines.append,
                              poll_seconds=0.2)
    stop.set()
    # Every cell finished; the killed one in a second attempt that resumed
    # from a checkpoint, not from step 0.
    assert killed, "the victim finished before it could be killed"
    assert [r["state"] for r in results["cells"]] == ["done"] * 4, lines
    status = sweep.read_status(victim.workdir)
    assert status["state"] == "done" and status["attempt"] == 2, lines
    assert _gone(killed["train"])  # died with its worker
    log = open(os.path.join(victim.workdir, sweep.LOG_FILE)).read()
    starts = re.findall(r"newest checkpoint: (\w+)\n=== \S+ -m "
                        r"regnerf_tf\.cli\.train ", log)
    assert starts[0] == "none" and len(starts) == 2, log
    assert killed["step"] <= int(starts[1]) < STEPS, (killed, log)
    # The trainer's own logs: its first start logged step 1, its second
    # nothing before that checkpoint (it logs every train.log_every steps).
    first, second = _first_logged_steps(victim.workdir)
    every = TINY["train.log_every"]
    assert first == 1 and int(starts[1]) < second <= int(starts[1]) + every
    assert f"  started  {VICTIM} (attempt 2" in "\n".join(lines)
    # The same cell, uninterrupted, in a folder of its own (no Ray).
    reference = dict(victim.spec(), workdir=str(tmp_path / "reference"))
    spec = dict(reference, train_args=[
        a.replace(victim.workdir, reference["workdir"])
        for a in victim.train_args()],
        eval_args=[f"--workdir={reference['workdir']}", "--lpips_net=vgg"])
    assert sweep.run_cell(spec, "reference", 0)["state"] == "done"

    # Second invocation: nothing runs, no metrics file is written again.
    paths = [os.path.join(c.workdir, sweep.METRICS) for c in cells]
    mtimes = [os.stat(p).st_mtime_ns for p in paths]
    again = []
    assert sweep.run_sweep(cells, output, progress=again.append)["mean"] == \
        results["mean"]
    assert again == [f"regnerf-sweep: all 4 cells finished before; nothing "
                     f"to run ({output})."]
    assert [os.stat(p).st_mtime_ns for p in paths] == mtimes
  finally:
    stop.set()
    ray.shutdown()

  def per_image(workdir):
    with open(os.path.join(workdir, sweep.METRICS)) as f:
      return json.load(f)["per_image"]

  # Resumed and uninterrupted runs score alike.
  got, want = per_image(victim.workdir), per_image(reference["workdir"])
  assert [i["psnr"] for i in got] == pytest.approx(
      [i["psnr"] for i in want], abs=0.05)
  # The tables are the means of the run folders' per-image metrics.
  with open(os.path.join(output, sweep.RESULTS_JSON)) as f:
    on_disk = json.load(f)
  text = open(os.path.join(output, sweep.RESULTS_MD)).read()
  for cell in cells:
    images = per_image(cell.workdir)
    family = on_disk["mean"][cell.scene.kind]["variants"]
    for variant, prefix in (("full", ""), ("masked", "masked_")):
      if variant not in family:
        continue
      entry = family[variant]["rows"][cell.method]["3"]
      for key in ("psnr", "ssim"):
        values = [i[prefix + key] for i in images]
        assert entry[key] == pytest.approx(sum(values) / len(values))
      assert entry["lpips"] is None and entry["avg_error"] is None  # no weights
    psnr = sum(i["psnr"] for i in images) / len(images)
    assert f"| {cell.method} | {psnr:.2f} |" in text
  assert on_disk["mean"]["dtu"]["variants"]["masked"]["rows"][
      "{kind}3_small"]["3"]["complete"]
