"""Training speed: samples per second and step time (compile excluded) per config.

For each config the jitted training step (featurise on the device, forward, backward, AdamW)
runs on a synthetic batch of `--batch` clips on all local devices; beside it, the
featuriser alone on the same batch, the floor every step pays. Step times are medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time

import jax
import ml_collections

from s2s_jax import config_file
from s2s_jax.audio.features import FeatureBanks, featurise
from s2s_jax.infer import logits as logits_lib
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.models import sound2synth
from s2s_jax.models import synthetic
from s2s_jax.train import parallel
from s2s_jax.train import train
from s2s_jax.util import report


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--configs", nargs="+", default=["configs/t6.py:cpu", "configs/t6.py"],
                      help="config files[:variant] to time")
  parser.add_argument("--batch", type=int, default=None,
                      help="global batch per step (default: each config's per_step_batch_size)")
  parser.add_argument("--repeats", type=int, default=3, help="timed steps (median kept)")
  parser.add_argument("--dtype", default=None, help="override config.model.dtype")


@dataclasses.dataclass
class CompiledStep:
  """A jitted training step compiled for one config and batch, with what it runs on.

  Attributes:
    config: the training settings.
    compiled: the compiled step: (state, batch, banks) -> (state, metrics).
    state: the train state it updates (donated: `run` replaces it).
    batch: the synthetic global batch, sharded over the devices.
    banks: the featuriser's filter banks, replicated.
    compile_s: seconds to lower and compile.
  """
  config: ml_collections.ConfigDict
  compiled: jax.stages.Compiled
  state: object
  batch: dict[str, jax.Array]
  banks: FeatureBanks
  compile_s: float

  @property
  def batch_size(self) -> int:
    return int(self.batch["audio"].shape[0])

  def run(self) -> None:
    """One training step, waited for."""
    self.state, metrics = self.compiled(self.state, self.batch, self.banks)
    jax.block_until_ready(metrics)


def compile_step(config: ml_collections.ConfigDict, batch_size: int) -> CompiledStep:
  """The training step of `config` on a synthetic batch of `batch_size` clips, on all devices."""
  space = workdir_lib.parameter_space(config)
  mesh = parallel.data_mesh()
  replicated = parallel.replicated(mesh)
  banks = jax.device_put(FeatureBanks.create(), replicated)
  model = sound2synth.create_model(config, space)
  optimizer = train.create_optimizer(config, updates_per_epoch=100)
  state = jax.jit(functools.partial(train.create_state, model, optimizer, seed=0, batch_size=1),
                  out_shardings=replicated)(banks)
  batch = parallel.global_batch(mesh, synthetic.synthetic_batch(batch_size, space, banks.spec))
  step = jax.jit(functools.partial(train.train_step, layout=logits_lib.ClassLayout.create(space),
                                   config=config), donate_argnums=0)
  start = time.perf_counter()
  compiled = step.lower(state, batch, banks).compile()
  return CompiledStep(config, compiled, state, batch, banks, time.perf_counter() - start)


def time_config(spec: str, batch_size: int | None, dtype: str | None, repeats: int
                ) -> dict[str, object]:
  config = config_file.load(spec)
  if dtype:
    config.model.dtype = dtype
  step = compile_step(config, batch_size or config.per_step_batch_size)
  step_s = report.median_seconds(step.run, repeats)
  features_fn = jax.jit(featurise)
  features_s = report.median_seconds(
      lambda: jax.block_until_ready(features_fn(step.banks, step.batch["audio"])), repeats)
  return {"config": spec, "dtype": config.model.dtype, "batch": step.batch_size,
          "params": sound2synth.count_parameters(step.state.params),
          "compile_s": step.compile_s, "step_s": step_s,
          "samples_per_s": step.batch_size / step_s,
          "featurise_s": features_s, "step_vs_featurise": step_s / features_s}


def run(args: argparse.Namespace) -> None:
  rows = [time_config(spec, args.batch, args.dtype, args.repeats) for spec in args.configs]
  report.publish("train", rows, args.json, {
      "backend": jax.default_backend(), "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind, "repeats": args.repeats})
