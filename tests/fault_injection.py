"""Kill regnerf-train at chosen points and check that it resumes exactly.

Used by ``tests/kill_resume_test.py`` and runnable on its own to repeat the
check with random kill points::

  python -m tests.fault_injection --rounds=3

Child mode (what the checks launch) runs ``regnerf-train`` with one fault
installed; the process kills itself with SIGKILL when it reaches it::

  python -m tests.fault_injection --kill=checkpoint:12 -- --preset=... ...

Kill points (``S`` is a training step):
  ``step:S``        while step S+1 is being computed (5 ms into it);
  ``checkpoint:S``  in the middle of saving the checkpoint of step S: its
                    files are written, its data file cut to half its size,
                    TensorFlow's list of checkpoints not yet updated;
  ``renamed:S``     right after the checkpoint of step S was saved and listed;
  ``final``         after ``final.weights.h5`` was written to its temporary
                    name, before the rename.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from regnerf_tf import checkpoints
from tests import training_test

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINAL = "final.weights.h5"

TINY_OVERRIDES = {k: v for k, v in training_test.TINY.items()
                  if k != "train.max_steps"}


def _die():
  sys.stdout.flush()
  sys.stderr.flush()
  os.kill(os.getpid(), signal.SIGKILL)


def install_fault(spec: str) -> None:
  """Patches regnerf_tf.training so that the process dies at ``spec``."""
  from regnerf_tf import training  # pylint: disable=import-outside-toplevel
  kind, _, arg = spec.partition(":")
  target = int(arg) if arg else None
  if kind == "step":

    def on_begin(self, batch, logs=None):
      if training.current_step(self.model) == target:
        threading.Timer(0.005, _die).start()

    training.TrainingMonitor.on_train_batch_begin = on_begin
  elif kind == "checkpoint":
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    record = tf.train.CheckpointManager._record_state  # pylint: disable=protected-access

    def record_or_die(manager):
      prefix = manager.latest_checkpoint
      if prefix.endswith(f"-{target}"):
        data = prefix + ".data-00000-of-00001"
        size = os.path.getsize(data)
        with open(data, "r+b") as f:
          f.truncate(size // 2)
          f.flush()
          os.fsync(f.fileno())
        _die()
      record(manager)

    tf.train.CheckpointManager._record_state = record_or_die  # pylint: disable=protected-access
  elif kind == "renamed":
    save = checkpoints.Writer.save

    def save_then_die(self, step):
      path = save(self, step)
      if step == target:
        _die()
      return path

    checkpoints.Writer.save = save_then_die
  elif kind == "final":
    replace = os.replace

    def replace_then_die(src, dst):
      if os.path.basename(dst) == FINAL:
        _die()
      replace(src, dst)

    training.os.replace = replace_then_die
  else:
    raise ValueError(f"Unknown kill point {spec!r}; expected step:S, "
                     "checkpoint:S, renamed:S or final.")


def train_args(workdir: str, steps: int) -> list[str]:
  """regnerf-train arguments of the tiny synthetic run the checks use."""
  return (["--preset=dtu3_small", "--synthetic", f"--steps={steps}",
           f"--workdir={workdir}", "--quiet"]
          + [f"--override={k}={v}" for k, v in TINY_OVERRIDES.items()])


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
              PYTHONPATH=os.pathsep.join(
                  [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def child_command(workdir: str, steps: int, kill: str | None) -> list[str]:
  return ([sys.executable, "-m", "tests.fault_injection"]
          + ([f"--kill={kill}"] if kill else []) + ["--"]
          + train_args(workdir, steps))


def run(workdir: str, steps: int, kill: str | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
  """Runs one (possibly self-killing) training process to its end."""
  return subprocess.run(child_command(workdir, steps, kill), cwd=ROOT,
                        env=_env(), timeout=timeout, capture_output=True,
                        text=True)


def run_killed_from_outside(workdir: str, steps: int, after_step: int,
                            delay: float, timeout: float = 600) -> bool:
  """Starts training, SIGKILLs it ``delay`` s after the checkpoint of
  ``after_step`` (or later) appears; returns whether it was still running."""
  proc = subprocess.Popen(child_command(workdir, steps, None), cwd=ROOT,
                          env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + timeout
  try:
    while time.time() < deadline and proc.poll() is None:
      step = checkpoint_step(workdir)
      if step is not None and step >= after_step:
        time.sleep(delay)
        break
      time.sleep(0.01)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return alive
  finally:
    if proc.poll() is None:
      proc.kill()


def checkpoint_arrays(workdir: str) -> dict[str, np.ndarray]:
  return checkpoints.read_arrays(workdir)


def checkpoint_step(workdir: str) -> int | None:
  """The step of the newest listed checkpoint in ``workdir`` (None if absent)."""
  return checkpoints.latest_step(workdir)


def temporaries(workdir: str) -> list[str]:
  """What an interrupted write leaves: ``.tmp_*`` files in the run folder and
  checkpoint files that TensorFlow's list does not name."""
  names = sorted(n for n in os.listdir(workdir) if n.startswith(".tmp_"))
  return names + [os.path.join(checkpoints.FOLDER, n)
                  for n in checkpoints.unlisted(workdir)]


