"""Matching latency: one input against one model and against one model per DX7 algorithm, and
how soon a fresh `s2s-match` process gives its first result.

Models are `--config`'s network with freshly initialised variables saved as training workdirs
(speed does not depend on the weights). Rows: warm matches without refinement (median over
`--repeats`), beside their parts (the networks alone, applied one after the other as
`infer.predictor.Predictor` does, and the alternative: stacked under one vmap), then the cold start
(loading the models, compiling, the first match, whole `s2s-match` processes).

The cold-start rows time what a user sees: `s2s-match` with the bundled model and no refinement
on the five example sounds (`s2s_jax.examples`), as a new process, from its start to its first
result line (wall, and the process's CPU time by then): first with an empty compilation cache
(a fresh HOME, so ~/.cache/s2s_jax is empty), then again with the cache the first run left; the
seconds between later result lines (each further sound, warm); and one sound with `--library`
(`--library-voices` random voices, their features cached by a first run). Medians over
`--cold-repeats`. `--compare DIR` times another checkout's `s2s-match` the same way, in turn
with this one (e.g. the code before a change, from `git worktree add DIR main`).
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import soundfile

import s2s_jax
from s2s_jax import config_file
from s2s_jax import examples
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
from s2s_jax.synth import sysex
from s2s_jax.train import checkpointing
from s2s_jax.util import report


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", default="configs/t6.py:cpu",
                      help="config file[:variant] of the models' network")
  parser.add_argument("--models", type=int, nargs="*", default=[1, 32],
                      help="model counts to time (one per algorithm, from 1; none: skip)")
  parser.add_argument("--top-k", type=int, default=4, help="candidates per model")
  parser.add_argument("--repeats", type=int, default=5, help="timed warm matches (median)")
  parser.add_argument("--cold-repeats", type=int, default=3,
                      help="rounds of cold-start processes, bundled model (median; 0: skip)")
  parser.add_argument("--library-voices", type=int, default=128,
                      help="random voices in the cold-start runs' --library")
  parser.add_argument("--compare", type=pathlib.Path, default=None, metavar="DIR",
                      help="also time the cold start of the checkout in DIR (default none)")


def save_models(spec: str, count: int, folder: pathlib.Path) -> list[pathlib.Path]:
  """`count` workdirs of `spec`'s network, initialised, for algorithms 1..count."""
  config = config_file.load(spec)
  network = sound2synth.create_model(config, workdir_lib.parameter_space(config))
  banks = FeatureBanks.create()
  audio = np.zeros((1, banks.spec.num_samples), np.float32)
  # One program: the featuriser's operations one by one would each compile on their own.
  init = jax.jit(lambda key, banks, audio: network.init(key, model_inputs(banks, audio),
                                                        train=False))
  workdirs = []
  for algorithm in range(1, count + 1):
    workdir = folder / f"alg{algorithm:02d}"
    workdir.mkdir(parents=True)
    config.dataset_config = f"alg{algorithm:02d}"
    workdir_lib.write_config(workdir, config, ClipSpec())
    variables = init(jax.random.key(algorithm), banks, audio)
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
                    str(input_path.parent / f"out_{len(workdirs)}_{cache}"), "--top-k",
                    str(top_k), "--refine-renders", "0",
                    *[a for w in workdirs for a in ("--model", str(w))]],
                   check=True, capture_output=True, env=env)
    rows.append({"models": len(workdirs), "what": f"cold: s2s-match process ({cache} compile "
                 "cache)", "seconds": time.perf_counter() - start, "vs_networks": float("nan")})
  return rows


def first_results(command: list[str], env: dict[str, str], cwd: pathlib.Path | None = None
                  ) -> dict[str, object]:
  """Runs `command` (an `s2s-match`, in `cwd`): "first" seconds from its start to its first
  result line, "first_cpu" its CPU seconds by then, "next" and "next_cpu" the same between
  later result lines, "cpu" its CPU seconds in all, "wall" its whole run. RuntimeError if it
  fails."""
  before = _children_cpu()
  start = time.perf_counter()
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, cwd=cwd)
  times, cpus = [], []
  for line in process.stdout:
    if ": MFCCD-13 " in line:  # a result line (see match.cli._line)
      times.append(time.perf_counter() - start)
      cpus.append(_process_cpu(process.pid))
  errors = process.stderr.read()
  if process.wait() or not times:
    raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {errors[-2000:]}")
  return {"first": times[0], "first_cpu": cpus[0], "next": list(np.diff(times)),
          "next_cpu": list(np.diff(cpus)), "cpu": _children_cpu() - before,
          "wall": time.perf_counter() - start}


