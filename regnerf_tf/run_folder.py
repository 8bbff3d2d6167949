"""What a run folder says about its run: the config it started with, and how
it was continued.

* ``config.json``: the resolved config of the run's first start. It is never
  written again.
* ``history.json``: one entry per later start that changed a field: the time,
  the step it continued from, ``changes`` ({field: [before, after]}) and
  ``how`` (``"operational"`` or ``"resume_with_changes"``).

The run's config is ``config.json`` with the history's changes applied in
order (:func:`run_config`); rendering and evaluation use it.

A start whose config differs from the run's in a field that changes what is
computed is refused, naming the fields (:func:`check_start`), unless the
caller continues on purpose (``resume_with_changes``, recorded in the
history) or starts a new run after moving the old one aside
(:func:`move_aside`, the command line's ``--restart``). Fields in
:data:`OPERATIONAL` only change how the run is carried out (logging,
checkpoint spacing, render chunks); they may change at any start and are
recorded too.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

from regnerf_tf import atomic
from regnerf_tf import configs as configs_lib
from regnerf_tf import errors

CONFIG = "config.json"
HISTORY = "history.json"
OPERATIONAL = frozenset({
    "name", "train.log_every", "train.checkpoint_every",
    "train.keep_checkpoints", "train.render_chunk", "train.render_branches",
    "train.max_nonfinite_steps"})


def flat(config: configs_lib.Config) -> dict[str, Any]:
  """{"section.field" or top-level field: value} of ``config``."""
  out = {}
  for key, value in config.to_dict().items():
    if isinstance(value, dict):
      out.update({f"{key}.{k}": v for k, v in value.items()})
    else:
      out[key] = value
  return out


def differences(before: configs_lib.Config, after: configs_lib.Config
                ) -> dict[str, list]:
  """{field: [before, after]} of the fields whose values differ."""
  a, b = flat(before), flat(after)
  return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b))
          if a.get(k) != b.get(k)}


def read_history(workdir: str) -> list[dict]:
  path = os.path.join(workdir, HISTORY)
  if not os.path.exists(path):
    return []
  try:
    with open(path) as f:
      entries = json.load(f)["entries"]
    if not isinstance(entries, list):
      raise ValueError(f"entries is a {type(entries).__name__}, not a list")
    for i, entry in enumerate(entries):
      changes = entry.get("changes") if isinstance(entry, dict) else None
      if not isinstance(changes, dict) or not all(
          isinstance(v, list) and len(v) == 2 for v in changes.values()):
        raise ValueError(f"entry {i} has no 'changes' of the form "
                         "{field: [before, after]}")
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.InputError(
        f"{path} cannot be read ({e}); it lists how this run was continued. "
        "Restore it from a backup, or move it away to treat the run as never "
        "changed.") from None
  return entries


def original_config(workdir: str) -> configs_lib.Config | None:
  """``config.json`` of the run in ``workdir`` (None when there is none)."""
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    text = f.read()
  try:
    return configs_lib.Config.from_json(text)
  except errors.ConfigError as e:
    raise errors.InputError(
        f"{path} is not a config this version can read: {e} Use another "
        "--workdir, or move the old run away.") from None


def run_config(workdir: str) -> configs_lib.Config | None:
  """The run's config: ``config.json`` with the history's changes applied."""
  config = original_config(workdir)
  if config is None:
    return None
  for entry in read_history(workdir):
    config = config.replace(**{k: v[1] for k, v in entry["changes"].items()
                               if k not in configs_lib.REMOVED_FIELDS})
  return config


def describe_changes(changes: dict[str, list], limit: int = 8) -> str:
  """``field: before in the run, after now; ...`` of :func:`differences`."""
  items = [f"{k}: {before!r} in the run, {after!r} now"
           for k, (before, after) in changes.items()]
  shown = "; ".join(items[:limit])
  return shown + (f"; and {len(items) - limit} more" if len(items) > limit
                  else "")


def check_start(workdir: str, config: configs_lib.Config,
                resume_with_changes: bool = False) -> dict[str, list]:
  """Refuses to continue the run in ``workdir`` with a config that changes
  what it computes, unless ``resume_with_changes``.

  Returns:
    the changes to record once the run has started ({} when none, or for a
    new run).

  Raises:
    errors.InputError: the differing fields, with the three ways out.
  """
  current = run_config(workdir)
  if current is None:
    return {}
  changes = differences(current, config)
  computed = _computing(changes)
  if computed and not resume_with_changes:
    raise errors.InputError(
        f"{workdir} holds a run with another config "
        f"({describe_changes(computed)}"
        f"). Continuing it would mix two configs under one run. Use another "
        "--workdir for a new run; or --restart to start a new run there (the "
        "old one is moved to a folder beside it); or --resume_with_changes "
        "(resume_with_changes=True in Python) to continue this run with the "
        f"new values, recorded in {os.path.join(workdir, HISTORY)}.")
  return changes


def result_changes(workdir: str, config: configs_lib.Config
                   ) -> dict[str, list]:
  """{field: [in the run, in ``config``]} of the fields that change what the
  run in ``workdir`` computes ({} when there is no run there)."""
  current = run_config(workdir)
  return {} if current is None else _computing(differences(current, config))


def _computing(changes: dict[str, list]) -> dict[str, list]:
  """The changes that are not :data:`OPERATIONAL`."""
  return {k: v for k, v in changes.items() if k not in OPERATIONAL}


def record_start(workdir: str, config: configs_lib.Config,
                 changes: dict[str, list], step: int,
                 resume_with_changes: bool) -> None:
  """Writes ``config.json`` for a new run, or appends the changes of a
  continued one to ``history.json`` (nothing when there are none)."""
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    atomic.write_bytes(path, config.to_json().encode())
    return
  if not changes:
    return
  how = ("resume_with_changes" if any(k not in OPERATIONAL for k in changes)
         and resume_with_changes else "operational")
  entries = read_history(workdir) + [{
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "step": int(step), "how": how, "changes": changes}]
  atomic.write_json(os.path.join(workdir, HISTORY), {"entries": entries})


def move_aside(workdir: str) -> str | None:
  """Renames the run folder ``workdir`` to ``<workdir>.replaced-<UTC time>``
  so a new run can start there; returns the new name (None when ``workdir``
  is absent or empty)."""
  if not os.path.isdir(workdir) or not os.listdir(workdir):
    return None
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
      "%Y%m%d-%H%M%S")
  base = os.path.abspath(workdir).rstrip(os.sep)
  target = f"{base}.replaced-{stamp}"
  n = 1
  while os.path.exists(target):
    n += 1
    target = f"{base}.replaced-{stamp}-{n}"
  os.rename(base, target)
  return target
