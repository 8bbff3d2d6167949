"""The paper's protocol at scale: every scene × view count × method × seed.

A grid (:class:`Grid`: scene folders and/or TFDS scenes, view counts,
methods, overrides, seeds) expands into cells (:func:`expand`), one run
folder each under ``output/<scene>/<n>view/<method>[-seed<s>]``.
:func:`run_sweep` runs the cells that are not finished as Ray tasks with
declared resources (one GPU per run when the cluster has GPUs, else
``cpus_per_run`` CPUs), prints progress as cells start, finish or fail, and
then aggregates every cell's ``eval/metrics.json`` into per-scene and mean
tables in the paper's layout, beside the published numbers
(:data:`PUBLISHED`), as ``sweep_results.md`` and ``sweep_results.json`` in
``output`` (:func:`aggregate`, :func:`markdown`).

How a cell runs. The Ray task (:func:`run_cell`) runs the project's own
command lines in subprocesses, the ones a user would type to reproduce the
cell::

  python -m regnerf_tf.cli.train --preset=... --scene_dir=... --workdir=... \\
      --override=... --eval_views=none --quiet
  python -m regnerf_tf.cli.eval --workdir=... --lpips_net=vgg

rather than calling the library in the Ray worker, because: regnerf-train
already resumes a run folder from its newest checkpoint with the same data
stream and schedules, and refuses a folder that holds another config, so a
cell's resume is exactly a user's; TensorFlow's memory (a GPU's above all)
and threads go back to the machine when the process exits, while a Ray
worker is reused for the next cell; a crash or the OOM killer ends that one
process, which the task notices and starts again; the flags are absl's
process-global ones, which one process cannot parse twice. Output goes to
``<run folder>/sweep.log`` (a header per attempt names the newest checkpoint
it starts from), the state to ``sweep_status.json`` and the cell's definition
to ``sweep_cell.json``.

Resume. A cell is finished when ``eval/metrics.json`` exists, ``sweep_cell.json``
is this cell's, the run's config (``config.json`` and ``history.json``) has
the cell's preset and overrides in every field that changes the result, and
the metrics were taken at the config's last step; a finished cell is never
submitted again. Anything else is submitted, and regnerf-train continues its
folder from the newest checkpoint. A Ray task whose worker dies (a node
lost, ``kill -9``) is retried by Ray (``max_retries``) and the retry resumes
the folder; its training subprocess dies with it (Linux: the parent-death
signal), so two processes never train one folder. A subprocess killed by a
signal is started again within the task, up to ``max_retries`` times. A
command that fails on its own (a bad scene, a refused config) is not retried:
the cell is listed as failed with the command's one-paragraph error.

Ray is imported only by :func:`run_sweep`; the rest of this module (grid
expansion, :func:`run_cell`, aggregation) and ``import regnerf_tf`` work
without it (``pip install "regnerf-tf[sweep]"`` adds it).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from regnerf_tf import (atomic, checkpoints, configs, errors, metrics,
                        run_folder, scene_kinds, scenes)
from regnerf_tf.datasets import readers

CELL_FILE = "sweep_cell.json"  # in a run folder: the cell it belongs to
STATUS_FILE = "sweep_status.json"  # running / done / failed, attempt, pids
LOG_FILE = "sweep.log"  # the commands' output, one header per attempt
METRICS = os.path.join("eval", "metrics.json")  # what regnerf-eval writes
RESULTS_JSON = "sweep_results.json"
RESULTS_MD = "sweep_results.md"


@dataclasses.dataclass(frozen=True)
class Method:
  """A named method: a preset per scene kind and view count, plus overrides.

  Attributes:
    label: the table row's name.
    preset: preset name template; ``{kind}`` is the scene's preset family
      (llff, dtu), ``{views}`` the view count.
    overrides: config fields set on top of the preset.
    views: per view count, more overrides (None: the preset template
      already names a preset for every count).
    published: the row of :data:`PUBLISHED` it compares with (None: none).
  """
  label: str
  preset: str
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  views: dict[int, dict[str, Any]] | None = None
  published: str | None = None


# The CPU protocol's presets are 3-view ones; other view counts take that
# count's canonical split, without annealing at 9 views (the release's 9-view
# configs have none), as benchmarks/quality.py trains them.
CPU_VIEWS = {3: {}, 6: {"data.n_views": 6},
             9: {"data.n_views": 9, "reg.anneal_steps": 0}}
# The appearance term's weight where a method has it on: the paper does not
# give λ (reference §4.5); 1e-4 is the value of the *_combined presets and
# of benchmarks/quality.py.
PRIOR = {"reg.appearance_weight": 1e-4}

METHODS = {
    # The paper's protocol: the release's configs (full step budget, 128 +
    # 128 samples, 4096 + 4096 rays per step; a GPU per run).
    "mipnerf": Method("mip-NeRF", "{kind}{views}_mipnerf",
                      published="mip-NeRF"),
    "regnerf": Method("RegNeRF", "{kind}{views}", PRIOR, published="RegNeRF"),
    "regnerf_release": Method("RegNeRF as released (no appearance term)",
                              "{kind}{views}"),
    "freenerf": Method("FreeNeRF", "{kind}{views}_freenerf",
                       published="FreeNeRF"),
    "combined": Method("RegNeRF + FreeNeRF", "{kind}{views}_combined"),
    # The benchmarks' CPU protocol (presets <kind>3_cpu*: a 6×128 network,
    # 32 + 32 samples, 1200 steps; run it with --downscale=2).
    "mipnerf_cpu": Method("mip-NeRF, CPU protocol", "{kind}3_cpu_mipnerf",
                          views=CPU_VIEWS, published="mip-NeRF"),
    "regnerf_cpu": Method("RegNeRF, CPU protocol", "{kind}3_cpu", PRIOR,
                          CPU_VIEWS, "RegNeRF"),
    "regnerf_tv_cpu": Method("RegNeRF without appearance term, CPU protocol",
                             "{kind}3_cpu", views=CPU_VIEWS),
    "freenerf_cpu": Method("FreeNeRF, CPU protocol", "{kind}3_cpu_freenerf",
                           views=CPU_VIEWS, published="FreeNeRF"),
    "combined_cpu": Method("RegNeRF + FreeNeRF, CPU protocol",
                           "{kind}3_cpu_combined", views=CPU_VIEWS),
}

# The project's TFDS datasets: kind, and the config of n input views.
TFDS_KINDS = {"dtu_sparse": "dtu", "llff_sparse": "llff"}
# Grid fields that are not overrides: they are axes of the grid.
AXIS_FIELDS = {"data.n_views": "--views", "train.seed": "--seeds"}

# ---------------------------------------------------------------------------
# Published numbers.
# ---------------------------------------------------------------------------

SOURCES = {
    "regnerf": "RegNeRF (Niemeyer et al., CVPR 2022), Tables 1–2, as "
               "transcribed by a later paper (the S3NeRF paper reproduces "
               "the same table); regnerf_reference.md §7.1",
    "dropgaussian": "RegNeRF's LLFF 6- and 9-view numbers as the DropGaussian "
                    "paper quotes them; regnerf_reference.md §7.2",
    "cognitivestudio": "RegNeRF's DTU object-masked PSNR at 6 and 9 views, "
                       "CognitiveStudio docs 'Benchmarks'; "
                       "regnerf_reference.md §7.2",
    "freenerf": "FreeNeRF (Yang et al., CVPR 2023), as later papers quote "
                "it; regnerf_reference.md §7.1 and §7.5",
    "unverified": "recalled, not checked against the papers (marked "
                  "[UNVERIFIED] in regnerf_reference.md §7.2 and §7.5); "
                  "shown with †",
}

# The published means over the paper's 8 LLFF scenes or 15 DTU scans (full
# protocol), one row per (dataset, metric variant, method, view count).
# "source" is a key of SOURCES for the row's values; a value ending in "?" is
# recalled, not verified (SOURCES["unverified"]); "-": not given. Avg is given
# only where the paper's table gives it: recomputing it from the mean PSNR,
# SSIM and LPIPS gives another number (reference §6.2).
PUBLISHED_TABLE = """
dataset  variant  method    views  psnr    ssim    lpips   avg_error  source
llff     full     mip-NeRF  3      14.62   0.351   0.495   0.246      regnerf
llff     full     RegNeRF   3      19.08   0.587   0.336   0.149      regnerf
llff     full     FreeNeRF  3      19.63   0.612   0.308   0.134      freenerf
llff     full     mip-NeRF  6      20.87?  0.692?  0.255?  -          -
llff     full     RegNeRF   6      23.10   0.760   0.206   -          dropgaussian
llff     full     FreeNeRF  6      23.73   0.779   0.195   -          freenerf
llff     full     mip-NeRF  9      24.26?  0.805?  0.172?  -          -
llff     full     RegNeRF   9      24.86   0.820   0.161   -          dropgaussian
llff     full     FreeNeRF  9      25.13   0.827   0.160   -          freenerf
dtu      masked   mip-NeRF  3      8.68    0.571   0.353   0.323      regnerf
dtu      masked   RegNeRF   3      18.89   0.745   0.190   0.112      regnerf
dtu      masked   FreeNeRF  3      19.92   0.787   0.182   0.098      freenerf
dtu      masked   mip-NeRF  6      16.54?  0.741?  0.198?  -          -
dtu      masked   RegNeRF   6      22.20   0.841?  0.117?  -          cognitivestudio
dtu      masked   FreeNeRF  6      23.25?  -       -       -          -
dtu      masked   mip-NeRF  9      23.58?  0.879?  0.092?  -          -
dtu      masked   RegNeRF   9      24.93   0.884?  0.089?  -          cognitivestudio
dtu      masked   FreeNeRF  9      25.38?  -       -       -          -
dtu      full     mip-NeRF  3      7.64?   0.227?  0.655?  -          -
dtu      full     RegNeRF   3      15.33?  0.621?  0.341?  -          -
dtu      full     FreeNeRF  3      18.02?  -       -       -          -
dtu      full     mip-NeRF  6      14.33?  0.568?  0.394?  -          -
dtu      full     RegNeRF   6      19.10?  0.757?  0.233?  -          -
dtu      full     FreeNeRF  6      22.39?  -       -       -          -
dtu      full     mip-NeRF  9      20.71?  0.799?  0.209?  -          -
dtu      full     RegNeRF   9      22.30?  0.823?  0.184?  -          -
dtu      full     FreeNeRF  9      24.20?  -       -       -          -
"""


def _published(table: str) -> dict[tuple[str, str, str, int], dict]:
  """{(dataset, variant, method, views): {metric: value, "source",
  "unverified": metrics marked "?"}} of a PUBLISHED_TABLE-style table."""
  lines = table.strip().splitlines()
  head = lines[0].split()
  out = {}
  for line in lines[1:]:
    row = dict(zip(head, line.split()))
    entry = {"source": "unverified" if row["source"] == "-" else row["source"]}
    entry["unverified"] = tuple(k for k in METRIC_KEYS
                                if row[k].endswith("?"))
    entry.update({k: float(row[k].rstrip("?")) for k in METRIC_KEYS
                  if row[k] != "-"})
    out[(row["dataset"], row["variant"], row["method"],
         int(row["views"]))] = entry
  return out


# Scene families of the tables: label, metric variants (DTU's test views have
# object masks: masked first, as the paper reports them) and the number of
# scenes the paper averages over.
FAMILIES = {"llff": ("LLFF", ("full",), 8),
            "dtu": ("DTU", ("masked", "full"), 15),
            "blender": ("Blender", ("full",), None)}
VARIANT_LABELS = {"full": "full image", "masked": "object-masked"}
METRIC_KEYS = ("psnr", "ssim", "lpips", "avg_error")
PUBLISHED = _published(PUBLISHED_TABLE)
METRIC_HEADS = {"psnr": "PSNR↑", "ssim": "SSIM↑", "lpips": "LPIPS↓",
                "avg_error": "Avg↓"}
METRIC_FORMATS = {"psnr": ".2f", "ssim": ".3f", "lpips": ".3f",
                  "avg_error": ".3f"}

# ---------------------------------------------------------------------------
# The grid and its cells.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Grid:
  """What to run: scenes × view counts × methods × seeds.

  Attributes:
    scene_dirs: scene folders in any layout the readers accept.
    tfds: a project TFDS dataset (``dtu_sparse``, ``llff_sparse``); the view
      count picks its config (``<n>view``).
    tfds_scenes: scene names within ``tfds``, or ``["all"]``: every scene the
      built dataset holds (it is built from ``manual_dir`` if needed).
    data_dir: TFDS data directory.
    manual_dir: the raw scenes TFDS builds from.
    views: numbers of input views (canonical splits).
    methods: names of :data:`METHODS`, preset names, or preset templates
      with ``{kind}``/``{views}`` (e.g. ``{kind}{views}_mipnerf``).
    overrides: ``section.field=value`` for every cell (as regnerf-train's
      ``--override``).
    seeds: values of ``train.seed``; empty: the presets' seed.
    downscale: train and evaluate at 1/N of the readers' resolution.
    lpips_net: LPIPS backbone of the evaluation.
    ssim_release: SSIM with data range 2, as the release computes it.
  """
  scene_dirs: Sequence[str] = ()
  tfds: str | None = None
  tfds_scenes: Sequence[str] = ()
  data_dir: str | None = None
  manual_dir: str | None = None
  views: Sequence[int] = (3, 6, 9)
  methods: Sequence[str] = ("mipnerf", "regnerf")
  overrides: Sequence[str] = ()
  seeds: Sequence[int] = ()
  downscale: int = 1
  lpips_net: str = "vgg"
  ssim_release: bool = False


@dataclasses.dataclass(frozen=True)
class SceneSpec:
  """One scene of the grid: its name, kind and where it is read from."""
  name: str
  kind: str
  scene_dir: str | None = None
  tfds: str | None = None
  data_dir: str | None = None
  manual_dir: str | None = None

  def flags(self, views: int) -> list[str]:
    """The scene flags of regnerf-train for ``views`` input views."""
    if self.scene_dir:
      return [f"--scene_dir={self.scene_dir}"]
    return ([f"--tfds={self.tfds}/{views}view", f"--scene={self.name}"]
            + [f"--{k}={v}" for k, v in (("data_dir", self.data_dir),
                                          ("manual_dir", self.manual_dir))
               if v])


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run of the grid, in its own run folder."""
  scene: SceneSpec
  views: int
  method: str
  label: str
  preset: str
  overrides: tuple[tuple[str, Any], ...]
  seed: int | None
  downscale: int
  lpips_net: str
  ssim_data_range: float
  workdir: str
  published: str | None

  @property
  def key(self) -> str:
    seed = "" if self.seed is None else f"-seed{self.seed}"
    return f"{self.scene.name}/{self.views}view/{self.method}{seed}"

  def config(self) -> configs.Config:
    return configs.get_preset(self.preset, **dict(self.overrides))

  def spec(self) -> dict[str, Any]:
    """What ``sweep_cell.json`` records: everything that defines the cell."""
    return {"scene": dataclasses.asdict(self.scene), "views": self.views,
            "method": self.method, "preset": self.preset,
            "overrides": dict(self.overrides), "seed": self.seed,
            "downscale": self.downscale, "lpips_net": self.lpips_net,
            "ssim_data_range": self.ssim_data_range,
            "workdir": self.workdir}

  def train_args(self) -> list[str]:
    """regnerf-train's arguments (after ``python -m regnerf_tf.cli.train``).

    The precision is the config's (the preset's, or an override's), never
    regnerf-train's ``auto``: every cell of a grid trains alike on every
    machine of the cluster, and :func:`finished` can compare configs.
    """
    precision = configs.get_preset(self.preset,
                                   **dict(self.overrides)).model.precision
    return ([f"--preset={self.preset}", *self.scene.flags(self.views)]
            + ([f"--downscale={self.downscale}"] if self.downscale > 1 else [])
            + [f"--workdir={self.workdir}", f"--precision={precision}"]
            + [f"--override={k}={json.dumps(v)}" for k, v in self.overrides]
            + ["--eval_views=none", "--quiet"])

  def eval_args(self) -> list[str]:
    """regnerf-eval's arguments (after ``python -m regnerf_tf.cli.eval``)."""
    return ([f"--workdir={self.workdir}", f"--lpips_net={self.lpips_net}"]
            + (["--ssim_release"] if self.ssim_data_range == 2.0 else []))


