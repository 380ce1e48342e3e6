"""Training: data parallelism over devices, a run end to end, exact resume after a kill.

The run end to end is the session's `tiny_model`, trained in this process. The device test is
a subprocess (fake CPU devices must be set up before JAX starts), and so is the run that is
killed and resumed through the entry point; it reuses the compiled programs of `tiny_model`
(the session's compilation cache) and must log what it logged. Multi-process jobs:
test_multiprocess.py; the loop's other paths in process: test_train_loop.py.
"""

import json
import math
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import main_job
from main_job import ROOT, TIMEOUT

WORKER = ROOT / "tests" / "parallel_worker.py"
TOTAL_STEPS = 24  # main_job.TINY: 2 epochs of 12 steps
KILL_AFTER_STEP = 14  # past the first validation (step 12), so the best checkpoint exists


def _run(args, env, cwd=ROOT) -> subprocess.CompletedProcess:
  result = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=TIMEOUT)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


# Data parallelism: the same two train steps on 8 devices and on 1.


def _split(record: dict, prefix: str) -> dict[str, np.ndarray]:
  return {key[len(prefix):]: value for key, value in record.items() if key.startswith(prefix)}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
  """The worker's record of the steps on a mesh of 8 fake devices and of 1 device."""
  out = tmp_path_factory.mktemp("devices")
  _run([sys.executable, WORKER, out / "record.npz"], main_job.env(devices=8))
  with np.load(out / "record.npz") as record:
    record = dict(record)
  return {"mesh8": _split(record, "mesh8/"), "mesh1": _split(record, "mesh1/"),
          "batch_start": record["batch_start"]}


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


# A run to the end (the session's `tiny_model`), and a run killed and restarted that must log
# the same.


@pytest.fixture(scope="module")
def uninterrupted(tiny_model) -> pathlib.Path:
  return tiny_model


def _event_values(folder: pathlib.Path) -> dict[str, list[tuple[int, str]]]:
  """tag -> [(step, kind of value)] of every TensorBoard event file under `folder`."""
  tf = pytest.importorskip("tensorflow")
  values = {}
  for path in sorted(folder.glob("events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        values.setdefault(value.tag, []).append((event.step, value.WhichOneof("value")))
  return values


def test_a_run_trains_evaluates_and_reports(uninterrupted):
  records = main_job.records(uninterrupted)
  train_loss = main_job.last_per_step(records, "train/loss")
  assert sorted(train_loss) == list(range(1, TOTAL_STEPS + 1))
  assert all(math.isfinite(loss) for loss in train_loss.values())
  assert main_job.kinds(records) == [(s, "train") for s in range(1, 13)] + [(12, "validation")] + [
      (s, "train") for s in range(13, 25)] + [(24, "validation"), (24, "swa"), (24, "test")]
  results = json.loads((uninterrupted / "results.json").read_text())
  assert results["step"] == TOTAL_STEPS and not results["stopped_early"]
  assert results["nonfinite_steps"] == 0
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


def test_killed_run_resumes_exactly(uninterrupted, tmp_path, tiny_data_dir):
  workdir = tmp_path / "killed"
  command, env = main_job.command(workdir, tiny_data_dir, *main_job.TINY_FLAGS), main_job.env()
  with open(tmp_path / "killed.log", "w", encoding="utf-8") as log:
    run = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT
    try:
      while not any(s >= KILL_AFTER_STEP for s in main_job.finished_checkpoints(workdir)):
        assert run.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)
    finally:
      run.send_signal(signal.SIGKILL)
      run.wait()
  logged_before_kill = main_job.last_per_step(main_job.records(workdir), "train/loss")

  resumed = _run(command, env)
  match = re.search(r"resumed from step (\d+)", resumed.stderr)
  assert match, resumed.stderr[-3000:]
  restored = int(match.group(1))
  assert KILL_AFTER_STEP <= restored < TOTAL_STEPS
  assert sorted(logged_before_kill)[:restored] == list(range(1, restored + 1))
  assert f"step {restored + 1}/{TOTAL_STEPS}" in resumed.stdout
  assert f"step {restored}/{TOTAL_STEPS}" not in resumed.stdout  # nothing trained twice

  expected, records = main_job.records(uninterrupted), main_job.records(workdir)
  assert main_job.kinds(records) == main_job.kinds(expected)  # no row repeated after the resume
  for key in ("train/loss", "train/grad_norm", "validation/loss", "swa/loss", "test/loss"):
    want, got = main_job.last_per_step(expected, key), main_job.last_per_step(records, key)
    assert sorted(got) == sorted(want), key
    np.testing.assert_array_equal([got[s] for s in sorted(got)], [want[s] for s in sorted(want)],
                                  err_msg=key)
  assert (json.loads((workdir / "results.json").read_text())
          == json.loads((uninterrupted / "results.json").read_text()))
