"""Hostile inputs to serving, camera paths, configs and the CLIs.

Each kind of bad input must be refused with the project's own exception (or,
inside a loaded SavedModel, TensorFlow's) and a message that names the input,
what was expected and what was received. Writers (exports, videos) must leave
nothing half-written behind when they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import imageio.v2 as imageio
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from regnerf_tf import configs, errors, export, model as model_lib, training, video
from regnerf_tf.cli import export as export_cli
from regnerf_tf.cli import render as render_cli
from tests.model_test import tiny_config
from tests.render_cli_test import _run_cli

HEIGHT, WIDTH = 12, 16
MAX_PIXELS = HEIGHT * WIDTH  # the served export refuses anything larger
N = 5  # rays per render_rays request
# An OpenCV camera above the z = 0 plane, looking down it (a DTU view).
CAMTOWORLD = [[1.0, 0.0, 0.0, 0.1], [0.0, 1.0, 0.0, -0.2],
              [0.0, 0.0, 1.0, -1.0]]
INTRINSICS = [[10.0, 0.0, 8.0], [0.0, 10.0, 6.0], [0.0, 0.0, 1.0]]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  """A tiny DTU model exported with max_pixels = HEIGHT * WIDTH, loaded."""
  model = model_lib.RegNeRF(tiny_config())
  path = str(tmp_path_factory.mktemp("serve") / "saved")
  export.export_saved_model(model, path, "dtu", chunk=64,
                            max_pixels=MAX_PIXELS)
  return {"model": model, "path": path, "loaded": tf.saved_model.load(path),
          "checked": export.load_and_check(path)}


def _rays(**changes) -> dict[str, np.ndarray]:
  """Valid float32 rays [N, ...] (near 0.5 < far 1.5) with some replaced."""
  rays = {k: np.full([N, w], 0.5, np.float32)
          for k, w in export.RAY_WIDTHS.items()}
  rays["far"] = np.full([N, 1], 1.5, np.float32)
  return {**rays, **changes}


def _image(**changes) -> dict[str, tf.Tensor]:
  """Valid render_image inputs (tensors) with some replaced."""
  inputs = {"camtoworld": tf.constant(CAMTOWORLD), "intrinsics":
            tf.constant(INTRINSICS), "height": tf.constant(HEIGHT),
            "width": tf.constant(WIDTH)}
  return {**inputs, **changes}


def _tilted(angle: float, scale: float = 1.0, det_sign: float = 1.0):
  """A 3×4 camera rotated about z, with its rotation scaled / mirrored."""
  c, s = np.cos(angle), np.sin(angle)
  rot = scale * np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, det_sign]])
  return np.concatenate([rot, [[0.0], [0.0], [1.0]]], 1).tolist()


def _random_rotation(seed: int) -> np.ndarray:
  """A random rotation (QR of a Gaussian matrix, det +1) rounded to float32."""
  q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))  # the QR's sign freedom: a uniform rotation
  if np.linalg.det(q) < 0:
    q[:, 0] = -q[:, 0]
  return q.astype(np.float32)


# Finite camtoworlds whose left 3×3 block is not a rotation, with what the
# in-graph check and the Python checker report.
NOT_ROTATIONS = [
    pytest.param(_tilted(0.3, scale=2.0), r"\[det R\] \[(8|7\.99)",
                 r"scaled or sheared: max \|R Rᵀ − I\| = 3, det = 8\.",
                 id="scaled"),
    pytest.param(_tilted(0.3, scale=1.01), r"\[det R\] \[1\.03",
                 r"scaled or sheared: max \|R Rᵀ − I\| = 0\.0201, "
                 r"det = 1\.03\.", id="scaled-by-1%"),
    pytest.param([[1.0, 0.5, 0.0, 0.1], [0.0, 1.0, 0.0, -0.2],
                  [0.0, 0.0, 1.0, -1.0]],
                 r"\[0\.5\] \[det R\] \[1\]",
                 r"scaled or sheared: max \|R Rᵀ − I\| = 0\.5, det = 1\.",
                 id="sheared"),
    pytest.param(_tilted(0.3, det_sign=-1.0), r"\[det R\] \[-(1|0\.99)",
                 r"a reflection \(det < 0\): max \|R Rᵀ − I\| = [0-9.e-]+, "
                 r"det = -1\.", id="reflected"),
    pytest.param(np.zeros([3, 4]), r"\[1\] \[det R\] \[0\]",
                 r"det = 0\.", id="zero"),
]
# Finite intrinsics that are not a pinhole matrix with positive focal lengths.
NOT_PINHOLES = [
    pytest.param([[-10.0, 0.0, 8.0], [0.0, 10.0, 6.0], [0.0, 0.0, 1.0]],
                 r"\[\[-10 0 8\]\[0 10 6\]\[0 0 1\]\]",
                 r"\[\[-10, 0, 8\], \[0, 10, 6\], \[0, 0, 1\]\]",
                 id="negative-fx"),
    pytest.param([[10.0, 0.0, 8.0], [0.0, 0.0, 6.0], [0.0, 0.0, 1.0]],
                 r"\[0 0 6\]", r"\[0, 0, 6\]", id="zero-fy"),
    pytest.param([[10.0, 0.0, 8.0], [0.0, 10.0, 6.0], [0.0, 0.0, 2.0]],
                 r"\[0 0 2\]", r"\[0, 0, 2\]\]", id="last-row-scaled"),
    pytest.param([[10.0, 0.0, 8.0], [0.0, 10.0, 6.0], [0.1, 0.0, 1.0]],
                 r"\[0\.1 0 1\]", r"\[0\.1, 0, 1\]\]",
                 id="projective-last-row"),
    pytest.param([[10.0, 0.0, 8.0], [1.0, 10.0, 6.0], [0.0, 0.0, 1.0]],
                 r"\[1 10 6\]", r"\[1, 10, 6\]", id="lower-left-entry"),
]


def _call(fn, inputs, as_dict: bool):
  """Calls a signature (keyword inputs) or a restored function (one dict)."""
  return fn({k: tf.constant(v) for k, v in inputs.items()}) if as_dict else (
      fn(**{k: tf.constant(v) for k, v in inputs.items()}))


# --- the loaded SavedModel: TensorFlow's errors -------------------------------


@pytest.mark.parametrize("field", ["origins", "radii"])
@pytest.mark.parametrize("dtype, tf_name", [(np.float64, "double"),
                                            (np.int32, "int32")])
def test_loaded_render_rays_wrong_dtype(served, field, dtype, tf_name):
  bad = _rays(**{field: np.zeros([N, export.RAY_WIDTHS[field]], dtype)})
  # The signature names the input by its position among the sorted names.
  index = sorted(export.RAY_WIDTHS).index(field)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"input #{index}\(zero-based\) was expected to be "
                     rf"a float tensor but is a {tf_name} tensor"):
    _call(served["loaded"].signatures["render_rays"], bad, as_dict=False)
  # The restored function names the field and the spec it expected.
  with pytest.raises(TypeError, match=rf"TensorSpec\(shape=\(None, "
                     rf"{export.RAY_WIDTHS[field]}\), dtype=tf.float32, "
                     rf"name='{field}'\)"):
    _call(served["loaded"].render_rays, bad, as_dict=True)


@pytest.mark.parametrize("field, value, message", [
    ("viewdirs", np.zeros([N, 2], np.float32),
     r"viewdirs \[5,2\] is not compatible with expected shape \[\?,3\]"),
    ("far", np.zeros([N], np.float32),
     r"far \[5\] is not compatible with expected shape \[\?,1\]"),
    ("origins", np.zeros([1, N, 3], np.float32),
     r"origins \[1,5,3\] is not compatible with expected shape \[\?,3\]"),
    ("directions", np.zeros([N + 1, 3], np.float32),
     r"directions must have shape \[N, ...\] with the same N as origins"),
])
def test_loaded_render_rays_wrong_shape(served, field, value, message):
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    _call(served["loaded"].signatures["render_rays"], _rays(**{field: value}),
          as_dict=False)


@pytest.mark.parametrize("field, value, spec", [
    ("camtoworld", np.asarray(CAMTOWORLD, np.float64),
     r"shape=\(3, 4\), dtype=tf.float32, name='camtoworld'"),
    ("intrinsics", np.asarray(INTRINSICS, np.int32),
     r"shape=\(3, 3\), dtype=tf.float32, name='intrinsics'"),
    ("height", np.float32(HEIGHT),
     r"shape=\(\), dtype=tf.int32, name='height'"),
    ("width", np.int64(WIDTH), r"shape=\(\), dtype=tf.int32, name='width'"),
    ("intrinsics", np.eye(4, dtype=np.float32),
     r"shape=\(3, 3\), dtype=tf.float32, name='intrinsics'"),
    ("height", np.array([HEIGHT], np.int32),
     r"shape=\(\), dtype=tf.int32, name='height'"),
])
def test_loaded_render_image_wrong_dtype_or_shape(served, field, value, spec):
  inputs = {**{k: v.numpy() for k, v in _image().items()}, field: value}
  with pytest.raises(TypeError, match=rf"TensorSpec\({spec}\)"):
    _call(served["loaded"].render_image, inputs, as_dict=True)
  # The signature refuses too (dtype by input position, shape by name).
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"(was expected to be a|tensor {field} \[)"):
    _call(served["loaded"].signatures["render_image"], inputs, as_dict=False)


@pytest.mark.parametrize("changes, message", [
    ({"height": HEIGHT + 1}, rf"height\*width must be <= max_pixels="
     rf"{MAX_PIXELS}.*\[{(HEIGHT + 1) * WIDTH}\]"),
    # 65536² overflows int32; the product is taken in int64.
    ({"height": 2**16, "width": 2**16}, rf"max_pixels={MAX_PIXELS}"),
    ({"height": 2}, r"height >= 3"),
    ({"width": -4}, r"width >= 3"),
    ({"height": -5, "width": -5}, r"(height|width) >= 3"),
    ({"camtoworld": [[1.0, 0.0, 0.0, np.nan]] + CAMTOWORLD[1:]},
     r"camtoworld must hold finite numbers.*NaN"),
    ({"intrinsics": [[np.inf, 0.0, 8.0]] + INTRINSICS[1:]},
     r"intrinsics must hold finite numbers.*Inf"),
])
def test_loaded_render_image_checks_values_in_graph(served, changes, message):
  dtypes = {"height": tf.int32, "width": tf.int32}
  inputs = _image(**{k: tf.constant(v, dtypes.get(k, tf.float32))
                     for k, v in changes.items()})
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    served["loaded"].signatures["render_image"](**inputs)


@pytest.mark.parametrize("camtoworld, received, unused", NOT_ROTATIONS)
def test_loaded_render_image_refuses_non_rotation(served, camtoworld,
                                                  received, unused):
  """Scale, shear or a mirror in camtoworld would render another view."""
  del unused  # the checker's message
  inputs = _image(camtoworld=tf.constant(camtoworld, tf.float32))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"render_image: camtoworld\[:, :3\] must be a "
                     r"rotation \(orthonormal with det \+1, within 0\.001.*"
                     r"remove scale, shear or reflection.*Received\] "
                     rf"\[max\|R R\^T - I\|\] .*{received}"):
    served["loaded"].signatures["render_image"](**inputs)


@pytest.mark.parametrize("intrinsics, received, unused", NOT_PINHOLES)
def test_loaded_render_image_refuses_non_pinhole(served, intrinsics,
                                                 received, unused):
  del unused  # the checker's message
  inputs = _image(intrinsics=tf.constant(intrinsics, tf.float32))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"render_image: intrinsics must be a pinhole matrix "
                     r"\[\[fx, s, cx\], \[0, fy, cy\], \[0, 0, 1\]\] in "
                     r"pixels with fx > 0 and fy > 0.*Received\] "
                     rf"\[intrinsics\] .*{received}"):
    served["loaded"].signatures["render_image"](**inputs)


@pytest.mark.parametrize("seed", range(5))
def test_render_image_accepts_float32_rotations(served, seed):
  """A true rotation keeps ~1e-7 float32 round-off: well inside 1e-3."""
  rotation = _random_rotation(seed)
  r64 = rotation.astype(np.float64)
  assert 0 < np.abs(r64 @ r64.T - np.eye(3)).max() < 1e-6  # not exact
  camtoworld = np.concatenate([rotation, [[0.1], [-0.2], [-1.0]]],
                              1).astype(np.float32)
  out = served["loaded"].signatures["render_image"](
      **_image(camtoworld=tf.constant(camtoworld)))
  checked = served["checked"].render_image(camtoworld, INTRINSICS, HEIGHT,
                                           WIDTH)
  np.testing.assert_array_equal(out["image"].numpy(),
                                checked["image"].numpy())
  assert np.isfinite(out["image"].numpy()).all()
  # Within the tolerance is accepted too (a scale of 1 + 2e-4).
  served["checked"].render_image(_tilted(0.3, scale=1.0 + 2e-4), INTRINSICS,
                                 HEIGHT, WIDTH)


# A DTU camera at z = -1 looking along world +x, image y along world z: with
# fy = 8 and cy = 6.5 the directions of its row 6 have a world z of exactly 0,
# so those rays never reach the plane z = 0 they are slid onto. The network
# turns the resulting NaN origins into finite pixels, so only the check of the
# built rays sees it (before it, this camera rendered with an OK status).
HORIZON_CAMTOWORLD = [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0],
                      [0.0, 1.0, 0.0, -1.0]]
HORIZON_INTRINSICS = [[8.0, 0.0, 8.0], [0.0, 8.0, 6.5], [0.0, 0.0, 1.0]]


def test_render_image_refuses_a_camera_whose_rays_are_not_finite(served):
  message = (r"render_image: this camera gives rays whose origins are not "
             r"finite \(NaN or inf\); DTU rays start where they cross the "
             r"world plane z = 0, so no pixel's ray may be parallel to it")
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    served["loaded"].signatures["render_image"](**_image(
        camtoworld=tf.constant(HORIZON_CAMTOWORLD),
        intrinsics=tf.constant(HORIZON_INTRINSICS)))
  # It is a valid rotation and pinhole: the checker passes it to the graph.
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    served["checked"].render_image(HORIZON_CAMTOWORLD, HORIZON_INTRINSICS,
                                   HEIGHT, WIDTH)


@pytest.mark.parametrize("field", list(export.RAY_WIDTHS))
@pytest.mark.parametrize("value, found", [(np.nan, "NaN"), (np.inf, "Inf"),
                                          (-np.inf, "Inf")])
def test_loaded_render_rays_refuses_non_finite(served, field, value, found):
  """The network can turn NaN inputs into finite pixels: checked first."""
  bad = _rays()
  bad[field] = bad[field].copy()
  bad[field][2, 0] = value
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"render_rays: {field} must hold finite numbers "
                     rf"\(no NaN or inf\); send finite rays.*{found}"):
    _call(served["loaded"].signatures["render_rays"], bad, as_dict=False)


@pytest.mark.parametrize("near, far", [(0.5, 0.5), (2.0, 1.0)])
def test_loaded_render_rays_refuses_near_not_below_far(served, near, far):
  """near == far renders nothing; near > far negative colours and opacity."""
  rays = _rays(near=np.full([N, 1], 0.5, np.float32),
               far=np.full([N, 1], 1.0, np.float32))
  rays["near"][[1, 3]] = near
  rays["far"][[1, 3]] = far
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"render_rays: every ray needs near < far \(the "
                     r"segment rendered along the ray\); received rays with "
                     r"near >= far: count\] \[2\] \[of\] \[5\] "
                     rf"\[; first index\] \[1\] \[near\] \[{near:g}\] "
                     rf"\[far\] \[{far:g}\]"):
    _call(served["loaded"].signatures["render_rays"], rays, as_dict=False)
  with pytest.raises(errors.InputError,
                     match=r"render_rays: every ray needs near < far.*2 of 5 "
                     rf"rays have near >= far, the first is ray 1 with "
                     rf"near={near:g}, far={far:g}\."):
    served["checked"].render_rays(**rays)


def test_render_rays_never_returns_nan_with_ok_status(served):
  """Finite rays, near < far, but too large for float32 arithmetic."""
  rays = _rays(far=np.full([N, 1], 3e38, np.float32))
  # Which output the graph checks first (rgb, depth or acc) varies between
  # machines; each is a correct refusal.
  message = (r"render_rays: the rendered (rgb|depth|acc) holds NaN or "
             r"infinite values "
             r"although the inputs passed the checks; the rays are probably "
             r"too large for float32 arithmetic")
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    _call(served["loaded"].signatures["render_rays"], rays, as_dict=False)
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    served["checked"].render_rays(**rays)


def test_finite_outputs_check():
  """The output check of both signatures, on its own."""
  finite_outputs = export._finite_outputs  # pylint: disable=protected-access
  check = tf.function(lambda x: finite_outputs({"image": x}, "render_image",
                                               "a hint"))
  np.testing.assert_array_equal(check(tf.constant([1.0, 2.0]))["image"],
                                [1.0, 2.0])
  for value, found in ((np.nan, "NaN"), (np.inf, "Inf")):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"render_image: the rendered image holds NaN or "
                       rf"infinite values.*; a hint.*{found}"):
      check(tf.constant([1.0, value]))


def test_max_pixels_is_stored_and_validated(served):
  assert int(served["loaded"].max_pixels.numpy()) == MAX_PIXELS
  assert served["checked"].metadata["max_pixels"] == MAX_PIXELS
  out = served["loaded"].signatures["render_image"](**_image())
  assert out["image"].shape == (HEIGHT, WIDTH, 3)  # exactly at the limit
  for bad in (8, 0, -1, True, 100.0, "4096", 2**62):
    with pytest.raises(errors.InputError, match=rf"max_pixels must be an "
                       rf"integer >= 9.*< 2\*\*62; received {bad!r}"):
      export.export_saved_model(served["model"], "/tmp/unused", "dtu",
                                max_pixels=bad)


# --- the Python checker: errors.InputError ------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"radii": np.zeros([N, 1], np.int32)},
     r"radii must be float32 \[N, 1\]; received dtype int32"),
    ({"near": np.zeros([N, 1], bool)}, r"near must be float32.*bool"),
    ({"far": np.full([N, 1], "a")}, r"far must be float32.*string"),
    ({"viewdirs": np.zeros([N, 2], np.float32)},
     r"viewdirs must have shape \[N, 3\]; received \[5, 2\]"),
    ({"far": np.zeros([N], np.float32)},
     r"far must have shape \[N, 1\]; received \[5\]"),
    ({"directions": np.zeros([N + 1, 3], np.float32)},
     r"same N; directions has 6 rays, origins has 5"),
    ({"origins": np.full([N, 3], np.nan, np.float32)},
     r"origins holds NaN or infinite"),
    ({"radii": [[0.1], [0.2, 0.3]]}, r"radii must be a float32 array"),
    ({"extra": np.zeros([N, 3], np.float32)}, r"unexpected \['extra'\]"),
    ({"near": np.full([N, 1], 0.5, np.float32),
      "far": np.full([N, 1], 0.5, np.float32)},
     r"every ray needs near < far.*5 of 5 rays have near >= far, the first "
     r"is ray 0 with near=0.5, far=0.5"),
    # Different in float64, equal once cast to float32 (as rendered).
    ({"near": np.full([N, 1], 1.0), "far": np.full([N, 1], 1.0 + 1e-9)},
     r"5 of 5 rays have near >= far.*near=1, far=1\."),
])
def test_checker_render_rays_refuses(served, changes, message):
  with pytest.raises(errors.InputError, match=message):
    served["checked"].render_rays(**_rays(**changes))


def test_checker_casts_float64_rays(served):
  """float64 (NumPy's default) is cast to float32 rather than refused."""
  rays = _rays()
  got = served["checked"].render_rays(**{k: v.astype(np.float64)
                                         for k, v in rays.items()})
  want = served["checked"].render_rays(**rays)
  np.testing.assert_array_equal(got["rgb"].numpy(), want["rgb"].numpy())


@pytest.mark.parametrize("changes, message", [
    ({"camtoworld": np.eye(3)},
     r"camtoworld must have shape \[3, 4\] \(or \[4, 4\]\); received "
     r"\[3, 3\]"),
    ({"intrinsics": np.eye(4)},
     r"intrinsics must have shape \[3, 3\]; received \[4, 4\]"),
    ({"camtoworld": [["a"] * 4] * 3}, r"camtoworld must hold real numbers"),
    ({"intrinsics": np.eye(3) * 1j}, r"intrinsics must hold real numbers.*"
     r"complex128"),
    ({"camtoworld": [[1.0, 0.0], [0.0]]}, r"camtoworld must be an array of "
     r"numbers"),
    ({"camtoworld": [[np.nan] * 4] * 3}, r"camtoworld holds NaN or infinite"),
    ({"intrinsics": [[np.inf] * 3] * 3}, r"intrinsics holds NaN or infinite"),
    ({"height": 12.5}, r"height must be an integer \(int32\) >= 3; received "
     r"12.5 of type float"),
    ({"width": True}, r"width must be an integer.*bool"),
    ({"height": 2}, r"height must be >= 3.*received height=2"),
    ({"width": -16}, r"width must be >= 3.*received width=-16"),
    ({"height": HEIGHT + 1}, rf"height\*width must be <= max_pixels="
     rf"{MAX_PIXELS}.*received 13×16 = 208"),
    ({"camtoworld": CAMTOWORLD + [[0.0, 0.0, 0.0, 2.0]]},
     r"a 4×4 camtoworld must have the last row \[0, 0, 0, 1\]; received "
     r"\[0, 0, 0, 2\]"),
])
def test_checker_render_image_refuses(served, changes, message):
  args = {"camtoworld": CAMTOWORLD, "intrinsics": INTRINSICS,
          "height": HEIGHT, "width": WIDTH, **changes}
  with pytest.raises(errors.InputError, match=message):
    served["checked"].render_image(**args)


@pytest.mark.parametrize("camtoworld, unused, received", NOT_ROTATIONS)
def test_checker_render_image_refuses_non_rotation(served, camtoworld, unused,
                                                   received):
  del unused  # the in-graph message
  with pytest.raises(errors.InputError,
                     match=r"render_image: the left 3×3 block of camtoworld "
                     r"must be a rotation \(orthonormal, det \+1, within "
                     rf"0\.001\); received one that is .*{received} Remove "
                     r"scale, shear or reflection"):
    served["checked"].render_image(camtoworld, INTRINSICS, HEIGHT, WIDTH)
  # As a 4×4 matrix too.
  with pytest.raises(errors.InputError, match=r"must be a rotation"):
    served["checked"].render_image(
        np.concatenate([camtoworld, [[0.0, 0.0, 0.0, 1.0]]]), INTRINSICS,
        HEIGHT, WIDTH)


@pytest.mark.parametrize("intrinsics, unused, received", NOT_PINHOLES)
def test_checker_render_image_refuses_non_pinhole(served, intrinsics, unused,
                                                  received):
  del unused  # the in-graph message
  with pytest.raises(errors.InputError,
                     match=r"render_image: intrinsics must be a pinhole matrix "
                     r"\[\[fx, s, cx\], \[0, fy, cy\], \[0, 0, 1\]\] in "
                     r"pixels of the rendered image, with fx > 0 and fy > 0 "
                     r"\(the zeros and the one within 0\.001\); received "
                     rf".*{received}"):
    served["checked"].render_image(CAMTOWORLD, intrinsics, HEIGHT, WIDTH)


def test_load_and_check_missing_export(tmp_path):
  with pytest.raises(errors.MissingFileError, match="saved_model.pb"):
    export.load_and_check(str(tmp_path))


# --- camera paths -------------------------------------------------------------


@pytest.mark.parametrize("payload, message", [
    ("{not json", r"is not valid JSON.*Write a JSON list"),
    ("\udcff".encode("utf-8", "surrogateescape"), r"is not valid JSON"),
    ("[" * 100000, r"is not valid JSON"),
    ('{"poses": []}', r"must hold a JSON list.*found a dict"),
    ('"camera"', r"must hold a JSON list.*found a str"),
    ("[]", r"empty list; at least one camera"),
    ([[[1, 0, 0], [0, 1, 0], [0, 0, 1]]], r"camera 0 has shape \[3, 3\]; "
     r"expected 3×4 or 4×4"),
    ([CAMTOWORLD, [[1, 0, 0, 0], [0, 1, 0]]], r"camera 1 has shape \[2\]"),
    ([CAMTOWORLD[:2] + [[0, 0, 1, [1]]]], r"not a numeric matrix.*\[1\] "
     r"\(list\)"),
    (["abc"], r"camera 0 has shape of a str"),
    ([CAMTOWORLD[:2] + [[0, 0, 1, "a"]]], r"camera 0 is not a numeric "
     r"matrix.*'a' \(str\)"),
    ([CAMTOWORLD[:2] + [[0, 0, True, 0]]], r"not a numeric matrix.*True"),
    ("[[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, NaN]]]", r"NaN or infinite"),
    ("[[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, Infinity]]]", r"NaN or inf"),
    ([CAMTOWORLD[:2] + [[0, 0, 1, 10**400]]], r"NaN or infinite"),
    ([CAMTOWORLD + [[0, 0, 0, 2]]], r"last row is \[0.0, 0.0, 0.0, 2.0\], "
     r"not \[0, 0, 0, 1\]"),
    ([_tilted(0.3, scale=2.0)], r"must be a rotation.*det = 8"),
    ([_tilted(0.3, scale=1.01)], r"must be a rotation"),
    ([_tilted(0.3, det_sign=-1.0)], r"must be a rotation.*det = -1"),
    ([[[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]], r"must be a rotation"),
])
def test_camera_path_refuses(tmp_path, payload, message):
  f = tmp_path / "path.json"
  if isinstance(payload, bytes):
    f.write_bytes(payload)
  else:
    f.write_text(payload if isinstance(payload, str) else json.dumps(payload))
  with pytest.raises(errors.InputError, match=message):
    video.camera_path({"kind": "dtu"}, str(f))  # what regnerf-render calls


def test_camera_path_accepts_rotation_within_tolerance(tmp_path):
  f = tmp_path / "path.json"
  f.write_text(json.dumps([_tilted(0.3, scale=1.0 + 2e-4), _tilted(1.0)]))
  assert video.camera_path({"kind": "dtu"}, str(f)).shape == (2, 3, 4)


def test_camera_path_missing_file(tmp_path):
  for missing in (tmp_path / "nope.json", tmp_path):  # absent, a folder
    with pytest.raises(errors.MissingFileError,
                       match=f"{re.escape(str(missing))} does not exist"):
      video.camera_path({"kind": "dtu"}, str(missing))


# --- configs ------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [
    ("train.max_steps", -1), ("train.batch_size", 0),
    ("train.render_chunk", 0), ("train.lr_init", 0.0),
    ("train.lr_final", 1.0),  # > lr_init: the schedule must decay
    ("train.lr_delay_steps", -5), ("train.lr_delay_mult", 1.5),
    ("train.adam_beta1", 1.0), ("train.adam_epsilon", 0.0),
    ("train.seed", -1), ("train.seed", 2**40),
    ("train.grad_clip_norm", -0.1), ("train.patch_batch_size", 100),
    ("model.net_depth", -2), ("model.num_samples", 0),
    ("model.min_deg_point", -1), ("model.max_deg_point", 0),
    ("model.density_noise", -0.5), ("model.skip_layer", 7),
    ("reg.patch_size", 0), ("reg.anneal_start_fraction", 1.5),
    ("reg.anneal_mid_fraction", -0.1), ("reg.depth_tv_weight_start", -1.0),
    ("data.n_views", 0),
    ("train.lr_init", float("nan")), ("reg.coarse_loss_mult", float("inf")),
    ("train.lr_init", 10**400), ("model.net_width", 2**70),
    ("model.net_width", 2.5), ("model.net_width", True),
    ("train.batch_size", "1024"), ("train.lr_init", "fast"),
    ("model.use_viewdirs", 1), ("model.ray_shape", 3), ("name", [1]),
    ("model.ray_shape", "sphere"), ("data.dataset", "nerf"),
    ("release_compat", "yes"),
])
def test_config_value_out_of_range(key, value):
  field = key.split(".")[-1]
  with pytest.raises(errors.ConfigError) as info:
    configs.get_preset("dtu3", **{key: value})
  text = str(info.value)
  assert f"{field}=" in text, text
  shown = repr(value)
  assert shown[:60] in text or "too large" in text, text
  assert f"override '{key}=" in text, text