def compare_runs(reference: str, resumed: str, atol: float = 1e-4) -> float:
  """Max abs difference of weights and optimizer state; raises if the steps
  or array sets differ."""
  a, b = checkpoint_arrays(reference), checkpoint_arrays(resumed)
  if set(a) != set(b):
    raise AssertionError(f"checkpoint arrays differ: {set(a) ^ set(b)}")
  if int(a["step"]) != int(b["step"]):
    raise AssertionError(f"steps differ: {int(a['step'])} vs {int(b['step'])}")
  worst = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k])))
              for k in a if a[k].size)
  if worst > atol:
    raise AssertionError(f"weights differ by {worst} > {atol}")
  return worst


def _random_round(root: str, steps: int, rng: random.Random) -> dict:
  """Reference run, then a chain of random kills, then the comparison."""
  ref = os.path.join(root, "reference")
  if run(ref, steps).returncode != 0:
    raise RuntimeError("the uninterrupted reference run failed")
  work = os.path.join(root, f"killed_{rng.randrange(10**6)}")
  every = TINY_OVERRIDES["train.checkpoint_every"]
  first = rng.randrange(1, steps - 2 * every)
  after = (first // every + 1) * every  # the next checkpoint written
  kills = [f"step:{first}",
           f"checkpoint:{rng.randrange(after, steps, every)}"]
  for kill in kills:
    result = run(work, steps, kill)
    if result.returncode != -signal.SIGKILL:
      raise AssertionError(f"{kill}: the process was not killed "
                           f"(exit code {result.returncode})")
  outside = run_killed_from_outside(work, steps, 0, rng.uniform(0.0, 0.5))
  kills.append(f"outside(alive={outside})")
  if run(work, steps, "final").returncode == -signal.SIGKILL:
    kills.append("final")
  final = run(work, steps)
  if final.returncode != 0:
    raise RuntimeError(f"the resumed run failed:\n{final.stderr[-2000:]}")
  return {"kills": kills,
          "max_abs_diff": compare_runs(ref, work),
          "final_weights": os.path.exists(os.path.join(work, FINAL))}


def main(argv: list[str]) -> int:
  if "--" in argv:
    split = argv.index("--")
    own, rest = argv[:split], argv[split + 1:]
  else:
    own, rest = argv, []
  options = dict(a.lstrip("-").split("=", 1) for a in own if "=" in a)
  if rest or "kill" in options:
    if "kill" in options:
      install_fault(options["kill"])
    from regnerf_tf.cli import train  # pylint: disable=import-outside-toplevel
    sys.argv = ["regnerf-train"] + rest
    return train.run() or 0
  rounds = int(options.get("rounds", 3))
  steps = int(options.get("steps", 24))
  rng = random.Random(int(options.get("seed", 0)))
  failures = 0
  with tempfile.TemporaryDirectory() as root:
    for r in range(rounds):
      try:
        result = _random_round(root, steps, rng)
        print(f"round {r + 1}: OK  kills={result['kills']} "
              f"max|Δ|={result['max_abs_diff']:.2e} "
              f"final_weights={result['final_weights']}", flush=True)
      except (AssertionError, RuntimeError) as e:
        failures += 1
        print(f"round {r + 1}: FAILED  {e}", flush=True)
  print(f"{rounds - failures}/{rounds} rounds resumed to the uninterrupted "
        "run's state.")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
