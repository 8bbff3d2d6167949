"""TFDS builder test for dtu_sparse on synthetic dummy_data/ (official layout)."""

from __future__ import annotations

import tensorflow_datasets as tfds

from regnerf_tf.datasets.dtu_sparse import dtu_sparse_dataset_builder

_SCANS = ("scan8", "scan114")


class DtuSparseTest(tfds.testing.DatasetBuilderTestCase):
  """3 train and 25 test views per scan, two scans."""

  DATASET_CLASS = dtu_sparse_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["3view"]
  SPLITS = {"train": 6, "test": 50,
            **{f"{s}_train": 3 for s in _SCANS},
            **{f"{s}_test": 25 for s in _SCANS}}
  OVERLAPPING_SPLITS = [f"{s}_{p}" for s in _SCANS for p in ("train", "test")]


class DtuSparseAreaTest(DtuSparseTest):
  """The area-filter variant builds the same splits."""

  BUILDER_CONFIG_NAMES_TO_TEST = ["9view_area"]
  SPLITS = {**DtuSparseTest.SPLITS, "train": 18, "scan8_train": 9,
            "scan114_train": 9}


if __name__ == "__main__":
  tfds.testing.test_main()