@pytest.mark.parametrize("call, message", [
    (lambda: configs.get_preset("dtu4"), r"Unknown preset 'dtu4'; choose one "
     r"of \[.*'dtu3'"),
    (lambda: configs.get_preset("dtu3", **{"train.bogus": 1}),
     r"Unknown config field 'train.bogus'; train has fields"),
    (lambda: configs.get_preset("dtu3", **{"optim.lr": 1}),
     r"Unknown config field 'optim.lr'.*section in"),
    (lambda: configs.get_preset("dtu3", **{"model": {}}),
     r"Unknown config field 'model'"),
    (lambda: configs.parse_override("noequals"),
     r"Override 'noequals' must look like 'section.field=value'"),
    (lambda: configs.parse_override("a=b=c"), r"Unknown config field 'a'"),
    (lambda: configs.parse_override("name=b=c"),
     r"Override 'name=b=c' has more than one '='"),
    (lambda: configs.parse_override("=5"), r"Unknown config field ''"),
    (lambda: configs.get_preset(
        "dtu3", **dict([configs.parse_override("train.batch_size=many")])),
     r"batch_size must be an integer.*batch_size='many'"),
    (lambda: configs.get_preset(
        "dtu3", **dict([configs.parse_override("train.lr_init=[0.5]")])),
     r"lr_init must be a number.*lr_init=\[0.5\]"),
    (lambda: configs.Config.from_json("{not json"), r"must be JSON text"),
    (lambda: configs.Config.from_json("[1, 2]"), r"must be a JSON object.*"
     r"received a list"),
    (lambda: configs.Config.from_json('{"model": 3}'),
     r"Config.model must be a ModelConfig or a dict.*model=3"),
    (lambda: configs.Config.from_dict({"train": {"lr": 1}}),
     r"Unknown TrainConfig fields 'lr'; expected some of \[.*'lr_init'"),
    (lambda: configs.Config(model={"bogus": 1}), r"Unknown ModelConfig"),
])
def test_config_text_and_names_refused(call, message):
  with pytest.raises(errors.ConfigError, match=message):
    call()


