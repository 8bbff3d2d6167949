"""regnerf-train killed with SIGKILL at several points resumes exactly.

One run is killed inside a step, in the middle of a checkpoint save, right
after a checkpoint is listed, before the final weights are renamed, and from
outside; each restart is the same command. The end state must equal an
uninterrupted run's: step, weights and Adam state, logged schedules.
"""

import json
import os
import signal

import numpy as np
import pytest

from tests import fault_injection as fi
from tests import training_test

STEPS = 24
SCHEDULES = ("lr", "tv_weight", "near", "far")


@pytest.mark.large
def test_kills_at_several_points_resume_to_the_uninterrupted_run(tmp_path):
  reference = str(tmp_path / "reference")
  assert fi.run(reference, STEPS).returncode == 0
  work = str(tmp_path / "killed")

  def killed(kill):
    result = fi.run(work, STEPS, kill)
    assert result.returncode == -signal.SIGKILL, (kill, result.stderr[-3000:])

  killed("step:5")  # dies computing step 6; the last checkpoint is step 4
  assert fi.checkpoint_step(work) == 4
  killed("checkpoint:12")  # its data file cut in half, not yet listed
  assert fi.checkpoint_step(work) == 8  # the half-written one is not used
  left = fi.temporaries(work)
  assert left and all(n.startswith("checkpoints/ckpt-12") for n in left), left
  killed("renamed:16")
  assert fi.checkpoint_step(work) == 16
  assert fi.temporaries(work) == []  # the restart removed the leftover
  killed("final")
  assert fi.checkpoint_step(work) == STEPS
  assert not os.path.exists(os.path.join(work, fi.FINAL))
  finished = fi.run(work, STEPS)
  assert finished.returncode == 0, finished.stderr[-3000:]
  assert os.path.exists(os.path.join(work, fi.FINAL))
  assert fi.temporaries(work) == []

  assert fi.compare_runs(reference, work, atol=1e-4) <= 1e-4
  ref_logs = training_test.tensorboard_scalars(reference)
  got_logs = training_test.tensorboard_scalars(work)
  for tag in SCHEDULES:
    assert STEPS in got_logs[tag]
    for step, value in got_logs[tag].items():
      assert value == pytest.approx(ref_logs[tag][step], rel=1e-6), (tag, step)
  assert got_logs["loss"][STEPS] == pytest.approx(ref_logs["loss"][STEPS],
                                                  rel=1e-3)
  ref_summary = json.loads(open(os.path.join(reference,
                                             "heldout_psnr.json")).read())
  summary = json.loads(open(os.path.join(work, "heldout_psnr.json")).read())
  assert summary["step"] == STEPS
  np.testing.assert_allclose(summary["psnr"], ref_summary["psnr"], atol=1e-2)


@pytest.mark.large
def test_a_kill_from_outside_at_a_random_moment_resumes(tmp_path):
  reference = str(tmp_path / "reference")
  assert fi.run(reference, 16).returncode == 0
  work = str(tmp_path / "killed")
  assert fi.run_killed_from_outside(work, 16, after_step=4, delay=0.05)
  step = fi.checkpoint_step(work)
  assert step is not None and 4 <= step < 16
  assert fi.run(work, 16).returncode == 0
  fi.compare_runs(reference, work, atol=1e-4)
