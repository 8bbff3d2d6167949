"""Export a trained RegNeRF as a self-contained TensorFlow SavedModel.

The SavedModel has two signatures and needs only TensorFlow to load
(``tf.saved_model.load(path)``; regnerf_tf need not be installed):

``render_rays``
  inputs ``origins`` [N, 3], ``directions`` [N, 3], ``viewdirs`` [N, 3],
  ``radii`` [N, 1], ``near`` [N, 1], ``far`` [N, 1] (float32, any N ≥ 0);
  outputs ``rgb`` [N, 3], ``depth`` [N], ``acc`` [N].

``render_image``
  inputs ``camtoworld`` [3, 4] float32, ``intrinsics`` [3, 3] float32 (K in
  pixels of the rendered image), ``height`` and ``width`` (int32 scalars, each
  ≥ 3, H·W at most ``max_pixels``, fixed at export time, default 4096·4096);
  outputs ``image`` [H, W, 3] and ``depth`` [H, W]. Rays are built in the
  graph exactly as :func:`regnerf_tf.data.view_rays` builds them for the scene
  kind fixed at export time (DTU: OpenCV axes, origins on z = 0, near/far
  0.5/3.5; LLFF: OpenGL axes, NDC, 0/1; Blender: OpenGL axes with the near/far
  given at export).

``cameras``
  no inputs; returns what a client needs to ask for a sensible view without
  this package: ``kind``, ``convention`` ("opencv": x right, y down, z
  forward; "opengl": x right, y up, z backward), ``ndc``, ``near``, ``far``,
  and, when exported from a scene (``regnerf-export`` always is), the input
  and held-out cameras (``train_camtoworld``, ``train_intrinsics``,
  ``train_view_index``, ``test_*``), ``image_size`` [height, width],
  ``world_transform`` (the capture's world frame → this frame) and a default
  ``render_path`` with ``render_path_intrinsics`` (see
  :func:`serving_cameras`).

Both render deterministically in chunks of a fixed number of rays: the rays are
padded to a multiple of ``chunk`` with a harmless dummy ray, reshaped to
[num_chunks, chunk, ...] and rendered one chunk after the other by
``tf.map_fn(..., parallel_iterations=1)``; the padding is sliced off at the
end. Peak memory is that of one chunk whatever N is. Each chunk is cut into
``render_branches`` parts that the server's inter-op threads run side by side
(:func:`regnerf_tf.machine.render_branches` of the exporting machine, or the
config's ``train.render_branches``; the pixels do not depend on it beyond
float rounding).

Wrong shapes or dtypes are rejected by the signatures' ``TensorSpec``s (the
TensorFlow error names the expected spec, e.g. ``TensorSpec(shape=(None, 3),
dtype=tf.float32, name='origins')``). Values are checked in the graph
(``tf.errors.InvalidArgumentError`` naming the input, what was expected and
what was received): ``render_rays`` needs finite rays with near < far on every
ray; ``render_image`` needs finite ``camtoworld`` and ``intrinsics``, a
rotation in ``camtoworld[:, :3]`` (orthonormal, det +1, within
:data:`CAMERA_TOLERANCE`, in either camera convention), a pinhole
``intrinsics`` [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0, and an
image size within the limits (readable as ``loaded.max_pixels``). Neither
signature returns NaN or inf with an OK status: ``render_image`` checks that
the rays it builds are finite (a DTU camera with a ray parallel to the z = 0
plane gives NaN origins, which the network can turn into finite pixels), and
both check that their outputs are finite (rays too large for float32
arithmetic give NaN depths); either fails the request with
InvalidArgumentError. :func:`load_and_check` wraps a loaded model with the same
input checks in Python, raising :class:`regnerf_tf.errors.InputError` with
shorter messages.

A small ``assets.extra/regnerf_export.json`` records the kind, near/far, chunk,
render_branches, max_pixels and the model config.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from regnerf_tf import errors
from regnerf_tf import data as data_lib
from regnerf_tf import machine
from regnerf_tf import rays as rays_lib
from regnerf_tf import render_paths
from regnerf_tf import scene_kinds
from regnerf_tf.rays import RAY_WIDTHS
from regnerf_tf.renderer import render_in_chunks

METADATA = os.path.join("assets.extra", "regnerf_export.json")
DEFAULT_MAX_PIXELS = 4096 * 4096  # render_image's default limit on H·W
MIN_SIZE = 3  # ray radii use neighbouring rows and columns
# Tolerance of render_image's camera checks, in the graph and in
# CheckedRenderer: on the entries of R Rᵀ − I and on det R − 1 of camtoworld's
# left 3×3 block R; on intrinsics' last row minus [0, 0, 1] and on
# K[1, 0] / K[1, 1]. Camera paths (regnerf-render --path) use the same value.
CAMERA_TOLERANCE = render_paths.ROTATION_TOLERANCE


def _rotation_error(camtoworld) -> tuple[tf.Tensor, tf.Tensor]:
  """max |R Rᵀ − I| and det R of the left 3×3 block R of ``camtoworld``.

  Computed in float64 (float32 round-off of a true rotation is ~1e-7, far
  below :data:`CAMERA_TOLERANCE`). A rotation is a rotation in either camera
  convention: OpenCV and OpenGL camera axes are both right-handed, and
  ``view_rays`` flips the camera-space directions before applying R.
  """
  r = tf.cast(tf.convert_to_tensor(camtoworld)[:3, :3], tf.float64)
  error = tf.reduce_max(tf.abs(tf.matmul(r, r, transpose_b=True)
                               - tf.eye(3, dtype=tf.float64)))
  return error, tf.linalg.det(r)


def _is_rotation(error, det) -> tf.Tensor:
  return tf.logical_and(error <= CAMERA_TOLERANCE,
                        tf.abs(det - 1.0) <= CAMERA_TOLERANCE)


def _is_pinhole(intrinsics) -> tf.Tensor:
  """Whether K is [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0.

  The zeros and the one within :data:`CAMERA_TOLERANCE` (K[1, 0] relative to
  fy); the skew s and the principal point are free.
  """
  k = tf.cast(tf.convert_to_tensor(intrinsics), tf.float64)
  fx, fy = k[0, 0], k[1, 1]
  last_row = tf.reduce_max(tf.abs(k[2] - tf.constant([0.0, 0.0, 1.0],
                                                     tf.float64)))
  return tf.reduce_all(tf.stack([
      fx > 0.0, fy > 0.0, tf.abs(k[1, 0]) <= CAMERA_TOLERANCE * fy,
      last_row <= CAMERA_TOLERANCE]))


# Messages of the in-graph checks (InvalidArgumentError at serving time).
_ROTATION_MESSAGE = (
    "render_image: camtoworld[:, :3] must be a rotation (orthonormal with det "
    f"+1, within {CAMERA_TOLERANCE}: max|R R^T - I| <= {CAMERA_TOLERANCE} and "
    f"|det R - 1| <= {CAMERA_TOLERANCE}); remove scale, shear or reflection "
    "from the camera-to-world matrix. Received")
_PINHOLE_MESSAGE = (
    "render_image: intrinsics must be a pinhole matrix [[fx, s, cx], "
    "[0, fy, cy], [0, 0, 1]] in pixels with fx > 0 and fy > 0 (the zeros and "
    f"the one within {CAMERA_TOLERANCE}). Received")
_OUTPUT_MESSAGE = (
    "{where}: the rendered {name} holds NaN or infinite values although the "
    "inputs passed the checks; {hint}")
_RAYS_HINT = ("the rays are probably too large for float32 arithmetic (near, "
              "far, origins or directions of astronomical size); send rays "
              "within the scene's bounds (`cameras` signature: near, far)")
_IMAGE_HINT = ("the camera is probably far outside the scene; send one "
               "close to the scene's own cameras (`cameras` signature)")
# render_image's rays are built in the graph; a camera that passes the checks
# can still give rays that are not finite. The network can turn NaN inputs
# into finite pixels, so these are checked before rendering, not after.
_IMAGE_RAYS_MESSAGE = (
    "render_image: this camera gives rays whose {field} are not finite (NaN "
    "or inf); {hint}")


def _finite_outputs(outputs: dict[str, tf.Tensor], where: str,
                    hint: str) -> dict[str, tf.Tensor]:
  """``outputs``, each checked in the graph to be finite.

  A NaN or infinite value fails the request with InvalidArgumentError instead
  of being returned with an OK status. The check reads each output once (a
  few floats per pixel next to the network's thousands of operations).
  """
  return {name: tf.debugging.assert_all_finite(
      value, _OUTPUT_MESSAGE.format(where=where, name=name, hint=hint))
          for name, value in outputs.items()}


def _rays_signature() -> dict[str, tf.TensorSpec]:
  return {k: tf.TensorSpec([None, w], tf.float32, name=k)
          for k, w in RAY_WIDTHS.items()}


def _image_signature() -> dict[str, tf.TensorSpec]:
  return {"camtoworld": tf.TensorSpec([3, 4], tf.float32, name="camtoworld"),
          "intrinsics": tf.TensorSpec([3, 3], tf.float32, name="intrinsics"),
          "height": tf.TensorSpec([], tf.int32, name="height"),
          "width": tf.TensorSpec([], tf.int32, name="width")}


def image_rays(camtoworld, intrinsics, height, width, kind: str,
               near: float | None = None, far: float | None = None
               ) -> dict[str, tf.Tensor]:
  """:func:`regnerf_tf.data.view_rays` with tensor ``height``/``width``.

  Graph-friendly: the image size is a tensor and checked in the graph.

  Returns:
    Ray dict; vector fields [H, W, 3], scalar fields [H, W, 1].
  """
  near, far = scene_kinds.get(kind).ray_bounds(near, far)
  return rays_lib.view_rays(camtoworld, intrinsics,
                            tf.convert_to_tensor(height, tf.int32),
                            tf.convert_to_tensor(width, tf.int32), kind,
                            near, far)


class _Renderer(tf.Module):
  """The exported module: the model's variables and two signatures."""

  def __init__(self, model, kind: str, near: float | None,
               far: float | None, chunk: int, max_pixels: int,
               cameras: dict[str, np.ndarray] | None = None, fast=None):
    super().__init__(name="regnerf_renderer")
    self._cameras = dict(cameras or {})
    self.model = model
    self.fast = fast  # a FastRenderer (its grid and MLP are saved) or None
    self._kind = scene_kinds.get(kind)
    self._near = near
    self._far = far
    self._chunk = int(chunk)
    self._branches = machine.render_branches(
        model.config.train.render_branches)
    self._max_pixels = int(max_pixels)
    # Saved with the model, so that `loaded.max_pixels` tells the limit.
    self.max_pixels = tf.Variable(int(max_pixels), dtype=tf.int64,
                                  trainable=False, name="max_pixels")
    self.render_rays = tf.function(self._render_rays,
                                   input_signature=[_rays_signature()])
    self.render_image = tf.function(self._render_image,
                                    input_signature=[_image_signature()])
    self.cameras = tf.function(self._camera_info, input_signature=[])

  def _camera_info(self):
    """What a client needs to ask for a view (no inputs)."""
    s = self._kind
    info = {"kind": tf.constant(s.name),
            "convention": tf.constant(s.convention),
            "ndc": tf.constant(s.ndc),
            "near": tf.constant(self._near if self._near is not None
                                else s.near, tf.float32),
            "far": tf.constant(self._far if self._far is not None else s.far,
                               tf.float32)}
    for name, value in self._cameras.items():
      info[name] = tf.constant(value)
    return info

  def _render_flat(self, rays):
    def render_fn(part):
      if self.fast is not None:
        out = self.fast.render_rays(part)
      else:
        out = self.model.render_rays(part, training=False,
                                     coarse_rgb=False)[-1]
      return {"rgb": out["rgb"], "depth": out["depth"], "acc": out["acc"]}
    return render_in_chunks(render_fn, rays, self._chunk, self._branches)

  def _render_rays(self, inputs):
    # Signature functions do not check shapes at call time: EnsureShape does
    # ("Shape of tensor origins [5,4] is not compatible with expected shape
    # [?,3]").
    inputs = {k: tf.ensure_shape(inputs[k], [None, w], name=k)
              for k, w in RAY_WIDTHS.items()}
    n = tf.shape(inputs["origins"])[0]
    checks = [tf.debugging.assert_equal(
        tf.shape(inputs[k])[0], n, message=f"render_rays: {k} must have "
        "shape [N, ...] with the same N as origins") for k in RAY_WIDTHS]
    checks += [tf.debugging.assert_all_finite(
        inputs[k], f"render_rays: {k} must hold finite numbers (no NaN or "
        "inf); send finite rays") for k in RAY_WIDTHS]
    with tf.control_dependencies(checks):
      inputs = {k: tf.identity(v) for k, v in inputs.items()}
    # near >= far renders nothing (near == far) or negative colours and
    # opacity (near > far). Checked once the values are known to be finite.
    bad = inputs["near"][:, 0] >= inputs["far"][:, 0]
    first = tf.where(bad)[:1, 0]  # [] or [index]: also fine for N = 0
    with tf.control_dependencies([tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        ["render_rays: every ray needs near < far (the segment rendered "
         "along the ray); received rays with near >= far: count",
         tf.reduce_sum(tf.cast(bad, tf.int32)), "of", n, "; first index",
         first, "near", tf.gather(inputs["near"][:, 0], first), "far",
         tf.gather(inputs["far"][:, 0], first)])]):
      inputs = {k: tf.identity(v) for k, v in inputs.items()}
    out = _finite_outputs(self._render_flat(inputs), "render_rays",
                          _RAYS_HINT)
    return {"rgb": tf.identity(out["rgb"], name="rgb"),
            "depth": tf.identity(out["depth"], name="depth"),
            "acc": tf.identity(out["acc"], name="acc")}

  def _check_image_inputs(self, inputs):
    """The inputs, after in-graph checks of their values.

    Finite cameras, then (once known finite) a rotation in camtoworld and a
    pinhole intrinsics matrix; the image size within MIN_SIZE and max_pixels.
    """
    h, w = inputs["height"], inputs["width"]
    limit = self._max_pixels
    checks = [
        tf.debugging.assert_all_finite(
            inputs[k], f"render_image: {k} must hold finite numbers (no NaN "
            "or inf); check the camera sent")
        for k in ("camtoworld", "intrinsics")]
    checks += [tf.debugging.assert_greater_equal(
        size, MIN_SIZE, message=f"render_image needs {name} >= {MIN_SIZE} "
        f"(ray radii use neighbouring pixels); received {name}")
               for name, size in (("height", h), ("width", w))]
    checks.append(tf.debugging.assert_less_equal(
        tf.cast(h, tf.int64) * tf.cast(w, tf.int64), self.max_pixels,
        message=f"render_image: height*width must be <= max_pixels={limit} "
        "(the limit fixed at export); render a smaller image or re-export "
        "with a larger max_pixels (regnerf-export --max_pixels). Received "
        "height*width, max_pixels"))
    with tf.control_dependencies(checks[:2]):  # the cameras are finite
      error, det = _rotation_error(inputs["camtoworld"])
      checks.append(tf.debugging.Assert(
          _is_rotation(error, det),
          [_ROTATION_MESSAGE, "max|R R^T - I|", error, "det R", det]))
      checks.append(tf.debugging.Assert(
          _is_pinhole(inputs["intrinsics"]),
          [_PINHOLE_MESSAGE, "intrinsics", inputs["intrinsics"]],
          summarize=9))
    with tf.control_dependencies(checks):
      return {k: tf.identity(v) for k, v in inputs.items()}

  def _render_image(self, inputs):
    specs = _image_signature()
    inputs = {k: tf.ensure_shape(inputs[k], spec.shape, name=k)
              for k, spec in specs.items()}
    inputs = self._check_image_inputs(inputs)
    rays = image_rays(inputs["camtoworld"], inputs["intrinsics"],
                      inputs["height"], inputs["width"], self._kind,
                      self._near, self._far)
    h, w = inputs["height"], inputs["width"]
    flat = {k: tf.debugging.assert_all_finite(
        tf.reshape(rays[k], [-1, RAY_WIDTHS[k]]), _IMAGE_RAYS_MESSAGE.format(
            field=k, hint=self._kind.nonfinite_hint)) for k in RAY_WIDTHS}
    out = self._render_flat(flat)
    out = _finite_outputs({"image": out["rgb"], "depth": out["depth"]},
                          "render_image", _IMAGE_HINT)
    return {"image": tf.reshape(out["image"], tf.stack([h, w, 3]),
                                name="image"),
            "depth": tf.reshape(out["depth"], tf.stack([h, w]), name="depth")}


def _resolve_bounds(kind: str, near, far) -> tuple[float | None, float | None]:
  s = scene_kinds.get(kind)
  if s.fixed_bounds:
    for given, fixed, name in ((near, s.near, "near"), (far, s.far, "far")):
      if given is not None and not np.isclose(float(given), fixed):
        raise errors.InputError(f"{kind!r} rays always use {name}={fixed}; received "
                         f"{name}={given}.")
    return s.near, s.far
  if near is None or far is None:
    raise errors.InputError(f"Exporting a {kind!r} model needs near and far (the "
                     "records' bounds), e.g. near=2.0, far=6.0.")
  near, far = float(np.asarray(near).reshape(-1)[0]), float(
      np.asarray(far).reshape(-1)[0])
  if not 0 <= near < far:
    raise errors.InputError(f"Need 0 <= near < far; received near={near}, far={far}.")
  return near, far


def _check_max_pixels(max_pixels) -> int:
  if (isinstance(max_pixels, bool)
      or not isinstance(max_pixels, (int, np.integer))
      or not MIN_SIZE * MIN_SIZE <= max_pixels < 2**62):
    raise errors.InputError(
        f"max_pixels must be an integer >= {MIN_SIZE * MIN_SIZE} (a "
        f"{MIN_SIZE}×{MIN_SIZE} image) and < 2**62; received "
        f"{max_pixels!r}. The default "
        f"is {DEFAULT_MAX_PIXELS} (4096×4096).")
  return int(max_pixels)


def serving_cameras(scene, path_frames: int = 60) -> dict[str, np.ndarray]:
  """The cameras a served model carries, in the frame it renders in.

  ``train_*`` and ``test_*``: the input and held-out views (``camtoworld``
  [N, 3, 4] in the kind's axes, ``intrinsics`` [N, 3, 3] in pixels of the
  ``image_size`` [height, width] image, ``view_index`` [N]);
  ``world_transform`` [4, 4]: maps the capture's own world frame (e.g. the
  poses in ``poses_bounds.npy`` or ``cameras.npz``) to this frame (LLFF
  recentring and scaling, DTU normalisation); ``render_path`` [F, 3, 4] with
  ``render_path_intrinsics`` [3, 3]: the kind's default spiral or orbit.
  """
  info: dict[str, np.ndarray] = {}
  for split, records in (("train", scene.train), ("test", scene.test)):
    if not records:
      continue
    views = data_lib.load_views(records)
    info[f"{split}_camtoworld"] = views["camtoworlds"].astype(np.float32)
    info[f"{split}_intrinsics"] = views["intrinsics"].astype(np.float32)
    info[f"{split}_view_index"] = views["view_indices"].astype(np.int32)
    info["image_size"] = np.array(views["images"].shape[1:3], np.int32)
  first = scene.train[0]
  info["world_transform"] = np.asarray(
      first.get("world_transform", np.eye(4)), np.float32).reshape(4, 4)
  cams = data_lib.scene_cameras(scene.train)
  info["render_path"] = scene_kinds.get(scene.kind).render_path(
      cams["camtoworlds"], cams["bounds"], path_frames).astype(np.float32)
  # The path's camera: the mean of the cameras' inverse intrinsics.
  info["render_path_intrinsics"] = np.linalg.inv(np.mean(np.linalg.inv(
      cams["intrinsics"].astype(np.float64)), axis=0)).astype(np.float32)
  return info


def export_saved_model(model, path: str, kind: str,
                       near: float | None = None, far: float | None = None,
                       chunk: int = 4096,
                       max_pixels: int = DEFAULT_MAX_PIXELS,
                       cameras: dict[str, np.ndarray] | None = None,
                       fast=None) -> str:
  """Writes ``model`` as a SavedModel with ``render_rays`` and ``render_image``.

  The SavedModel is written to a temporary folder next to ``path`` and renamed
  into place, so ``path`` never holds a half-written export; an existing export
  at ``path`` is replaced only once the new one is complete (and put back if
  the rename fails). A failure leaves no temporary folder behind. Any other
  non-empty folder at ``path`` (a run folder, photos) is refused.

  Args:
    model: a :class:`regnerf_tf.model.RegNeRF`.
    path: output folder.
    kind: scene kind baked into ``render_image``: "dtu", "llff" or "blender".
    near, far: ray bounds for "blender" (ignored if equal to the fixed bounds
      of the other kinds; an error if different).
    chunk: rays rendered at once.
    max_pixels: the largest height·width ``render_image`` accepts (checked in
      the graph; bounds the memory a request can take).
    cameras: :func:`serving_cameras` of the scene, returned by the
      ``cameras`` signature (which always returns the kind, convention, NDC
      flag and near/far).
    fast: a :class:`regnerf_tf.fast_render.FastRenderer` of ``model``: the
      signatures render with it (its grid is saved with the export); None
      renders every sample (the exact renderer). The metadata's
      ``renderer`` says which.

  Returns:
    ``path``.
  """
  near, far = _resolve_bounds(kind, near, far)
  if int(chunk) < 1:
    raise errors.InputError(f"chunk must be >= 1; received {chunk}.")
  max_pixels = _check_max_pixels(max_pixels)
  path = os.path.abspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise errors.InputError(
        f"The export's output {path} exists and is not a folder; choose "
        "another output path or remove the file.")
  if os.path.isdir(path) and os.listdir(path) and not (
      os.path.exists(os.path.join(path, "saved_model.pb"))
      and os.path.exists(os.path.join(path, METADATA))):
    found = sorted(os.listdir(path))
    raise errors.InputError(
        f"The export's output {path} (regnerf-export --output) is a folder "
        f"that holds something other than an earlier export ({', '.join(found[:6])}"
        f"{', …' if len(found) > 6 else ''}); exporting there would replace "
        "it and delete those files. Choose a new folder for the export (e.g. "
        "<run folder>/export).")
  if fast is not None and fast.model is not model:
    raise errors.InputError("export_saved_model: `fast` must be a "
                            "FastRenderer of the model being exported.")
  module = _Renderer(model, kind, near, far, chunk, max_pixels, cameras, fast)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp_export_")
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private (0700)
  old = None
  try:
    tf.saved_model.save(
        module, tmp, signatures={
            "render_rays": module.render_rays.get_concrete_function(),
            "render_image": module.render_image.get_concrete_function(),
            "cameras": module.cameras.get_concrete_function()})
    meta = {"kind": kind, "near": near, "far": far, "chunk": int(chunk),
            "render_branches": module._branches,  # pylint: disable=protected-access
            "max_pixels": max_pixels,
            "signatures": ["render_rays", "render_image", "cameras"],
            "cameras": {k: np.asarray(v).tolist()
                        for k, v in (cameras or {}).items()},
            "renderer": ({k: v for k, v in fast.describe().items()
                          if k != "samples_per_ray"} if fast is not None
                         else {"renderer": "exact"}),
            "config": model.config.to_dict()}
    os.makedirs(os.path.join(tmp, os.path.dirname(METADATA)), exist_ok=True)
    with open(os.path.join(tmp, METADATA), "w") as f:
      json.dump(meta, f, indent=2)
    if os.path.exists(path):
      old = tempfile.mkdtemp(dir=parent, prefix=".old_export_")
      os.rmdir(old)
      os.replace(path, old)
    os.replace(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if old and not os.path.exists(path):
      os.replace(old, path)  # put the previous export back
    raise
  if old:
    shutil.rmtree(old, ignore_errors=True)
  return path


def _real_array(where: str, value) -> np.ndarray:
  """``value`` as a float32 array; InputError unless real and finite."""
  try:
    array = np.asarray(value)
  except (TypeError, ValueError) as e:  # ragged nested lists
    raise errors.InputError(f"{where} must be an array of numbers; received "
                            f"{type(value).__name__} ({e}).") from None
  if array.dtype.kind not in "iuf":
    raise errors.InputError(
        f"{where} must hold real numbers (float32 expected); received dtype "
        f"{array.dtype.name}.")
  if not np.all(np.isfinite(array)):
    raise errors.InputError(f"{where} holds NaN or infinite values; send "
                            "finite numbers.")
  return array.astype(np.float32)


def _matrix_text(matrix: np.ndarray) -> str:
  """``matrix`` as nested lists with 6 significant digits (tiny values kept)."""
  return "[" + ", ".join("[" + ", ".join(f"{x:g}" for x in row) + "]"
                         for row in matrix) + "]"


def _image_size(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise errors.InputError(
        f"render_image: {name} must be an integer (int32) >= {MIN_SIZE}; "
        f"received {value!r} of type {type(value).__name__}.")
  if value < MIN_SIZE:
    raise errors.InputError(
        f"render_image: {name} must be >= {MIN_SIZE} (ray radii use "
        f"neighbouring pixels); received {name}={value}.")
  return int(value)


class CheckedRenderer:
  """A loaded export with Python-side input checks and clear messages.

  Every check raises :class:`regnerf_tf.errors.InputError` naming the input,
  what was expected and what was received, before TensorFlow runs.

  Attributes:
    loaded: the object returned by ``tf.saved_model.load``.
    metadata: the export's ``regnerf_export.json`` (empty if absent).
  """

  def __init__(self, loaded, metadata: dict[str, Any]):
    self.loaded = loaded
    self.metadata = metadata

  def render_rays(self, **rays) -> dict[str, tf.Tensor]:
    """Renders rays; keyword arguments are the six ray fields [N, ...].

    Floating-point fields of any precision (e.g. float64 NumPy arrays) are
    cast to float32; integer, boolean, complex or text fields are refused.
    """
    missing = [k for k in RAY_WIDTHS if k not in rays]
    extra = [k for k in rays if k not in RAY_WIDTHS]
    if missing or extra:
      raise errors.InputError(
          f"render_rays takes exactly the fields {list(RAY_WIDTHS)}; missing "
          f"{missing}, unexpected {extra}.")
    n = None
    inputs = {}
    for k, width in RAY_WIDTHS.items():
      try:
        value = tf.convert_to_tensor(rays[k])
      except (TypeError, ValueError) as e:
        raise errors.InputError(f"render_rays: {k} must be a float32 array "
                                f"[N, {width}]; received {e}.") from None
      if not value.dtype.is_floating:
        raise errors.InputError(
            f"render_rays: {k} must be float32 [N, {width}]; received dtype "
            f"{value.dtype.name}.")
      if value.shape.rank != 2 or value.shape[1] != width:
        raise errors.InputError(
            f"render_rays: {k} must have shape [N, {width}]; received "
            f"{value.shape.as_list()}.")
      if n is not None and value.shape[0] != n:
        raise errors.InputError(
            f"render_rays: all fields need the same N; {k} has "
            f"{value.shape[0]} rays, origins has {n}.")
      if not bool(tf.reduce_all(tf.math.is_finite(value))):
        raise errors.InputError(f"render_rays: {k} holds NaN or infinite "
                                "values; send finite rays.")
      n = value.shape[0] if n is None else n
      inputs[k] = tf.cast(value, tf.float32)
    # Compared in float32, as rendered (a float64 near < far may round to
    # near == far).
    near, far = inputs["near"].numpy()[:, 0], inputs["far"].numpy()[:, 0]
    bad = np.flatnonzero(near >= far)
    if bad.size:
      i = int(bad[0])
      raise errors.InputError(
          "render_rays: every ray needs near < far (the segment rendered "
          f"along the ray); {bad.size} of {n} rays have near >= far, the "
          f"first is ray {i} with near={near[i]:g}, far={far[i]:g}.")
    return self.loaded.signatures["render_rays"](**inputs)

  def render_image(self, camtoworld, intrinsics, height: int,
                   width: int) -> dict[str, tf.Tensor]:
    """Renders a view; camtoworld [3, 4] (or [4, 4]), intrinsics [3, 3]."""
    c2w = _real_array("render_image: camtoworld", camtoworld)
    if c2w.shape == (4, 4):
      if not np.allclose(c2w[3], [0, 0, 0, 1], rtol=0, atol=CAMERA_TOLERANCE):
        raise errors.InputError(
            "render_image: a 4×4 camtoworld must have the last row "
            f"[0, 0, 0, 1]; received {_matrix_text(c2w[3:])[1:-1]}. Send a "
            "rigid camera-to-world matrix (or its first 3 rows).")
      c2w = c2w[:3]
    if c2w.shape != (3, 4):
      raise errors.InputError(
          "render_image: camtoworld must have shape [3, 4] (or [4, 4]); "
          f"received {list(c2w.shape)}.")
    k = _real_array("render_image: intrinsics", intrinsics)
    if k.shape != (3, 3):
      raise errors.InputError(
          "render_image: intrinsics must have shape [3, 3]; received "
          f"{list(k.shape)}.")
    error, det = (float(x) for x in _rotation_error(c2w))
    if not bool(_is_rotation(error, det)):
      found = "a reflection (det < 0)" if det < 0 else "scaled or sheared"
      raise errors.InputError(
          "render_image: the left 3×3 block of camtoworld must be a rotation "
          f"(orthonormal, det +1, within {CAMERA_TOLERANCE}); received one "
          f"that is {found}: max |R Rᵀ − I| = {error:.3g}, det = {det:.4g}. "
          "Remove scale, shear or reflection from the camera-to-world "
          "matrix.")
    if not bool(_is_pinhole(k)):
      raise errors.InputError(
          "render_image: intrinsics must be a pinhole matrix [[fx, s, cx], "
          "[0, fy, cy], [0, 0, 1]] in pixels of the rendered image, with "
          f"fx > 0 and fy > 0 (the zeros and the one within "
          f"{CAMERA_TOLERANCE}); received {_matrix_text(k)}.")
    height, width = _image_size("height", height), _image_size("width", width)
    limit = self.metadata.get("max_pixels")
    if limit is not None and height * width > limit:
      raise errors.InputError(
          f"render_image: height*width must be <= max_pixels={limit} (the "
          f"export's limit); received {height}×{width} = {height * width}. "
          "Render a smaller image or re-export with a larger --max_pixels.")
    if height > 2**31 - 1 or width > 2**31 - 1:
      raise errors.InputError(f"render_image: height and width must fit in "
                              f"int32; received {height}×{width}.")
    return self.loaded.signatures["render_image"](
        camtoworld=tf.constant(c2w), intrinsics=tf.constant(k),
        height=tf.constant(height, tf.int32),
        width=tf.constant(width, tf.int32))


def load_and_check(path: str) -> CheckedRenderer:
  """Loads an export of :func:`export_saved_model`, with input checks."""
  if not os.path.isdir(path) or not os.path.exists(
      os.path.join(path, "saved_model.pb")):
    raise errors.MissingFileError(
        f"{path} is not a SavedModel folder (no {path}/saved_model.pb). Point "
        "at a folder written by regnerf-export.")
  loaded = tf.saved_model.load(path)
  meta_path = os.path.join(path, METADATA)
  metadata = {}
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      metadata = json.load(f)
  return CheckedRenderer(loaded, metadata)