# --- the CLIs on a folder without a run ---------------------------------------


@pytest.mark.parametrize("cli, output", [(render_cli, "video.gif"),
                                         (export_cli, "exported")])
def test_cli_workdir_without_run(tmp_path, cli, output):
  workdir = tmp_path / "empty"
  workdir.mkdir()
  with pytest.raises(errors.MissingFileError,
                     match=f"{re.escape(str(workdir / training.CONFIG))} "
                     "not found.*regnerf-train"):
    _run_cli(cli, [f"--workdir={workdir}", f"--output={tmp_path / output}",
                   "--synthetic", "--quiet"])
  assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_export_cli_max_pixels_flag(served, tmp_path, monkeypatch):
  monkeypatch.setattr(training, "load_run", lambda workdir: served["model"])
  seen = {}
  monkeypatch.setattr(export, "export_saved_model",
                      lambda *args, **kwargs: seen.update(kwargs) or args[1])
  argv = [f"--workdir={tmp_path}", f"--output={tmp_path / 'e'}",
          "--synthetic", "--quiet"]
  assert _run_cli(export_cli, argv + ["--max_pixels=1000"]) == 0
  assert seen["max_pixels"] == 1000
  # The scene's cameras too, and the fast renderer (the default).
  assert set(seen) == {"max_pixels", "cameras", "fast"}
  assert seen["fast"].model is served["model"]
  # The flag library checks the bound and names the flag.
  with pytest.raises(flags.IllegalFlagValueError, match="--max_pixels=4"):
    _run_cli(export_cli, argv + ["--max_pixels=4"])


