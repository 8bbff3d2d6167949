"""The kinds of scene: one record per kind, holding everything that depends on it.

Three words name different things, and each has one home:

* a **layout** is how a scene folder stores its files (``poses_bounds.npy``,
  DTU's ``Calibration``, ``transforms_*.json``, a COLMAP model, ...):
  ``regnerf_tf.datasets.readers.FORMATS``, detected by the readers;
* a **kind** is how the scene's cameras and rays behave, whatever the files
  looked like: this module. Every record a reader returns names its kind
  (``record["kind"]``), and :func:`get` turns that name into a
  :class:`SceneKind`;
* ``Config.data.dataset`` names the kind a config's hyperparameters were made
  for (:meth:`regnerf_tf.configs.Config.check_scene_kind` compares it with the
  scene's kind).

======== ============ ========= ======================== ==================
kind     camera axes  rays      bounds (t along a ray)   render path
======== ============ ========= ======================== ==================
dtu      OpenCV       world,    0.5 / 3.5 in the         the release's DTU
                      origins   readers' normalised      spiral
                      on z = 0  frame (pitfall P7)
llff     OpenGL       NDC       0 / 1 (NDC)              the LLFF spiral
blender  OpenGL       world     each record's own        an orbit
                                near/far
======== ============ ========= ======================== ==================

Readers map layouts to kinds: DTU (both layouts) → ``dtu``; LLFF → ``llff``;
Blender → ``blender``; COLMAP and instant-ngp/nerfstudio captures → ``llff``
when forward-facing, ``blender`` (object-centred, per-view bounds) otherwise.

The pipeline asks the kind, never compares names: :mod:`regnerf_tf.rays`
(axes, NDC, bounds), :mod:`regnerf_tf.unobserved` (the pose sampler),
:mod:`regnerf_tf.video` and :mod:`regnerf_tf.export` (the render path, the
served camera facts) and :mod:`regnerf_tf.configs` (the config family).
Adding a kind means adding one :class:`SceneKind` here and a reader that
emits its name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from regnerf_tf import camera
from regnerf_tf import errors
from regnerf_tf import render_paths

_FLIP_YZ = np.diag([1.0, -1.0, -1.0])  # OpenGL <-> OpenCV camera axes


@dataclasses.dataclass(frozen=True)
class SceneKind:
  """How one kind of scene turns pixels into rays, and where to look from.

  Attributes:
    name: the name records carry in ``record["kind"]``.
    description: one line for messages and documentation.
    convention: camera axes of the records' ``camtoworld``: "opencv" (x right,
      y down, z forward) or "opengl" (x right, y up, z backward).
    ndc: rays are mapped to normalised device coordinates (forward-facing
      scenes).
    shift_to_plane: ray origins slide to the world plane z = 0 (DTU, P7).
    near, far: fixed ray bounds in units of t along the (unnormalised)
      direction, or None: each record's own near/far.
    forward_facing: the config family (``data.dataset == "llff"``): NDC rays
      and LLFF's bounds, pose bank and weights.
    pose_sampler: ``(camtoworlds [M, 3, 4], bounds [M, 2] or None, n, rng,
      radius, focus_jitter) -> [n, 3, 4]`` unobserved poses in the records'
      axes.
    path_maker: ``(camtoworlds, bounds or None, n_frames) -> [n_frames, 3,
      4]``: the release's render path.
    nonfinite_hint: what to do when a served camera gives non-finite rays.
  """
  name: str
  description: str
  convention: str
  ndc: bool
  shift_to_plane: bool
  near: float | None
  far: float | None
  forward_facing: bool
  pose_sampler: Callable[..., np.ndarray] = dataclasses.field(repr=False)
  path_maker: Callable[..., np.ndarray] = dataclasses.field(repr=False)
  nonfinite_hint: str = dataclasses.field(repr=False, default="")

  @property
  def fixed_bounds(self) -> bool:
    """Whether every ray of this kind has the same near/far."""
    return self.near is not None

  def ray_bounds(self, near=None, far=None):
    """(near, far) of this kind's rays: the fixed ones, else the given ones.

    Raises:
      InputError: a kind without fixed bounds and no near/far given.
    """
    if self.fixed_bounds:
      return self.near, self.far
    if near is None or far is None:
      raise errors.InputError(
          f"Rays of a {self.name!r} scene ({self.description}) need near and "
          "far from the record: this kind has no fixed bounds. Pass the "
          "record's 'near' and 'far'.")
    return near, far

  def sample_poses(self, camtoworlds: np.ndarray, bounds: np.ndarray | None,
                   n: int, rng: np.random.Generator, radius: float = 1.0,
                   focus_jitter: float = 0.125) -> np.ndarray:
    """``n`` unobserved camera-to-world poses [n, 3, 4] in the records' axes.

    Args:
      camtoworlds: [M, 3, 4] every camera of the scene.
      bounds: [M, 2] near/far of every camera (needed by forward-facing
        kinds).
      n: number of poses.
      rng: NumPy generator.
      radius: scale of the sampling box.
      focus_jitter: look-at jitter for object-centred scenes.
    """
    return self.pose_sampler(np.asarray(camtoworlds, np.float64), bounds, n,
                             rng, radius, focus_jitter)

  def render_path(self, camtoworlds: np.ndarray,
                  bounds: np.ndarray | None = None,
                  n_frames: int = render_paths.DEFAULT_FRAMES) -> np.ndarray:
    """The release's render path: [n_frames, 3, 4] float64 camera-to-world
    matrices in the records' axes."""
    return self.path_maker(camtoworlds, bounds, n_frames)

  def patch_bounds(self, scene_bounds) -> tuple[float | None, float | None]:
    """(near, far) of rays from unobserved poses: None for fixed bounds, else
    the widest of the scene's per-camera bounds [M, 2]."""
    if self.fixed_bounds:
      return None, None
    bounds = np.asarray(scene_bounds, np.float32)
    return float(bounds[:, 0].min()), float(bounds[:, 1].max())


