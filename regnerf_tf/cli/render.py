"""regnerf-render: render a video (colour | depth) of a trained run.

Examples::

  # The release's spiral (DTU / LLFF) or orbit (Blender-style scenes):
  regnerf-render --workdir=runs/scan114 --scene_dir=/data/dtu/scan114 \\
      --output=scan114.mp4

  # The synthetic scene, 60 frames at half resolution, as a GIF:
  regnerf-render --workdir=runs/synth --synthetic --frames=60 --scale=0.5 \\
      --output=synth.gif

  # A camera path of your own (JSON list of 3×4 / 4×4 camera-to-world
  # matrices in the scene's axes and world frame):
  regnerf-render --workdir=runs/fern3 --tfds=llff_sparse/3view --scene=fern \\
      --path=my_path.json --output=fern.mp4

The scene source gives the kind of scene (camera axes, NDC, near/far), all its
cameras (for the path) and the intrinsics: the mean K⁻¹ of the scene's cameras,
at the records' resolution times --scale. Each frame shows the colour render
and, to its right, the expected ray depth normalised to [0, 1] by the 1st/99th
percentiles over the whole video and coloured with a built-in colormap.
Rendering is deterministic and in chunks of --chunk rays. By default it takes
the fast path (:mod:`regnerf_tf.fast_render`: samples in empty space or behind
opaque surfaces are skipped, with a bound on what that changes, and the MLP
runs in bfloat16 where the machine has it natively); ``--exact`` renders every
sample in float32. ``.mp4`` needs the ``imageio-ffmpeg`` package; ``.gif`` only
needs Pillow.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from regnerf_tf.cli import common
from regnerf_tf import training, video

FLAGS = flags.FLAGS


def define_flags():
  """Declares the flags (at run time, not import time)."""
  flags.DEFINE_string("workdir", None, "Run folder written by regnerf-train.")
  common.define_scene_flags()
  flags.DEFINE_string("output", None, "Video file: .mp4 or .gif.")
  flags.DEFINE_string("path", "spiral", "'spiral' (the scene kind's default "
                      "path) or a JSON file of camera-to-world matrices.")
  flags.DEFINE_integer("frames", 240, "Frames of the spiral.", lower_bound=1)
  flags.DEFINE_integer("chunk", None, "Rays rendered at once (default: the "
                       "run's train.render_chunk).", lower_bound=1)
  flags.DEFINE_float("scale", 1.0, "Resolution relative to the scene's images.")
  flags.DEFINE_float("fps", 30.0, "Frames per second.")
  for name in ("scale", "fps"):
    flags.register_validator(name, lambda v: v > 0,
                             message=f"--{name} must be > 0.")
  flags.DEFINE_bool("quiet", False, "No progress bar.")
  common.define_renderer_flags(fast_by_default=True)


def main(argv):
  del argv
  if not FLAGS.workdir or not FLAGS.output:
    raise app.UsageError("--workdir and --output are required.")
  if os.path.splitext(FLAGS.output)[1].lower() not in video.VIDEO_EXTENSIONS:
    raise app.UsageError(
        f"--output must end in one of {video.VIDEO_EXTENSIONS}.")
  if FLAGS.path != "spiral" and not os.path.isfile(FLAGS.path):
    raise app.UsageError(f"--path must be 'spiral' or a JSON file; "
                         f"{FLAGS.path} does not exist.")
  model = training.load_run(FLAGS.workdir)
  scene = common.load_scene_from_flags(model.config.data.n_views,
                                       FLAGS.workdir)
  model.config.check_scene_kind(scene.kind, f"scene {scene.name}")
  renderer, which = common.make_renderer(model, scene)
  if not FLAGS.quiet:
    print(f"Rendering with the {which}.", flush=True)
  result = video.render_video(renderer, scene, FLAGS.output, FLAGS.path,
                              FLAGS.frames, FLAGS.chunk, FLAGS.scale,
                              FLAGS.fps, verbose=not FLAGS.quiet)
  if not FLAGS.quiet:
    print(f"Wrote {result['frames']} frames of {result['width']}×"
          f"{result['height']} (colour | depth) to {result['output']}.")
  return 0


def run():
  """Console-script entry point."""
  common.run_app(main, define_flags, __name__)


if __name__ == "__main__":
  sys.exit(run())