# --- atomic writers -----------------------------------------------------------


def _tree(path) -> dict[str, bytes]:
  """Relative path → bytes of every file under ``path``."""
  out = {}
  for root, _, files in os.walk(path):
    for name in files:
      full = os.path.join(root, name)
      with open(full, "rb") as f:
        out[os.path.relpath(full, path)] = f.read()
  return out


def test_export_failure_leaves_nothing_behind(served, tmp_path, monkeypatch):
  def failing_save(module, folder, signatures=None):
    del module, signatures
    with open(os.path.join(folder, "saved_model.pb"), "wb") as f:
      f.write(b"half")  # a partial write, then the failure
    raise OSError("disk full")

  monkeypatch.setattr(tf.saved_model, "save", failing_save)
  with pytest.raises(OSError, match="disk full"):
    export.export_saved_model(served["model"], str(tmp_path / "new"), "dtu")
  assert os.listdir(tmp_path) == []  # no output, no temporary folder
  # A previous good export stays as it was.
  previous = tmp_path / "prev"
  shutil.copytree(served["path"], previous)
  before = _tree(previous)
  with pytest.raises(OSError, match="disk full"):
    export.export_saved_model(served["model"], str(previous), "dtu")
  assert os.listdir(tmp_path) == ["prev"] and _tree(previous) == before


