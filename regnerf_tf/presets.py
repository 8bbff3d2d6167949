"""The named presets, as data: one entry per preset.

Each entry gives the fields that differ from the schema's defaults in
:mod:`regnerf_tf.configs`, section by section. Parts that several presets
share are named once below and merged by reference (``{**PART, ...}``); no
entry is made by a loop, so what ``llff3_cpu_combined`` holds can be read
here. :func:`regnerf_tf.configs.get_preset` turns an entry into a validated
``Config``; ``tests/configs_test.py`` checks the release values.

Families:

* ``dtu{3,6,9}``, ``llff{3,6,9}``: the release's configs (reference §3),
  with the corrected defaults (``release_compat=False``).
* ``*_mipnerf``: the release's mip-NeRF baselines (its ``*_bl.gin``): no
  patches, no annealing, mip-NeRF's learning rate without warm-up or clipping.
* ``*3_small``: a 4×64 network for CPUs, same regularisers, compressed schedule.
* ``*3_cpu``: the quality benchmark's CPU protocol (6×128 network, one
  learning-rate schedule for every method).
* ``*_freenerf``, ``*_combined``: FreeNeRF as its configs train, and RegNeRF
  plus FreeNeRF's two terms.
* ``demo_small``, ``demo_small_mipnerf``: the synthetic-scene demo.
"""

from __future__ import annotations

from typing import Any

# ----------------------------------------------------------------------------
# Shared parts.
# ----------------------------------------------------------------------------

DTU_MODEL = {"ray_shape": "cone"}
LLFF_MODEL = {"ray_shape": "cylinder"}

# Sample-space annealing of the release (anneal_steps: 256 DTU, 512 LLFF at 3
# and 6 views; 0 at 9). LLFF's corrected default keeps depth smoothness on
# (weight by acc as for DTU); release_compat=True reproduces its zero weight.
DTU_REG = {"depth_tv_acc_weighting": 1.0, "anneal_start_fraction": 0.5,
           "anneal_mid_fraction": 0.5}
LLFF_REG = {"depth_tv_acc_weighting": 1.0, "anneal_start_fraction": 1e-4,
            "anneal_mid_fraction": 1.0}

# Patch rays (the unobserved-view patches, four fifths of a step's rays, used
# for depth smoothness and the appearance term) render with half the model's
# 128 samples per level in the release-size presets: 1.6x faster training of
# llff3 at 1024 + 4096 rays per step, and held-out PSNR held or rose at every
# protocol measured (benchmarks/RESULTS.md, "Cheaper patch rays": the CPU
# protocol over two seeds, long_quarter, and long on fern and scan24). The
# quality benchmark's presets (*_small, *_cpu, the demo) keep all samples so
# that its published rows reproduce; reg.patch_samples=0 gives all samples.
RELEASE_PATCH = {"patch_samples": 64}

# max_steps of the release: 500 epochs of the training pixels at 4096 rays
# per step (P17): round(500 · views · H · W / 4096) with DTU 300×400 and LLFF
# 378×504.
DTU_STEPS = {3: 43945, 6: 87891, 9: 131836}
LLFF_STEPS = {3: 69768, 6: 139535, 9: 209303}

# mip-NeRF baselines (the release's *_bl.gin).
BASELINE_REG = {"depth_tv_weight_start": 0.0, "depth_tv_weight_end": 0.0,
                "appearance_weight": 0.0, "anneal_steps": 0}
BASELINE_TRAIN = {"patch_batch_size": 0, "lr_init": 5e-4, "lr_final": 5e-5,
                  "lr_delay_steps": 0, "lr_delay_mult": 1.0,
                  "grad_clip_value": 0.0, "grad_clip_norm": 0.0,
                  "max_steps": 250000}