def _grid_error(what: str, found: str, todo: str) -> errors.InputError:
  return errors.InputError(f"Sweep grid: expected {what}; found {found}. "
                           f"{todo}")


def _folder_kind(path: str, views: int) -> str:
  """The scene kind of a folder (llff, dtu, blender)."""
  layout = readers.detect_format(path)
  if layout in readers.FORMAT_KINDS:
    return readers.FORMAT_KINDS[layout]
  return scenes.from_folder(path, views).kind  # a capture: from its cameras


def preset_family(kind: str) -> str:
  """The preset family (``llff``/``dtu``) made for scenes of ``kind``:
  forward-facing scenes take LLFF's, object-centred ones (DTU, Blender,
  object captures) DTU's, as in benchmarks/quality.py."""
  return "llff" if scene_kinds.get(kind).forward_facing else "dtu"


def _scene_specs(grid: Grid) -> list[SceneSpec]:
  specs = []
  for path in grid.scene_dirs:
    path = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isdir(path):
      raise _grid_error(
          "scene folders (--scene_dirs) in a layout the readers accept",
          f"{path}, which " + ("is a file" if os.path.exists(path) else
                               "does not exist"),
          "Fix the path (relative paths are taken from the current folder).")
    try:
      kind = _folder_kind(path, min(grid.views))
    except errors.RegNeRFError as e:
      raise _grid_error("a scene folder in a layout the readers accept",
                        f"{path}: {e}", "Fix --scene_dirs.") from None
    specs.append(SceneSpec(os.path.basename(path), kind, scene_dir=path))
  if grid.tfds_scenes and not grid.tfds:
    raise _grid_error("--tfds with --tfds_scenes",
                      f"--tfds_scenes={','.join(grid.tfds_scenes)} without a "
                      "dataset", "Give --tfds=dtu_sparse or llff_sparse.")
  if grid.tfds:
    if grid.tfds not in TFDS_KINDS:
      raise _grid_error(f"--tfds to be one of {sorted(TFDS_KINDS)} (the "
                        "view count picks the config, e.g. dtu_sparse/3view)",
                        f"--tfds={grid.tfds}", "Fix --tfds.")
    names = list(grid.tfds_scenes)
    if not names:
      raise _grid_error("scene names with --tfds (--tfds_scenes=scan24,"
                        "scan114, or all)", "none", "Give --tfds_scenes.")
    if names == ["all"]:
      names = tfds_scenes(grid.tfds, grid.views, grid.data_dir,
                          grid.manual_dir)
    elif "all" in names:
      raise _grid_error("either scene names or 'all' in --tfds_scenes",
                        f"{names}", "Give one or the other.")
    data_dir, manual_dir = (os.path.abspath(p) if p else None
                            for p in (grid.data_dir, grid.manual_dir))
    specs += [SceneSpec(n, TFDS_KINDS[grid.tfds], tfds=grid.tfds,
                        data_dir=data_dir, manual_dir=manual_dir)
              for n in names]
  names = [s.name for s in specs]
  twice = sorted({n for n in names if names.count(n) > 1})
  if twice:
    raise _grid_error("scenes with different names (a scene's name is its "
                      "folder's, and names its run folders)",
                      f"{twice} more than once",
                      "Give each scene once, or run the ones with the same "
                      "name with another --output.")
  return specs


