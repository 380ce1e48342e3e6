"""Matching quality of the library and the searches, side by side at equal render budgets.

Run by `s2s-bench quality --presets DIR` without `--model`. Targets are held-out presets (the
test split of near-duplicate groups of DIR, taken one algorithm after another so that 32
targets cover all 32), rendered; and, with `--sounds DIR`, any sound files, scaled to the
median RMS of the held-out renders (sounds that are not DX7 renders have no natural level).
The library is DIR's training split, rendered once and cached (`match.library`).

With `--network` (a workdir, or "bundled"), rows of the network join: alone (its top-1 voice),
with selection (its most probable voices at the budget, rendered and ranked), and the full
pipeline (network and library candidates, then the value search).

Every method spends renders through one recording objective, so a method's MFCCD at a budget
B is the best score among its first B renders: each method runs once at the largest budget, and
the smaller budgets read its anytime curve (no method's moves depend on its budget). Seconds
per target are the wall clock until the B-th render. Library rows run the real matcher, pitch
handling included; their renders include the library candidates.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time
from collections.abc import Callable

import numpy as np
import soundfile

from s2s_jax.audio import mfccd
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.infer import bundled
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.match import library as library_lib
from s2s_jax.match import matcher as matcher_lib
from s2s_jax.match import search
from s2s_jax.match import target as target_lib
from s2s_jax.synth import corpus as corpus_lib
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.synth import splits
from s2s_jax.util import report

CLASS_SPACE = search.ParameterSpace()  # the network's 64-bin grid, where the baselines search


class RecordingObjective(search.Objective):
  """The objective, recording every score and when it was known."""

  def __init__(self, *args, since: RecordingObjective | None = None, **kwargs):
    """`since`: continue that objective's record (its renders count here too)."""
    super().__init__(*args, **kwargs)
    self.started = since.started if since else time.perf_counter()
    self.scores: list[float] = list(since.scores) if since else []
    self.times: list[float] = list(since.times) if since else []

  def __call__(self, classes, algorithms=None):
    scores = super().__call__(classes, algorithms)
    self.scores.extend(scores.tolist())
    self.times.extend([time.perf_counter() - self.started] * len(scores))
    return scores

  def at(self, budget: int, skip: int = 0) -> tuple[float, float]:
    """(best score among renders skip..budget-1, seconds until render budget-1)."""
    return min(self.scores[skip:budget]), self.times[min(budget, len(self.times)) - 1]


class _RecordingMatcher(matcher_lib.Matcher):
  """The matcher, keeping the recording objective of its last match."""

  def _objective(self, target, algorithm):
    self.recorded = RecordingObjective(target.audio, self.space, algorithm, self.renderer)
    return self.recorded


@dataclasses.dataclass(frozen=True)
class Method:
  """One row family.

  Attributes:
    name: what the rows say.
    run: `run(target, index) -> the objective it spent its renders through`.
    skip: leading renders that only select (library candidates): counted in the budget, not
      in the score, since the search re-scores the starts it takes from them.
    anytime: read the budgets from one run (False: one row, at the renders spent).
  """
  name: str
  run: Callable[[target_lib.Target, int], RecordingObjective]
  skip: int = 0
  anytime: bool = True


def held_out(presets: pathlib.Path, count: int, seed: int, renderer: R.Renderer
             ) -> tuple[np.ndarray, list[target_lib.Target], np.ndarray]:
  """(distinct training voices `[n, 155]`, `count` held-out targets, their voices
  `[count, 155]`).

  Test voices are drawn in a seeded order, one algorithm after another (1, 2, ..., 32, 1...),
  audible ones only (peak > 0.01).
  """
  corpus = corpus_lib.read_corpus(presets)
  split = splits.assign_splits(corpus.voices, splits.near_duplicate_groups(corpus.voices))
  voices = params.clamp_voice(corpus.voices)
  train = voices[split == splits.SPLITS.index("train")]
  _, first = np.unique(library_lib.voice_keys(train), axis=0, return_index=True)
  train = train[np.sort(first)]  # distinct as played (stored bytes above a maximum clamp)
  test = voices[split == splits.SPLITS.index("test")]
  test = test[np.random.default_rng(seed).permutation(len(test))]
  algorithms = params.algorithm_of(test)
  chosen, used, i = [], np.zeros(len(test), bool), 0
  while len(chosen) < count and not used.all():
    options = np.flatnonzero((algorithms == i % params.NUM_ALGORITHMS + 1) & ~used)
    for j in options[:3]:  # a few tries for an audible one
      used[j] = True
      audio = renderer.render(test[j])
      if generate.is_audible(audio[None], 0.01)[0]:
        chosen.append((j, audio))
        break
    i += 1
  targets = [target_lib.prepare_target(audio, renderer.settings, f"test{j}", f"test voice {j}")
             for j, audio in chosen]
  return train, targets, test[[j for j, _ in chosen]]


