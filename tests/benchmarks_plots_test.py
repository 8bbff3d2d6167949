"""The quality benchmark's figures (benchmarks/plots.py): the views-to-match
arithmetic, the PNGs each function writes, and which files write_all makes."""

from __future__ import annotations

import importlib
import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from benchmarks import plots
from regnerf_tf import atomic

matplotlib = pytest.importorskip("matplotlib")
import matplotlib.text  # noqa: E402  pylint: disable=wrong-import-position

GT_COLOUR = (200, 30, 60)
RENDER_COLOUR = (10, 200, 10)
HEIGHT, WIDTH = 8, 10


def _curve(start: float, end: float, steps: int = 4) -> list[dict]:
  return [{"step": 500 * (i + 1),
           "psnr": start + (end - start) * i / (steps - 1)}
          for i in range(steps)]


def _row(method: str, psnr: float, n_views: int = 3, **extra) -> dict:
  row = {"method": method, "label": f"label {method}", "n_views": n_views,
         "train_views": list(range(n_views)), "steps": 2000, "psnr": psnr,
         "ssim": 0.5, "lpips": None, "curve": _curve(psnr - 2.0, psnr)}
  row.update(extra)
  return row


def _results(rows: list[dict], kind: str = "llff") -> dict:
  return {"scene": "fern", "kind": kind, "protocol": "long",
          "resolution": [WIDTH, HEIGHT], "lpips_status": "no weights",
          "results": rows}


def _png(path) -> np.ndarray:
  image = iio.imread(path)
  assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0
  assert image.shape[2] in (3, 4)
  return image


def _record(monkeypatch, extract) -> list:
  """``extract(fig)`` of every figure plots._save receives, in order."""
  captured = []
  save = plots._save  # pylint: disable=protected-access

  def recording_save(fig, path, **kwargs):
    captured.append(extract(fig))
    return save(fig, path, **kwargs)

  monkeypatch.setattr(plots, "_save", recording_save)
  return captured


@pytest.fixture
def texts(monkeypatch):
  """The text (titles, labels, annotations) of every figure _save receives."""
  return _record(monkeypatch, lambda fig: [
      t.get_text() for t in fig.findobj(matplotlib.text.Text)
      if t.get_visible() and t.get_text()])


@pytest.fixture
def lines(monkeypatch):
  """The data of every line of every figure _save receives."""
  return _record(monkeypatch, lambda fig: [
      (list(map(float, line.get_xdata())), list(map(float, line.get_ydata())))
      for ax in fig.axes for line in ax.get_lines()])


@pytest.fixture
def yticks(monkeypatch):
  """(label, height on the image in pixels from the bottom) of the y tick
  labels of every figure _save receives."""
  return _record(monkeypatch, lambda fig: [
      (tick.label1.get_text(),
       float(ax.transData.transform((0, tick.get_loc()))[1]))
      for ax in fig.axes for tick in ax.yaxis.get_major_ticks()
      if tick.label1.get_text()])


# views_to_match -------------------------------------------------------------

POINTS = [(3, 15.0), (6, 18.0), (9, 20.0)]


@pytest.mark.parametrize("target,expected", [
    (19.0, 7.5),   # halfway between (6, 18) and (9, 20)
    (16.0, 4.0),   # a third of the way from (3, 15) to (6, 18)
    (18.0, 6.0),   # exactly a measured point
    (20.0, 9.0),   # the last point
    (15.0, 3.0),   # the first point already reaches it
    (10.0, 3.0),
])
def test_views_to_match_interpolates_linearly(target, expected):
  assert plots.views_to_match(POINTS, target) == pytest.approx(expected)


def test_views_to_match_none_beyond_the_measured_range():
  assert plots.views_to_match(POINTS, 21.0) is None
  assert plots.views_to_match(POINTS, 20.0001) is None
  assert plots.views_to_match([], 10.0) is None


def test_views_to_match_sorts_its_input():
  assert plots.views_to_match([(9, 20.0), (3, 15.0), (6, 18.0)], 19.0) == \
      pytest.approx(7.5)
  # Unsorted, the first listed point (9, 20) would "already reach" 16.
  assert plots.views_to_match([(9, 20.0), (3, 15.0), (6, 18.0)], 16.0) == \
      pytest.approx(4.0)


def test_views_to_match_first_crossing_of_a_non_monotonic_curve():
  points = [(3, 15.0), (6, 19.0), (9, 17.0), (12, 21.0)]
  assert plots.views_to_match(points, 17.0) == pytest.approx(4.5)
  assert plots.views_to_match(points, 20.0) == pytest.approx(11.25)