def tfds_scenes(dataset: str, views: Sequence[int], data_dir: str | None,
                manual_dir: str | None) -> list[str]:
  """The scenes every ``<dataset>/<n>view`` config of ``views`` holds,
  building the configs that are not built yet (once, here: cells running at
  the same time would otherwise build the same dataset at once)."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  import regnerf_tf.datasets  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  found = None
  for n in views:
    builder = tfds.builder(f"{dataset}/{n}view", data_dir=data_dir)
    if not builder.is_prepared():
      if not manual_dir:
        raise _grid_error(
            f"TFDS dataset {dataset}/{n}view built in {builder.data_dir}, or "
            "--manual_dir to build it from", "neither",
            "Give --manual_dir (the raw scenes, see datasets/README.md) or "
            "--data_dir where it is built.")
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    names = {s.rsplit("_", 1)[0] for s in builder.info.splits
             if s.endswith("_train")}
    found = names if found is None else found & names
  return sorted(found or ())


def resolve_method(method: str, kind: str, views: int
                   ) -> tuple[str, dict[str, Any], str, str | None]:
  """(preset, overrides, label, published row) of ``method`` on a scene of
  ``kind`` with ``views`` input views."""
  known = configs.preset_names()
  if method in METHODS:
    entry = METHODS[method]
    template, overrides, label = entry.preset, dict(entry.overrides), entry.label
    if entry.views is not None:
      if views not in entry.views:
        raise _grid_error(
            f"a view count the method {method} is defined for "
            f"({sorted(entry.views)})", f"{views}",
            "Drop it from --views for this method.")
      overrides.update(entry.views[views])
    published = entry.published
  elif "{" in method or method in known:
    template, overrides, label, published = method, {}, method, None
  else:
    raise _grid_error(
        f"methods that are a name of {sorted(METHODS)}, a preset name, or a "
        "preset template with {kind} and {views} (e.g. {kind}{views}_mipnerf)",
        f"{method!r}", "Fix --methods (regnerf_tf.configs.preset_names() "
        "lists the presets).")
  family = preset_family(kind)
  try:
    preset = template.format(kind=family, views=views)
  except (KeyError, IndexError, ValueError):
    raise _grid_error("a preset template whose only fields are {kind} and "
                      "{views}", f"{template!r}", "Fix --methods.") from None
  if preset not in known:
    similar = [p for p in known if p.startswith(f"{family}")]
    raise _grid_error(
        f"a preset for method {method} on {kind} scenes with {views} input "
        f"views ({template} → {preset})",
        f"no preset {preset!r} (presets of that family: {similar})",
        "Drop that view count for this method (run it in a sweep of its own), "
        "or name a preset template that exists.")
  return preset, overrides, label, published


def _parse_overrides(grid: Grid) -> dict[str, Any]:
  parsed = dict(configs.parse_override(o) for o in grid.overrides)
  for field, flag in AXIS_FIELDS.items():
    if field in parsed:
      raise _grid_error(
          f"overrides of fields that are not axes of the grid ({field} is "
          f"given by {flag})", f"--override={field}={parsed[field]}",
          f"Give the values with {flag} instead.")
  return parsed


def expand(grid: Grid, output: str) -> list[Cell]:
  """The cells of ``grid``, each with its config checked.

  Raises:
    errors.InputError: an empty axis, an unknown method or preset, a scene
      folder that is missing or not a scene, a config the overrides make
      invalid, or a preset of the other scene family.
  """
  if not output:
    raise _grid_error("--output, the folder of the run folders (one path "
                      "every Ray worker sees)", "none", "Give --output.")
  axes = {"view count (--views)": grid.views, "method (--methods)":
          grid.methods}
  empty = [name for name, values in axes.items() if not list(values)]
  if not grid.scene_dirs and not grid.tfds_scenes:
    empty.insert(0, "scene (--scene_dirs, or --tfds with --tfds_scenes)")
  if empty:
    raise _grid_error(f"at least one {', one '.join(empty)}",
                      "an empty grid", "Give them.")
  bad_views = [v for v in grid.views if not isinstance(v, int) or v < 1]
  if bad_views or len(set(grid.views)) != len(list(grid.views)):
    raise _grid_error("distinct positive view counts (e.g. --views=3,6,9)",
                      f"{list(grid.views)}", "Fix --views.")
  if int(grid.downscale) < 1:
    raise _grid_error("--downscale >= 1", f"{grid.downscale}",
                      "Fix --downscale.")
  overrides = _parse_overrides(grid)
  seeds = list(grid.seeds) or [None]
  output = os.path.abspath(os.path.expanduser(output))
  cells = []
  for scene in _scene_specs(grid):
    for views in grid.views:
      for method in grid.methods:
        preset, values, label, published = resolve_method(method, scene.kind,
                                                          views)
        values.update(overrides)
        for seed in seeds:
          cell_values = dict(values, **({} if seed is None else
                                        {"train.seed": int(seed)}))
          folder = method.replace("{", "").replace("}", "") + (
              "" if seed is None else f"-seed{seed}")
          cell = Cell(scene, views, method, label, preset,
                      tuple(sorted(cell_values.items())), seed,
                      int(grid.downscale), grid.lpips_net,
                      2.0 if grid.ssim_release else 1.0,
                      os.path.join(output, scene.name, f"{views}view", folder),
                      published)
          config = cell.config()  # ConfigError names a bad override
          if config.data.n_views != views:
            raise _grid_error(
                f"a preset that trains {views} input views for {cell.key}",
                f"{preset} with data.n_views={config.data.n_views}",
                "Use a preset template with {views}, or a method defined "
                "for that count.")
          config.check_scene_kind(scene.kind, f"scene {scene.name}")
          cells.append(cell)
  return cells


# ---------------------------------------------------------------------------
# A cell's state on disk.
# ---------------------------------------------------------------------------


def _read_json(path: str) -> dict | None:
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) else None


def finished(cell_spec: dict) -> tuple[dict | None, str]:
  """(metrics.json, "") when the cell's run folder holds its finished
  result, else (None, why not)."""
  workdir = cell_spec["workdir"]
  report = _read_json(os.path.join(workdir, METRICS))
  if report is None:
    return None, f"no readable {METRICS}"
  recorded = _read_json(os.path.join(workdir, CELL_FILE))
  if recorded is None or _training_part(recorded) != _training_part(
      cell_spec):
    return None, f"{CELL_FILE} is not this cell's"
  try:
    expected = configs.get_preset(cell_spec["preset"],
                                  **cell_spec["overrides"])
    current = run_folder.run_config(workdir)
  except errors.RegNeRFError as e:
    return None, str(e)
  if current is None:
    return None, f"no {run_folder.CONFIG}"
  changed = sorted(set(run_folder.differences(current, expected))
                   - run_folder.OPERATIONAL)
  if changed:
    return None, f"the run's config differs in {changed}"
  if report.get("step") != expected.train.max_steps:
    return None, (f"the metrics are of step {report.get('step')}, not "
                  f"{expected.train.max_steps}")
  if report.get("ssim_data_range") != cell_spec["ssim_data_range"]:
    return None, "the metrics use another SSIM data range"
  nets = {i.get("lpips_net") for i in report.get("per_image", [])} - {None}
  if nets - {cell_spec["lpips_net"]}:
    return None, f"the metrics use LPIPS {sorted(nets)}"
  return report, ""


def _training_part(spec: dict) -> dict:
  """What defines a cell's training: its spec without the evaluation
  settings (a change re-scores the run), the run folder's path (it may move)
  and the overrides of fields that only change how a run is carried out
  (logging, checkpoint spacing: run_folder.OPERATIONAL)."""
  part = {k: v for k, v in spec.items()
          if k not in ("lpips_net", "ssim_data_range", "workdir")}
  part["overrides"] = {k: v for k, v in (spec.get("overrides") or {}).items()
                       if k not in run_folder.OPERATIONAL}
  return part


def read_status(workdir: str) -> dict:
  return _read_json(os.path.join(workdir, STATUS_FILE)) or {}


def _write_status(workdir: str, **status) -> None:
  status["time"] = _now()
  atomic.write_json(os.path.join(workdir, STATUS_FILE), status)


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")


# ---------------------------------------------------------------------------
# Running one cell (the Ray task's body; plain Python, usable without Ray).
# ---------------------------------------------------------------------------


def _die_with(parent: int) -> Callable[[], None]:
  """preexec_fn: the child gets SIGKILL when its parent dies (Linux)."""

  def preexec():
    if sys.platform.startswith("linux"):
      import ctypes  # pylint: disable=import-outside-toplevel
      libc = ctypes.CDLL(None, use_errno=True)
      libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
      if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)  # pylint: disable=protected-access

  return preexec


def _error_paragraph(text: str, program: str) -> str:
  """The ``<program>: error: ...`` paragraph the command lines print, or the
  end of the output (a crash's traceback)."""
  marker = f"{program}: error:"
  start = text.rfind(marker)
  if start >= 0:
    return " ".join(text[start:].split())
  tail = [line for line in text.strip().splitlines() if line.strip()][-12:]
  return " | ".join(tail) or "(no output)"


def _run_command(module: str, program: str, args: list[str], cell_spec: dict,
                 status: dict, retries: int) -> tuple[int, str]:
  """Runs ``python -m module args`` with its output appended to the log,
  again when a signal killed it (up to ``retries`` times).

  Returns:
    (exit code, error text or "").
  """
  workdir = cell_spec["workdir"]
  log_path = os.path.join(workdir, LOG_FILE)
  argv = [sys.executable, "-m", module, *args]
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  threads = int(cell_spec.get("cpus_per_run") or 0)
  if threads >= 1:  # the CPUs the task declared
    env.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
  for run in range(retries + 1):
    step = checkpoints.latest_step(workdir)
    with open(log_path, "ab") as log:
      start = log.tell()
      log.write(f"\n=== {_now()} attempt {status['attempt']}"
                f"{f', restart {run}' if run else ''} on {socket.gethostname()}"
                f", newest checkpoint: {'none' if step is None else step}"
                f"\n=== {' '.join(argv)}\n".encode())
      log.flush()
      proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                              env=env, preexec_fn=_die_with(os.getpid()))
      _write_status(workdir, **status, step=program, pid=proc.pid)
      code = proc.wait()
    if code >= 0:
      break
    with open(log_path, "ab") as log:
      log.write(f"=== {program} was killed by signal {-code}\n".encode())
  if code == 0:
    return 0, ""
  with open(log_path, "rb") as log:
    log.seek(start)
    text = log.read().decode(errors="replace")
  if code < 0:
    return code, (f"{program} was killed by signal {-code} "
                  f"({retries + 1} times); see {log_path}")
  return code, f"{_error_paragraph(text, program)} (exit code {code}; " \
               f"{log_path})"


