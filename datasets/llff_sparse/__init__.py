"""TFDS builder ``llff_sparse``: LLFF scenes for sparse-view synthesis (RegNeRF)."""