def test_module_imports_without_matplotlib(monkeypatch):
  for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:
    monkeypatch.delitem(sys.modules, name)
  monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
  monkeypatch.delitem(sys.modules, "benchmarks.plots")
  fresh = importlib.import_module("benchmarks.plots")
  assert fresh.views_to_match(POINTS, 19.0) == pytest.approx(7.5)
  with pytest.raises(ImportError):
    fresh.plot_curves(_results([_row("mipnerf", 18.0)]), "unused.png")


# plot_curves ----------------------------------------------------------------

def test_plot_curves_writes_a_png_per_view_count(tmp_path, texts, lines):
  results = _results([_row("mipnerf", 18.0), _row("regnerf", 19.0),
                      _row("regnerf", 21.0, n_views=6)])
  three = plots.plot_curves(results, str(tmp_path / "three.png"))
  six = plots.plot_curves(results, str(tmp_path / "six.png"), n_views=6)
  assert three == str(tmp_path / "three.png")
  a, b = _png(three), _png(six)
  assert a.shape != b.shape or not np.array_equal(a, b)
  # Each 3-view line plus its best point; the legend names the rows' labels.
  assert "label mipnerf: best 18.00" in texts[0]
  assert "label regnerf: best 19.00" in texts[0]
  assert "label regnerf: best 21.00" in texts[1]
  assert not any(t.startswith("label mipnerf") for t in texts[1])
  assert "training step" in texts[0] and "held-out PSNR (dB)" in texts[0]
  assert any("fern" in t and "long" in t and f"{WIDTH}×{HEIGHT}" in t
             for t in texts[0])
  best = [(x, y) for x, y in lines[0] if len(x) == 1]
  assert best == [([2000.0], [18.0]), ([2000.0], [19.0])]
  assert not list(tmp_path.glob(".tmp_*"))


def test_plot_curves_marks_the_best_point_not_the_last(tmp_path, lines):
  row = _row("regnerf", 19.0)
  row["curve"] = [{"step": 500, "psnr": 17.0}, {"step": 1000, "psnr": 19.5},
                  {"step": 1500, "psnr": 19.0}]
  plots.plot_curves(_results([row]), str(tmp_path / "c.png"))
  assert ([1000.0], [19.5]) in lines[0]


def test_plot_curves_different_results_different_images(tmp_path):
  low = plots.plot_curves(_results([_row("regnerf", 15.0)]),
                          str(tmp_path / "low.png"))
  high = plots.plot_curves(_results([_row("regnerf", 25.0),
                                     _row("mipnerf", 12.0)]),
                           str(tmp_path / "high.png"))
  assert not np.array_equal(_png(low), _png(high))


def test_plot_curves_without_rows_raises(tmp_path):
  with pytest.raises(ValueError, match="9-view"):
    plots.plot_curves(_results([_row("regnerf", 19.0)]),
                      str(tmp_path / "c.png"), n_views=9)
  assert not (tmp_path / "c.png").exists()


# plot_ablation --------------------------------------------------------------

def test_plot_ablation_annotates_psnr_and_delta_to_the_full_model(
    tmp_path, texts, yticks):
  results = _results([_row("mipnerf", 17.25), _row("regnerf", 19.75),
                      _row("regnerf_nodepth", 19.5),
                      _row("regnerf_nodepth", 30.0, n_views=6),
                      _row("freenerf", 25.0)])
  path = plots.plot_ablation(results, str(tmp_path / "a.png"),
                             ["regnerf", "regnerf_nodepth", "regnerf_tv",
                              "mipnerf"])
  _png(path)
  found = texts[0]
  assert "19.75" in found  # the full model: no Δ to itself
  assert "19.50 (Δ -0.25)" in found  # the 3-view row, not the 6-view one
  assert "17.25 (Δ -2.50)" in found
  assert not any("25.00" in t or "30.00" in t for t in found)
  assert "label freenerf" not in found
  # Top to bottom in the given order.
  top_to_bottom = [label for label, _ in sorted(yticks[0],
                                                key=lambda t: -t[1])]
  assert top_to_bottom == ["label regnerf", "label regnerf_nodepth",
                           "label mipnerf"]


def test_plot_ablation_without_the_full_model_has_no_delta(tmp_path, texts):
  results = _results([_row("mipnerf", 17.25), _row("regnerf_tv", 18.5)])
  plots.plot_ablation(results, str(tmp_path / "a.png"),
                      list(plots.ABLATION))
  assert "17.25" in texts[0] and "18.50" in texts[0]
  assert not any("Δ -" in t or "Δ +" in t for t in texts[0])


