"""regnerf-eval: render a scene's held-out views from a run and score them.

Example::

  regnerf-eval --workdir=runs/demo/demo_small --synthetic
  regnerf-eval --workdir=runs/scan114 --tfds=dtu_sparse/3view --scene=scan114 \\
      --lpips_weights=/models/lpips_vgg.npz --lpips_net=vgg

Writes ``<output_dir>/metrics.json`` (per-image and mean metrics; written
atomically) and ``<output_dir>/<view>_{rgb,depth,acc}.png``. The SSIM data
range is part of every report: 1.0 by default, 2.0 with --ssim_release (what
the official evaluation computes for float images). Without LPIPS weights the
report says why LPIPS is missing instead of writing NaN. Scenes with object
masks (DTU test views) also get masked metrics.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from regnerf_tf.cli import common

FLAGS = flags.FLAGS


def define_flags():
  """Declares the flags (at run time; see regnerf_tf.cli.train)."""
  flags.DEFINE_string("workdir", None, "Run folder written by regnerf-train.")
  common.define_scene_flags()
  flags.DEFINE_string("output_dir", None, "Default: <workdir>/eval.")
  flags.DEFINE_string("lpips_weights", None, "Local LPIPS weights file "
                      "(default: the one regnerf-lpips-weights wrote, when "
                      "present).")
  flags.DEFINE_enum("lpips_net", "vgg", ["alex", "vgg"], "LPIPS backbone.")
  flags.DEFINE_bool("ssim_release", False, "SSIM with data range 2, as the "
                    "official evaluation computes it (inflates scores).")
  flags.DEFINE_integer("max_views", None, "Evaluate at most this many views.",
                       lower_bound=1)
  flags.DEFINE_integer("chunk", None, "Rays per rendering chunk.")


def _to_png(image):
  import numpy as np  # pylint: disable=import-outside-toplevel
  return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def evaluate_run(model, records, output_dir: str, lpips=None,
                 lpips_status: str | None = None, ssim_data_range: float = 1.0,
                 chunk: int | None = None, progress: bool = False) -> dict:
  """Renders ``records`` with ``model``, writes PNGs and metrics.json.

  With ``progress`` a line per view is printed as it is scored.

  Returns:
    the report dict that was written.
  """
  from regnerf_tf import atomic  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from regnerf_tf import data, metrics, training  # pylint: disable=import-outside-toplevel

  os.makedirs(output_dir, exist_ok=True)
  views = data.load_views(records)
  height, width = views["images"].shape[1:3]
  per_image = []
  for i, index in enumerate(views["view_indices"]):
    rays = data.view_rays(views["camtoworlds"][i], views["intrinsics"][i],
                          height, width, views["kind"], views["near"][i],
                          views["far"][i])
    out = model.render_chunked(rays, chunk)
    rgb = np.clip(out["rgb"].numpy(), 0.0, 1.0)
    target = views["images"][i].astype(np.float32) / 255.0
    mask = None
    if views["masks"] is not None:
      mask = views["masks"][i].astype(np.float32) / 255.0
    result = metrics.evaluate_image(rgb, target, mask=mask, lpips=lpips,
                                    ssim_data_range=ssim_data_range)
    if lpips is None and lpips_status:
      result["lpips_status"] = lpips_status
    result["view_index"] = int(index)
    per_image.append(result)
    if progress:
      print(f"  view {i + 1}/{len(views['view_indices'])} (index {int(index)}"
            f"): PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f}"
            + (f", LPIPS {result['lpips']:.3f}"
               if result.get("lpips") is not None else ""), flush=True)
    depth = out["depth"].numpy()
    lo, hi = np.percentile(depth, [1, 99])
    stem = os.path.join(output_dir, f"{int(index):03d}")
    atomic.write_image(f"{stem}_rgb.png", _to_png(rgb))
    atomic.write_image(f"{stem}_depth.png",
                       _to_png((depth - lo) / max(hi - lo, 1e-8)))
    atomic.write_image(f"{stem}_acc.png", _to_png(out["acc"].numpy()))
  summary = metrics.summarize(
      [{k: v for k, v in r.items() if k != "view_index"} for r in per_image])
  if lpips is None and lpips_status:
    summary["lpips_status"] = lpips_status
  report = {"step": training.current_step(model),
            "scene": views["scene"], "kind": views["kind"],
            "ssim_data_range": ssim_data_range,
            "mean": summary, "per_image": per_image}
  training.save_json(os.path.join(output_dir, "metrics.json"), report)
  return report


def load_lpips(path: str | None, net: str):
  """(LPIPS model or None, status string).

  Without ``path`` the weights written by ``regnerf-lpips-weights`` are used
  when they are in the cache folder (``regnerf_tf.lpips_weights``).
  """
  from regnerf_tf import metrics, lpips_weights  # pylint: disable=import-outside-toplevel
  if not path:
    path = lpips_weights.default_path(net)
    if not os.path.isfile(path):
      return None, (f"LPIPS unavailable: no {net} weights at {path}. "
                    + lpips_weights.HOW_TO_GET)
  try:
    return metrics.LPIPS.from_weights(path, net), "ok"
  except FileNotFoundError as e:
    return None, str(e)


def main(argv):
  del argv
  from regnerf_tf import training  # pylint: disable=import-outside-toplevel
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required.")
  model = training.load_run(FLAGS.workdir)
  scene = common.load_scene_from_flags(model.config.data.n_views,
                                       FLAGS.workdir)
  model.config.check_scene_kind(scene.kind, f"scene {scene.name}")
  records = scene.test[:FLAGS.max_views] if FLAGS.max_views else scene.test
  if not records:
    raise app.UsageError(f"Scene {scene.name} has no held-out views.")
  lpips, status = load_lpips(FLAGS.lpips_weights, FLAGS.lpips_net)
  if lpips is None:
    print(status)
  output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, "eval")
  print(f"Scoring {len(records)} held-out view(s) of {scene.name}...",
        flush=True)
  report = evaluate_run(model, records, output_dir, lpips, status,
                        2.0 if FLAGS.ssim_release else 1.0, FLAGS.chunk,
                        progress=True)
  mean = report["mean"]
  print(f"{len(records)} views of {report['scene']} at step {report['step']}: "
        f"PSNR {mean['psnr']:.2f} dB, SSIM (data range "
        f"{report['ssim_data_range']:g}) {mean['ssim']:.4f}"
        + (f", LPIPS {mean['lpips']:.4f}" if mean.get("lpips") is not None
           else ""))
  print(f"Wrote {os.path.join(output_dir, 'metrics.json')}")
  return 0


def run():
  """Console-script entry point."""
  common.run_app(main, define_flags, __name__)


if __name__ == "__main__":
  sys.exit(run())
