"""regnerf-tf: RegNeRF (Niemeyer et al., CVPR 2022) in TensorFlow and Keras 3.

Modules:
  camera     pose utilities and pixel → ray math (OpenCV / OpenGL, NDC)
  mip        conical frustum / cylinder Gaussians, integrated positional encoding
  sampling   stratified and inverse-CDF sampling along rays, near/far annealing
  rendering  alpha compositing
  layers     Keras layers: IPE encoder and the mip-NeRF MLP
"""

import importlib.machinery
import importlib.util
import os
import sys

# Keras 3 picks its backend at import time; this package is TensorFlow-only.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
  raise ImportError(
      "regnerf_tf needs the TensorFlow Keras backend, but Keras was loaded with "
      f"the {keras.backend.backend()!r} backend. Set KERAS_BACKEND=tensorflow "
      "before importing keras or regnerf_tf.")

__version__ = "0.1.0.dev0"


class _SourceTreeFinder:
  """Maps regnerf_tf.flows / regnerf_tf.datasets to the top-level folders.

  pip installs (regular and editable) map these subpackages through setup.cfg's
  package_dir. In a bare source tree (PYTHONPATH=<checkout>, Bazel runfiles)
  nothing does; this finder fills in for exactly those two names and nothing
  else, so a top-level ``datasets`` module is never created.
  """

  def __init__(self, folders):
    self._folders = folders

  def find_spec(self, fullname, path=None, target=None):
    folder = self._folders.get(fullname)
    if folder is None:
      return None
    return importlib.util.spec_from_file_location(
        fullname, os.path.join(folder, "__init__.py"),
        submodule_search_locations=[folder])


def _install_source_tree_finder():
  here = os.path.dirname(os.path.abspath(__file__))
  root = os.path.dirname(here)
  if not os.path.isfile(os.path.join(root, "setup.cfg")):
    return  # an installed copy: package_dir already placed the subpackages
  folders = {}
  for sub in ("flows", "datasets"):
    name = f"{__name__}.{sub}"
    if os.path.isdir(os.path.join(here, sub)):
      continue
    if importlib.machinery.PathFinder.find_spec(name, [here]) is not None:
      continue
    if any(f.find_spec(name, __path__) for f in sys.meta_path
           if hasattr(f, "find_spec") and not isinstance(f, _SourceTreeFinder)):
      continue  # e.g. setuptools' editable-install finder
    candidate = os.path.join(root, sub)
    if os.path.isfile(os.path.join(candidate, "__init__.py")):
      folders[name] = candidate
  if folders:
    sys.meta_path.append(_SourceTreeFinder(folders))


_install_source_tree_finder()

# Registers the TFDS builders dtu_sparse and llff_sparse.
from regnerf_tf import datasets as _datasets  # noqa: E402,F401
