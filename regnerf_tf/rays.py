"""Rays: the one schema of a ray batch, and pixels → rays for each scene kind.

A ray batch is a dict of named float32 fields with a common leading shape:

==============  =========  =====================================================
``origins``     [..., 3]   DTU: slid to the world plane z = 0; LLFF: NDC
``directions``  [..., 3]   unnormalised (DTU camera-z component 1; LLFF NDC)
``viewdirs``    [..., 3]   DTU/Blender: unit; LLFF: the unnormalised world
                           direction, as in the release (§1.3)
``radii``       [..., 1]   DTU/Blender: cone radius at t = 1 (pixel_radii);
                           LLFF: NDC cylinder radius (ndc_radii)
``near``        [..., 1]   DTU 0.5, LLFF 0 (NDC), Blender the record's
``far``         [..., 1]   DTU 3.5, LLFF 1 (NDC), Blender the record's
==============  =========  =====================================================

:data:`RAY_WIDTHS` is that table; the training stream
(:mod:`regnerf_tf.data`), the unobserved patches (:mod:`regnerf_tf.unobserved`),
the model (:func:`check_rays`), chunked rendering and the SavedModel's
signatures (:mod:`regnerf_tf.export`) all read it from here. How a kind turns
pixels into rays (axes, NDC, origins on a plane, bounds) is its
:class:`regnerf_tf.scene_kinds.SceneKind`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from regnerf_tf import camera
from regnerf_tf import errors
from regnerf_tf import scene_kinds

# Field -> width of its last axis.
RAY_WIDTHS = {"origins": 3, "directions": 3, "viewdirs": 3, "radii": 1,
              "near": 1, "far": 1}
RAY_FIELDS = tuple(RAY_WIDTHS)
# A padding ray that renders without NaNs: along +z from the origin.
PAD_RAY = {"origins": [0.0, 0.0, 0.0], "directions": [0.0, 0.0, 1.0],
            "viewdirs": [0.0, 0.0, 1.0], "radii": [1e-3], "near": [0.1],
            "far": [1.0]}


def check_rays(rays: dict[str, Any], name: str = "rays") -> None:
  """Raises ValueError unless ``rays`` has every field with a matching shape."""
  if not isinstance(rays, dict):
    raise errors.InputError(f"{name} must be a dict with fields {RAY_FIELDS}; "
                     f"received {type(rays).__name__}.")
  missing = [f for f in RAY_FIELDS if f not in rays]
  if missing:
    raise errors.InputError(f"{name} is missing fields {missing}; expected "
                     f"{RAY_FIELDS}.")
  for field, width in RAY_WIDTHS.items():
    shape = tf.TensorShape(getattr(rays[field], "shape", None))
    if shape.rank is not None and (shape.rank < 1 or (
        shape[-1] is not None and shape[-1] != width)):
      raise errors.InputError(f"{name}['{field}'] must have shape [..., {width}]; "
                       f"received {shape}.")


def _pixtocam(intrinsics) -> tf.Tensor:
  """Inverse intrinsics [..., 3, 3], inverted in float64 then cast to float32."""
  k = tf.cast(tf.convert_to_tensor(intrinsics), tf.float64)
  return tf.cast(tf.linalg.inv(k), tf.float32)


def _bounds(kind: scene_kinds.SceneKind, near, far, shape
            ) -> tuple[tf.Tensor, tf.Tensor]:
  near, far = kind.ray_bounds(near, far)
  near = tf.cast(near, tf.float32)
  far = tf.cast(far, tf.float32)
  return (tf.broadcast_to(near[..., None] if near.shape.rank else near, shape),
          tf.broadcast_to(far[..., None] if far.shape.rank else far, shape))


def view_rays(camtoworld, intrinsics, height: int, width: int, kind: str,
              near: float | None = None, far: float | None = None
              ) -> dict[str, tf.Tensor]:
  """All rays of one view, as the release builds them (reference §1.2, §1.3).

  Args:
    camtoworld: [3, 4] camera-to-world matrix.
    intrinsics: [3, 3] K in pixels of the rendered image.
    height, width: image size in pixels (each ≥ 3); Python ints or int32
      scalar tensors (checked in the graph then).
    kind: a scene kind (:mod:`regnerf_tf.scene_kinds`), e.g. "dtu".
    near, far: bounds, used only for kinds without fixed bounds (Blender).

  Returns:
    Ray dict; vector fields [height, width, 3], scalar fields [height, width, 1].
  """
  s = scene_kinds.get(kind)
  checks = []
  if isinstance(height, (int, np.integer)) and isinstance(width,
                                                          (int, np.integer)):
    if height < 3 or width < 3:
      raise errors.InputError(f"Images need at least 3×3 pixels for ray radii; "
                       f"received {width}×{height}.")
  else:  # tensors (e.g. inside an exported graph): check in the graph
    height = tf.convert_to_tensor(height, tf.int32)
    width = tf.convert_to_tensor(width, tf.int32)
    checks = [tf.debugging.assert_greater_equal(
        height, 3, message="Images need height >= 3 (ray radii use "
        "neighbouring rows)"), tf.debugging.assert_greater_equal(
            width, 3, message="Images need width >= 3 (ray radii use "
            "neighbouring columns)")]
  with tf.control_dependencies(checks):
    x, y = camera.pixel_grid(height, width)
  origins, directions, viewdirs = camera.pixels_to_rays(
      x, y, _pixtocam(intrinsics), camtoworld, s.convention)
  if s.ndc:
    focal = tf.cast(tf.convert_to_tensor(intrinsics)[0, 0], tf.float32)
    viewdirs = directions
    origins, directions = camera.convert_to_ndc(origins, directions, focal,
                                                width, height)
    radii = camera.ndc_radii(origins)
  else:
    radii = camera.pixel_radii(directions)
    if s.shift_to_plane:
      origins = camera.shift_origins_to_plane(origins, directions, 0.0)
  near_t, far_t = _bounds(s, near, far, tf.shape(radii))
  return {"origins": origins, "directions": directions, "viewdirs": viewdirs,
          "radii": radii, "near": near_t, "far": far_t}


def _neighbour_pair(coord: tf.Tensor, size) -> tf.Tensor:
  """First pixel of the neighbour pair whose spacing sets the radius.

  Pixel i uses the pair (i, i + 1); the last pixel (size - 1) uses the pair
  (size - 3, size - 2). This is what ``camera.pixel_radii`` and
  ``camera.ndc_radii`` compute on full images (mip-NeRF's
  ``concatenate([dx, dx[-2:-1]])``).
  """
  size = tf.cast(size, coord.dtype)
  return tf.where(coord >= size - 1.0, size - 3.0, coord)


def rays_at_pixels(pix_x, pix_y, camtoworld, intrinsics, height, width,
                   kind: str, near=None, far=None) -> dict[str, tf.Tensor]:
  """Rays for individual pixels, equal to :func:`view_rays` at those pixels.

  Args:
    pix_x, pix_y: [...] integer-valued pixel column / row (float or int).
    camtoworld: [..., 3, 4] per pixel (or broadcastable [3, 4]).
    intrinsics: [..., 3, 3] per pixel (or broadcastable [3, 3]).
    height, width: image size (scalars; ≥ 3).
    kind: a scene kind (:mod:`regnerf_tf.scene_kinds`), e.g. "dtu".
    near, far: [...] per-pixel bounds for kinds without fixed bounds.

  Returns:
    Ray dict; vector fields [..., 3], scalar fields [..., 1].
  """
  s = scene_kinds.get(kind)
  pix_x = tf.cast(pix_x, tf.float32)
  pix_y = tf.cast(pix_y, tf.float32)
  pixtocam = _pixtocam(intrinsics)
  camtoworld = tf.convert_to_tensor(camtoworld, tf.float32)

  def rays(x, y):
    return camera.pixels_to_rays(x, y, pixtocam, camtoworld, s.convention)

  origins, directions, viewdirs = rays(pix_x, pix_y)
  row = _neighbour_pair(pix_y, height)
  col = _neighbour_pair(pix_x, width)
  if s.ndc:
    focal = tf.cast(tf.convert_to_tensor(intrinsics)[..., 0, 0], tf.float32)

    def ndc(x, y):
      o, d, _ = rays(x, y)
      return camera.convert_to_ndc(o, d, focal, width, height)

    viewdirs = directions
    origins, directions = ndc(pix_x, pix_y)
    dy = tf.norm(ndc(pix_x, row)[0] - ndc(pix_x, row + 1.0)[0], axis=-1,
                 keepdims=True)
    dx = tf.norm(ndc(col, pix_y)[0] - ndc(col + 1.0, pix_y)[0], axis=-1,
                 keepdims=True)
    radii = 0.5 * (dx + dy) * camera.RADIUS_SCALE
  else:
    radii = tf.norm(rays(pix_x, row)[1] - rays(pix_x, row + 1.0)[1], axis=-1,
                    keepdims=True) * camera.RADIUS_SCALE
    if s.shift_to_plane:
      origins = camera.shift_origins_to_plane(origins, directions, 0.0)
  near_t, far_t = _bounds(s, near, far, tf.shape(radii))
  return {"origins": origins, "directions": directions, "viewdirs": viewdirs,
          "radii": radii, "near": near_t, "far": far_t}
