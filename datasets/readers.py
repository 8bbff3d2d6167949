"""Scene readers: a folder on disk → one record per view.

Supported layouts (reference §1, pitfalls P12, P14, P20):

* **LLFF**: ``poses_bounds.npy`` + ``images_<factor>/`` (or ``images/``, then
  downsampled here). OpenGL cameras after the axis fix, translations and bounds
  scaled by 1 / (0.75 · min bound), poses recentred.
* **DTU, official layout**: ``Rectified/<scan>/rect_{i:03d}_3_r5000.png`` with
  ``Calibration/cal18/pos_{i:03d}.txt`` (3×4 projections) and optionally the
  RegNeRF/IDR masks ``<mask_root>/<scan>/[mask/]{i-1:03d}.png``.
* **DTU, IDR/NeuS layout**: ``cameras.npz`` or ``cameras_sphere.npz``
  (``world_mat_i``) with ``image/`` or ``images/`` (or downscaled copies such as
  ``images_4/``) and optional ``mask/`` (or ``mask_4/``).
* **Blender**: ``transforms_{train,val,test}.json``.
* **instant-ngp / nerfstudio**: ``transforms.json`` (global or per-frame
  intrinsics, k1 k2 p1 p2 distortion, OpenGL camera-to-world) with a sparse
  point cloud (``ply_file_path``, e.g. ``sparse_pc.ply``) for the bounds.
* **COLMAP**: ``sparse/0/`` (or ``sparse/``) with ``cameras``, ``images`` and
  ``points3D`` (``.bin`` or ``.txt``) next to ``images/`` (and downscaled
  ``images_<k>/``), as ``regnerf-process-data`` writes it. Forward-facing
  captures become records of kind ``"llff"``, object-centric ones of kind
  ``"blender"`` (see :func:`read_colmap`).

DTU cameras are OpenCV (z forward, y down): each projection P = K[R|t] is split
by an RQ decomposition, K divided by K[2, 2], camera-to-world = [Rᵀ | C]; the
poses of all (at most 49) cameras are recentred and rescaled so that every camera
centre lies in [-1, 1]³. Intrinsics are scaled by the ratio of the actual image
width to the 1600 pixels the cameras were calibrated at.

Every reader returns ``list[dict]`` with these fields (one dict per view, sorted
by view index):

=====================  =============  =========================================
``image``              uint8          [H, W, 3]
``mask``               uint8          [H, W, 1], 255 = object (DTU, Blender only)
``has_mask``           bool           False: ``mask`` is an all-255 placeholder
``camtoworld``         float32        [3, 4] camera-to-world
``intrinsics``         float32        [3, 3] K in pixels of ``image``
``near``, ``far``      float32        DTU 0.5/3.5; LLFF this view's scaled bounds
``scene``              str            e.g. ``"scan24"``, ``"fern"``
``view_index``         int32          0-based index within the scene
``file_name``          str            image file name
``kind``               str            ``"dtu"``, ``"llff"`` or ``"blender"``
``scene_camtoworlds``  float32        [N, 3, 4] all N cameras of the scene
``scene_intrinsics``   float32        [N, 3, 3] their intrinsics
``scene_bounds``       float32        [N, 2] their near/far
``world_transform``    float32        [4, 4] maps the source world frame to ours
=====================  =============  =========================================

All file access goes through ``tf.io.gfile`` and NumPy files are never unpickled.

Readers raise only :class:`regnerf_tf.errors.MissingFileError` (a file or
folder is absent or unreadable) and :class:`regnerf_tf.errors.InputError`
(malformed content: empty, undecodable or 0-pixel images; images or masks of
different sizes; camera values that are not finite real numbers of the expected
shape; camera-to-world rotations that are not orthonormal with det +1 within
``ROTATION_TOLERANCE``; DTU projections whose K is sheared; LLFF bounds outside
0 < near < far; as many cameras as images violated; view indices out of range;
cameras that overflow float32), each naming the file, what was expected and what
was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regnerf_tf import errors
from regnerf_tf.datasets import colmap
from regnerf_tf.datasets.files import (  # noqa: F401  (the readers' API)
    IMAGE_EXTENSIONS,
    ROTATION_TOLERANCE,
    Record,
    _exists,
    _isdir,
    _join,
    _listdir,
    _natural_key,
    ignored_note,
    list_photos,
    load_npy,
    load_npz,
    read_image,
    read_stored)
from regnerf_tf.datasets.dtu import (  # noqa: F401  (the readers' API)
    DTU_CALIBRATION_SIZE,
    DTU_CAMERA_FILES,
    DTU_FAR,
    DTU_IMAGE_PATTERN,
    DTU_NEAR,
    decompose_projection,
    dtu_mask_candidates,
    read_dtu,
    read_dtu_idr)
from regnerf_tf.datasets.llff import (  # noqa: F401  (the readers' API)
    llff_num_views,
    load_poses_bounds,
    read_llff)
from regnerf_tf.datasets.blender import (  # noqa: F401  (the readers' API)
    BLENDER_FAR,
    BLENDER_NEAR,
    read_blender)
from regnerf_tf.datasets.captures import (  # noqa: F401  (the readers' API)
    FORWARD_SPREAD_DEGREES,
    TRANSFORMS_FILE,
    camera_layout,
    read_colmap,
    read_ply_points,
    read_transforms)

FORMATS = ("llff", "dtu", "dtu_idr", "blender", "colmap", "transforms")


CAPTURE_FORMATS = ("colmap", "transforms")  # layouts chosen from the cameras

# The scene kind (regnerf_tf.scene_kinds) of every layout whose format fixes
# it; a capture's kind comes from its cameras (forward-facing or not).
FORMAT_KINDS = {"llff": "llff", "dtu": "dtu", "dtu_idr": "dtu",
                "blender": "blender"}


LISTED_FORMATS = ("llff", "dtu_idr")  # images paired with camera rows by order


def _layout(path: str) -> str | None:
  """The layout of the folder ``path`` (one of ``FORMATS``), or None."""
  if _exists(_join(path, "poses_bounds.npy")):
    return "llff"
  if any(_exists(_join(path, n)) for n in DTU_CAMERA_FILES):
    return "dtu_idr"
  if _exists(_join(path, DTU_IMAGE_PATTERN.format(1))):
    return "dtu"
  if any(_exists(_join(path, f"transforms_{s}.json"))
         for s in ("train", "val", "test")):
    return "blender"
  if _exists(_join(path, TRANSFORMS_FILE)):
    return "transforms"
  if colmap.find_model(path) is not None:
    return "colmap"
  return None


def _photos_hint(path: str, entries: Sequence[str]) -> str:
  """What to do with a folder of photos that is not a scene folder."""
  photos = [n for n in entries if n.lower().endswith(IMAGE_EXTENSIONS)]
  if not entries or len(photos) < len(entries) / 2:
    return ""
  parent = path.rsplit("/", 1)[0] if "/" in path else "."
  layout = _layout(parent) if parent != path and _isdir(parent) else None
  if layout is not None:
    return (f" It holds {len(photos)} photos: it looks like the image folder "
            f"of the {layout} scene {parent}; give that folder instead.")
  return (f" It holds {len(photos)} photos but no cameras: make a scene from "
          f"them with `regnerf-process-data --input={path} "
          "--output=<scene folder>` (structure from motion) and give that.")


def detect_format(path: str) -> str:
  """Which layout ``path`` holds: one of ``FORMATS``.

  Raises ``MissingFileError`` listing the files looked for if none matches
  (with what to do when the folder holds photos: its parent scene folder, or
  ``regnerf-process-data``).
  """
  path = str(path).rstrip("/")
  if not _isdir(path):
    found = ("a file, not a folder" if _exists(path)
             else "nothing (it does not exist)")
    raise errors.MissingFileError(f"Expected a scene folder at {path}; found "
                                  f"{found}. Pass the folder that holds the "
                                  "scene's images and camera file.")
  layout = _layout(path)
  if layout is not None:
    return layout
  entries = sorted(_listdir(path), key=_natural_key)
  found = f"its entries are {entries[:12]}" if entries else "the folder is empty"
  raise errors.MissingFileError(
      f"No known scene layout in {path} ({found}). Looked for: "
      "poses_bounds.npy (LLFF); "
      f"{' or '.join(DTU_CAMERA_FILES)} (DTU, IDR/NeuS layout); "
      f"{DTU_IMAGE_PATTERN.format(1)} (DTU, official Rectified/<scan> folder "
      "with Calibration/cal18 two levels up); transforms_train.json, "
      "transforms_val.json or transforms_test.json (Blender); "
      "transforms.json (instant-ngp, nerfstudio); sparse/0/cameras.bin or "
      ".txt (a COLMAP model: make one from photos with "
      "regnerf-process-data). See "
      "datasets/README.md for the layouts." + _photos_hint(path, entries))


def from_directory(path: str, **kwargs: Any) -> list[Record]:
  """Reads any supported scene folder (format detected from its files).

  Args:
    path: a scene folder (see :func:`detect_format`).
    **kwargs: passed to the matching reader (:func:`read_llff`,
      :func:`read_dtu`, :func:`read_dtu_idr` or :func:`read_blender`).

  Returns:
    One record per view, sorted by view index.
  """
  readers = {"llff": read_llff, "dtu": read_dtu, "dtu_idr": read_dtu_idr,
             "blender": read_blender, "colmap": read_colmap,
             "transforms": read_transforms}
  return readers[detect_format(path)](str(path), **kwargs)


def find_scenes(root: str, kinds: Sequence[str]) -> dict[str, tuple[str, str]]:
  """Scene folders directly inside ``root`` (or ``root/Rectified`` for DTU).

  Args:
    root: a folder holding scene folders.
    kinds: formats to accept, subset of ``FORMATS``.

  Returns:
    {scene name: (format, path)} in natural name order.

  Raises:
    errors.MissingFileError: ``root`` is not a folder or cannot be listed.
  """
  root = str(root).rstrip("/")
  if not _isdir(root):
    raise errors.MissingFileError(f"Expected a folder of scenes at {root}; it does "
                                  "not exist or is not a folder.")
  found: dict[str, tuple[str, str]] = {}
  parents = [root]
  if "dtu" in kinds and _isdir(_join(root, "Rectified")):
    parents.append(_join(root, "Rectified"))
  for parent in parents:
    for name in sorted(_listdir(parent), key=_natural_key):
      path = _join(parent, name)
      if not _isdir(path) or name == "Rectified":
        continue
      try:
        kind = detect_format(path)
      except FileNotFoundError:
        continue
      if kind in kinds and name not in found:
        found[name] = (kind, path)
  return found