def _process_cpu(pid: int) -> float:
  """CPU seconds (user + system, all threads) of a running process so far (Linux), else NaN."""
  try:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
  except OSError:
    return float("nan")
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def _library(folder: pathlib.Path, voices: int) -> pathlib.Path:
  """`voices` random voices (rounded up to whole banks) as 32-voice .syx banks in `folder`."""
  rng = np.random.default_rng(0)
  folder.mkdir(parents=True)
  for bank in range(-(-voices // 32)):
    drawn = [generate.sample_voice(rng, algorithm=(bank * 32 + i) % 32 + 1) for i in range(32)]
    (folder / f"bank{bank:02d}.syx").write_bytes(sysex.bank_message(np.stack(drawn)))
  return folder


def cold_env(checkout: pathlib.Path, home: pathlib.Path) -> dict[str, str]:
  """A user with default settings and an empty HOME (so an empty ~/.cache/s2s_jax) running
  `checkout`'s code; matplotlib keeps its font cache (not ours to time)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  settings = ("S2S_CACHE_DIR", "XDG_CACHE_HOME", "S2S_COMPILATION_CACHE",
              "JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
  env = {k: v for k, v in os.environ.items() if k not in settings}
  return env | {"HOME": str(home), "PYTHONPATH": str(checkout),
                "MPLCONFIGDIR": matplotlib.get_cachedir()}


def time_cold_start(checkouts: dict[str, pathlib.Path], folder: pathlib.Path, repeats: int,
                    library_voices: int) -> list[dict[str, object]]:
  """The cold-start rows (see the module docstring) of each checkout, named by its key; the
  checkouts take turns in each round."""
  sounds = [str(p) for p in examples.write_examples(folder / "sounds")]
  library = _library(folder / "library", library_voices)
  runs = {name: [] for name in checkouts}
  for round_ in range(repeats):
    for index, (name, checkout) in enumerate(checkouts.items()):
      home = folder / f"home_{index}_{round_}"
      home.mkdir()
      env = cold_env(checkout, home)

      def match(inputs, *options, out):
        # Run in the checkout: `python -m` puts the working folder first on the path.
        return first_results([sys.executable, "-m", "s2s_jax.match.cli", *inputs, "--out",
                              str(home / out), "--refine-renders", "0", *options], env,
                             cwd=checkout)

      runs[name].append({
          "empty": match(sounds, out="empty"), "warm": match(sounds, out="warm"),
          "library_new": match(sounds[:1], "--library", str(library), out="library_new"),
          "library": match(sounds[:1], "--library", str(library), out="library")})
  rows = []
  for name, results in runs.items():
    def row(what, seconds, cpu):
      return {"models": 1, "what": f"cold start ({name}): {what}", "seconds": seconds,
              "vs_networks": float("nan"), "cpu_seconds": cpu}

    def median(run, key):
      return statistics.median(r[run][key] for r in results)

    rows += [
        row("s2s-match, empty compile cache, first result", median("empty", "first"),
            median("empty", "first_cpu")),
        row("s2s-match, warm compile cache, first result", median("warm", "first"),
            median("warm", "first_cpu")),
        row("each further sound in a process", *(statistics.median(
            t for r in results for run in ("empty", "warm") for t in r[run][key])
            for key in ("next", "next_cpu"))),
        row(f"--library ({library_voices} new voices), first result",
            median("library_new", "first"), median("library_new", "first_cpu")),
        row(f"--library ({library_voices} cached voices), first result",
            median("library", "first"), median("library", "first_cpu")),
    ]
  return rows


def run(args: argparse.Namespace) -> None:
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    folder = pathlib.Path(tmp)
    if args.models:
      workdirs = save_models(args.config, max(args.models), folder / "models")
      input_path = _input(folder)
    for count in args.models:
      rows += time_models(workdirs[:count], input_path, args.top_k, args.repeats)
      rows += time_process(workdirs[:count], input_path, args.top_k)
    if args.cold_repeats:
      checkouts = {"this checkout": pathlib.Path(s2s_jax.__file__).resolve().parents[1]}
      if args.compare:
        checkouts[str(args.compare)] = args.compare.resolve()
      rows += time_cold_start(checkouts, folder / "cold", args.cold_repeats,
                              args.library_voices)
  rows = [row | {"cpu_seconds": row.get("cpu_seconds", float("nan"))} for row in rows]
  report.publish("match", rows, args.json, {
      "config": args.config, "top_k": args.top_k, "repeats": args.repeats,
      "cold_repeats": args.cold_repeats, "library_voices": args.library_voices,
      "compare": None if args.compare is None else str(args.compare),
      "load_average": os.getloadavg(), "backend": jax.default_backend()})