def sound_targets(folder: pathlib.Path, rms: float, settings: ClipSpec
                  ) -> list[target_lib.Target]:
  """Every sound file of `folder` (sorted), prepared as `s2s-match` does, scaled to `rms`."""
  targets = []
  for path in sorted(p for p in folder.iterdir() if p.is_file()):
    try:
      target = target_lib.load_target(path, settings)
    except target_lib.TargetError as e:
      print(f"s2s-bench quality: skipping {path}: {e}")
      continue
    sounding = target.audio[:max(1, round(target.seconds * settings.sample_rate))]
    gain = rms / float(np.sqrt(np.mean(np.square(sounding))))
    targets.append(dataclasses.replace(target, audio=target.audio * np.float32(gain)))
  return targets


def methods(library: library_lib.Library, renderer: R.Renderer, budget: int, seed: int,
            library_k: int, algorithm_of: dict[str, int]) -> list[Method]:
  """The compared methods without a network, each spending at most `budget` renders per target.

  The baselines search one algorithm: a held-out target's own (`algorithm_of[name]`), else
  that of the library voice nearest by summary; library rows choose among all 32.
  """

  def algorithm(target):
    return algorithm_of.get(target.name) or int(
        library.algorithms[library.nearest(target.audio, 1)[0]])

  def baseline(run):
    def method(target, i):
      objective = RecordingObjective(target.audio, CLASS_SPACE, algorithm(target), renderer)
      run(objective, search.Budget(budget), np.random.default_rng((seed, i)))
      return objective
    return method

  def library_matcher(refine: search.Budget | None, **settings):
    return _RecordingMatcher([], matcher_lib.MatchSettings(
        refine=refine, seed=seed, library_k=library_k, **settings), renderer, library)

  def library_then(refine: search.Budget | None, **settings):
    matcher = library_matcher(refine, **settings)

    def method(target, i):
      del i
      matcher.match(target)
      return matcher.recorded
    return method

  selection = library_matcher(None)

  def library_then_class_moves(target, i):
    """Today's refinement moves (64-bin classes, uniform proposal) from the selected voice."""
    match = selection.match(target)
    objective = RecordingObjective(target.audio, CLASS_SPACE, match.algorithm, renderer,
                                   since=selection.recorded)
    frozen = () if match.retuning is None else (CLASS_SPACE.names.index("TRANSPOSE"),)
    search.local_search(objective, CLASS_SPACE.encode(match.voice), search.uniform_proposal(
        CLASS_SPACE), search.Budget(budget - len(objective.scores)),
                        np.random.default_rng((seed, i)), frozen=frozen)
    return objective

  remaining = search.Budget(budget - library_k)
  return [
      Method("hill climbing (64-bin classes, from a prior voice)", baseline(search.hill_climb)),
      Method("genetic algorithm (64-bin classes, prior population)", baseline(search.genetic)),
      Method(f"library alone (best of the nearest {library_k})", library_then(None),
             anytime=False),
      Method("library + hill climbing (64-bin classes)", library_then_class_moves, library_k),
      Method("library + value search, 4 starts (default)", library_then(remaining), library_k),
  ]


