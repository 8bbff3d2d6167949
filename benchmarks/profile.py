"""Where a training step's time goes: a TensorFlow profiler trace, summarised.

One command traces a few training steps of a preset on the speed benchmark's
fixed batch and prints the time per op type (self time: an op's time minus the
ops running inside it on the same thread), grouped into matmuls, the rest of
the MLP's element-wise work, and everything else::

  python -m benchmarks.profile --preset=llff3 --steps=2 --logdir=/tmp/prof

The raw trace stays in ``--logdir`` (``plugins/profile/<run>/*.xplane.pb``);
TensorBoard shows it as a timeline with the ``tensorboard-plugin-profile``
package installed (``tensorboard --logdir=<logdir>``, Profile tab).
"""

from __future__ import annotations

import collections
import glob
import os
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS

# Op types that are dense matrix products (oneDNN / Eigen kernels and their
# fused forms as TensorFlow's graph rewriter emits them).
MATMUL_TYPES = frozenset({
    "MatMul", "_FusedMatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3",
    "_MklMatMul", "_MklFusedMatMul", "_MklBatchMatMul", "_MklBatchMatMulV2",
    "_MklNativeFusedMatMul", "_MklNativeBatchMatMulV2", "Einsum", "_MklEinsum",
    "_FusedBatchMatMulV2", "_MklFusedBatchMatMulV2"})
# Ops that exist only to run other ops (their self time is bookkeeping).
CONTAINER_TYPES = frozenset({
    "While", "StatelessWhile", "If", "StatelessIf", "PartitionedCall",
    "StatefulPartitionedCall", "Identity"})


def define_flags():
  flags.DEFINE_string("preset", "llff3", "Preset to profile.")
  flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"],
                    "model.precision.")
  flags.DEFINE_bool("xla", False, "train.jit_compile.")
  flags.DEFINE_string("threads", "auto", "TensorFlow's threads, as "
                      "regnerf-train's --threads: auto (what it chooses on "
                      "this machine), default or INTRA:INTER.")
  flags.DEFINE_integer("steps", 2, "Traced training steps (after one untraced "
                       "step that compiles).")
  flags.DEFINE_integer("batch_size", 1024, "Observed rays per step.")
  flags.DEFINE_integer("patch_batch_size", 4096, "Patch rays per step.")
  flags.DEFINE_integer("micro_batches", 4, "train.micro_batches.")
  flags.DEFINE_multi_string("override", [], "section.field=value; "
                            "repeatable (as benchmarks.speed's).")
  flags.DEFINE_string("logdir", "/tmp/regnerf_profile", "Trace folder.")
  flags.DEFINE_string("output", None, "Optional JSON summary path.")
  flags.DEFINE_integer("top", 25, "Op types listed.")


def op_type(event_name: str) -> str | None:
  """'mlp/dense_1/MatMul:_FusedMatMul' → '_FusedMatMul'; None if the event is
  not a TensorFlow op (executor bookkeeping, Python scopes, ...)."""
  if ":" not in event_name or "::" in event_name:
    return None
  kind = event_name.rsplit(":", 1)[1].strip()
  if not kind or " " in kind or not (kind[0].isupper() or kind[0] == "_"):
    return None
  return kind


def self_times(events) -> list[tuple[str, int]]:
  """(name, self duration) of each event on one thread.

  ``events``: (name, start, duration) on one timeline. An event's self time
  is its duration minus that of the events nested directly inside it.
  """
  ordered = sorted(events, key=lambda e: (e[1], -e[2]))
  result = []
  stack: list[list] = []  # [name, end, duration, children's duration]
  for name, start, duration in ordered:
    while stack and start >= stack[-1][1]:
      done = stack.pop()
      result.append((done[0], done[2] - done[3]))
    if stack:
      stack[-1][3] += min(duration, stack[-1][1] - start)
    stack.append([name, start + duration, duration, 0])
  result.extend((done[0], done[2] - done[3]) for done in stack)
  return result