# Small presets for CPUs: a narrower, shallower MLP, fewer samples and rays.
# The same regularisers and schedules, compressed to the shorter run (a
# quarter of the annealing steps), except the depth-smoothness weight: a
# constant 0.1 (the release's weight after its warm phase). Measured on LLFF
# fern (3 views, 1000 steps): held-out PSNR 17.35 dB with the constant
# weight, 16.31 dB with 400 → 0.1 over the first 100 steps; the synthetic
# demo scene shows the same (see the demo presets).
SMALL_MODEL = {"net_depth": 4, "net_width": 64, "skip_layer": 2,
               "net_width_viewdirs": 32, "num_samples": 32,
               "max_deg_point": 12}
SMALL_TRAIN = {"max_steps": 2000, "batch_size": 512, "patch_batch_size": 256,
               "lr_delay_steps": 100, "checkpoint_every": 500, "log_every": 50,
               "render_chunk": 2048}
SMALL_DEPTH_TV = {"depth_tv_weight_start": 0.1, "depth_tv_weight_end": 0.1,
                  "depth_tv_decay_steps": 0}

# The CPU protocol of the quality benchmark (benchmarks/quality.py): a model
# with the capacity to fit its three input views (6×128, the full encoding
# up to degree 16), 32 + 32 samples per ray, and one optimizer schedule for
# every method (5e-3 → 5e-5; mip-NeRF's own 5e-4 leaves the baseline far from
# converged in a short run). The 4×64 small model cannot fit three views
# (about 20 dB on its own input views on fern and scan24), so at that size
# mip-NeRF never reaches the over-fitting that RegNeRF's regularisers fix.
CPU_MODEL = {"net_depth": 6, "net_width": 128, "skip_layer": 3,
             "net_width_viewdirs": 64, "num_samples": 32, "max_deg_point": 16}
CPU_TRAIN = {**SMALL_TRAIN, "max_steps": 1200, "lr_init": 5e-3,
             "lr_final": 5e-5, "checkpoint_every": 300}
CPU_BASELINE_TRAIN = {**CPU_TRAIN, **BASELINE_TRAIN, "max_steps": 1200,
                      "lr_init": 5e-3, "lr_final": 5e-5}

# FreeNeRF (reference §7.5) as its configs train: RegNeRF's learning-rate and
# clipping schedule, but no unobserved-view patches and no annealing; the
# frequency mask over the encodings with the mean appended, and the occlusion
# term (K = 10 and the black/white-background prior on DTU, K = 20 on LLFF,
# over 128 samples; the 32-sample presets cover the same fraction of the ray,
# K·32/128 rounded up, and 15 → 4 for the black/white range). The combined
# presets keep RegNeRF's patch smoothness, annealing and appearance prior
# (weight 1e-4) and add FreeNeRF's two terms. Every term stays switchable by
# override (reg.freq_reg, reg.occlusion_weight, ...).
FREENERF_MODEL = {"append_mean_to_ipe": True}
FREENERF_DTU = {"freq_reg": True, "occlusion_weight": 0.01,
                "occlusion_range": 10, "occlusion_wb_prior": True,
                "occlusion_wb_range": 15}
FREENERF_DTU_32 = {**FREENERF_DTU, "occlusion_range": 3,
                   "occlusion_wb_range": 4}
FREENERF_LLFF = {"freq_reg": True, "occlusion_weight": 0.01,
                 "occlusion_range": 20, "occlusion_wb_prior": False,
                 "occlusion_wb_range": 15}
FREENERF_LLFF_32 = {**FREENERF_LLFF, "occlusion_range": 5,
                    "occlusion_wb_range": 4}
NO_PATCHES = {"patch_batch_size": 0}
APPEARANCE = {"appearance_weight": 1e-4}

