"""regnerf-tf: RegNeRF (Niemeyer et al., CVPR 2022) in TensorFlow and Keras 3.

Modules:
  camera     pose utilities and pixel → ray math (OpenCV / OpenGL, NDC)
  mip        conical frustum / cylinder Gaussians, integrated positional encoding
  sampling   stratified and inverse-CDF sampling along rays, near/far annealing
  rendering  alpha compositing
  layers     Keras layers: IPE encoder and the mip-NeRF MLP
"""

import os

# Keras 3 picks its backend at import time; this package is TensorFlow-only.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
  raise ImportError(
      "regnerf_tf needs the TensorFlow Keras backend, but Keras was loaded with "
      f"the {keras.backend.backend()!r} backend. Set KERAS_BACKEND=tensorflow "
      "before importing keras or regnerf_tf.")

__version__ = "0.1.0.dev0"