def summarise(xspace) -> dict:
  """Self time per op type over the host plane's threads, in seconds."""
  per_type: dict[str, float] = collections.defaultdict(float)
  counts: dict[str, int] = collections.defaultdict(int)
  other = 0.0
  for plane in xspace.planes:
    if not plane.name.startswith("/host:CPU"):
      continue
    names = {k: v.name for k, v in plane.event_metadata.items()}
    for line in plane.lines:
      events = [(names.get(e.metadata_id, ""), e.offset_ps, e.duration_ps)
                for e in line.events]
      for name, ps in self_times(events):
        kind = op_type(name)
        if kind is None:
          other += ps * 1e-12
          continue
        per_type[kind] += ps * 1e-12
        counts[kind] += 1
  ops = {k: v for k, v in per_type.items() if k not in CONTAINER_TYPES}
  total = sum(ops.values())
  matmul = sum(v for k, v in ops.items() if k in MATMUL_TYPES)
  return {"op_seconds_total": total,
          "matmul_seconds": matmul,
          "matmul_share": matmul / total if total else 0.0,
          "by_type": sorted(({"type": k, "seconds": v, "count": counts[k],
                              "share": v / total if total else 0.0}
                             for k, v in ops.items()),
                            key=lambda r: -r["seconds"]),
          "non_op_seconds": other}


def latest_trace(logdir: str) -> str:
  found = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*",
                                        "*.xplane.pb")), key=os.path.getmtime)
  if not found:
    raise FileNotFoundError(
        f"No *.xplane.pb under {logdir}/plugins/profile/: the profiler wrote "
        "no trace. Check that the folder is writable.")
  return found[-1]


def load_xspace(path: str):
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
  space = xplane_pb2.XSpace()
  with open(path, "rb") as f:
    space.ParseFromString(f.read())
  return space


def table(summary: dict, top: int) -> str:
  lines = ["| op type | self seconds | share of op time | calls |",
           "|---|---|---|---|"]
  for r in summary["by_type"][:top]:
    lines.append(f"| {r['type']} | {r['seconds']:.2f} | {r['share']:.1%} | "
                 f"{r['count']} |")
  return "\n".join(lines)


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from benchmarks import speed  # pylint: disable=import-outside-toplevel
  from regnerf_tf import machine  # pylint: disable=import-outside-toplevel
  try:
    intra, inter, why = machine.training_threads(FLAGS.threads)
  except ValueError as e:
    raise app.UsageError(f"--threads: {e}") from None
  machine.apply_threads(intra, inter)
  # The speed benchmark's config: this module defines the batch flags it reads.
  model, batch = speed.training_setup(
      speed.config_for(FLAGS.preset, FLAGS.precision, FLAGS.xla))
  data = tf.data.Dataset.from_tensors(batch).repeat()
  model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # compiles
  tf.profiler.experimental.start(FLAGS.logdir)
  start = time.perf_counter()
  model.fit(data, steps_per_epoch=FLAGS.steps, epochs=1, verbose=0)
  wall = time.perf_counter() - start
  tf.profiler.experimental.stop()
  trace = latest_trace(FLAGS.logdir)
  summary = summarise(load_xspace(trace))
  summary.update({"preset": FLAGS.preset, "precision": FLAGS.precision,
                  "xla": FLAGS.xla, "steps": FLAGS.steps,
                  "threads": {"intra_op": intra, "inter_op": inter,
                              "why": why},
                  "wall_seconds_per_step": wall / FLAGS.steps,
                  "trace": trace})
  print(f"{FLAGS.preset} {FLAGS.precision} xla={FLAGS.xla}, threads "
        f"{intra or 'default'}:{inter or 'default'} ({why}): "
        f"{summary['wall_seconds_per_step']:.2f} s per traced step; op self "
        f"time {summary['op_seconds_total'] / FLAGS.steps:.2f} s per step on "
        f"all threads, of which matmuls {summary['matmul_share']:.1%}.")
  print(table(summary, FLAGS.top))
  print(f"Trace: {trace}")
  if FLAGS.output:
    from regnerf_tf import atomic  # pylint: disable=import-outside-toplevel
    atomic.write_json(FLAGS.output, summary)
  return 0


def run():
  define_flags()
  app.run(main)


if __name__ == "__main__":
  sys.exit(run())
