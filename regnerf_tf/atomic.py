"""Writing outputs so that a crash never leaves a half-written file.

Every file the project produces (checkpoints, configs, metrics JSON, images,
weights) goes to a temporary name in the destination folder (``.tmp_*``), is
flushed to disk, then renamed into place: readers see the old file or the new
one, never a part. Folders (SavedModels) are written the same way by
:mod:`regnerf_tf.export`. A killed process may leave ``.tmp_*`` files behind;
they are never read, and :func:`remove_stale_temporaries` deletes them.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Callable

PREFIX = ".tmp_"


def _publish(tmp: str, path: str) -> None:
  """Gives ``tmp`` the usual permissions (mkstemp makes 0600) and renames."""
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)
  os.replace(tmp, path)


def write_bytes(path: str, payload: bytes) -> None:
  """Writes ``payload`` to ``path`` atomically."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=PREFIX)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    _publish(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, payload: dict) -> None:
  write_bytes(path, json.dumps(payload, indent=2).encode())


def write_image(path: str, image) -> None:
  """Encodes ``image`` (uint8 [H, W] or [H, W, C]) by the path's extension."""
  import imageio.v3 as iio  # pylint: disable=import-outside-toplevel
  extension = os.path.splitext(path)[1].lower() or ".png"
  write_bytes(path, iio.imwrite("<bytes>", image, extension=extension))


def write_npz(path: str, **arrays) -> None:
  buffer = io.BytesIO()
  import numpy as np  # pylint: disable=import-outside-toplevel
  np.savez(buffer, **arrays)
  write_bytes(path, buffer.getvalue())


def write_with(path: str, save: Callable[[str], None]) -> None:
  """Runs ``save(tmp_path)`` (a writer that needs a file name, e.g. Keras'
  ``save_weights``) on a temporary name with ``path``'s suffix, then renames."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  tmp = os.path.join(folder, f"{PREFIX}{os.getpid()}_{os.path.basename(path)}")
  try:
    save(tmp)
    _publish(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def remove_stale_temporaries(folder: str) -> list[str]:
  """Deletes the ``.tmp_*`` files a killed process left in ``folder``.

  Returns:
    the removed file names.
  """
  removed = []
  if not os.path.isdir(folder):
    return removed
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if name.startswith(PREFIX) and os.path.isfile(path):
      os.remove(path)
      removed.append(name)
  return removed
