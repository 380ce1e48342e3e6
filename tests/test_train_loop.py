"""`train_and_evaluate` in process, beyond the run of `tiny_model` (test_train.py checks that):
a finished run run again, and a run whose loss is not finite.

Both use the config of `tiny_model`, so its compiled programs serve them (the session's
compilation cache): each takes seconds.
"""

import functools
import json
import math
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import main_job
from s2s_jax.audio.features import FeatureBanks
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.models import sound2synth
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import input_pipeline
from s2s_jax.train import parallel
from s2s_jax.train import train

STEPS = 24  # main_job.TINY


def test_rerunning_a_finished_run_repeats_no_row(tiny_model, tiny_data_dir, tmp_path):
  workdir = tmp_path / "workdir"
  shutil.copytree(tiny_model, workdir)
  records, results = main_job.records(workdir), json.loads((workdir / "results.json").read_text())
  again = train.train_and_evaluate(main_job.tiny_config(tiny_data_dir), str(workdir))
  assert again["step"] == STEPS and again["test_mfccd"] == results["test_mfccd"]
  rerun = main_job.records(workdir)
  assert main_job.kinds(rerun) == main_job.kinds(records)  # SWA and test made again, in place
  for before, after in zip(records, rerun):
    assert before.keys() == after.keys()
    np.testing.assert_allclose([after[k] for k in after], [before[k] for k in before], rtol=1e-6)
  assert json.loads((workdir / "results.json").read_text()) == results


def test_a_run_stops_after_five_non_finite_steps_and_says_what_to_try(
    tiny_data_dir, tmp_path, monkeypatch, caplog):
  next_batch = input_pipeline.Batches.__next__

  def nan_batch(batches):  # the dataset's batch, its audio replaced by NaN
    batch = next_batch(batches)
    return batch | {"audio": np.full_like(batch["audio"], np.nan)}

  monkeypatch.setattr(input_pipeline.Batches, "__next__", nan_batch)
  config = main_job.tiny_config(tiny_data_dir)
  with pytest.raises(train.TrainingDiverged) as stopped:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(stopped.value)
  assert message.startswith("stopped at step 5: the loss or gradients were not finite at 5 "
                            "steps in a row (steps 1 to 5; config.max_nonfinite_in_a_row=5)")
  assert "config.learning_rate (now 0.001)" in message and "check the data" in message
  skipped = [r.getMessage() for r in caplog.records if "update skipped" in r.getMessage()]
  assert [m.split(":")[0] for m in skipped] == [f"step {s}" for s in range(1, 6)]
  assert all(math.isnan(r["train/loss"]) for r in main_job.records(tmp_path))

  # The checkpoint of step 4 holds the initial parameters and batch-norm statistics: the four
  # updates were skipped.
  replicated = parallel.replicated(parallel.data_mesh())
  model = sound2synth.create_model(config, ParameterSpace(config.num_bins))
  create = functools.partial(train.create_state, model, train.create_optimizer(config, 6),
                             seed=config.seed, batch_size=1)  # as train_and_evaluate does
  initial = jax.jit(create, out_shardings=replicated)(
      jax.device_put(FeatureBanks.create(FeatureSpec(clip=input_pipeline.training_clip(config))),
                     replicated))
  saved = ocp.StandardCheckpointer().restore(tmp_path / "checkpoints" / "4" / "state")
  assert int(saved["step"]) == 4
  for name in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal, saved[name],
                 jax.device_get(getattr(initial, name)))


def test_a_network_without_batch_norm_trains_swa_included_and_loads(tiny_data_dir, tmp_path):
  config = main_job.tiny_config(tiny_data_dir)
  config.model.branches = ("statistics",)  # the one branch with no batch norm
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results["step"] == STEPS and results["nonfinite_steps"] == 0
  assert main_job.kinds(main_job.records(tmp_path))[-2:] == [(STEPS, "swa"), (STEPS, "test")]
  model = workdir_lib.load_model(tmp_path)
  assert set(model.variables) == {"params"}
