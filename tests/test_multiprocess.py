"""The training entry point as a multi-process `jax.distributed` job on one machine.

Each process is `python -m s2s_jax.main` on fake CPU devices, joined through a coordinator on
127.0.0.1 (as on a TPU pod slice or a GPU cluster, where each host runs the same command):

- one process with 4 devices and 2 processes with 2 each train on the same global batches and
  log the same losses, validation and test results and end with the same parameters;
- the 2-process job, its ranks learnt from SLURM's environment (as under `srun`), has one
  process killed after a checkpoint: the other exits with status 1 and a message (or, when its
  collective waits instead of failing, JAX aborts it after the heartbeat timeout); the job run
  again with the ranks in explicit flags resumes every process from the last checkpoint; the
  comparisons above are of this resumed job.

Each process of a job compiles its own programs (JAX's persistent cache is written by process 0
alone, under a key that differs by process), so a job costs about its process count in whole
runs. A third job, 4 processes with 1 device each, cost as much as the two others together
and is left out (BUILD_NOTES, "CI time, fifth round").
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import main_job

# The tiny config's network with its mel branch only (convolutions and batch norm, whose
# statistics every device contributes to: the jobs compile half as much as with all four
# branches; tests/test_train.py runs all four on 8 devices) for one epoch of 4 steps of 12
# examples (3 per device), an optimiser update every 2 steps (gradient accumulation), logging
# every step, a checkpoint every 2.
FLAGS = ("--config=configs/t6.py:tiny", "--config.model.branches=('mel',)",
         "--config.num_epochs=1", "--config.batch_size=24",
         "--config.per_step_batch_size=12", "--config.log_every_steps=1",
         "--config.checkpoint_every_steps=2")
TOTAL_STEPS = 4
KILL_AFTER_STEP = 2
GLOBAL_DEVICES = 4
HEARTBEAT_TIMEOUT = 20


class Job:
  """`processes` copies of the entry point, `GLOBAL_DEVICES / processes` fake devices each."""

  def __init__(self, workdir, data_dir, processes: int, ranks_from: str = "flags"):
    self.workdir, self.processes = workdir, processes
    self.killed: Kill | None = None  # set by `runs` for the job it killed and resumed
    port = main_job.free_port()
    self.runs = []
    for rank in range(processes):
      args = main_job.command(workdir, data_dir, *FLAGS)
      extra = {}
      if processes > 1:  # a dead process found in seconds if no collective fails at once
        args += [f"--heartbeat_timeout={HEARTBEAT_TIMEOUT}"]
      if processes > 1 and ranks_from == "flags":
        args += [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}",
                 f"--process_id={rank}"]
      elif processes > 1:  # what `srun` sets for each task of a one-node job
        args += ["--multihost"]
        extra = {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "127.0.0.1",
                 "SLURM_NTASKS": str(processes), "SLURM_PROCID": str(rank),
                 "SLURM_LOCALID": str(rank), "JAX_COORDINATOR_PORT": str(port)}
      run_env = main_job.env(GLOBAL_DEVICES // processes, **extra)
      self.runs.append(main_job.start(args, run_env, self.log(rank)))

  def log(self, rank: int):
    return self.workdir.parent / f"{self.workdir.name}.process{rank}.log"

  def output(self, rank: int) -> str:
    return self.log(rank).read_text(encoding="utf-8")

  def wait(self) -> list[int]:
    """Exit codes; kills whatever is still running when the hang guard runs out."""
    deadline = time.monotonic() + main_job.TIMEOUT
    try:
      return [run.wait(timeout=max(deadline - time.monotonic(), 1)) for run in self.runs]
    finally:
      self.kill()

  def kill(self) -> None:
    for run in self.runs:
      if run.poll() is None:
        run.kill()
        run.wait()

  def finish(self) -> Job:
    codes = self.wait()
    for rank, code in enumerate(codes):
      assert code == 0, f"process {rank}: exit {code}\n" + self.output(rank)[-3000:]
    return self


@dataclasses.dataclass
class Kill:
  """What the 2-process job did when its process 1 was killed after a checkpoint."""
  survivor_exit: int
  survivor_output: str
  checkpoints: list[int]  # the steps saved when it stopped


def _kill_process_1(job: Job) -> Kill:
  """Kills process 1 after the checkpoint of `KILL_AFTER_STEP`; waits for process 0."""
  deadline = time.monotonic() + main_job.TIMEOUT
  try:
    while not any(s >= KILL_AFTER_STEP for s in main_job.finished_checkpoints(job.workdir)):
      assert all(run.poll() is None for run in job.runs), job.output(0)[-3000:]
      assert time.monotonic() < deadline, "no checkpoint in time"
      time.sleep(0.05)
    job.runs[1].send_signal(signal.SIGKILL)
    survivor = job.runs[0].wait(timeout=main_job.TIMEOUT)
  finally:
    job.kill()
  return Kill(survivor, job.output(0), main_job.finished_checkpoints(job.workdir))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data_dir) -> dict[int, Job]:
  """Finished jobs of 1 and 2 processes, by process count.

  The 2-process job (ranks from SLURM's environment) is killed after a checkpoint and run again
  to the end (ranks from the flags): `runs[2].killed` says how it stopped.
  """
  root = tmp_path_factory.mktemp("processes")
  jobs = {1: Job(root / "p1", tiny_data_dir, 1).finish()}
  kill = _kill_process_1(Job(root / "p2", tiny_data_dir, 2, "slurm"))
  jobs[2] = Job(root / "p2", tiny_data_dir, 2, "flags").finish()
  jobs[2].killed = kill
  return jobs


def _final_state(workdir) -> dict:
  """The train state of the last checkpoint, restored onto this process's first device."""
  path = workdir / "checkpoints" / str(TOTAL_STEPS) / "state"
  checkpointer = ocp.StandardCheckpointer()
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        checkpointer.metadata(path).item_metadata)
  return checkpointer.restore(path, target)