def test_plot_ablation_on_dtu_adds_masked_psnr_bars(tmp_path, texts):
  rows = [_row("mipnerf", 17.0, masked_psnr=13.5),
          _row("regnerf", 18.0, masked_psnr=16.0)]
  dtu = plots.plot_ablation(_results(rows, kind="dtu"),
                            str(tmp_path / "dtu.png"), ["regnerf", "mipnerf"])
  plain = [{k: v for k, v in r.items() if k != "masked_psnr"} for r in rows]
  plain_path = plots.plot_ablation(_results(plain), str(tmp_path / "p.png"),
                                   ["regnerf", "mipnerf"])
  assert "13.50 (Δ -2.50)" in texts[0] and "masked PSNR" in texts[0]
  assert "17.00 (Δ -1.00)" in texts[0]
  assert not any("13.50" in t or "masked" in t for t in texts[1])
  masked_image, plain_image = _png(dtu), _png(plain_path)
  assert masked_image.shape[0] > plain_image.shape[0]  # two bars per method


def test_plot_ablation_without_rows_raises(tmp_path):
  with pytest.raises(ValueError):
    plots.plot_ablation(_results([_row("freenerf", 19.0)]),
                        str(tmp_path / "a.png"), list(plots.ABLATION))


# plot_data_efficiency -------------------------------------------------------

def _efficiency_rows(mipnerf_9view: float = 20.0) -> list[dict]:
  return [_row("mipnerf", 15.0), _row("mipnerf", 18.0, n_views=6),
          _row("mipnerf", mipnerf_9view, n_views=9), _row("regnerf", 19.0),
          _row("regnerf", 21.0, n_views=6)]


def test_plot_data_efficiency_marks_the_views_to_match(tmp_path, texts, lines):
  path = plots.plot_data_efficiency(_results(_efficiency_rows()),
                                    str(tmp_path / "d.png"))
  _png(path)
  assert ([3.0, 6.0, 9.0], [15.0, 18.0, 20.0]) in lines[0]
  assert ([3.0, 6.0], [19.0, 21.0]) in lines[0]
  horizontal = [y for x, y in lines[0] if y == [19.0, 19.0]]
  vertical = [x for x, y in lines[0] if x == [7.5, 7.5]]
  assert horizontal and vertical
  assert any("7.5 views" in t for t in texts[0])
  assert "input views" in texts[0] and "held-out PSNR (dB)" in texts[0]


def test_plot_data_efficiency_no_marker_when_never_matched(tmp_path, texts,
                                                           lines):
  matched = plots.plot_data_efficiency(_results(_efficiency_rows()),
                                       str(tmp_path / "m.png"))
  unmatched = plots.plot_data_efficiency(_results(_efficiency_rows(18.5)),
                                         str(tmp_path / "u.png"))
  assert not any("views" in t and "needs" in t for t in texts[1])
  assert [x for x, _ in lines[0] if len(x) == 2 and x[0] == x[1]]
  assert not [x for x, _ in lines[1] if len(x) == 2 and x[0] == x[1]]
  assert not np.array_equal(_png(matched), _png(unmatched))


def test_plot_data_efficiency_methods_argument(tmp_path, lines):
  plots.plot_data_efficiency(_results(_efficiency_rows()),
                             str(tmp_path / "d.png"), methods=("mipnerf",))
  assert ([3.0, 6.0, 9.0], [15.0, 18.0, 20.0]) in lines[0]
  assert ([3.0, 6.0], [19.0, 21.0]) not in lines[0]
  with pytest.raises(ValueError):
    plots.plot_data_efficiency(_results(_efficiency_rows()),
                               str(tmp_path / "e.png"), methods=("freenerf",))


# contact_sheet --------------------------------------------------------------

def _gt(views=(0, 8, 16)) -> dict[int, np.ndarray]:
  return {v: np.full((HEIGHT, WIDTH, 3), GT_COLOUR, np.uint8) for v in views}


def _eval_dir(root, method: str, views=(0, 8, 16), depth: bool = True) -> str:
  folder = os.path.join(str(root), method, "eval")
  for view in views:
    atomic.write_image(os.path.join(folder, f"{view:03d}_rgb.png"),
                       np.full((HEIGHT, WIDTH, 3), RENDER_COLOUR, np.uint8))
    if depth:
      ramp = np.tile(np.linspace(0, 255, WIDTH, dtype=np.uint8), (HEIGHT, 1))
      atomic.write_image(os.path.join(folder, f"{view:03d}_depth.png"), ramp)
  return folder


def _colour_pixels(image: np.ndarray, colour) -> int:
  return int(np.all(image[..., :3] == np.array(colour), axis=-1).sum())


def _sheet_results(tmp_path, methods=("mipnerf", "regnerf")) -> dict:
  rows = [_row(m, 18.0, eval_dir=_eval_dir(tmp_path, m)) for m in methods]
  # A 6-view row whose eval folder is empty: the sheet must not read it.
  empty = tmp_path / "six" / "eval"
  empty.mkdir(parents=True)
  rows.append(_row("regnerf", 21.0, n_views=6, eval_dir=str(empty)))
  return _results(rows)


