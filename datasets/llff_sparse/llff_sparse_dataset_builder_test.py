"""TFDS builder test for llff_sparse on synthetic dummy_data/."""

from __future__ import annotations

import tensorflow_datasets as tfds

from regnerf_tf.datasets.llff_sparse import llff_sparse_dataset_builder


class LlffSparseTest(tfds.testing.DatasetBuilderTestCase):
  """fern: 20 images (test 0, 8, 16); room: 10 images (test 0, 8)."""

  DATASET_CLASS = llff_sparse_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["3view"]
  SPLITS = {"train": 6, "test": 5, "fern_train": 3, "fern_test": 3,
            "room_train": 3, "room_test": 2}
  OVERLAPPING_SPLITS = ["fern_train", "fern_test", "room_train", "room_test"]


class LlffSparseSixViewTest(LlffSparseTest):
  """6 views: room's pool of 8 non-test images still has enough."""

  BUILDER_CONFIG_NAMES_TO_TEST = ["6view"]
  SPLITS = {**LlffSparseTest.SPLITS, "train": 12, "fern_train": 6,
            "room_train": 6}


if __name__ == "__main__":
  tfds.testing.test_main()
