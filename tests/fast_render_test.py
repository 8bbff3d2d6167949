"""Tests for regnerf_tf.fast_render.

Most tests use an analytic field (a slab of known density) in place of the
MLP, so that what the fast path may skip and what it changes are known in
closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from regnerf_tf import configs, errors, fast_render, machine, renderer

COLOUR = (0.2, 0.5, 0.8)


class SlabField:
  """σ = ``value`` where lo < z < hi, ``background`` elsewhere; a fixed colour."""

  def __init__(self, lo=2.0, hi=2.5, value=20.0, background=0.0):
    self.lo, self.hi, self.value, self.background = lo, hi, value, background

  def __call__(self, means, covs, viewdirs=None, training=False, seed=None,
               step=None, density_only=False):
    z = means[..., 2]
    density = tf.where((z > self.lo) & (z < self.hi), self.value,
                       self.background)
    rgb = tf.broadcast_to(tf.constant(COLOUR), tf.shape(means))
    return rgb, density


def _rays(n=64):
  """n parallel rays along +z from z = 0, near 0.5, far 4."""
  rng = np.random.default_rng(0)
  xy = rng.uniform(-0.5, 0.5, [n, 2]).astype(np.float32)
  origins = np.concatenate([xy, np.zeros([n, 1], np.float32)], 1)
  directions = np.tile(np.float32([[0, 0, 1]]), [n, 1])
  return {"origins": tf.constant(origins),
          "directions": tf.constant(directions),
          "viewdirs": tf.constant(directions),
          "radii": tf.fill([n, 1], 0.01),
          "lossmult": tf.ones([n, 1]),
          "near": tf.fill([n, 1], 0.5), "far": tf.fill([n, 1], 4.0)}


MODEL = configs.ModelConfig(num_samples=64, num_levels=2, ray_shape="cone")


def _grid(field, resolution=32):
  g = fast_render.bake_grid(field, [-1, -1, 0], [1, 1, 4.5], resolution)
  return g, (tf.constant(g.density), tf.constant(g.lower),
             tf.constant(g.upper))


def _exact_and_fast(field, options=None):
  """The exact and the fast renders of _rays() through ``field``."""
  rays = _rays()
  exact = renderer.render_levels(field, MODEL, rays, False)
  _, grid = _grid(field)
  fast = fast_render.render_levels_fast(
      field, MODEL, rays, grid, options or fast_render.FastOptions())
  return exact, fast


def test_without_skipping_equals_the_exact_renderer():
  rays = _rays()
  exact = renderer.render_levels(SlabField(), MODEL, rays, False)
  _, grid = _grid(SlabField())
  fast = fast_render.render_levels_fast(
      SlabField(), MODEL, rays, grid,
      fast_render.FastOptions(weight_skip=0, transmittance_floor=0, segment=5))
  for level, (e, f) in enumerate(zip(exact, fast)):
    # The fast path skips the coarse level's colour (nothing shows it).
    for k in ("rgb", "depth", "acc", "weights", "t_vals")[level == 0:]:
      np.testing.assert_allclose(f[k], e[k], atol=1e-6, err_msg=k)
    np.testing.assert_array_equal(f["evaluated"], 64)


def test_opaque_slab_skips_empty_space_and_hidden_samples():
  exact, fast = _exact_and_fast(SlabField())
  # Transmittance behind the slab is e^{-20·0.5} < 1e-3: what is skipped
  # weighs less than the floor, so no channel moves by more.
  diff = np.abs(fast[-1]["rgb"] - exact[-1]["rgb"]).max()
  assert diff <= 1e-3
  np.testing.assert_allclose(fast[-1]["depth"], exact[-1]["depth"], atol=2e-3)
  # Coarse samples are 3.5 / 64 apart: the slab and the grid's dilation
  # (one 0.14-long cell on each side) hold about (0.5 + 0.28) / 0.055 = 14
  # of them. The fine samples crowd the slab (they are drawn from the coarse
  # weights), so most of them are evaluated; those behind it are not.
  assert np.all(fast[0]["evaluated"] <= 16)
  assert np.all(fast[1]["evaluated"] < 64)


def test_translucent_slab_keeps_every_sample_that_can_matter():
  # σ·length = 0.5: no ray terminates; only empty space (σ = 0) is skipped,
  # so the image is exact up to float error.
  exact, fast = _exact_and_fast(SlabField(value=1.0))
  np.testing.assert_allclose(fast[-1]["rgb"], exact[-1]["rgb"], atol=1e-6)
  assert np.all(fast[0]["evaluated"] < 64)


def test_skipped_weight_is_bounded_by_the_options():
  # A faint fog everywhere (σ = 0.002: each coarse sample's opacity ~1e-4)
  # and an opaque slab: the fog before the slab is below weight_skip and
  # skipped; the image moves by at most the skipped weights.
  field = SlabField(background=0.002)
  options = fast_render.FastOptions(weight_skip=2e-4)
  exact, fast = _exact_and_fast(field, options)
  bound = options.transmittance_floor + 2 * 64 * options.weight_skip
  assert np.abs(fast[-1]["rgb"] - exact[-1]["rgb"]).max() <= bound
  # With a threshold below the fog's opacity every fog sample is evaluated.
  _, strict = _exact_and_fast(field, fast_render.FastOptions(weight_skip=1e-5))
  assert np.all(strict[0]["evaluated"] > fast[0]["evaluated"])


def test_bake_grid_is_the_pooled_density_at_cell_centres():
  field = SlabField(lo=2.0, hi=2.5, value=7.0, background=0.5)
  g, _ = _grid(field, resolution=9)  # cells 0.5 long in z from 0
  centres_z = 0.0 + (np.arange(9) + 0.5) * 0.5
  inside = (centres_z > 2.0) & (centres_z < 2.5)  # only the cell at 2.25
  pooled = np.convolve(inside, [1, 1, 1], "same") > 0  # ± one cell
  expected = np.where(pooled, 7.0, 0.5)
  for x in range(9):
    for y in range(9):
      np.testing.assert_allclose(g.density[x, y], expected)


def test_lookup_inside_and_outside_the_box():
  density = tf.reshape(tf.range(8, dtype=tf.float32), [2, 2, 2])
  lower, upper = tf.zeros([3]), tf.ones([3])
  points = tf.constant([[0.25, 0.25, 0.25], [0.75, 0.25, 0.75],
                        [0.99, 0.99, 0.99], [1.5, 0.5, 0.5],
                        [-0.01, 0.5, 0.5]])
  values = fast_render.lookup(density, lower, upper, points).numpy()
  np.testing.assert_array_equal(values[:3], [0.0, 5.0, 7.0])
  assert np.all(np.isinf(values[3:]))


def test_bounds_from_rays_hold_every_segment():
  rays = _rays(16)
  lower, upper = fast_render.bounds_from_rays([rays], margin=0.0)
  np.testing.assert_allclose(lower[2], 0.5)
  np.testing.assert_allclose(upper[2], 4.0)
  with pytest.raises(errors.InputError, match="at least one"):
    fast_render.bounds_from_rays([])


def test_fast_options_refuse_bad_values_with_each_problem():
  with pytest.raises(errors.InputError) as info:
    fast_render.FastOptions(resolution=4, weight_skip=1.5, segment=0,
                            precision="half")
  text = str(info.value)
  for part in ("resolution=4", "weight_skip=1.5", "segment=0",
               "precision='half'", "FastOptions()"):
    assert part in text


def test_bake_grid_refuses_an_empty_box():
  with pytest.raises(errors.InputError, match="lower < upper"):
    fast_render.bake_grid(SlabField(), [0, 0, 0], [1, 0, 1], 8)


def test_resolve_precision(monkeypatch):
  monkeypatch.setattr(machine, "native_bfloat16", lambda: (True, "has it"))
  assert fast_render.resolve_precision("auto", "float32") == ("bfloat16",
                                                              "has it")
  assert fast_render.resolve_precision("float32", "float32")[0] == "float32"
  assert fast_render.resolve_precision("float32",
                                       "mixed_bfloat16")[0] == "bfloat16"
  monkeypatch.setattr(machine, "native_bfloat16", lambda: (False, "no"))
  assert fast_render.resolve_precision("auto", "float32") == ("float32", "no")


def test_fast_renderer_parts_side_by_side_match_one_piece(monkeypatch):
  from regnerf_tf import model as model_lib  # pylint: disable=import-outside-toplevel
  config = configs.get_preset("dtu3_small", **{
      "model.net_depth": 2, "model.net_width": 16, "model.skip_layer": 0,
      "model.net_width_viewdirs": 8, "model.num_samples": 8,
      "train.render_chunk": 1024})
  model = model_lib.RegNeRF(config)
  rays = {k: v for k, v in _rays(1500).items() if k != "lossmult"}
  branches = [1]
  monkeypatch.setattr(fast_render.machine, "render_branches",
                      lambda setting=0: branches[0])
  results = []
  for branches[0] in (1, 2):
    fast = fast_render.FastRenderer(
        model, ([-1, -1, 0], [1, 1, 4.5]),
        fast_render.FastOptions(precision="float32"))
    results.append((fast.render_chunked(rays), fast.describe()))
  (one, one_info), (two, two_info) = results
  for k in ("rgb", "depth", "acc"):
    np.testing.assert_allclose(two[k].numpy(), one[k].numpy(), atol=1e-5)
  # The same samples were evaluated, counted over both parts.
  np.testing.assert_array_equal(two["evaluated"].numpy(),
                                one["evaluated"].numpy())
  assert two_info["samples_per_ray"] == one_info["samples_per_ray"]
