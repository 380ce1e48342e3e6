"""Training speed: samples per second and step time (compile excluded) per config.

For each config the jitted training step (featurise on the device, forward, backward, AdamW)
runs on a synthetic batch of `--batch` clips on all local devices; beside it, the
featuriser alone on the same batch, the floor every step pays. Step times are medians.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax

from s2s_jax import config_file
from s2s_jax.audio.features import FeatureBanks, featurise
from s2s_jax.infer import logits as logits_lib
from s2s_jax.models import sound2synth
from s2s_jax.models import synthetic
from s2s_jax.infer import workdir as workdir_lib
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


def time_config(spec: str, batch_size: int | None, dtype: str | None, repeats: int
                ) -> dict[str, object]:
  config = config_file.load(spec)
  if dtype:
    config.model.dtype = dtype
  batch_size = batch_size or config.per_step_batch_size
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
  compile_s = time.perf_counter() - start
  holder = [state]

  def run_step():
    holder[0], metrics = compiled(holder[0], batch, banks)
    jax.block_until_ready(metrics)

  step_s = report.median_seconds(run_step, repeats)
  features_fn = jax.jit(featurise)
  features_s = report.median_seconds(
      lambda: jax.block_until_ready(features_fn(banks, batch["audio"])), repeats)
  return {"config": spec, "dtype": config.model.dtype, "batch": batch_size,
          "params": sound2synth.count_parameters(state.params),
          "compile_s": compile_s, "step_s": step_s, "samples_per_s": batch_size / step_s,
          "featurise_s": features_s, "step_vs_featurise": step_s / features_s}


def run(args: argparse.Namespace) -> None:
  rows = [time_config(spec, args.batch, args.dtype, args.repeats) for spec in args.configs]
  report.publish("train", rows, args.json, {
      "backend": jax.default_backend(), "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind, "repeats": args.repeats})
