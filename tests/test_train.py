"""Training: data parallelism over devices and processes, exact resume, the main job end to end.

Every run is a subprocess: fake CPU devices and `jax.distributed` must be set up before JAX
starts, and the resume test kills a run. The main job runs in the background while the device
tests run, and the killed run reuses its compiled programs (a persistent compilation cache).
"""

import json
import math
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "parallel_worker.py"
TIMEOUT = 300
# The tiny config for 2 epochs of 12 steps; SWA over the second; a checkpoint every 2 steps.
MAIN_FLAGS = ("--config=configs/t6.py:tiny", "--config.num_epochs=2", "--config.swa_start_epoch=1",
              "--config.log_every_steps=1", "--config.checkpoint_every_steps=2")
TOTAL_STEPS = 24
KILL_AFTER_STEP = 14  # past the first validation (step 12), so the best checkpoint exists

def _env(cache: pathlib.Path, *xla_flags: str) -> dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(cache))
  env["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *xla_flags]).strip()
  return env


def _run(args, env, cwd=ROOT) -> subprocess.CompletedProcess:
  result = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=TIMEOUT)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp("jax_cache")


# Data parallelism: the same two train steps on 8 devices, on 1, and in 2 processes.


def _split(record: dict, prefix: str) -> dict[str, np.ndarray]:
  return {key[len(prefix):]: value for key, value in record.items() if key.startswith(prefix)}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, cache, uninterrupted_run):
  """The worker's record of the steps on a mesh of 8 fake devices and of 1 device.

  Asks for `uninterrupted_run` only to start the main job first: it runs meanwhile.
  """
  del uninterrupted_run
  out = tmp_path_factory.mktemp("devices")
  _run([sys.executable, WORKER, "devices", out / "record.npz", out / "state.npz"],
       _env(cache, "--xla_force_host_platform_device_count=8"))
  with np.load(out / "record.npz") as record:
    record = dict(record)
  return {"mesh8": _split(record, "mesh8/"), "mesh1": _split(record, "mesh1/"),
          "batch_start": record["batch_start"], "state": out / "state.npz"}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, cache, layouts):
  """The records of the two processes of a local `jax.distributed` job on the same batch."""
  out = tmp_path_factory.mktemp("processes")
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  env = _env(cache, "--xla_force_host_platform_device_count=1")
  del env["JAX_COMPILATION_CACHE_DIR"]  # nothing to reuse; no process loads the other's program
  logs = [open(out / f"process{i}.log", "w", encoding="utf-8") for i in range(2)]
  workers = [subprocess.Popen([sys.executable, str(WORKER), "process", str(out / f"{i}.npz"),
                               str(layouts["state"]), str(port), str(i), "2"],
                              env=env, cwd=ROOT, stdout=logs[i], stderr=subprocess.STDOUT)
             for i in range(2)]
  try:
    codes = [worker.wait(timeout=TIMEOUT) for worker in workers]
  finally:
    for worker, log in zip(workers, logs):
      if worker.poll() is None:
        worker.kill()
        worker.wait()
      log.close()
  for i, code in enumerate(codes):
    assert code == 0, (out / f"process{i}.log").read_text()[-3000:]
  records = []
  for i in range(2):
    with np.load(out / f"{i}.npz") as record:
      records.append(dict(record))
  return records


def _assert_same_forward(record: dict, reference: dict) -> None:
  """Losses and metrics of both steps, and the new batch-norm statistics."""
  for step in range(2):
    for name, value in _split(reference, f"step{step}/").items():
      if name != "['grad_norm']":
        np.testing.assert_allclose(record[f"step{step}/{name}"], value, rtol=1e-5,
                                   err_msg=f"step {step} {name}")
  for name, value in _split(reference, "batch_stats").items():
    np.testing.assert_allclose(record[f"batch_stats{name}"], value, rtol=1e-4, atol=1e-6,
                               err_msg=name)