def test_contact_sheet_shows_ground_truth_and_renderings(tmp_path):
  results = _sheet_results(tmp_path)
  path = plots.contact_sheet(results, _gt(), str(tmp_path / "sheet.png"))
  image = _png(path)
  assert _colour_pixels(image, GT_COLOUR) > 3 * HEIGHT * WIDTH
  assert _colour_pixels(image, RENDER_COLOUR) > 6 * HEIGHT * WIDTH


def test_contact_sheet_grows_with_views_and_methods(tmp_path):
  results = _sheet_results(tmp_path)
  one = _png(plots.contact_sheet(results, _gt(), str(tmp_path / "1.png"),
                                 max_views=1))
  three = _png(plots.contact_sheet(results, _gt(), str(tmp_path / "3.png")))
  single = _png(plots.contact_sheet(results, _gt(), str(tmp_path / "s.png"),
                                    methods=("regnerf",)))
  assert three.shape[0] > one.shape[0] and three.shape[1] == one.shape[1]
  assert three.shape[1] > single.shape[1]
  # The ground-truth column: three tiles in three rows, one in one row.
  assert _colour_pixels(three, GT_COLOUR) > 2 * _colour_pixels(one, GT_COLOUR)


def test_contact_sheet_views_argument_picks_the_rows(tmp_path):
  results = _sheet_results(tmp_path)
  gt = _gt()
  gt[16] = np.full((HEIGHT, WIDTH, 3), (0, 0, 250), np.uint8)
  without = _png(plots.contact_sheet(results, gt, str(tmp_path / "a.png"),
                                     views=[0, 8]))
  with_16 = _png(plots.contact_sheet(results, gt, str(tmp_path / "b.png"),
                                     views=[16, 0, 8], max_views=1))
  assert _colour_pixels(without, (0, 0, 250)) == 0
  assert _colour_pixels(with_16, (0, 0, 250)) > HEIGHT * WIDTH
  assert _colour_pixels(with_16, GT_COLOUR) == 0


def test_contact_sheet_missing_png_names_the_file(tmp_path):
  folder = _eval_dir(tmp_path, "regnerf", depth=False)
  results = _results([_row("regnerf", 18.0, eval_dir=folder)])
  with pytest.raises(FileNotFoundError) as error:
    plots.contact_sheet(results, _gt(), str(tmp_path / "sheet.png"))
  assert os.path.join(folder, "000_depth.png") in str(error.value)
  assert "evaluation" in str(error.value)
  assert not (tmp_path / "sheet.png").exists()


# write_all ------------------------------------------------------------------

def _written(paths: list[str], out_dir) -> set[str]:
  names = {os.path.basename(p) for p in paths}
  assert names == set(os.listdir(out_dir))  # nothing else, no temporaries
  for p in paths:
    _png(p)
  return names


def test_write_all_only_3view_rows(tmp_path):
  results = _results([_row("mipnerf", 17.0), _row("regnerf", 19.0),
                      _row("freenerf", 19.5)])
  out = tmp_path / "out"
  assert _written(plots.write_all(results, str(out)), out) == {
      "curves.png", "ablation.png"}


def test_write_all_one_ablation_row_no_ablation(tmp_path):
  results = _results([_row("regnerf", 19.0), _row("freenerf", 19.5),
                      _row("combined", 20.0)])
  out = tmp_path / "out"
  assert _written(plots.write_all(results, str(out)), out) == {"curves.png"}


def test_write_all_several_view_counts(tmp_path):
  out = tmp_path / "out"
  paths = plots.write_all(_results(_efficiency_rows()), str(out))
  assert _written(paths, out) == {
      "curves.png", "curves_6view.png", "curves_9view.png", "ablation.png",
      "data_efficiency.png"}


def test_write_all_contact_sheet_needs_gt_and_eval_dirs(tmp_path):
  results = _sheet_results(tmp_path / "runs")
  out = tmp_path / "out"
  expected = {"curves.png", "curves_6view.png", "ablation.png",
              "data_efficiency.png"}
  assert _written(plots.write_all(results, str(out)), out) == expected
  without_dirs = dict(results, results=[dict(r, eval_dir=None)
                                        for r in results["results"]])
  out2 = tmp_path / "out2"
  assert _written(plots.write_all(without_dirs, str(out2), gt_images=_gt()),
                  out2) == expected
  out3 = tmp_path / "out3"
  assert _written(plots.write_all(results, str(out3), gt_images=_gt()),
                  out3) == expected | {"contact_sheet.png"}
