"""Matching quality, the paper's Table 1 side by side: baselines, search and the network.

Targets are the first `--n-targets` test examples (held-out near-duplicate groups) of the
model's own dataset, compared by their stored audio. Every method's final voice, played with
the target's algorithm, is rendered by one Dexed renderer and scored by MFCCD-13 and MFCCD-30
against the target. Seconds per target are medians over targets of each method's wall clock to
choose its voice (the network's forward pass included, the final scoring render excluded).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time
from typing import NoReturn

import matplotlib
import numpy as np

from s2s_jax.audio import mfccd
from s2s_jax.bench import search_quality
from s2s_jax.infer import predictor as predictor_lib
from s2s_jax.infer import rendering
from s2s_jax.infer import scoring
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.match import candidates
from s2s_jax.match import search
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.train import evaluate
from s2s_jax.train import input_pipeline
from s2s_jax.util import report

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

_BATCH = 32  # examples per read and per MFCC call of the training library


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--model", default=None,
                      help="training workdir of the model; without it, the library and search "
                           "table of --presets (`bench.search_quality`)")
  parser.add_argument("--presets", default="",
                      help="folder of .syx presets, to build the model's dataset if missing")
  parser.add_argument("--algorithm", type=int, default=None,
                      help="1-based DX7 algorithm; must be the model's (or picks the targets "
                           "of a model trained on every algorithm)")
  parser.add_argument("--n-targets", type=int, default=32, help="first test examples matched")
  parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 10000],
                      help="render budgets of hill climbing and the genetic algorithm")
  parser.add_argument("--refine-renders", type=int, default=200,
                      help="renders of the network's refinement")
  parser.add_argument("--top-k", type=int, default=4, help="network candidates rendered")
  parser.add_argument("--seed", type=int, default=0, help="seeds baselines and searches")
  parser.add_argument("--out", required=True, help="folder for quality.json and quality.png")
  parser.add_argument("--sounds", default="", help="folder of sound files matched too (no model)")
  parser.add_argument("--library-k", type=int, default=32,
                      help="nearest library voices rendered as candidates (no model)")
  parser.add_argument("--library-cache", default=None, help="library feature cache folder")
  parser.add_argument("--methods", nargs="+", default=None, metavar="TEXT",
                      help="without --model: only the methods whose name holds one of these")
  parser.add_argument("--network", default=None, metavar="WORKDIR|bundled",
                      help="without --model: add the rows of this network (a workdir, or "
                           "'bundled' for the shipped model) to the library and search table")


def _fail(message: str) -> NoReturn:
  print(f"s2s-bench quality: error: {message}", file=sys.stderr)
  raise SystemExit(2)


def load_targets(model: workdir_lib.TrainedModel, presets: str, algorithm: int | None, count: int
                 ) -> tuple[pathlib.Path, dict[str, np.ndarray]]:
  """The model's dataset folder (built if missing) and its first `count` test examples.

  Returns "audio" [n, samples], "labels" [n, num_params] and "algorithm" [n] (1-based), n <=
  count, only of `algorithm` if given.
  """
  config = model.config.copy_and_resolve_references()
  config.data_dir = input_pipeline.data_dir(config, model.workdir)
  if presets:
    config.manual_dir = presets
  dataset = input_pipeline.prepared_dataset(config)
  kept = {"audio": [], "labels": [], "algorithm": []}
  have = 0
  for batch in input_pipeline.eval_batches(dataset, "test", _BATCH):
    take = (batch["mask"] > 0) & ((batch["algorithm"] == algorithm) if algorithm else True)
    take = np.flatnonzero(take)[:count - have]
    for key, value in kept.items():
      value.append(batch[key][take])
    have += len(take)
    if have == count:
      break
  return dataset, {key: np.concatenate(value) for key, value in kept.items()}


def training_library(dataset: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """Every training example's labels [n, num_params] and MFCC-13 [n, time, 13]."""
  labels, mfccs = [], []
  for batch in input_pipeline.eval_batches(dataset, "train", _BATCH):
    real = batch["mask"] > 0
    labels.append(batch["labels"][real])
    mfccs.append(np.asarray(mfccd.mfcc(batch["audio"]))[real])
  return np.concatenate(labels), np.concatenate(mfccs)


