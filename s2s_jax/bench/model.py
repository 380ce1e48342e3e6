"""Model size and speed: parameters, compile time and forward time per branch.

Builds the configured network, then each of its branches alone (the single-modality ablations),
and reports for each: backbone and total parameters, the time to compile a jitted inference
forward pass, and its median time per batch of random features. The head is compared with the
reference's ungrouped head (about 181 M weights).
"""

from __future__ import annotations

import argparse
import time

import jax

from s2s_jax import config_file
from s2s_jax.models import head
from s2s_jax.models import sound2synth
from s2s_jax.models import synthetic
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.util import report

def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", default="configs/t6.py",
                      help="config file[:variant] whose model is measured")
  parser.add_argument("--batch", type=int, default=4, help="examples per forward pass")
  parser.add_argument("--repeats", type=int, default=3, help="timed forward passes (median)")
  parser.add_argument("--dtype", default=None, help="override config.model.dtype")


def measure(config, space: ParameterSpace, features, repeats: int) -> dict[str, object]:
  """Parameters, compile time and median forward time of the model `config` describes."""
  model = sound2synth.create_model(config, space)
  variables = jax.jit(lambda: model.init(jax.random.key(0), features, train=False))()
  forward = jax.jit(lambda v, f: model.apply(v, f, train=False))
  start = time.perf_counter()
  compiled = forward.lower(variables, features).compile()
  compile_s = time.perf_counter() - start
  forward_s = report.median_seconds(lambda: jax.block_until_ready(compiled(variables, features)),
                                    repeats)
  params = variables["params"]
  count = sound2synth.count_parameters
  return {"params": count(params),
          "backbone_params": {b: count(params[f"backbones_{b}"]) for b in config.model.branches},
          "head_params": count(params["head"]), "compile_s": compile_s, "forward_s": forward_s}


def run(args: argparse.Namespace) -> None:
  config = config_file.load(args.config)
  if args.dtype:
    config.model.dtype = args.dtype
  space = workdir_lib.parameter_space(config)
  features = synthetic.random_features(args.batch)
  rows = []
  variants = [tuple(config.model.branches)] + [(b,) for b in config.model.branches]
  for branches in variants if len(variants) > 2 else variants[:1]:
    variant = config.copy_and_resolve_references()
    variant.model.branches = branches
    result = measure(variant, space, features, args.repeats)
    rows.append({"branches": "+".join(branches),
                 "backbone_params": sum(result["backbone_params"].values()),
                 "total_params": result["params"], "head_params": result["head_params"],
                 "compile_s": result["compile_s"],
                 "forward_ms_per_example": 1000 * result["forward_s"] / args.batch})
  for row in rows:
    row["head_vs_reference"] = row.pop("head_params") / head.REFERENCE_HEAD_PARAMS
  report.publish("model", rows, args.json, {
      "config": args.config, "batch": args.batch, "dtype": config.model.dtype,
      "backend": jax.default_backend(), "reference_head_params": head.REFERENCE_HEAD_PARAMS})