def _flat(tree) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def test_every_process_joins_and_sees_every_device(runs):
  job, processes = runs[2], 2
  for rank in range(processes):
    match = re.search(r"JAX process (\d+) of (\d+), devices: \[(.*?)\]", job.output(rank))
    assert match, job.output(rank)[-2000:]
    assert (int(match.group(1)), int(match.group(2))) == (rank, processes)
    assert match.group(3).count("CpuDevice") == GLOBAL_DEVICES
  data = job.workdir / "checkpoints" / str(TOTAL_STEPS) / "data"
  assert sorted(p.name for p in data.glob("process_*")) == [
      f"process_{rank}-of-{processes}.json" for rank in range(processes)]


def test_processes_log_the_losses_of_one_process(runs):
  want, got = main_job.records(runs[1].workdir), main_job.records(runs[2].workdir)
  for key in ("train/loss", "train/grad_norm", "validation/loss", "validation/accuracy",
              "test/loss"):
    expected, actual = main_job.last_per_step(want, key), main_job.last_per_step(got, key)
    assert sorted(actual) == sorted(expected) and expected, key
    np.testing.assert_allclose([actual[s] for s in sorted(actual)],
                               [expected[s] for s in sorted(expected)], rtol=1e-4, err_msg=key)
  assert sorted(main_job.last_per_step(got, "train/loss")) == list(range(1, TOTAL_STEPS + 1))


# Every convolution's bias feeds a batch norm that subtracts it again: its gradient is rounding
# noise, which Adam scales up to full steps, so it differs between any two device layouts (and
# changes no output; the running means that absorb it differ by about 1e-4 relative).
CANCELLED_BIAS = re.compile(r"\['Conv_\d+'\]\['bias'\]$")


def test_processes_end_with_the_parameters_of_one_process(runs):
  want, got = _final_state(runs[1].workdir), _final_state(runs[2].workdir)
  assert int(got["step"]) == int(want["step"]) == TOTAL_STEPS
  expected, actual = _flat(want["params"]), _flat(got["params"])
  assert sorted(actual) == sorted(expected)
  compared = [name for name in expected if not CANCELLED_BIAS.search(name)]
  assert len(compared) >= len(expected) - 4
  for name in compared:
    np.testing.assert_allclose(actual[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)
  expected, actual = _flat(want["batch_stats"]), _flat(got["batch_stats"])
  for name, value in expected.items():
    np.testing.assert_allclose(actual[name], value, rtol=2e-3, atol=1e-6, err_msg=name)


def test_processes_report_the_test_results_of_one_process(runs):
  want = json.loads((runs[1].workdir / "results.json").read_text())
  got = json.loads((runs[2].workdir / "results.json").read_text())
  assert got["step"] == want["step"] == TOTAL_STEPS
  rows = {row["predictor"]: row for row in got["test_mfccd"]}
  for row in want["test_mfccd"]:
    for key, value in row.items():
      if isinstance(value, float):
        np.testing.assert_allclose(rows[row["predictor"]][key], value, rtol=1e-4,
                                   err_msg=f"{row['predictor']} {key}")


def test_a_killed_process_stops_the_job_and_the_job_resumes(runs):
  kill = runs[2].killed
  # Its collective fails at once (our message), or waits until JAX's coordination service
  # finds the dead process by its heartbeats and aborts this one (JAX's message).
  if kill.survivor_exit == 1:
    assert "process 0 of 2 stopped" in kill.survivor_output, kill.survivor_output[-3000:]
    assert "Run the same command on every process to resume" in kill.survivor_output
  else:
    assert kill.survivor_exit == -signal.SIGABRT, kill.survivor_output[-3000:]
    assert "stopped sending heartbeats" in kill.survivor_output, kill.survivor_output[-3000:]
  assert kill.checkpoints and KILL_AFTER_STEP <= kill.checkpoints[-1] < TOTAL_STEPS
  for rank in range(2):
    match = re.search(r"resumed from step (\d+)", runs[2].output(rank))
    assert match and int(match.group(1)) == kill.checkpoints[-1], runs[2].output(rank)[-3000:]
  # No row repeated after the resume; the losses are the one-process job's (the tests above).
  assert (main_job.kinds(main_job.records(runs[2].workdir))
          == main_job.kinds(main_job.records(runs[1].workdir)))
