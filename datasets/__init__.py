"""regnerf_tf.datasets: scene readers, canonical splits and TFDS builders.

Importing this package registers the TFDS builders ``dtu_sparse`` and
``llff_sparse``, so ``tfds.load('dtu_sparse/3view', ...)`` works afterwards.

Modules:
  readers        scene folder → per-view records (LLFF, DTU official and
                 IDR/NeuS layouts, Blender); ``from_directory``
  splits         the canonical RegNeRF splits (DTU pixelNeRF split, LLFF hold-out)
  image_ops      release-faithful and area downsampling
  builder_utils  features and configs shared by the builders
"""

if __name__ != "regnerf_tf.datasets":
  # Imported through its folder name (for instance by pytest collecting tests
  # under datasets/ with the repo root on sys.path). Hand out the real package so
  # that builders are defined, and registered, only once.
  import importlib as _importlib
  import sys as _sys
  _sys.modules[__name__] = _importlib.import_module("regnerf_tf.datasets")
else:
  from regnerf_tf.datasets import readers  # noqa: F401
  from regnerf_tf.datasets import splits  # noqa: F401
  from regnerf_tf.datasets.dtu_sparse import dtu_sparse_dataset_builder  # noqa: F401
  from regnerf_tf.datasets.llff_sparse import llff_sparse_dataset_builder  # noqa: F401
  from regnerf_tf.datasets.readers import from_directory  # noqa: F401
