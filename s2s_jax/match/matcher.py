"""Sound -> Dexed preset: candidates, selection by the real engine, search.

For one prepared input (`target.Target`):
1. candidates: every model gives class probabilities and each (model, algorithm) pair its
   `top_k` most probable voices (a model trained on every algorithm is tried with each allowed
   one; a model that predicts the algorithm, with its `model_algorithms` most probable allowed
   ones); a preset library gives its `library_k` voices nearest to the input, of the allowed
   algorithms. Either source may be absent, not both;
2. all candidates are rendered by the engine and ranked by MFCCD-13 against the input: the
   paper's selection over its 32 per-algorithm models, extended to the user's presets;
3. if the input is pitched, TRANSPOSE of the best `starts` candidates (the best one, without a
   search) is moved so each sounds at the input's pitch;
4. a search in the voices' own values (`value_search`) from those candidates, guided by the
   best network candidate's probabilities where there is a network, lowers MFCCD further within
   a budget of renders and seconds (TRANSPOSE held when retuned);
5. the distinct voices rendered on the way are ranked by MFCCD-13 for the user to audition
   (`Match.ranked`: the match first, then the others by score, near copies left out).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from s2s_jax.audio.clip import ClipSpec, check_same_clip
from s2s_jax.infer import rendering
from s2s_jax.infer import scoring
from s2s_jax.infer.predictor import Predictor
from s2s_jax.infer.workdir import ModelError, TrainedModel
from s2s_jax.match import candidates as candidates_lib
from s2s_jax.match import pitch as pitch_lib
from s2s_jax.match import search
from s2s_jax.match import value_search
from s2s_jax.match.library import Library
from s2s_jax.match.target import Target
from s2s_jax.synth import params
from s2s_jax.synth import render as R

ALL_ALGORITHMS = tuple(range(1, params.NUM_ALGORITHMS + 1))
RANKED = 32  # voices ranked for the user: a DX7 bank
MIN_APART = 16  # parameters in which a ranked voice differs from each better one


@dataclasses.dataclass(frozen=True)
class Ranked:
  """One voice the match rendered: `voice` `[155]` uint8, its 1-based `algorithm`, its
  MFCCD-13 against the input and where it came from (as `Match.model`, or "search from" and
  the candidate nearest to it)."""
  voice: np.ndarray
  algorithm: int
  mfccd13: float
  source: str


@dataclasses.dataclass(frozen=True)
class MatchSettings:
  """How hard to look.

  Attributes:
    algorithms: 1-based DX7 algorithms allowed; models of other algorithms are skipped.
    top_k: candidates decoded per model and algorithm.
    model_algorithms: most probable algorithms decoded by a model that predicts the algorithm.
    refine: the search's budget; None skips the search.
    seed: the search's random moves.
    library_k: nearest library voices rendered as candidates.
    starts: best candidates the search starts from.
    search: how the search moves.
  """
  algorithms: tuple[int, ...] = ALL_ALGORITHMS
  top_k: int = 4
  model_algorithms: int = 4
  refine: search.Budget | None = None
  seed: int = 0
  library_k: int = 32
  starts: int = 4
  search: value_search.SearchSettings = value_search.SearchSettings()

  def __post_init__(self):
    bad = [a for a in self.algorithms if not 1 <= a <= params.NUM_ALGORITHMS]
    if bad or not self.algorithms:
      raise ValueError(f"algorithms must be a non-empty set of 1..32, got {self.algorithms}")
    if min(self.top_k, self.model_algorithms, self.library_k, self.starts) < 1:
      raise ValueError(f"top_k, model_algorithms, library_k and starts must be >= 1, got "
                       f"{self.top_k}, {self.model_algorithms}, {self.library_k}, {self.starts}")


@dataclasses.dataclass(frozen=True)
class Match:
  """The preset found for one input.

  Attributes:
    name: the input's name.
    voice: `[155]` uint8 DX7 voice.
    algorithm: its 1-based DX7 algorithm.
    model: where the search's best start came from: a model's workdir, or "library:" and the
      file and 1-based slot of a library voice.
    network: "mfccd13" and "mfccd30" of the selected (and retuned) candidate.
    refined: the same after the search, or None without it.
    retuning: what matching the input's pitch did, or None if either sound is unpitched.
    candidates: voices rendered to select (search renders not included).
    refine_renders: voices rendered by the search.
    seconds: wall-clock time of the whole match.
    ranked: at most `RANKED` distinct voices by MFCCD-13, the match first (see
      `_Recorder.ranked`): candidates (retuned or not) and the search's voices.
  """
  name: str
  voice: np.ndarray
  algorithm: int
  model: str
  network: dict[str, float]
  refined: dict[str, float] | None
  retuning: pitch_lib.Retuning | None
  candidates: int
  refine_renders: int
  seconds: float
  ranked: tuple[Ranked, ...] = ()

  @property
  def mfccd(self) -> dict[str, float]:
    """The final scores."""
    return self.refined or self.network


class Matcher:
  """Models and a preset library loaded once, matching any number of inputs."""

  def __init__(self, models: Sequence[TrainedModel], settings: MatchSettings = MatchSettings(),
               renderer: R.Renderer | None = None, library: Library | None = None):
    self.settings = settings
    if not models and library is None:
      raise ValueError("no source of candidates: give a model, a preset library or both")
    # (model, algorithm); algorithm None: the model's most probable allowed ones.
    self._pairs = [(i, a) for i, m in enumerate(models)
                   for a in ((m.algorithm,) if m.algorithm else
                             (None,) if m.config.get("predict_algorithm") else settings.algorithms)
                   if a is None or a in settings.algorithms]
    if models and not self._pairs:
      trained = sorted({m.algorithm for m in models if m.algorithm})
      raise ModelError(f"no model for the allowed algorithms {list(settings.algorithms)} "
                       f"(the models are trained for {trained})")
    if library is not None and not np.isin(library.algorithms, settings.algorithms).any():
      raise ValueError(f"the preset library holds no voice of the allowed algorithms "
                       f"{list(settings.algorithms)}")
    if models and renderer is not None:  # before the models are traced
      check_same_clip(models[0].clip, f"model {models[0].workdir}", renderer.settings,
                      "the renderer's")
    self.predictor = Predictor(models) if models else None
    self.renderer = renderer or R.DexedRenderer(
        self.predictor.clip if self.predictor else ClipSpec())
    self.library = library
    self.space = value_search.VALUE_SPACE

  def match(self, target: Target, progress: Callable[[float], None] | None = None) -> Match:
    """Matches one input; `progress` is told the fraction done (by renders) as it goes."""
    started = time.perf_counter()
    sources, algorithms, values, proposals = self._candidates(target)
    renders = len(values) + self.settings.starts + (
        self.settings.refine.renders if self.settings.refine else 0)
    objective = _Recorder(self._objective(target, algorithms[0]), progress, renders)
    order = np.argsort(objective(values, algorithms), kind="stable")[:self.settings.starts]

    proposed, retunings = values.copy(), []
    # Without a search only the best start is kept: the others are not retuned.
    for i in order if self.settings.refine is not None else order[:1]:
      voice_pitch = pitch_lib.estimate_pitch(self._render(values[i], algorithms[i]),
                                             self.renderer.settings.sample_rate)
      values[i], retuning = pitch_lib.retune(values[i], self.space, voice_pitch, target.pitch)
      retunings.append(retuning)
    best = order[0]
    network = self._final_scores(target, values[best], algorithms[best])
    objective.record(values[best][None], algorithms[best][None], network["mfccd13"])

    refined, refine_renders, algorithm, voice = None, 0, algorithms[best], values[best]
    winner = 0
    if self.settings.refine is not None:
      frozen = (() if all(r is None for r in retunings)
                else (self.space.names.index("TRANSPOSE"),))
      proposal = next((proposals[i] for i in order if proposals[i] is not None), None)
      result = value_search.value_search(
          objective, values[order], algorithms[order], self.settings.refine,
          np.random.default_rng(self.settings.seed), proposal=proposal,
          settings=self.settings.search, frozen=frozen)
      voice, algorithm, refine_renders = result.classes, result.algorithm, result.renders
      refined = self._final_scores(target, voice, algorithm)
      winner = _start_of(result.classes, algorithm, values[order], algorithms[order])
    final = (refined or network)["mfccd13"]
    return Match(
        name=target.name, voice=self.space.decode(voice, algorithm, name=target.name),
        algorithm=int(algorithm), model=sources[order[winner]], network=network,
        refined=refined, retuning=retunings[winner], candidates=len(values),
        refine_renders=refine_renders, seconds=time.perf_counter() - started,
        ranked=objective.ranked(voice, algorithm, final, sources[order[winner]],
                                np.concatenate([proposed, values]), sources, target.name))

  def _candidates(self, target: Target) -> tuple[list[str], np.ndarray, np.ndarray, list]:
    """Every candidate: (sources, 1-based algorithms `[n]`, values `[n, num_params]` of
    `VALUE_SPACE`, per candidate its network's per-value probabilities or None)."""
    sources, algorithms, values, proposals = [], [], [], []
    if self.predictor is not None:
      probabilities = self.predictor.probabilities(target.audio[None])[:, 0]
      network_space = self.predictor.space
      guides = [value_search.value_proposal(p, network_space) for p in probabilities]
      for model, algorithm in self._pairs:
        if algorithm is None:
          decoded = [(a, candidates_lib.top_k_given_algorithm(probabilities[model], network_space,
                                                              a, self.settings.top_k))
                     for a in candidates_lib.top_algorithms(
                         probabilities[model], network_space, self.settings.algorithms,
                         self.settings.model_algorithms)]
        else:
          decoded = [(algorithm, candidates_lib.top_k_classes(probabilities[model],
                                                              network_space, self.settings.top_k))]
        for a, found in decoded:
          values.extend(self.space.encode(network_space.decode(found, a)))
          sources += [str(self.predictor.models[model].workdir)] * len(found)
          algorithms += [a] * len(found)
          proposals += [guides[model]] * len(found)
    if self.library is not None:
      nearest = self.library.nearest(target.audio, self.settings.library_k,
                                     self.settings.algorithms)
      values.extend(self.space.encode(self.library.voices[nearest]))
      sources += [f"library:{self.library.sources[i]}" for i in nearest]
      algorithms += self.library.algorithms[nearest].tolist()
      proposals += [None] * len(nearest)
    return sources, np.array(algorithms), np.stack(values), proposals

  def _objective(self, target: Target, algorithm: int) -> search.Objective:
    """What scores this input's candidates (benchmarks record through it)."""
    return search.Objective(target.audio, self.space, algorithm, self.renderer)

  def _render(self, values: np.ndarray, algorithm: int) -> np.ndarray:
    return rendering.render_classes(self.space, values[None], algorithm, self.renderer)[0]

  def _final_scores(self, target: Target, values: np.ndarray, algorithm: int
                    ) -> dict[str, float]:
    audio = self._render(values, algorithm)
    scores = scoring.mfccd_scores(audio[None], target.audio[None], self.renderer.settings)
    return {name: float(value[0]) for name, value in scores.items()}


class _Recorder:
  """An objective that remembers every voice it scored, and tells `progress` how far it is."""

  def __init__(self, objective: search.Objective, progress: Callable[[float], None] | None,
               renders: int):
    self.objective = objective
    self.space = objective.space
    self.scores: dict[tuple[int, bytes], float] = {}
    self.progress = progress
    self.renders = renders

  def __call__(self, values: np.ndarray, algorithms: np.ndarray | None = None) -> np.ndarray:
    scores = self.objective(values, algorithms)
    self.record(values, algorithms, scores)
    if self.progress:
      self.progress(min(1.0, self.objective.renders / self.renders))
    return scores

  def record(self, values: np.ndarray, algorithms: np.ndarray | None, scores) -> None:
    """Scores `[n]` of `values` `[n, num_params]` (a later score of a voice replaces one)."""
    algorithms = np.broadcast_to(self.objective.algorithm if algorithms is None else algorithms,
                                 len(values))
    for row, algorithm, score in zip(values, algorithms, np.broadcast_to(scores, len(values))):
      self.scores[(int(algorithm), np.asarray(row, np.int32).tobytes())] = float(score)

  def ranked(self, voice: np.ndarray, algorithm: int, score: float, source: str,
             candidates: np.ndarray, sources: list[str], name: str) -> tuple[Ranked, ...]:
    """The match (`voice`, values of `self.space`), then up to `RANKED - 1` other voices
    scored, by score: first chosen are those that differ from every better one chosen in at
    least `MIN_APART` values (or the algorithm), so the search's near copies of one voice take
    one slot where there are enough others; the best remaining fill the rest. `candidates` `[m, num_params]`
    are the voices proposed to the search, from `sources` (the i-th from `sources[i % len]`)."""
    candidates = np.asarray(candidates, np.int32)

    def origin(row: np.ndarray) -> str:
      nearest = int(np.argmin((candidates != row).sum(1)))
      where = sources[nearest % len(sources)]
      return where if np.array_equal(candidates[nearest], row) else f"search from {where}"

    scored = sorted(self.scores.items(), key=lambda item: item[1])
    match_key = (int(algorithm), np.asarray(voice, np.int32).tobytes())
    entries = [(match_key[0], np.asarray(voice, np.int32), score, source)] + [
        (alg, np.frombuffer(key, np.int32), value, None) for (alg, key), value in scored
        if (alg, key) != match_key]
    far = [entries[0]]  # first the voices far from every better one, then the best of the rest
    for entry in entries[1:]:
      if len(far) < RANKED and all(entry[0] != a or np.sum(entry[1] != r) >= MIN_APART
                                   for a, r, _, _ in far):
        far.append(entry)
    chosen = {id(e) for e in far}
    rest = [e for e in entries[1:] if id(e) not in chosen][:RANKED - len(far)]
    ordered = far[:1] + sorted(far[1:] + rest, key=lambda e: e[2])
    ranked = [Ranked(self.space.decode(row, alg, name=f"{name[:7]} {i + 1:02d}"), alg, value,
                     where or origin(row)) for i, (alg, row, value, where) in enumerate(ordered)]
    return tuple(ranked)


def _start_of(values: np.ndarray, algorithm: int, starts: np.ndarray,
              algorithms: np.ndarray) -> int:
  """Index of the start `[m, num_params]` nearest to `values` (fewest parameters apart)."""
  apart = (starts != values).sum(1) + 1000 * (algorithms != algorithm)
  return int(np.argmin(apart))
