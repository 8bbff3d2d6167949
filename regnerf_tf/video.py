"""Videos of a trained model: camera paths, frames, depth colouring, files.

:func:`render_video` renders a path (the scene kind's spiral or orbit, or a
JSON file of camera-to-world matrices) at the scene's intrinsics times
``scale``; each frame shows the colour render and, to its right, the expected
ray depth normalised to [0, 1] by the 1st/99th percentiles over the whole
video and coloured with a built-in colormap. Rendering is deterministic and
in chunks. ``.mp4`` needs the ``imageio-ffmpeg`` package; ``.gif`` only needs
Pillow. ``regnerf-render`` is its command line.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Sequence

import imageio.v2 as imageio
import keras
import numpy as np

from regnerf_tf import atomic
from regnerf_tf import data
from regnerf_tf import errors
from regnerf_tf import rays as rays_lib
from regnerf_tf import render_paths
from regnerf_tf import scene_kinds

VIDEO_EXTENSIONS = (".mp4", ".gif")

# Viridis sampled at 11 evenly spaced points (sRGB in [0, 1]); linearly
# interpolated between them.
_COLORMAP = np.array([
    [0.267, 0.005, 0.329], [0.283, 0.141, 0.458], [0.254, 0.265, 0.530],
    [0.207, 0.372, 0.553], [0.164, 0.471, 0.558], [0.128, 0.567, 0.551],
    [0.135, 0.659, 0.518], [0.267, 0.749, 0.441], [0.478, 0.821, 0.318],
    [0.741, 0.873, 0.150], [0.993, 0.906, 0.144]])


def colorize(values: np.ndarray) -> np.ndarray:
  """Maps values in [0, 1] (clipped) to uint8 RGB with a viridis-like ramp.

  Args:
    values: [...] floats.

  Returns:
    [..., 3] uint8.
  """
  v = np.clip(np.nan_to_num(np.asarray(values, np.float64)), 0.0, 1.0)
  pos = v * (len(_COLORMAP) - 1)
  lo = np.floor(pos).astype(int)
  hi = np.minimum(lo + 1, len(_COLORMAP) - 1)
  frac = (pos - lo)[..., None]
  rgb = _COLORMAP[lo] * (1.0 - frac) + _COLORMAP[hi] * frac
  return np.round(rgb * 255.0).astype(np.uint8)


def depth_range(depths: Sequence[np.ndarray], low: float = 1.0,
                high: float = 99.0) -> tuple[float, float]:
  """Robust (low, high) percentiles of all finite depth values."""
  values = np.concatenate([np.asarray(d, np.float64).reshape(-1)
                           for d in depths])
  values = values[np.isfinite(values)]
  if values.size == 0:
    return 0.0, 1.0
  lo, hi = np.percentile(values, [low, high])
  if hi - lo < 1e-8:
    hi = lo + 1e-8
  return float(lo), float(hi)


def render_frames(model, poses: np.ndarray, intrinsics: np.ndarray,
                  height: int, width: int, kind: str,
                  near: float | None = None, far: float | None = None,
                  chunk: int | None = None, verbose: bool = True
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Renders every pose deterministically, in fixed-size chunks of rays.

  Args:
    model: a :class:`regnerf_tf.model.RegNeRF`.
    poses: [F, 3, 4] camera-to-world matrices in the scene's axes.
    intrinsics: [3, 3] K of the rendered image.
    height, width: image size.
    kind: the scene kind (:mod:`regnerf_tf.scene_kinds`).
    near, far: ray bounds for kinds without fixed ones.
    chunk: rays per chunk (default: the model's ``train.render_chunk``).
    verbose: show a progress bar.

  Returns:
    (uint8 colour frames [H, W, 3], float32 depth maps [H, W]).
  """
  poses = np.asarray(poses, np.float32)
  bar = keras.utils.Progbar(len(poses), unit_name="frame",
                            verbose=1 if verbose else 0)
  colours, depths = [], []
  for i, pose in enumerate(poses):
    rays = rays_lib.view_rays(pose[:3, :4], intrinsics, height, width, kind,
                              near, far)
    out = model.render_chunked(rays, chunk)
    rgb = np.clip(out["rgb"].numpy(), 0.0, 1.0)
    colours.append(np.round(rgb * 255.0).astype(np.uint8))
    depths.append(out["depth"].numpy().astype(np.float32))
    bar.update(i + 1)
  return colours, depths