def network_methods(model: workdir_lib.TrainedModel, library: library_lib.Library,
                    renderer: R.Renderer, budgets: list[int], seed: int, library_k: int,
                    algorithms: int = 4) -> list[Method]:
  """The rows of a network that predicts the algorithm, at each budget of `budgets`.

  Selection decodes its `algorithms` most probable algorithms and their `budget / algorithms`
  most probable voices; the full pipeline adds `algorithms` x 4 network candidates to the
  library's `library_k`, then searches (as `s2s-match --library` with the model).
  """

  def matcher(refine, with_library, top_k, model_algorithms=algorithms):
    return _RecordingMatcher([model], matcher_lib.MatchSettings(
        refine=refine, seed=seed, library_k=library_k, model_algorithms=model_algorithms,
        top_k=top_k), renderer, library if with_library else None)

  def recorded(m):
    def method(target, i):
      del i
      m.match(target)
      return m.recorded
    return method

  candidates = library_k + 4 * algorithms
  rows = [Method("network alone (top-1)", recorded(matcher(None, False, top_k=1,
                                                             model_algorithms=1)),
                 anytime=False)]
  rows += [Method("network + selection", recorded(matcher(None, False,
                                                          top_k=max(b // algorithms, 1))),
                  anytime=False) for b in budgets]
  rows.append(Method("library + network + value search (full pipeline)",
                     recorded(matcher(search.Budget(max(budgets) - candidates), True, top_k=4)),
                     candidates))
  return rows


def score_table(method_list: list[Method], targets: list[target_lib.Target],
                budgets: list[int], progress: Callable[[str], None],
                save: Callable[[list[dict]], None] = lambda rows: None) -> list[dict]:
  """Runs every method on every target, target after target (`save` gets the rows so far
  after each); one row per method and budget."""
  found = {m.name: {} for m in method_list}  # method -> budget -> [(score, seconds)]
  for i, target in enumerate(targets):
    for method in method_list:
      objective = method.run(target, i)
      for b in (budgets if method.anytime else [len(objective.scores)]):
        found[method.name].setdefault(b, []).append(objective.at(b, method.skip))
      progress(f"{target.name} ({i + 1}/{len(targets)}) {method.name}: "
               f"{min(objective.scores[method.skip:]):.2f}")
    save(_rows(found))
  return _rows(found)


def _rows(found: dict[str, dict[int, list[tuple[float, float]]]]) -> list[dict]:
  rows = []
  for name, by_budget in found.items():
    for b, results in by_budget.items():
      scores = np.array([r[0] for r in results])
      rows.append({"method": name, "renders": b, "targets": len(results),
                   "mfccd13_mean": float(scores.mean()),
                   "mfccd13_median": float(np.median(scores)),
                   "mfccd13_std": float(scores.std()),
                   "mfccd13_p90": float(np.percentile(scores, 90)),
                   "seconds_median": float(np.median([r[1] for r in results])),
                   "scores": scores.tolist()})
  return rows


def markdown(rows: list[dict]) -> str:
  lines = ["| method | renders | MFCCD-13 mean | median | std | 90th pct | s/target (median) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
  lines += [f"| {r['method']} | {r['renders']} | {r['mfccd13_mean']:.2f} | "
            f"{r['mfccd13_median']:.2f} | {r['mfccd13_std']:.2f} | {r['mfccd13_p90']:.2f} | "
            f"{r['seconds_median']:.2f} |" for r in rows]
  return "\n".join(lines)


def floor(voices: np.ndarray, renderer: R.Renderer, folder: pathlib.Path) -> list[dict]:
  """What MFCCD-13 gives a held-out voice `[n, 155]` against renders of itself: through the
  whole input pipeline, and under what a search cannot control. One row per condition."""
  settings = renderer.settings
  reference = R.render_batch(renderer, voices)

  def through_reader(audio, rate, name):
    path = folder / f"{name}.wav"
    soundfile.write(path, audio, rate, subtype="FLOAT")
    return target_lib.load_target(path, settings).audio

  def note(seconds):
    return R.render_batch(renderer.with_settings(
        dataclasses.replace(settings, note_seconds=seconds)), voices)

  at_44k = R.render_batch(renderer.with_settings(
      dataclasses.replace(settings, sample_rate=44_100)), voices)
  conditions = {
      "rendered twice": R.render_batch(renderer, voices),
      "ground truth through s2s-match's reader (48 kHz float wav, trimmed)": np.stack(
          [through_reader(a, settings.sample_rate, f"v{i}") for i, a in enumerate(reference)]),
      "note held 1.9 s instead of 2.0 s": note(1.9),
      "note held 2.1 s instead of 2.0 s": note(2.1),
      "input at 44.1 kHz (resampled by the reader)": np.stack(
          [through_reader(a, 44_100, f"w{i}") for i, a in enumerate(at_44k)]),
  }
  rows = []
  for name, audio in conditions.items():
    scores = np.concatenate([np.asarray(mfccd.mfccd(reference[i:i + 16], audio[i:i + 16]))
                             for i in range(0, len(audio), 16)])
    rows.append({"condition": name, "voices": len(scores), "mfccd13_mean": float(scores.mean()),
                 "mfccd13_median": float(np.median(scores)),
                 "mfccd13_max": float(scores.max())})
  return rows


def run(args: argparse.Namespace, commit: str | None) -> None:
  """`s2s-bench quality --presets DIR [--sounds DIR]` without a model; `commit` is recorded."""
  if not args.presets:
    raise SystemExit("s2s-bench quality: error: give --model, or --presets for the library "
                     "and search table")
  budgets = sorted(set(args.budgets))
  renderer = R.DexedRenderer()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  started = time.perf_counter()
  train, targets, target_voices = held_out(pathlib.Path(args.presets), args.n_targets, args.seed,
                                           renderer)
  library = library_lib.library_of(train, [f"training voice {i}" for i in range(len(train))],
                                   renderer, args.library_cache)
  algorithm_of = {t.name: int(params.algorithm_of(v)) for t, v in zip(targets, target_voices)}
  rms = float(np.median([np.sqrt(np.mean(np.square(t.audio))) for t in targets]))
  sounds = sound_targets(pathlib.Path(args.sounds), rms, renderer.settings) if args.sounds else []

  def progress(line):
    print(f"[{time.perf_counter() - started:6.0f} s] {line}", flush=True)

  method_list = methods(library, renderer, max(budgets), args.seed, args.library_k, algorithm_of)
  if args.network:
    model = (bundled.load() if args.network == "bundled"
             else workdir_lib.load_model(args.network))
    method_list += network_methods(model, library, renderer, budgets, args.seed, args.library_k)
  if args.methods:
    method_list = [m for m in method_list if any(text in m.name for text in args.methods)]
  floor_rows = floor(target_voices, renderer, out)
  tables = {}

  def save(name):
    def write(rows):
      tables[name] = rows
      payload = {"benchmark": "quality-search", "machine": report.machine(),
                 "settings": settings, "tables": tables, "floor": floor_rows,
                 "seconds": time.perf_counter() - started}
      (out / "quality_search.json").write_text(json.dumps(payload, indent=2) + "\n")
    return write

  settings = {"presets": args.presets, "n_targets": len(targets), "sounds": args.sounds,
              "n_sounds": len(sounds), "budgets": budgets, "library_size": len(library),
              "library_k": args.library_k, "seed": args.seed, "rms_of_sounds": rms,
              "target_algorithms": sorted(set(algorithm_of.values())),
              "network": args.network,
              "commit": commit}
  score_table(method_list, targets, budgets, progress, save("held-out presets"))
  if sounds:
    score_table(method_list, sounds, budgets, progress, save("sounds"))
  print("s2s-bench quality (library and search)")
  for name, rows in tables.items():
    print(f"\n{name} ({rows[0]['targets']} targets)\n{markdown(rows)}")
  print("\nfloor: MFCCD-13 of a held-out voice against itself\n" + "\n".join(
      f"- {r['condition']}: mean {r['mfccd13_mean']:.3f}, median {r['mfccd13_median']:.3f}, "
      f"max {r['mfccd13_max']:.3f}" for r in floor_rows))
  print(f"wrote {out / 'quality_search.json'}")
