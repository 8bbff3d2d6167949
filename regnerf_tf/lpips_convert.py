"""Converts the PyTorch `lpips` package's weights into the ``.npz`` file read by
:meth:`regnerf_tf.metrics.LPIPS.from_weights`.

NOT RUN IN THIS REPOSITORY'S DEVELOPMENT ENVIRONMENT: it needs PyTorch, the
``lpips`` pip package (which ships the small linear-calibration weights) and
torchvision's pretrained AlexNet / VGG16 weights, none of which were
available offline when this was written. The tested contract is the ``.npz``
layout plus ``LPIPS.from_weights``; this script only maps names and
transposes kernels, and its ``--check`` flag (on by default) compares the
converted Keras model against the PyTorch reference on random images.

Requirements (not dependencies of regnerf_tf; install them in a separate
environment if you prefer): ``pip install torch torchvision lpips``. The
backbone weights are fetched by torchvision on first use into
``$TORCH_HOME/hub/checkpoints`` (``alexnet-owt-7be5be79.pth``,
``vgg16-397923af.pth``); on an offline machine copy them there first.
Check the licences of the torchvision and LPIPS weights before
redistributing converted files.

Usage:

  python -m regnerf_tf.lpips_convert --net=vgg --output=lpips_vgg.npz
  python -m regnerf_tf.lpips_convert --net=alex --output=lpips_alex.npz

Mapping (see the layout in ``regnerf_tf/metrics.py``): the i-th
``torch.nn.Conv2d`` of ``lpips.LPIPS(...).net`` in module order becomes
``backbone/conv{i}/kernel`` (NCHW-style [out, in, kh, kw] → HWIO
[kh, kw, in, out]) and ``backbone/conv{i}/bias``; the 1×1 convolution of
``lins[k]`` ([1, C, 1, 1]) becomes ``lin{k}/weight`` [C].
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np

from regnerf_tf import errors


def torch_lpips_to_arrays(torch_model) -> dict[str, np.ndarray]:
  """Extracts the weights of a PyTorch ``lpips.LPIPS`` model.

  Args:
    torch_model: an ``lpips.LPIPS(net=..., version="0.1")`` instance
      (``lpips=True``, i.e. "net-lin").

  Returns:
    {name: float32 array} in the ``.npz`` layout (without ``net``).
  """
  import torch  # pylint: disable=import-outside-toplevel

  convs = [m for m in torch_model.net.modules()
           if isinstance(m, torch.nn.Conv2d)]
  arrays: dict[str, np.ndarray] = {}
  for i, conv in enumerate(convs):
    kernel = conv.weight.detach().cpu().numpy()  # [out, in, kh, kw]
    arrays[f"backbone/conv{i}/kernel"] = np.ascontiguousarray(
        kernel.transpose(2, 3, 1, 0)).astype(np.float32)
    if conv.bias is None:
      raise errors.InputError(f"backbone conv {i} has no bias")
    arrays[f"backbone/conv{i}/bias"] = (
        conv.bias.detach().cpu().numpy().astype(np.float32))
  for k, lin in enumerate(torch_model.lins):
    lin_convs = [m for m in lin.modules() if isinstance(m, torch.nn.Conv2d)]
    if len(lin_convs) != 1:
      raise errors.InputError(f"lins[{k}]: expected one Conv2d, got {len(lin_convs)}")
    w = lin_convs[0].weight.detach().cpu().numpy()  # [1, C, 1, 1]
    if w.shape[0] != 1 or w.shape[2:] != (1, 1):
      raise errors.InputError(f"lins[{k}]: unexpected weight shape {w.shape}")
    arrays[f"lin{k}/weight"] = w.reshape(-1).astype(np.float32)
  return arrays


def _check(torch_model, keras_model, size: int = 64, seed: int = 0,
           tol: float = 1e-4) -> float:
  """Max |LPIPS_torch − LPIPS_keras| over a few random image pairs."""
  import torch  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(seed)
  base = rng.uniform(0.0, 1.0, (3, size, size, 3)).astype(np.float32)
  other = np.clip(base + rng.normal(0.0, 0.1, base.shape), 0.0, 1.0)
  other = other.astype(np.float32)
  with torch.no_grad():
    t0 = torch.from_numpy(base.transpose(0, 3, 1, 2).copy())
    t1 = torch.from_numpy(other.transpose(0, 3, 1, 2).copy())
    ref = torch_model(t0, t1, normalize=True).reshape(-1).numpy()
  got = keras_model.batch_distance(base, other)
  err = float(np.max(np.abs(ref - got)))
  print(f"torch LPIPS {ref}, keras LPIPS {got}, max |diff| {err:.3g}")
  if err > tol:
    raise RuntimeError(f"converted LPIPS differs from PyTorch by {err:.3g}")
  return err


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--net", choices=("alex", "vgg"), required=True)
  parser.add_argument("--output", required=True, help="output .npz path")
  parser.add_argument("--no_check", action="store_true",
                      help="skip the PyTorch-vs-Keras comparison")
  args = parser.parse_args(argv)
  if not args.output.endswith(".npz"):
    parser.error("--output must end with .npz")

  try:
    import lpips  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise SystemExit(
        "lpips_convert needs PyTorch, torchvision and the `lpips` package: "
        f"pip install torch torchvision lpips ({e})") from e

  from regnerf_tf import metrics  # pylint: disable=import-outside-toplevel

  torch_model = lpips.LPIPS(net=args.net, version="0.1", lpips=True,
                            pretrained=True, verbose=False).eval()
  arrays = torch_lpips_to_arrays(torch_model)
  keras_model = metrics.LPIPS(args.net, arrays)  # validates names and shapes
  metrics.save_weights_npz(keras_model, args.output)
  print(f"wrote {args.output}")
  reloaded = metrics.LPIPS.from_weights(args.output, args.net)
  if not args.no_check:
    _check(torch_model, reloaded)
  return 0


if __name__ == "__main__":
  sys.exit(main())