def compose_frames(colours: Sequence[np.ndarray],
                   depths: Sequence[np.ndarray]) -> list[np.ndarray]:
  """Colour | colour-mapped depth, side by side, padded to even size."""
  lo, hi = depth_range(depths)
  frames = []
  for rgb, depth in zip(colours, depths):
    frame = np.concatenate([rgb, colorize((depth - lo) / (hi - lo))], axis=1)
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:  # H.264 with yuv420p needs even sizes
      frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))
    frames.append(frame)
  return frames


def write_video(path: str, frames: Sequence[np.ndarray], fps: float = 30.0
                ) -> None:
  """Writes uint8 frames [H, W, 3] as MP4 or GIF (by extension), atomically."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in VIDEO_EXTENSIONS:
    raise errors.InputError(f"Output must end in one of {VIDEO_EXTENSIONS}; received "
                     f"{path!r}.")
  if not frames:
    raise errors.InputError("No frames to write.")
  if ext == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
    raise RuntimeError(
        "Writing .mp4 needs the imageio-ffmpeg package (pip install "
        "imageio-ffmpeg); or write a .gif instead.")

  def write(tmp):
    if ext == ".mp4":
      writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps,
                                  codec="libx264", macro_block_size=1,
                                  quality=8)
    else:
      writer = imageio.get_writer(tmp, format="GIF", mode="I",
                                  duration=1000.0 / fps, loop=0)
    with writer:
      for frame in frames:
        writer.append_data(np.asarray(frame, np.uint8))

  atomic.write_with(path, write)


def scene_view_setup(scene, scale: float = 1.0) -> dict[str, Any]:
  """Kind, cameras, mean intrinsics, image size and bounds of a scene.

  The intrinsics are the inverse of the mean K⁻¹ of all the scene's cameras
  (as the release renders its path), with the image scaled by ``scale``.
  """
  if scale <= 0:
    raise errors.InputError(f"scale must be > 0; received {scale}.")
  record = scene.train[0]
  cams = data.scene_cameras(scene.train)
  pixtocams = np.linalg.inv(cams["intrinsics"].astype(np.float64))
  intrinsics = np.linalg.inv(pixtocams.mean(0))
  height, width = np.asarray(record["image"]).shape[:2]
  new_h, new_w = max(3, int(round(height * scale))), max(3, int(round(
      width * scale)))
  intrinsics = np.diag([new_w / width, new_h / height, 1.0]) @ intrinsics
  return {"kind": scene.kind, "camtoworlds": cams["camtoworlds"],
          "bounds": cams["bounds"], "intrinsics": intrinsics.astype(np.float32),
          "height": new_h, "width": new_w,
          "near": float(np.asarray(record["near"]).reshape(-1)[0]),
          "far": float(np.asarray(record["far"]).reshape(-1)[0])}


def camera_path(setup: dict[str, Any], path: str = "spiral",
                frames: int = 240) -> np.ndarray:
  """``spiral`` (the kind's default path) or a JSON file of matrices."""
  if path == "spiral":
    return scene_kinds.get(setup["kind"]).render_path(
        setup["camtoworlds"], setup["bounds"], frames)
  return render_paths.path_from_json(path)


def render_video(model, scene, output: str, path: str = "spiral",
                 frames: int = 240, chunk: int | None = None,
                 scale: float = 1.0, fps: float = 30.0,
                 verbose: bool = True) -> dict[str, Any]:
  """Renders a scene's camera path with ``model`` and writes ``output``.

  Returns:
    {"output", "frames", "height", "width", "depth_range"}.
  """
  ext = os.path.splitext(output)[1].lower()
  if ext not in VIDEO_EXTENSIONS:
    raise errors.InputError(f"--output must end in one of {VIDEO_EXTENSIONS}; "
                     f"received {output!r}.")
  setup = scene_view_setup(scene, scale)
  poses = camera_path(setup, path, frames)
  colours, depths = render_frames(
      model, poses, setup["intrinsics"], setup["height"], setup["width"],
      setup["kind"], setup["near"], setup["far"], chunk, verbose)
  write_video(output, compose_frames(colours, depths), fps)
  return {"output": output, "frames": len(colours), "height": setup["height"],
          "width": setup["width"], "depth_range": depth_range(depths)}
