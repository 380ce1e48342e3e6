"""`s2s-bench train`: JAX against the same network in PyTorch (the `bench` extra)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax import config_file
from s2s_jax.bench import cli
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.bench import train as train_bench
from s2s_jax.infer import logits as logits_lib
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.models import sound2synth
from s2s_jax.models import synthetic
from s2s_jax.train import losses

# Backbone parameters of the full network by `s2s-bench model --config=configs/t6.py`
# (BUILD_NOTES, "Parameters per branch").
FULL_BACKBONE_PARAMS = {"stft": 10_273_920, "cqt": 671_616, "mfcc": 2_259_072,
                        "statistics": 1_035_264}


def _jax_parameters(config):
  space = workdir_lib.parameter_space(config)
  model = sound2synth.create_model(config, space)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), synthetic.random_features(1),
                                             train=False))["params"]
  return model, space, shapes


@pytest.mark.parametrize("variant", ["reference", "cpu", "tiny"])
def test_torch_model_has_the_jax_parameters_per_part(variant):
  torch_model = pytest.importorskip("s2s_jax.bench.torch_model")
  config = config_file.load(f"configs/t6.py:{variant}")
  model, _, shapes = _jax_parameters(config)
  spec = FeatureSpec()
  ours = torch_model.TorchSound2Synth(model, spec.num_frames, spec.n_mfcc)
  count = sound2synth.count_parameters
  for branch in config.model.branches:
    assert (torch_model.count_parameters(ours.backbones[branch])
            == count(shapes[f"backbones_{branch}"])), branch
  assert torch_model.count_parameters(ours.fusion) == count(shapes["fusion"])
  assert torch_model.count_parameters(ours.head) == count(shapes["head"])
  if variant == "reference":
    assert {b: torch_model.count_parameters(ours.backbones[b])
            for b in config.model.branches} == FULL_BACKBONE_PARAMS


def test_torch_logits_and_loss_agree_with_jax():
  torch_model = pytest.importorskip("s2s_jax.bench.torch_model")
  torch = pytest.importorskip("torch")
  config = config_file.load("configs/t6.py:tiny")
  model, space, _ = _jax_parameters(config)
  features = synthetic.random_features(2)
  ours = torch_model.TorchSound2Synth(model, features["mfcc"].shape[1], features["mfcc"].shape[2])
  logits = ours({k: torch.from_numpy(np.array(v)) for k, v in features.items()})
  assert logits.shape == (2, space.total_classes)

  # The loss ported to PyTorch against train.losses on the same logits and labels.
  layout = logits_lib.ClassLayout.create(space)
  batch = synthetic.synthetic_batch(2, space)
  weights = np.random.default_rng(0).uniform(0, 2, batch["weights"].shape).astype(np.float32)
  expected, _ = losses.loss_and_metrics(
      jnp.asarray(logits.detach().numpy()), batch["labels"], weights, layout,
      sigma=0.02, use_weights=True, mask_inactive=False)
  targets = np.asarray(losses.smoothed_targets(batch["labels"], layout, 0.02))
  ported = torch_model.parameter_loss(
      logits, torch.as_tensor(targets), torch.as_tensor(weights),
      torch.as_tensor(np.asarray(layout.index)), torch.as_tensor(np.asarray(layout.valid)),
      torch.as_tensor(np.asarray(layout.num_classes)))
  assert float(ported) == pytest.approx(float(expected), rel=1e-5)
  assert 0.5 < float(expected) < 2  # near 1: an untrained network is near uniform


def test_benchmark_without_torch_times_jax_alone(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(train_bench, "torch_available", lambda: False)
  out = tmp_path / "train.json"
  # `s2s-bench speed --quick`'s options (tests/test_cli.py): the step compiles once a session.
  cli.main(["train", "--configs", "configs/t6.py:tiny", "--batch", "1", "--repeats", "1",
            "--settings", "tuned", "--matmul-size", "512", "--json", str(out)])
  assert "PyTorch is not installed" in capsys.readouterr().out
  result = json.loads(out.read_text())
  (row,) = result["rows"]
  assert (row["framework"], row["setting"], row["batch"]) == ("jax", "tuned", 1)
  assert row["vs_torch_tuned"] is None
  assert row["samples_per_s"] == pytest.approx(1 / row["step_s"])
  # The tiny step does at least its forward matmuls: more than 1 MFLOP a sample.
  assert row["gflop_per_sample"] > 1e-3
  assert row["achieved_gflop_s"] == pytest.approx(
      row["gflop_per_sample"] * row["samples_per_s"])
  assert result["settings"]["matmul_size"] == 512
  peak = result["settings"]["peak_gflop_s"]["float32"]
  assert row["pct_peak_fp32"] == pytest.approx(100 * row["achieved_gflop_s"] / peak)


def test_benchmark_compares_jax_with_torch(tmp_path):
  pytest.importorskip("torch")
  out = tmp_path / "train.json"
  cli.main(["train", "--configs", "configs/t6.py:tiny", "--batch", "1", "--repeats", "1",
            "--settings", "tuned", "--matmul-size", "512", "--json", str(out)])
  rows = {row["framework"]: row for row in json.loads(out.read_text())["rows"]}
  assert set(rows) == {"jax", "torch"}
  assert rows["jax"]["params"] == rows["torch"]["params"]
  assert rows["torch"]["vs_torch_tuned"] == 1
  assert rows["jax"]["vs_torch_tuned"] == pytest.approx(
      rows["torch"]["step_s"] / rows["jax"]["step_s"])
