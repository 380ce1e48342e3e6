"""Sound -> Dexed preset: the models' candidates, selection by the real engine, refinement.

For one prepared input (`target.Target`):
1. every model gives class probabilities; each (model, algorithm) pair gives its `top_k` most
   probable voices (a model trained on every algorithm is tried with each allowed one);
2. all candidates are rendered by the engine and the one closest to the input (MFCCD-13) is
   kept: the paper's selection over its 32 per-algorithm models;
3. if the input is pitched, TRANSPOSE is moved so the match sounds at the input's pitch;
4. a local search with the engine in the loop, moves drawn from the chosen model's
   probabilities, lowers MFCCD further within a budget of renders and seconds (TRANSPOSE held).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from s2s_jax.audio.clip import check_same_clip
from s2s_jax.infer import rendering
from s2s_jax.infer import scoring
from s2s_jax.infer.predictor import Predictor
from s2s_jax.infer.workdir import ModelError, TrainedModel
from s2s_jax.match import candidates as candidates_lib
from s2s_jax.match import pitch as pitch_lib
from s2s_jax.match import search
from s2s_jax.match.target import Target
from s2s_jax.synth import params
from s2s_jax.synth import render as R

ALL_ALGORITHMS = tuple(range(1, params.NUM_ALGORITHMS + 1))


@dataclasses.dataclass(frozen=True)
class MatchSettings:
  """How hard to look.

  Attributes:
    algorithms: 1-based DX7 algorithms allowed; models of other algorithms are skipped.
    top_k: candidates decoded per model and algorithm.
    refine: the refinement's budget; None skips refinement.
    seed: the refinement's random moves.
  """
  algorithms: tuple[int, ...] = ALL_ALGORITHMS
  top_k: int = 4
  refine: search.Budget | None = None
  seed: int = 0

  def __post_init__(self):
    bad = [a for a in self.algorithms if not 1 <= a <= params.NUM_ALGORITHMS]
    if bad or not self.algorithms:
      raise ValueError(f"algorithms must be a non-empty set of 1..32, got {self.algorithms}")
    if self.top_k < 1:
      raise ValueError(f"top_k must be >= 1, got {self.top_k}")


@dataclasses.dataclass(frozen=True)
class Match:
  """The preset found for one input.

  Attributes:
    name: the input's name.
    voice: `[155]` uint8 DX7 voice.
    algorithm: its 1-based DX7 algorithm.
    model: the workdir of the model whose candidate won.
    network: "mfccd13" and "mfccd30" of the selected (and retuned) network candidate.
    refined: the same after refinement, or None without it.
    retuning: what matching the input's pitch did, or None if either sound is unpitched.
    candidates: voices rendered to select (refinement renders not included).
    refine_renders: voices rendered by the refinement.
    seconds: wall-clock time of the whole match.
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

  @property
  def mfccd(self) -> dict[str, float]:
    """The final scores."""
    return self.refined or self.network


class Matcher:
  """Models loaded once, matching any number of inputs."""

  def __init__(self, models: Sequence[TrainedModel], settings: MatchSettings = MatchSettings(),
               renderer: R.Renderer | None = None):
    self.settings = settings
    self._pairs = [(i, a) for i, m in enumerate(models)
                   for a in ((m.algorithm,) if m.algorithm else settings.algorithms)
                   if a in settings.algorithms]
    if not self._pairs:
      trained = sorted({m.algorithm for m in models if m.algorithm})
      raise ModelError(f"no model for the allowed algorithms {list(settings.algorithms)} "
                       f"(the models are trained for {trained})")
    self.predictor = Predictor(models)
    self.renderer = renderer or R.DexedRenderer(self.predictor.clip)
    check_same_clip(self.predictor.clip, f"model {models[0].workdir}", self.renderer.settings,
                    "the renderer's")
    self.space = self.predictor.space

  def match(self, target: Target) -> Match:
    started = time.perf_counter()
    probabilities = self.predictor.probabilities(target.audio[None])[:, 0]
    pool = [(model, algorithm, classes) for model, algorithm in self._pairs
            for classes in candidates_lib.top_k_classes(probabilities[model], self.space,
                                                        self.settings.top_k)]
    scores = self._scores(target, pool)
    model, algorithm, classes = pool[int(np.argmin(scores))]

    voice_pitch = pitch_lib.estimate_pitch(self._render(classes, algorithm),
                                           self.renderer.settings.sample_rate)
    classes, retuning = pitch_lib.retune(classes, self.space, voice_pitch, target.pitch)
    network = self._final_scores(target, classes, algorithm)

    refined, refine_renders = None, 0
    if self.settings.refine is not None:
      frozen = () if retuning is None else (self.space.names.index("TRANSPOSE"),)
      objective = search.Objective(target.audio, self.space, algorithm, self.renderer)
      result = search.local_search(objective, classes, probabilities[model], self.settings.refine,
                                   np.random.default_rng(self.settings.seed), frozen=frozen)
      classes, refine_renders = result.classes, result.renders
      refined = self._final_scores(target, classes, algorithm)
    return Match(
        name=target.name, voice=self.space.decode(classes, algorithm, name=target.name),
        algorithm=algorithm, model=str(self.predictor.models[model].workdir), network=network,
        refined=refined, retuning=retuning, candidates=len(pool), refine_renders=refine_renders,
        seconds=time.perf_counter() - started)

  def _scores(self, target: Target, pool) -> np.ndarray:
    """MFCCD-13 of every candidate `(model, algorithm, classes)`, rendered in one batch."""
    _, algorithms, classes = zip(*pool)
    objective = search.Objective(target.audio, self.space, algorithms[0], self.renderer)
    return objective(np.stack(classes), np.array(algorithms))

  def _render(self, classes: np.ndarray, algorithm: int) -> np.ndarray:
    return rendering.render_classes(self.space, classes[None], algorithm, self.renderer)[0]

  def _final_scores(self, target: Target, classes: np.ndarray, algorithm: int
                    ) -> dict[str, float]:
    audio = self._render(classes, algorithm)
    scores = scoring.mfccd_scores(audio[None], target.audio[None], self.renderer.settings)
    return {name: float(value[0]) for name, value in scores.items()}