def _timed(fn, *args):
  """(fn(*args), seconds it took)."""
  start = time.perf_counter()
  result = fn(*args)
  return result, time.perf_counter() - start


def choose_voices(args: argparse.Namespace, predictor: predictor_lib.Predictor,
                  targets: dict[str, np.ndarray], library: tuple[np.ndarray, np.ndarray],
                  renderer: R.Renderer) -> tuple[dict[str, dict], np.ndarray]:
  """Each method's voice for each target.

  Returns method -> {"classes" [n, num_params], "renders" per target, "seconds" [n]}, in table
  order, and the network's argmax classes [n, num_params].
  """
  train_labels, train_mfcc = library
  space = predictor.space
  n = len(targets["audio"])
  methods = {}

  def add(name, renders, choose):
    chosen = [_timed(choose, i) for i in range(n)]
    methods[name] = {"classes": np.stack([c for c, _ in chosen]), "renders": renders,
                     "seconds": np.array([s for _, s in chosen])}

  baselines = evaluate.baseline_classes(train_labels, space, n, args.seed)
  add("random training voice", 1, lambda i: baselines["random_train_voice"][i])
  add("per-parameter mode voice", 1, lambda i: baselines["mode_voice"][i])
  add("nearest neighbour (training library)", len(train_labels), lambda i: train_labels[
      int(np.argmin(mfccd.mfcc_distance(train_mfcc, mfccd.mfcc(targets["audio"][i:i + 1]))))])

  def objective(i):
    return search.Objective(targets["audio"][i], space, int(targets["algorithm"][i]), renderer)

  def rng(i):
    return np.random.default_rng((args.seed, i))

  for budget in args.budgets:
    add(f"hill climbing, {budget} renders", budget, lambda i: search.hill_climb(
        objective(i), search.Budget(budget), rng(i)).classes)
    add(f"genetic algorithm, {budget} renders", budget, lambda i: search.genetic(
        objective(i), search.Budget(budget), rng(i)).classes)

  predictor.probabilities(targets["audio"][:1])  # compiles
  network = [_timed(lambda i: predictor.probabilities(targets["audio"][i:i + 1])[0, 0], i)
             for i in range(n)]
  probabilities = [p for p, _ in network]
  network_s = np.array([s for _, s in network])
  add("network (argmax)", 1, lambda i: candidates.top_k_classes(probabilities[i], space, 1)[0])
  methods["network (argmax)"]["seconds"] += network_s

  def top_k(i):
    found = candidates.top_k_classes(probabilities[i], space, args.top_k)
    return found[np.argmin(objective(i)(found))]

  add(f"network + top-k selection ({args.top_k} renders)", args.top_k, top_k)
  selected = methods[f"network + top-k selection ({args.top_k} renders)"]
  selected["seconds"] += network_s
  add(f"network + refinement ({args.top_k} + {args.refine_renders} renders)",
      args.top_k + args.refine_renders, lambda i: search.local_search(
          objective(i), selected["classes"][i], probabilities[i],
          search.Budget(args.refine_renders), rng(i)).classes)
  methods[f"network + refinement ({args.top_k} + {args.refine_renders} renders)"][
      "seconds"] += selected["seconds"]
  return methods, methods["network (argmax)"]["classes"]


def accuracy(predicted: np.ndarray, labels: np.ndarray, continuous: np.ndarray
             ) -> dict[str, float]:
  """Share of parameters predicted right: [n, num_params] twice, mask [num_params]."""
  right = predicted == labels
  return {"overall": float(right.mean()), "continuous": float(right[:, continuous].mean()),
          "discrete": float(right[:, ~continuous].mean())}


def score_rows(methods: dict[str, dict], targets: dict[str, np.ndarray], space,
               renderer: R.Renderer) -> list[dict[str, object]]:
  """One row per method: MFCCD statistics of its voices' renderings against the targets."""
  rows = []
  for name, method in methods.items():
    audio = rendering.render_classes(space, method["classes"], targets["algorithm"], renderer)
    scores = scoring.mfccd_scores(audio, targets["audio"], renderer.settings)
    rows.append({
        "method": name, "targets": len(audio),
        "mfccd13_mean": float(scores["mfccd13"].mean()),
        "mfccd13_median": float(np.median(scores["mfccd13"])),
        "mfccd13_std": float(scores["mfccd13"].std()),
        "mfccd30_mean": float(scores["mfccd30"].mean()),
        "mfccd30_median": float(np.median(scores["mfccd30"])),
        "renders_per_target": int(method["renders"]),
        "seconds_per_target_median": float(np.median(method["seconds"]))})
  return rows