def run_cell(cell_spec: dict, run_id: str, retries: int = 3) -> dict:
  """Trains and evaluates one cell in its run folder (the Ray task).

  Args:
    cell_spec: :meth:`Cell.spec` plus "train_args", "eval_args" and
      "cpus_per_run".
    run_id: the sweep invocation, recorded in the status file.
    retries: how often a command killed by a signal is started again.

  Returns:
    {"state": "done", "metrics": the mean metrics} or {"state": "failed",
    "error": the command's error paragraph}.
  """
  spec = {k: v for k, v in cell_spec.items()
          if k not in ("train_args", "eval_args", "cpus_per_run")}
  workdir = spec["workdir"]
  os.makedirs(workdir, exist_ok=True)
  recorded = _read_json(os.path.join(workdir, CELL_FILE))
  before, now = (None if recorded is None else _training_part(recorded),
                 _training_part(spec))
  differs = {} if before is None else {
      k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
  if differs:
    return {"state": "failed", "error": (
        f"{workdir} holds the run of another cell ({CELL_FILE} there: "
        + "; ".join(f"{k} {a!r}, this cell {b!r}"
                    for k, (a, b) in differs.items())
        + "). Use another --output for this grid, or move that folder "
        "away.")}
  attempt = int(read_status(workdir).get("attempt", 0)) + 1
  status = {"state": "running", "run_id": run_id, "attempt": attempt,
            "host": socket.gethostname(), "worker_pid": os.getpid()}
  _write_status(workdir, **status)
  atomic.write_json(os.path.join(workdir, CELL_FILE), spec)
  report, _ = finished(spec)
  if report is None:
    for module, program, key in (
        ("regnerf_tf.cli.train", "regnerf-train", "train_args"),
        ("regnerf_tf.cli.eval", "regnerf-eval", "eval_args")):
      code, error = _run_command(module, program, cell_spec[key], cell_spec,
                                 status, retries)
      if code != 0:
        _write_status(workdir, **dict(status, state="failed"), error=error)
        return {"state": "failed", "error": error}
    report, why = finished(spec)
    if report is None:
      error = f"regnerf-eval finished but {why} ({workdir})"
      _write_status(workdir, **dict(status, state="failed"), error=error)
      return {"state": "failed", "error": error}
  _write_status(workdir, **dict(status, state="done"))
  return {"state": "done", "metrics": report.get("mean", {})}


# ---------------------------------------------------------------------------
# The sweep on Ray.
# ---------------------------------------------------------------------------


def _import_ray():
  try:
    import ray  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise errors.InputError(
        "regnerf-sweep runs its cells on Ray, which is not installed here. "
        "Install it with pip install \"regnerf-tf[sweep]\" (or "
        "pip install -e \".[sweep]\" in a checkout).") from None
  return ray


def _counts(states: dict[str, str]) -> str:
  order = ("done", "running", "waiting", "failed")
  n = {s: sum(1 for v in states.values() if v == s) for s in order}
  return (f"{n['done']}/{len(states)} done, {n['running']} running, "
          f"{n['waiting']} waiting, {n['failed']} failed")


def _short_metrics(mean: dict) -> str:
  parts = [f"PSNR {mean['psnr']:.2f} dB"] if mean.get("psnr") is not None \
      else []
  if mean.get("masked_psnr") is not None:
    parts.append(f"masked PSNR {mean['masked_psnr']:.2f} dB")
  if mean.get("ssim") is not None:
    parts.append(f"SSIM {mean['ssim']:.3f}")
  if mean.get("lpips") is not None:
    parts.append(f"LPIPS {mean['lpips']:.3f}")
  return ", ".join(parts)


def run_sweep(cells: Sequence[Cell], output: str, address: str | None = None,
              cpus_per_run: float = 1.0, gpus_per_run: float | None = None,
              max_retries: int = 3,
              progress: Callable[[str], None] | None = None,
              poll_seconds: float = 1.0) -> dict:
  """Runs the unfinished ``cells`` on Ray, then aggregates all of them.

  Ray is used as found: when ``ray.is_initialized()`` the current instance,
  else ``ray.init(address)`` (None: a new local instance; "auto" or
  "ray://host:10001": a running cluster).

  Args:
    cells: from :func:`expand`.
    output: the root of the run folders (``sweep_results.*`` go there).
    address: the Ray cluster.
    cpus_per_run: CPUs each run declares (and TensorFlow's intra-op threads).
    gpus_per_run: GPUs each run declares; None: 1 when the cluster has GPUs,
      else 0.
    max_retries: Ray's retries of a task whose worker died, and restarts of
      a command killed by a signal.
    progress: called with each progress line (default: print).
    poll_seconds: how often the run folders are read for progress.

  Returns:
    :func:`aggregate`'s results (also written to ``output``).
  """
  say = progress or (lambda line: print(line, flush=True))
  todo = [c for c in cells if finished(c.spec())[0] is None]
  if not todo:
    say(f"regnerf-sweep: all {len(cells)} cells finished before; nothing to "
        f"run ({output}).")
  else:
    ray = _import_ray()
    started_ray = not ray.is_initialized()
    if started_ray:
      ray.init(address=address, log_to_driver=False,
               **({} if address else {"include_dashboard": False}))
    try:
      gpus_per_run = _check_resources(ray, cpus_per_run, gpus_per_run)
      _check_tfds(todo)
      say(f"regnerf-sweep: {len(cells)} cells, {len(cells) - len(todo)} "
          f"finished before; running {len(todo)} on Ray (each run "
          f"{cpus_per_run:g} CPU(s), {gpus_per_run:g} GPU(s)) into {output}")
      _run_on_ray(ray, todo, cpus_per_run, gpus_per_run, max_retries, say,
                  poll_seconds)
    finally:
      if started_ray:
        ray.shutdown()
  results = aggregate(cells)
  write_results(results, output)
  return results


def _check_resources(ray, cpus_per_run: float,
                     gpus_per_run: float | None) -> float:
  """GPUs per run (None: 1 when the cluster has GPUs); refuses a demand no
  node of the cluster can meet."""
  resources = ray.cluster_resources()
  cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
  if gpus_per_run is None:
    gpus_per_run = 1.0 if gpus >= 1 else 0.0
  if cpus_per_run > cpus or gpus_per_run > gpus:
    raise errors.InputError(
        f"Each run declares {cpus_per_run:g} CPU(s) and {gpus_per_run:g} "
        f"GPU(s), but the Ray cluster has {cpus:g} CPU(s) and {gpus:g} "
        "GPU(s): no run could ever start. Lower --cpus_per_run/"
        "--gpus_per_run, or add nodes.")
  return gpus_per_run


def _check_tfds(cells: Sequence[Cell]) -> None:
  """Builds the TFDS configs the cells need (once, before any cell starts)
  and checks that each names a scene of them."""
  needed = {}
  for cell in cells:
    scene = cell.scene
    if scene.tfds:
      needed.setdefault((scene.tfds, scene.data_dir, scene.manual_dir),
                        {}).setdefault(cell.views, set()).add(scene.name)
  for (dataset, data_dir, manual_dir), by_views in needed.items():
    for views, names in by_views.items():
      held = set(tfds_scenes(dataset, [views], data_dir, manual_dir))
      if names - held:
        raise _grid_error(
            f"scenes of {dataset}/{views}view ({sorted(held)})",
            f"{sorted(names - held)}", "Fix --tfds_scenes (or build the "
            "dataset from a --manual_dir that holds them).")


def _run_on_ray(ray, todo: Sequence[Cell], cpus_per_run: float,
                gpus_per_run: float, max_retries: int, say, poll_seconds):
  run_id = uuid.uuid4().hex
  task = ray.remote(run_cell).options(
      num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
      retry_exceptions=False)
  pending = {}
  for cell in todo:
    spec = dict(cell.spec(), train_args=cell.train_args(),
                eval_args=cell.eval_args(), cpus_per_run=cpus_per_run)
    pending[task.remote(spec, run_id, max_retries)] = cell
  states = {c.key: "waiting" for c in todo}
  attempts = {}
  began = {c.key: None for c in todo}
  shown = None
  try:
    while pending:
      ready, _ = ray.wait(list(pending), num_returns=len(pending),
                          timeout=poll_seconds)
      for ref in ready:
        cell = pending.pop(ref)
        try:
          result = ray.get(ref)
        except ray.exceptions.RayError as e:  # its worker died every time
          error = " ".join(f"{type(e).__name__}: {e}".split())[:2000]
          result = {"state": "failed", "error": error}
          _write_status(cell.workdir, state="failed", run_id=run_id,
                        error=error)
        states[cell.key] = result["state"]
        took = (f" ({_duration(time.time() - began[cell.key])})"
                if began[cell.key] else "")
        if result["state"] == "done":
          say(f"  done     {cell.key}: {_short_metrics(result['metrics'])}"
              f"{took}")
        else:
          say(f"  failed   {cell.key}: {result['error']}")
      for cell in pending.values():
        status = read_status(cell.workdir)
        if status.get("run_id") != run_id or status.get("state") != "running":
          continue
        if attempts.get(cell.key) != status.get("attempt"):
          attempts[cell.key] = status.get("attempt")
          began[cell.key] = began[cell.key] or time.time()
          states[cell.key] = "running"
          say(f"  started  {cell.key} (attempt {status.get('attempt')} on "
              f"{status.get('host')})")
      line = _counts(states)
      if line != shown:
        say(f"[{datetime.datetime.now():%H:%M:%S}] {line}")
        shown = line
  except KeyboardInterrupt:
    for ref in pending:
      ray.cancel(ref, force=True)
    say("Interrupted: the running cells were stopped; run the same command "
        "again to resume them from their checkpoints.")
    raise


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else \
      f"{minutes}m{seconds:02d}s"


# ---------------------------------------------------------------------------
# Aggregation.
# ---------------------------------------------------------------------------


def image_summary(per_image: Sequence[dict], prefix: str = "") -> dict:
  """Means over a scene's held-out images of PSNR, SSIM, LPIPS and the
  paper's average error (per image: the geometric mean of 10^(−PSNR/10),
  √(1 − SSIM) and LPIPS; then averaged). A metric missing on any image is
  None (e.g. LPIPS without weights)."""
  out = {}
  for key in ("psnr", "ssim", "lpips"):
    values = [image.get(prefix + key) for image in per_image]
    out[key] = (None if not values or any(v is None for v in values)
                else float(sum(values) / len(values)))
  if out["lpips"] is None:
    out["avg_error"] = None
  else:
    per_image_errors = [metrics.average_error(
        metrics.psnr_to_mse(image[prefix + "psnr"]), image[prefix + "ssim"],
        image[prefix + "lpips"]) for image in per_image]
    out["avg_error"] = float(sum(per_image_errors) / len(per_image_errors))
  out["num_images"] = len(per_image)
  return out


def cell_result(cell: Cell) -> dict:
  """A cell's state and metrics as the tables use them."""
  spec = cell.spec()
  row = {"key": cell.key, "scene": cell.scene.name, "kind": cell.scene.kind,
         "views": cell.views, "method": cell.method, "label": cell.label,
         "preset": cell.preset, "seed": cell.seed, "workdir": cell.workdir,
         "state": "not run", "error": None, "metrics": None}
  report, why = finished(spec)
  status = read_status(cell.workdir)
  if report is not None:
    per_image = report.get("per_image", [])
    variants = {"full": image_summary(per_image)}
    if per_image and all(i.get("masked_psnr") is not None for i in per_image):
      variants["masked"] = image_summary(per_image, "masked_")
    statuses = {i.get("lpips_status") for i in per_image} - {None, "ok"}
    row.update(state="done", metrics=variants, step=report.get("step"),
               lpips_status=" | ".join(sorted(statuses)) or "ok")
  elif status.get("state") == "failed":
    row.update(state="failed", error=status.get("error"))
  elif status.get("state") == "running":
    row.update(state="running", error=f"attempt {status.get('attempt')} on "
               f"{status.get('host')} since {status.get('time')}")
  elif os.path.exists(os.path.join(cell.workdir, METRICS)):
    row.update(error=f"{METRICS} is not this cell's result: {why}")
  return row


def _mean(values: Sequence[float | None]) -> float | None:
  if not values or any(v is None for v in values):
    return None
  return float(sum(values) / len(values))


def _entry(rows: Sequence[dict], variant: str) -> dict:
  """The mean of ``rows`` (cells) for one table entry; None values unless
  every cell is done."""
  not_done = [f"{r['key']}: {r['state']}" for r in rows if r["state"] != "done"]
  entry = {"cells": len(rows), "cells_done": len(rows) - len(not_done),
           "complete": not not_done, "not_done": not_done}
  for key in METRIC_KEYS:
    entry[key] = None if not_done else _mean(
        [r["metrics"].get(variant, {}).get(key) for r in rows])
  return entry


def aggregate(cells: Sequence[Cell]) -> dict:
  """Per-scene and mean tables of the cells' metrics.

  A scene's entry is the mean over seeds of the cell means (each over all of
  the scene's held-out images); a family's entry (LLFF, DTU) is the mean over
  its scenes of those. An entry whose cells are not all done has no values
  (None), and lists the cells that are missing and why.

  Returns:
    {"cells": [cell_result], "per_scene": {scene: {"kind", "variants":
    {variant: {method: {views: entry}}}}}, "mean": {family: {"label",
    "scenes", "paper_scenes", "variants": {variant: {"rows": {method:
    {views: entry}}, "published": {name: {views: values}}}}}}, "methods":
    {method: label}, "views": [...], "published_sources": SOURCES}.
  """
  rows = [cell_result(c) for c in cells]
  views = sorted({c.views for c in cells})
  methods = list(dict.fromkeys(c.method for c in cells))
  per_scene, mean = {}, {}
  for family, (label, variants, paper_scenes) in FAMILIES.items():
    members = [r for r in rows if r["kind"] == family]
    if not members:
      continue
    scenes = list(dict.fromkeys(r["scene"] for r in members))
    family_out = {"label": label, "scenes": scenes,
                  "paper_scenes": paper_scenes, "variants": {}}
    for variant in variants:
      table, published = {}, {}
      for method in methods:
        for n in views:
          cell_rows = [r for r in members
                       if (r["method"], r["views"]) == (method, n)]
          if not cell_rows:
            continue
          by_scene = {s: _entry([r for r in cell_rows if r["scene"] == s],
                                variant) for s in scenes}
          for scene, entry in by_scene.items():
            per_scene.setdefault(scene, {"kind": family, "variants": {}})[
                "variants"].setdefault(variant, {}).setdefault(
                    method, {})[str(n)] = entry
          entry = _entry(cell_rows, variant)  # completeness over every cell
          if entry["complete"]:  # the mean over scenes of the scene means
            for key in METRIC_KEYS:
              entry[key] = _mean([by_scene[s][key] for s in scenes])
          table.setdefault(method, {})[str(n)] = entry
          name = next((c.published for c in cells if c.method == method), None)
          if name and (family, variant, name, n) in PUBLISHED:
            published.setdefault(name, {})[str(n)] = PUBLISHED[
                (family, variant, name, n)]
      family_out["variants"][variant] = {"rows": table,
                                         "published": published}
    mean[family] = family_out
  return {"cells": rows, "per_scene": per_scene, "mean": mean,
          "methods": {c.method: c.label for c in cells}, "views": views,
          "published_sources": SOURCES}


def _value(entry: dict | None, key: str) -> str:
  if entry is None:
    return ""
  if "complete" in entry and not entry["complete"]:
    return f"incomplete ({entry['cells_done']}/{entry['cells']})"
  value = entry.get(key)
  if value is None:
    return "n/a"
  mark = "†" if key in entry.get("unverified", ()) else ""
  return f"{value:{METRIC_FORMATS[key]}}{mark}"


def _table(rows: dict[str, dict], labels: dict[str, str],
           views: Sequence[int]) -> list[str]:
  head = ["method"] + [f"{n}v {METRIC_HEADS[k]}" for n in views
                       for k in METRIC_KEYS]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for name, by_views in rows.items():
    cells = [labels.get(name, name)] + [
        _value(by_views.get(str(n)), k) for n in views for k in METRIC_KEYS]
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def markdown(results: dict) -> str:
  """The tables of :func:`aggregate` as Markdown."""
  views, labels = results["views"], dict(results["methods"])
  rows = results["cells"]
  done = sum(r["state"] == "done" for r in rows)
  lines = ["# Sweep results", "",
           f"{len(rows)} cells, {done} done. Each value is the mean over a "
           "scene's held-out views (all of them, every pixel), then over "
           "seeds, then over the scenes of the table. Avg = the paper's "
           "average error: per image the geometric mean of 10^(−PSNR/10), "
           "√(1 − SSIM) and LPIPS, then averaged. `incomplete (k/n)`: only "
           "k of the n cells are done, so no mean is given; `n/a`: the "
           "metric is missing (LPIPS without weights: run "
           "regnerf-lpips-weights).", "", "## Mean over scenes", ""]
  for family in results["mean"].values():
    for variant, table in family["variants"].items():
      title = family["label"] + (f", {VARIANT_LABELS[variant]}"
                                 if len(family["variants"]) > 1 else "")
      paper = (f"; the paper averages over {family['paper_scenes']}"
               if family["paper_scenes"] else "")
      lines += [f"### {title} ({len(family['scenes'])} scene(s): "
                f"{', '.join(family['scenes'])}{paper})", ""]
      published = {f"{name} (published)": {n: dict(v) for n, v in by.items()}
                   for name, by in table["published"].items()}
      lines += _table({**table["rows"], **published}, labels, views) + [""]
  if any(f["variants"][v]["published"] for f in results["mean"].values()
         for v in f["variants"]):
    lines += ["Published rows: the papers' means over all their scenes at "
              "full resolution and full step budget; they compare with this "
              "sweep only when it runs that protocol on those scenes. "
              "Sources:", ""]
    lines += [f"- {key}: {text}" for key, text in
              results["published_sources"].items()] + [""]
  lines += ["## Per scene", ""]
  for scene, info in results["per_scene"].items():
    for variant, table in info["variants"].items():
      suffix = (f", {VARIANT_LABELS[variant]}" if len(info["variants"]) > 1
                else "")
      lines += [f"### {scene} ({info['kind']}{suffix})", ""]
      lines += _table(table, labels, views) + [""]
  missing = [r for r in rows if r["state"] != "done"]
  if missing:
    lines += ["## Cells without results", "",
              "| cell | state | error | run folder |", "|---|---|---|---|"]
    lines += [f"| {r['key']} | {r['state']} | "
              f"{(r['error'] or '').replace('|', '/')} | {r['workdir']} |"
              for r in missing] + [""]
  return "\n".join(lines)


def write_results(results: dict, output: str) -> None:
  """``sweep_results.json`` and ``sweep_results.md`` in ``output``."""
  atomic.write_json(os.path.join(output, RESULTS_JSON), results)
  atomic.write_bytes(os.path.join(output, RESULTS_MD),
                     markdown(results).encode())

