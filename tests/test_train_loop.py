"""`train_and_evaluate` in process, on the `tiny` dataset: a short run, a rerun, a diverging run.

In the manner of flax's examples: the real loop (grain input, orbax checkpoints, evaluation with
Dexed renders) for one epoch of 12 steps of the tiny network, in this process.
"""

import json
import math

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import main_job
from s2s_jax import config_file
from s2s_jax.audio.features import FeatureBanks
from s2s_jax.models import sound2synth
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import train

STEPS = 12  # one epoch of the tiny dataset's 48 training examples, 4 per step


def _config(data_dir, **overrides):
  config = config_file.load(str(main_job.ROOT / "configs" / "t6.py") + ":tiny")
  config.update(data_dir=str(data_dir), num_epochs=1, **overrides)
  return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_data_dir):
  """(workdir, results, metrics.jsonl rows) of a finished one-epoch run."""
  workdir = tmp_path_factory.mktemp("loop") / "workdir"
  results = train.train_and_evaluate(_config(tiny_data_dir), str(workdir))
  return workdir, results, main_job.records(workdir)


def test_a_short_run_trains_checkpoints_and_reports(finished):
  workdir, results, records = finished
  train_loss = main_job.last_per_step(records, "train/loss")
  assert sorted(train_loss) == list(range(2, STEPS + 1, 2))  # tiny logs every 2 steps
  assert all(math.isfinite(loss) for loss in train_loss.values())
  assert main_job.kinds(records) == [(s, "train") for s in range(2, STEPS + 1, 2)] + [
      (STEPS, "validation"), (STEPS, "test")]
  assert [p.name for p in (workdir / "checkpoints").iterdir()] == [str(STEPS)]
  assert [p.name for p in (workdir / "best").iterdir()] == [str(STEPS)]
  assert results["step"] == STEPS and results["nonfinite_steps"] == 0
  assert results["best_validation"]["source"] == "validation"
  assert [row["predictor"] for row in results["test_mfccd"]] == [
      "model", "random_train_voice", "mode_voice"]
  assert all(row["examples"] == 6 and row["mfccd13"] > 0 for row in results["test_mfccd"])
  assert json.loads((workdir / "results.json").read_text()) == json.loads(
      json.dumps(results, default=float))
  assert json.loads((workdir / "config.json").read_text())["num_epochs"] == 1


def test_rerunning_a_finished_run_repeats_no_row(finished, tiny_data_dir):
  workdir, results, records = finished
  again = train.train_and_evaluate(_config(tiny_data_dir), str(workdir))
  assert again["step"] == STEPS and again["test_mfccd"] == results["test_mfccd"]
  rerun = main_job.records(workdir)
  assert main_job.kinds(rerun) == main_job.kinds(records)
  assert rerun[:-1] == records[:-1]  # the test row is made again, with the same values
  np.testing.assert_allclose(rerun[-1]["test/loss"], records[-1]["test/loss"], rtol=1e-6)


def test_a_diverging_run_stops_after_five_non_finite_steps_and_says_what_to_try(
    tmp_path, tiny_data_dir, caplog):
  # Infinite input noise makes every training clip, and so every loss, non-finite.
  config = _config(tiny_data_dir, input_noise=math.inf)
  with pytest.raises(train.TrainingDiverged) as stopped:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(stopped.value)
  assert message.startswith("stopped at step 5: the loss or gradients were not finite at 5 "
                            "steps in a row (steps 1 to 5; config.max_nonfinite_in_a_row=5)")
  assert "config.learning_rate (now 0.001)" in message and "check the data" in message
  skipped = [r.getMessage() for r in caplog.records if "update skipped" in r.getMessage()]
  assert [m.split(":")[0] for m in skipped] == [f"step {s}" for s in range(1, 6)]

  # The checkpoint of step 4 holds the initial parameters and batch-norm statistics: all four
  # updates were skipped.
  initial = jax.device_get(train.create_state(
      sound2synth.create_model(config, ParameterSpace(config.num_bins)),
      train.create_optimizer(config, 1), FeatureBanks.create(), config.seed, 1))
  saved = ocp.StandardCheckpointer().restore(tmp_path / "checkpoints" / "4" / "state")
  assert int(saved["step"]) == 4
  for name in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal, saved[name], jax.device_get(
        getattr(initial, name)))