def test_export_rename_failure_restores_previous(served, tmp_path,
                                                 monkeypatch):
  previous = tmp_path / "prev"
  shutil.copytree(served["path"], previous)
  before = _tree(previous)
  replace = os.replace

  def failing_replace(src, dst):
    if os.path.basename(src).startswith(".tmp_export_"):
      raise OSError("rename failed")
    replace(src, dst)

  monkeypatch.setattr(os, "replace", failing_replace)
  with pytest.raises(OSError, match="rename failed"):
    export.export_saved_model(served["model"], str(previous), "dtu")
  assert os.listdir(tmp_path) == ["prev"] and _tree(previous) == before


def test_export_refuses_a_file_as_output(served, tmp_path):
  target = tmp_path / "model"
  target.write_text("not a folder")
  with pytest.raises(errors.InputError, match=r"exists and is not a folder"):
    export.export_saved_model(served["model"], str(target), "dtu")
  assert target.read_text() == "not a folder"


@pytest.mark.parametrize("ext", [".gif", ".mp4"])
def test_video_failure_leaves_nothing_half_written(tmp_path, monkeypatch,
                                                   ext):
  if ext == ".mp4":
    pytest.importorskip("imageio_ffmpeg")
  output = tmp_path / f"video{ext}"
  output.write_bytes(b"previous video")
  get_writer = imageio.get_writer

  def failing_writer(*args, **kwargs):
    writer = get_writer(*args, **kwargs)
    append, written = writer.append_data, []

    def append_then_fail(frame):
      if len(written) == 2:
        raise OSError("encoder crashed")
      append(frame)
      written.append(frame)
    writer.append_data = append_then_fail
    return writer

  monkeypatch.setattr(imageio, "get_writer", failing_writer)
  frames = [np.full([8, 8, 3], 40 * i, np.uint8) for i in range(5)]
  with pytest.raises(OSError, match="encoder crashed"):
    video.write_video(str(output), frames)
  assert os.listdir(tmp_path) == [output.name]
  assert output.read_bytes() == b"previous video"