def _assert_same_gradients_and_update(record: dict, reference: dict) -> None:
  """The accumulated gradients of step 0, the gradient norms, the parameters after step 1."""
  for step in range(2):
    np.testing.assert_allclose(record[f"step{step}/['grad_norm']"],
                               reference[f"step{step}/['grad_norm']"], rtol=1e-4)
  learning_step = float(reference["max_param_change"])  # Adam's first update: about lr
  assert learning_step > 0
  for name, grads in _split(reference, "grads").items():
    scale = float(np.max(np.abs(grads)))
    np.testing.assert_allclose(record[f"grads{name}"], grads, rtol=0, atol=1e-4 * scale + 1e-7,
                               err_msg=name)
    if scale > 1e-6:  # not a bias in front of a batch norm (zero gradient, rounding noise)
      np.testing.assert_allclose(record[f"params{name}"], reference[f"params{name}"], rtol=0,
                                 atol=0.05 * learning_step, err_msg=name)


def test_eight_devices_split_the_global_batch(layouts):
  eight, one = layouts["mesh8"], layouts["mesh1"]
  assert eight["batch_shape"].tolist() == one["batch_shape"].tolist() == [8, 24_000]
  assert eight["batch_devices"] == 8 and eight["local_rows"].tolist() == [1] * 8
  assert one["batch_devices"] == 1 and one["local_rows"].tolist() == [8]
  np.testing.assert_array_equal(eight["local_first_rows"], layouts["batch_start"])


def test_eight_devices_agree_with_one_on_loss_and_batch_statistics(layouts):
  _assert_same_forward(layouts["mesh8"], layouts["mesh1"])


def test_eight_devices_agree_with_one_on_gradients_and_update(layouts):
  _assert_same_gradients_and_update(layouts["mesh8"], layouts["mesh1"])


def test_two_processes_each_feed_half_of_the_global_batch(two_processes, layouts):
  for index, record in enumerate(two_processes):
    assert record["process_index"] == index and record["process_count"] == 2
    assert record["device_count"] == 2 and record["batch_devices"] == 2
    assert record["batch_shape"].tolist() == [8, 24_000]
    assert record["local_rows"].tolist() == [4]
    np.testing.assert_array_equal(record["local_first_rows"],
                                  layouts["batch_start"][4 * index:4 * index + 1])


def test_two_processes_agree_with_one_device_on_loss_and_batch_statistics(two_processes,
                                                                           layouts):
  first, second = two_processes
  _assert_same_forward(first, layouts["mesh1"])
  for name in _split(first, "params"):  # the replicated state is the same on both
    np.testing.assert_array_equal(first[f"params{name}"], second[f"params{name}"])


def test_two_processes_agree_with_one_device_on_gradients_and_update(two_processes, layouts):
  _assert_same_gradients_and_update(two_processes[0], layouts["mesh1"])


# The main job: a run to the end, and a run killed and restarted that must log the same.


def _main_command(workdir: pathlib.Path, data_dir: pathlib.Path) -> list[str]:
  return [sys.executable, "-m", "s2s_jax.main", f"--workdir={workdir}", *MAIN_FLAGS,
          f"--config.data_dir={data_dir}"]


def _records(workdir: pathlib.Path) -> list[dict]:
  lines = (workdir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
  return [json.loads(line) for line in lines]


def _last_per_step(records: list[dict], key: str) -> dict[int, float]:
  """The last value logged per step (a resumed run logs the steps after its checkpoint again)."""
  return {r["step"]: r[key] for r in records if key in r}


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory, tiny_data_dir, cache):
  """(workdir, process) of the main job, started in the background and run to its end."""
  workdir = tmp_path_factory.mktemp("uninterrupted") / "workdir"
  with open(workdir.parent / "main.log", "w", encoding="utf-8") as log:
    run = subprocess.Popen(_main_command(workdir, tiny_data_dir), env=_env(cache), cwd=ROOT,
                           stdout=log, stderr=subprocess.STDOUT)
    yield workdir, run
    if run.poll() is None:
      run.kill()
      run.wait()


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_run) -> pathlib.Path:
  workdir, run = uninterrupted_run
  code = run.wait(timeout=TIMEOUT)
  assert code == 0, (workdir.parent / "main.log").read_text()[-3000:]
  return workdir