def markdown_table(rows: list[dict[str, object]]) -> str:
  lines = ["| method | MFCCD-13 mean | median | std | MFCCD-30 mean | renders/target "
           "| s/target (median) |", "|---|---:|---:|---:|---:|---:|---:|"]
  lines += [f"| {r['method']} | {r['mfccd13_mean']:.2f} | {r['mfccd13_median']:.2f} | "
            f"{r['mfccd13_std']:.2f} | {r['mfccd30_mean']:.2f} | {r['renders_per_target']} | "
            f"{r['seconds_per_target_median']:.3g} |" for r in rows]
  return "\n".join(lines)


def plot(rows: list[dict[str, object]], path: pathlib.Path) -> None:
  """Horizontal bars of mean MFCCD-13 per method, the median marked."""
  names = [r["method"] for r in rows]
  y = np.arange(len(rows))
  fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
  ax.barh(y, [r["mfccd13_mean"] for r in rows], color="tab:blue", label="mean")
  ax.plot([r["mfccd13_median"] for r in rows], y, "k|", markersize=14, label="median")
  ax.set_yticks(y, names)
  ax.invert_yaxis()
  ax.set_xlabel("MFCCD-13 (lower is better)")
  ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=2, frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _commit() -> str | None:
  try:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=pathlib.Path(__file__).parent, check=False)
  except OSError:
    return None
  return result.stdout.strip() or None


def run(args: argparse.Namespace) -> None:
  if args.model is None:
    search_quality.run(args, _commit())
    return
  for flag in ("n_targets", "top_k", "refine_renders"):
    if getattr(args, flag) < 1:
      _fail(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
  if min(args.budgets) < 1:
    _fail(f"--budgets must be >= 1, got {args.budgets}")
  if args.algorithm is not None and not 1 <= args.algorithm <= params.NUM_ALGORITHMS:
    _fail(f"--algorithm must be 1..{params.NUM_ALGORITHMS}, got {args.algorithm}")
  try:
    model = workdir_lib.load_model(args.model)
    if args.algorithm is not None and model.algorithm not in (None, args.algorithm):
      raise ValueError(f"--algorithm {args.algorithm}: the model {model.workdir} predicts for "
                       f"algorithm {model.algorithm}")
    dataset, targets = load_targets(model, args.presets, args.algorithm, args.n_targets)
  except ValueError as e:
    _fail(str(e))
  if not len(targets["audio"]):
    _fail(f"no test example{f' of algorithm {args.algorithm}' if args.algorithm else ''} in "
          f"{dataset}")

  renderer = R.DexedRenderer(model.clip)
  library, library_s = _timed(training_library, dataset)
  predictor = predictor_lib.Predictor([model])
  methods, argmax = choose_voices(args, predictor, targets, library, renderer)
  rows = score_rows(methods, targets, predictor.space, renderer)
  network_accuracy = accuracy(argmax, targets["labels"], predictor.space.is_continuous)

  settings = {"model": str(model.workdir), "step": model.step, "dataset": str(dataset),
              "model_algorithm": model.algorithm, "n_targets": len(targets["audio"]),
              "budgets": args.budgets, "top_k": args.top_k,
              "refine_renders": args.refine_renders, "seed": args.seed,
              "library_size": len(library[0]), "library_mfcc_seconds": library_s,
              "seconds_per_target": "median over targets; network forward pass included, "
                                    "final scoring render excluded",
              "commit": _commit()}
  print("s2s-bench quality")
  print(markdown_table(rows))
  print("network per-parameter accuracy (argmax): " +
        ", ".join(f"{k} {v:.3f}" for k, v in network_accuracy.items()))
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  payload = {"benchmark": "quality", "machine": report.machine(), "settings": settings,
             "accuracy": network_accuracy, "rows": rows}
  (out / "quality.json").write_text(json.dumps(payload, indent=2) + "\n")
  plot(rows, out / "quality.png")
  print(f"wrote {out / 'quality.json'} and {out / 'quality.png'}")