def _need_bounds(bounds, what: str) -> np.ndarray:
  if bounds is None:
    raise errors.InputError(
        f"{what} of a forward-facing (LLFF) scene needs the scene's per-camera "
        "near/far bounds [M, 2] (data.scene_cameras(records)['bounds']); "
        "received None.")
  return bounds


def _forward_poses(c2w, bounds, n, rng, radius, focus_jitter):
  del focus_jitter  # forward-facing poses look along the mean view direction
  return camera.sample_forward_facing_poses(
      c2w, _need_bounds(bounds, "Sampling unobserved poses"), n, rng,
      radius=radius)


def _object_poses_opencv(c2w, bounds, n, rng, radius, focus_jitter):
  del bounds
  return camera.sample_poses_around_object(c2w, n, rng, radius, focus_jitter)


def _object_poses_opengl(c2w, bounds, n, rng, radius, focus_jitter):
  del bounds
  opencv = c2w.copy()
  opencv[:, :, :3] = c2w[:, :, :3] @ _FLIP_YZ
  poses = camera.sample_poses_around_object(opencv, n, rng, radius,
                                            focus_jitter)
  poses[:, :, :3] = poses[:, :, :3] @ _FLIP_YZ
  return poses


DTU = SceneKind(
    name="dtu",
    description="object-centred DTU scan, OpenCV cameras, origins on z = 0",
    convention="opencv", ndc=False, shift_to_plane=True, near=0.5, far=3.5,
    forward_facing=False, pose_sampler=_object_poses_opencv,
    path_maker=lambda c2w, bounds, n: render_paths.dtu_spiral(c2w, n),
    nonfinite_hint=(
        "DTU rays start where they cross the world plane z = 0, so no "
        "pixel's ray may be parallel to it: point the camera at the scene, "
        "like the `cameras` signature's train_camtoworld"))

LLFF = SceneKind(
    name="llff",
    description="forward-facing capture, OpenGL cameras, NDC rays",
    convention="opengl", ndc=True, shift_to_plane=False, near=0.0, far=1.0,
    forward_facing=True, pose_sampler=_forward_poses,
    path_maker=lambda c2w, bounds, n: render_paths.llff_spiral(
        c2w, _need_bounds(bounds, "The LLFF spiral"), n),
    nonfinite_hint=(
        "LLFF rays are mapped to NDC through the plane z = -1, so no pixel's "
        "ray may be parallel to it: point the camera forward, like the "
        "`cameras` signature's train_camtoworld"))

BLENDER = SceneKind(
    name="blender",
    description=("object-centred scene in world space, OpenGL cameras, "
                 "per-view bounds"),
    convention="opengl", ndc=False, shift_to_plane=False, near=None, far=None,
    forward_facing=False, pose_sampler=_object_poses_opengl,
    path_maker=lambda c2w, bounds, n: render_paths.orbit(c2w, n),
    nonfinite_hint=("send a camera near the scene, like the `cameras` "
                    "signature's train_camtoworld"))

KINDS: dict[str, SceneKind] = {k.name: k for k in (DTU, LLFF, BLENDER)}
NAMES: tuple[str, ...] = tuple(KINDS)


def get(kind: Any) -> SceneKind:
  """The :class:`SceneKind` of a record's ``kind`` (str, bytes or a kind).

  Raises:
    InputError: an unknown name, with the known ones.
  """
  if isinstance(kind, SceneKind):
    return kind
  if isinstance(kind, bytes):
    kind = kind.decode()
  if isinstance(kind, np.ndarray) and kind.ndim == 0:
    kind = kind.item()
    kind = kind.decode() if isinstance(kind, bytes) else kind
  if isinstance(kind, str) and kind in KINDS:
    return KINDS[kind]
  known = "; ".join(f"{k.name!r}: {k.description}" for k in KINDS.values())
  raise errors.InputError(
      f"Unknown scene kind {kind!r}. The kinds are {known}. A record's kind "
      "comes from the reader of its layout; a layout such as 'colmap' or "
      "'dtu_idr' is not a kind (regnerf_tf.scene_kinds explains the "
      "difference).")
