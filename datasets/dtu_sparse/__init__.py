"""TFDS builder ``dtu_sparse``: DTU scans for sparse-view synthesis (RegNeRF)."""
