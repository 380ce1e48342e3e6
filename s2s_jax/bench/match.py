"""Matching latency: one input against one model and against one model per DX7 algorithm.

Models are `--config`'s network with freshly initialised variables saved as training workdirs
(speed does not depend on the weights). Rows: warm matches without refinement (median over
`--repeats`), beside their parts (the networks alone, applied one after the other as
`infer.predictor.Predictor` does, and the alternative: stacked under one vmap), then the cold start
(loading the models, compiling, the first match, whole `s2s-match` processes).
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import soundfile

from s2s_jax import config_file
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.features import FeatureBanks
from s2s_jax.infer import predictor as predictor_lib
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.infer.inputs import model_inputs
from s2s_jax.match import matcher as matcher_lib
from s2s_jax.match import target as target_lib
from s2s_jax.models import sound2synth
from s2s_jax.synth import generate
from s2s_jax.synth import render as R
from s2s_jax.train import checkpointing
from s2s_jax.util import report


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", default="configs/t6.py:cpu",
                      help="config file[:variant] of the models' network")
  parser.add_argument("--models", type=int, nargs="+", default=[1, 32],
                      help="model counts to time (one per algorithm, from 1)")
  parser.add_argument("--top-k", type=int, default=4, help="candidates per model")
  parser.add_argument("--repeats", type=int, default=5, help="timed warm matches (median)")


def save_models(spec: str, count: int, folder: pathlib.Path) -> list[pathlib.Path]:
  """`count` workdirs of `spec`'s network, initialised, for algorithms 1..count."""
  config = config_file.load(spec)
  network = sound2synth.create_model(config, workdir_lib.parameter_space(config))
  banks = FeatureBanks.create()
  audio = np.zeros((1, banks.spec.num_samples), np.float32)
  init = jax.jit(functools.partial(network.init, train=False))
  workdirs = []
  for algorithm in range(1, count + 1):
    workdir = folder / f"alg{algorithm:02d}"
    workdir.mkdir(parents=True)
    config.dataset_config = f"alg{algorithm:02d}"
    workdir_lib.write_config(workdir, config, ClipSpec())
    variables = init(jax.random.key(algorithm), model_inputs(banks, audio))
    checkpoints = checkpointing.Checkpoints(workdir)
    checkpoints.save_best(1, dict(variables), {"source": "s2s-bench match"})
    checkpoints.wait()
    checkpoints.close()
    workdirs.append(workdir)
  return workdirs


def _input(folder: pathlib.Path) -> pathlib.Path:
  """A rendered voice of algorithm 1, as a file: what a user hands s2s-match."""
  rng = np.random.default_rng(0)
  audio = R.DexedRenderer().render(generate.sample_voice(rng, algorithm=1))
  path = folder / "input.wav"
  soundfile.write(path, audio, R.DexedRenderer().settings.sample_rate, subtype="FLOAT")
  return path


def time_models(workdirs: list[pathlib.Path], input_path: pathlib.Path, top_k: int,
                repeats: int) -> list[dict[str, object]]:
  start = time.perf_counter()
  loaded = [workdir_lib.load_model(w) for w in workdirs]
  load_s = time.perf_counter() - start
  matcher = matcher_lib.Matcher(loaded, matcher_lib.MatchSettings(top_k=top_k))
  target = target_lib.load_target(input_path)
  start = time.perf_counter()
  matcher.match(target)
  first_s = time.perf_counter() - start
  match_s = report.median_seconds(lambda: matcher.match(target), repeats)
  target_s = report.median_seconds(lambda: target_lib.load_target(input_path), repeats)
  batch = target.audio[None]
  ours_s = report.median_seconds(lambda: matcher.predictor.probabilities(batch), repeats)
  stacked = _stacked_probabilities(matcher.predictor)
  inputs = matcher.predictor.inputs(batch)
  stacked_s = report.median_seconds(lambda: np.asarray(stacked(inputs)), repeats)
  n = len(workdirs)
  return [
      {"models": n, "what": "match, warm (no refinement)", "seconds": match_s,
       "vs_networks": match_s / ours_s},
      {"models": n, "what": "  read + trim + pitch of the input", "seconds": target_s,
       "vs_networks": target_s / ours_s},
      {"models": n, "what": "  networks, one after the other (ours)", "seconds": ours_s,
       "vs_networks": 1.0},
      {"models": n, "what": "  networks, stacked under vmap (alternative)", "seconds": stacked_s,
       "vs_networks": stacked_s / ours_s},
      {"models": n, "what": "cold: load models", "seconds": load_s,
       "vs_networks": load_s / ours_s},
      {"models": n, "what": "cold: first match (compiles)", "seconds": first_s,
       "vs_networks": first_s / ours_s},
  ]


def _stacked_probabilities(predictor: predictor_lib.Predictor):
  """The alternative to `Predictor`'s loop: every model's variables stacked, one vmapped
  program (the models must share one architecture) -> jitted fn(inputs)."""
  network = sound2synth.create_model(predictor.models[0].config, predictor.space)
  stacked = jax.tree.map(lambda *x: jnp.stack(x), *[m.variables for m in predictor.models])
  apply = jax.vmap(functools.partial(predictor_lib.network_probabilities, network,
                                     predictor.layout), in_axes=(0, None))
  return jax.jit(lambda inputs: apply(stacked, inputs))


def time_process(workdirs: list[pathlib.Path], input_path: pathlib.Path, top_k: int
                 ) -> list[dict[str, object]]:
  """Whole `s2s-match` processes, interpreter start to outputs written: the first with an
  empty compilation cache, the second reading what the first compiled."""
  cache_dir = input_path.parent / f"jax_cache_{len(workdirs)}"
  env = os.environ | {"JAX_COMPILATION_CACHE_DIR": str(cache_dir)}
  rows = []
  for cache in ("empty", "warm"):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "s2s_jax.match.cli", str(input_path), "--out",
                    str(input_path.parent / f"out_{len(workdirs)}_{cache}"), "--top-k", str(top_k), "--refine-renders",
                    "0", *[a for w in workdirs for a in ("--model", str(w))]],
                   check=True, capture_output=True, env=env)
    rows.append({"models": len(workdirs), "what": f"cold: s2s-match process ({cache} compile "
                 "cache)", "seconds": time.perf_counter() - start, "vs_networks": float("nan")})
  return rows


def run(args: argparse.Namespace) -> None:
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    folder = pathlib.Path(tmp)
    workdirs = save_models(args.config, max(args.models), folder / "models")
    input_path = _input(folder)
    for count in args.models:
      rows += time_models(workdirs[:count], input_path, args.top_k, args.repeats)
      rows += time_process(workdirs[:count], input_path, args.top_k)
  report.publish("match", rows, args.json, {
      "config": args.config, "top_k": args.top_k, "repeats": args.repeats,
      "backend": jax.default_backend()})