def _event_values(folder: pathlib.Path) -> dict[str, list[tuple[int, str]]]:
  """tag -> [(step, kind of value)] of every TensorBoard event file under `folder`."""
  tf = pytest.importorskip("tensorflow")
  values = {}
  for path in sorted(folder.glob("events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        values.setdefault(value.tag, []).append((event.step, value.WhichOneof("value")))
  return values


def test_main_job_trains_evaluates_and_reports(uninterrupted):
  train_loss = _last_per_step(_records(uninterrupted), "train/loss")
  assert sorted(train_loss) == list(range(1, TOTAL_STEPS + 1))
  assert all(math.isfinite(loss) for loss in train_loss.values())
  results = json.loads((uninterrupted / "results.json").read_text())
  assert results["step"] == TOTAL_STEPS and not results["stopped_early"]
  rows = {row["predictor"]: row for row in results["test_mfccd"]}
  assert set(rows) == {"model", "random_train_voice", "mode_voice"}
  for row in rows.values():
    assert row["examples"] == 6  # the tiny config's test split
    assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("mfccd13", "mfccd30"))
  assert math.isfinite(results["test_metrics"]["loss"])
  assert results["best_validation"]["source"] in ("validation", "swa")
  assert [p.name for p in (uninterrupted / "best").iterdir()] == [
      str(results["best_validation"]["step"])]
  assert [p.name for p in (uninterrupted / "checkpoints").iterdir()] == [str(TOTAL_STEPS)]
  events = _event_values(uninterrupted / "tensorboard")
  assert [step for step, _ in events["train/loss"]] == list(range(1, TOTAL_STEPS + 1))
  assert [step for step, _ in events["validation/loss"]] == [12, 24]
  assert [step for step, _ in events["swa/loss"]] == [24]
  assert "test/model_mfccd13" in events
  images = [values for tag, values in events.items() if tag.endswith("target_above_prediction")]
  assert len(images) == 2 and all(kind == "image" for values in images for _, kind in values)


def _finished_checkpoints(workdir: pathlib.Path) -> list[int]:
  """Steps of the finalised checkpoints (orbax writes to a temporary folder, then renames)."""
  folder = workdir / "checkpoints"
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir()
                if p.name.isdigit() and (p / "_CHECKPOINT_METADATA").exists())


def test_killed_run_resumes_exactly(uninterrupted, tmp_path, tiny_data_dir, cache):
  workdir = tmp_path / "killed"
  command, env = _main_command(workdir, tiny_data_dir), _env(cache)
  with open(tmp_path / "killed.log", "w", encoding="utf-8") as log:
    run = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT
    try:
      while not any(s >= KILL_AFTER_STEP for s in _finished_checkpoints(workdir)):
        assert run.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)
    finally:
      run.send_signal(signal.SIGKILL)
      run.wait()
  logged_before_kill = _last_per_step(_records(workdir), "train/loss")

  resumed = _run(command, env)
  match = re.search(r"resumed from step (\d+)", resumed.stderr)
  assert match, resumed.stderr[-3000:]
  restored = int(match.group(1))
  assert KILL_AFTER_STEP <= restored < TOTAL_STEPS
  assert sorted(logged_before_kill)[:restored] == list(range(1, restored + 1))
  assert f"step {restored + 1}/{TOTAL_STEPS}" in resumed.stdout
  assert f"step {restored}/{TOTAL_STEPS}" not in resumed.stdout  # nothing trained twice

  expected, records = _records(uninterrupted), _records(workdir)
  for key in ("train/loss", "train/grad_norm", "validation/loss", "swa/loss", "test/loss"):
    want, got = _last_per_step(expected, key), _last_per_step(records, key)
    assert sorted(got) == sorted(want), key
    np.testing.assert_array_equal([got[s] for s in sorted(got)], [want[s] for s in sorted(want)],
                                  err_msg=key)
  assert (json.loads((workdir / "results.json").read_text())
          == json.loads((uninterrupted / "results.json").read_text()))