# The demo: the synthetic scene (Blender-style cameras, 60×80 images) in a few
# CPU minutes. Both methods share the model, batch, step budget and learning
# rate (a higher rate than the paper's, for the short run); RegNeRF adds its
# patch regularisers, annealing and gradient clipping. The depth-smoothness
# weight is a constant 0.1 (the release's value after its warm phase): measured
# on this scene at 600 steps, held-out PSNR was 18.6 dB with it, 16.3 dB
# without smoothness, 17.0 dB with 1 → 0.01 and 11.0–11.6 dB with the release's
# 400 → 0.1 (or 10 → 0.1) decay compressed into the first 100 steps, whose
# strong early smoothing the short run never undoes.
DEMO_DATA = {"dataset": "blender", "n_views": 3}
DEMO_MODEL = {**DTU_MODEL, **SMALL_MODEL}
DEMO_TRAIN = {**SMALL_TRAIN, "max_steps": 800, "batching": "all_images",
              "lr_init": 5e-3, "lr_final": 5e-4, "lr_delay_steps": 50,
              "lr_delay_mult": 0.1, "checkpoint_every": 200}

# ----------------------------------------------------------------------------
# The presets.
# ----------------------------------------------------------------------------

PRESETS: dict[str, dict[str, Any]] = {
    # The release's configs.
    "dtu3": {"data": {"dataset": "dtu", "n_views": 3}, "model": DTU_MODEL,
             "reg": {**RELEASE_PATCH, **DTU_REG, "anneal_steps": 256},
             "train": {"max_steps": DTU_STEPS[3]}},
    "dtu6": {"data": {"dataset": "dtu", "n_views": 6}, "model": DTU_MODEL,
             "reg": {**RELEASE_PATCH, **DTU_REG, "anneal_steps": 256},
             "train": {"max_steps": DTU_STEPS[6]}},
    "dtu9": {"data": {"dataset": "dtu", "n_views": 9}, "model": DTU_MODEL,
             "reg": {**RELEASE_PATCH, **DTU_REG, "anneal_steps": 0},
             "train": {"max_steps": DTU_STEPS[9]}},
    "llff3": {"data": {"dataset": "llff", "n_views": 3}, "model": LLFF_MODEL,
              "reg": {**RELEASE_PATCH, **LLFF_REG, "anneal_steps": 512},
              "train": {"max_steps": LLFF_STEPS[3]}},
    "llff6": {"data": {"dataset": "llff", "n_views": 6}, "model": LLFF_MODEL,
              "reg": {**RELEASE_PATCH, **LLFF_REG, "anneal_steps": 512},
              "train": {"max_steps": LLFF_STEPS[6]}},
    "llff9": {"data": {"dataset": "llff", "n_views": 9}, "model": LLFF_MODEL,
              "reg": {**RELEASE_PATCH, **LLFF_REG, "anneal_steps": 0},
              "train": {"max_steps": LLFF_STEPS[9]}},
    # Their mip-NeRF baselines.
    "dtu3_mipnerf": {"data": {"dataset": "dtu", "n_views": 3},
                     "model": DTU_MODEL, "reg": {**DTU_REG, **BASELINE_REG},
                     "train": BASELINE_TRAIN},
    "dtu6_mipnerf": {"data": {"dataset": "dtu", "n_views": 6},
                     "model": DTU_MODEL, "reg": {**DTU_REG, **BASELINE_REG},
                     "train": BASELINE_TRAIN},
    "dtu9_mipnerf": {"data": {"dataset": "dtu", "n_views": 9},
                     "model": DTU_MODEL, "reg": {**DTU_REG, **BASELINE_REG},
                     "train": BASELINE_TRAIN},
    "llff3_mipnerf": {"data": {"dataset": "llff", "n_views": 3},
                      "model": LLFF_MODEL, "reg": {**LLFF_REG, **BASELINE_REG},
                      "train": BASELINE_TRAIN},
    "llff6_mipnerf": {"data": {"dataset": "llff", "n_views": 6},
                      "model": LLFF_MODEL, "reg": {**LLFF_REG, **BASELINE_REG},
                      "train": BASELINE_TRAIN},
    "llff9_mipnerf": {"data": {"dataset": "llff", "n_views": 9},
                      "model": LLFF_MODEL, "reg": {**LLFF_REG, **BASELINE_REG},
                      "train": BASELINE_TRAIN},
    # Small CPU presets.
    "dtu3_small": {"data": {"dataset": "dtu", "n_views": 3},
                   "model": {**DTU_MODEL, **SMALL_MODEL},
                   "reg": {**DTU_REG, **SMALL_DEPTH_TV, "anneal_steps": 64},
                   "train": SMALL_TRAIN},
    "llff3_small": {"data": {"dataset": "llff", "n_views": 3},
                    "model": {**LLFF_MODEL, **SMALL_MODEL},
                    "reg": {**LLFF_REG, **SMALL_DEPTH_TV, "anneal_steps": 128},
                    "train": SMALL_TRAIN},
    "dtu3_small_mipnerf": {"data": {"dataset": "dtu", "n_views": 3},
                           "model": {**DTU_MODEL, **SMALL_MODEL},
                           "reg": {**DTU_REG, **BASELINE_REG},
                           "train": {**SMALL_TRAIN, **BASELINE_TRAIN,
                                     "max_steps": 2000}},
    "llff3_small_mipnerf": {"data": {"dataset": "llff", "n_views": 3},
                            "model": {**LLFF_MODEL, **SMALL_MODEL},
                            "reg": {**LLFF_REG, **BASELINE_REG},
                            "train": {**SMALL_TRAIN, **BASELINE_TRAIN,
                                      "max_steps": 2000}},
    # The quality benchmark's CPU protocol.
    "dtu3_cpu": {"data": {"dataset": "dtu", "n_views": 3},
                 "model": {**DTU_MODEL, **CPU_MODEL},
                 "reg": {**DTU_REG, **SMALL_DEPTH_TV, "anneal_steps": 64},
                 "train": CPU_TRAIN},
    "llff3_cpu": {"data": {"dataset": "llff", "n_views": 3},
                  "model": {**LLFF_MODEL, **CPU_MODEL},
                  "reg": {**LLFF_REG, **SMALL_DEPTH_TV, "anneal_steps": 128},
                  "train": CPU_TRAIN},
    "dtu3_cpu_mipnerf": {"data": {"dataset": "dtu", "n_views": 3},
                         "model": {**DTU_MODEL, **CPU_MODEL},
                         "reg": {**DTU_REG, **BASELINE_REG},
                         "train": CPU_BASELINE_TRAIN},
    "llff3_cpu_mipnerf": {"data": {"dataset": "llff", "n_views": 3},
                          "model": {**LLFF_MODEL, **CPU_MODEL},
                          "reg": {**LLFF_REG, **BASELINE_REG},
                          "train": CPU_BASELINE_TRAIN},
    # FreeNeRF, and RegNeRF with FreeNeRF's terms.
    "dtu3_freenerf": {"data": {"dataset": "dtu", "n_views": 3},
                      "model": {**DTU_MODEL, **FREENERF_MODEL},
                      "reg": {**DTU_REG, **BASELINE_REG, **FREENERF_DTU},
                      "train": {"max_steps": DTU_STEPS[3], **NO_PATCHES}},
    "dtu3_combined": {"data": {"dataset": "dtu", "n_views": 3},
                      "model": {**DTU_MODEL, **FREENERF_MODEL},
                      "reg": {**DTU_REG, "anneal_steps": 256, **FREENERF_DTU,
                              **APPEARANCE},
                      "train": {"max_steps": DTU_STEPS[3]}},
    "llff3_freenerf": {"data": {"dataset": "llff", "n_views": 3},
                       "model": {**LLFF_MODEL, **FREENERF_MODEL},
                       "reg": {**LLFF_REG, **BASELINE_REG, **FREENERF_LLFF},
                       "train": {"max_steps": LLFF_STEPS[3], **NO_PATCHES}},
    "llff3_combined": {"data": {"dataset": "llff", "n_views": 3},
                       "model": {**LLFF_MODEL, **FREENERF_MODEL},
                       "reg": {**LLFF_REG, "anneal_steps": 512,
                               **FREENERF_LLFF, **APPEARANCE},
                       "train": {"max_steps": LLFF_STEPS[3]}},
    "dtu3_small_freenerf": {"data": {"dataset": "dtu", "n_views": 3},
                            "model": {**DTU_MODEL, **SMALL_MODEL,
                                      **FREENERF_MODEL},
                            "reg": {**DTU_REG, **SMALL_DEPTH_TV,
                                    **BASELINE_REG, **FREENERF_DTU_32},
                            "train": {**SMALL_TRAIN, **NO_PATCHES}},
    "dtu3_small_combined": {"data": {"dataset": "dtu", "n_views": 3},
                            "model": {**DTU_MODEL, **SMALL_MODEL,
                                      **FREENERF_MODEL},
                            "reg": {**DTU_REG, **SMALL_DEPTH_TV,
                                    "anneal_steps": 64, **FREENERF_DTU_32,
                                    **APPEARANCE},
                            "train": SMALL_TRAIN},
    "llff3_small_freenerf": {"data": {"dataset": "llff", "n_views": 3},
                             "model": {**LLFF_MODEL, **SMALL_MODEL,
                                       **FREENERF_MODEL},
                             "reg": {**LLFF_REG, **SMALL_DEPTH_TV,
                                     **BASELINE_REG, **FREENERF_LLFF_32},
                             "train": {**SMALL_TRAIN, **NO_PATCHES}},
    "llff3_small_combined": {"data": {"dataset": "llff", "n_views": 3},
                             "model": {**LLFF_MODEL, **SMALL_MODEL,
                                       **FREENERF_MODEL},
                             "reg": {**LLFF_REG, **SMALL_DEPTH_TV,
                                     "anneal_steps": 128, **FREENERF_LLFF_32,
                                     **APPEARANCE},
                             "train": SMALL_TRAIN},
    "dtu3_cpu_freenerf": {"data": {"dataset": "dtu", "n_views": 3},
                          "model": {**DTU_MODEL, **CPU_MODEL, **FREENERF_MODEL},
                          "reg": {**DTU_REG, **SMALL_DEPTH_TV, **BASELINE_REG,
                                  **FREENERF_DTU_32},
                          "train": {**CPU_TRAIN, **NO_PATCHES}},
    "dtu3_cpu_combined": {"data": {"dataset": "dtu", "n_views": 3},
                          "model": {**DTU_MODEL, **CPU_MODEL, **FREENERF_MODEL},
                          "reg": {**DTU_REG, **SMALL_DEPTH_TV,
                                  "anneal_steps": 64, **FREENERF_DTU_32,
                                  **APPEARANCE},
                          "train": CPU_TRAIN},
    "llff3_cpu_freenerf": {"data": {"dataset": "llff", "n_views": 3},
                           "model": {**LLFF_MODEL, **CPU_MODEL,
                                     **FREENERF_MODEL},
                           "reg": {**LLFF_REG, **SMALL_DEPTH_TV,
                                   **BASELINE_REG, **FREENERF_LLFF_32},
                           "train": {**CPU_TRAIN, **NO_PATCHES}},
    "llff3_cpu_combined": {"data": {"dataset": "llff", "n_views": 3},
                           "model": {**LLFF_MODEL, **CPU_MODEL,
                                     **FREENERF_MODEL},
                           "reg": {**LLFF_REG, **SMALL_DEPTH_TV,
                                   "anneal_steps": 128, **FREENERF_LLFF_32,
                                   **APPEARANCE},
                           "train": CPU_TRAIN},
    # The synthetic-scene demo.
    "demo_small": {"data": DEMO_DATA, "model": DEMO_MODEL,
                   "reg": {**SMALL_DEPTH_TV, "anneal_steps": 64,
                           "anneal_start_fraction": 0.5,
                           "anneal_mid_fraction": 0.5},
                   "train": DEMO_TRAIN},
    "demo_small_mipnerf": {"data": DEMO_DATA, "model": DEMO_MODEL,
                           "reg": BASELINE_REG,
                           "train": {**DEMO_TRAIN, **NO_PATCHES,
                                     "grad_clip_value": 0.0,
                                     "grad_clip_norm": 0.0}},
}
