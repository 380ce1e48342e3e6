"""Synth-in-the-loop search over the classes of one DX7 algorithm, scored by the real engine.

Every candidate is rendered by a `render.Renderer` and scored by its MFCCD (13 coefficients
by default, as the paper's Table 1) against one target clip. `local_search` is a batched
steepest descent whose moves follow a proposal distribution: the network's class
probabilities make it the refinement step, a uniform proposal makes it the hill-climbing
baseline (`hill_climb`). `genetic` is the genetic-algorithm baseline. All of them spend at
most `Budget.renders` renders, and are deterministic given their `np.random.Generator` unless
the wall-clock limit stops them first.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from collections.abc import Sequence

import numpy as np

from s2s_jax.audio import mfccd
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.infer import rendering
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import render
from s2s_jax.synth.space import ParameterSpace

_MOVE_FLOOR = 0.05  # move weight every unfrozen parameter keeps, however sure the proposal is
_CLASS_FLOOR = 0.01  # share of uniform mixed into the proposal, so every class is reachable


@dataclasses.dataclass(frozen=True)
class Budget:
  """How much a search may spend.

  Attributes:
    renders: the most candidates it renders (the start or initial population included).
    seconds: wall-clock limit; no new batch starts once it has passed.
  """

  renders: int
  seconds: float = math.inf

  def __post_init__(self):
    if not isinstance(self.renders, numbers.Integral) or self.renders < 1:
      raise ValueError(f"Budget.renders must be an integer >= 1, got {self.renders!r}")
    if not self.seconds > 0:
      raise ValueError(f"Budget.seconds must be > 0, got {self.seconds}")


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """The outcome of a search.

  Attributes:
    classes: `[num_params]` int32, the best candidate found.
    score: its MFCCD.
    start_score: the start's MFCCD (for `genetic`, the best of the initial population).
    renders: candidates rendered.
    seconds: wall-clock time taken.
    trace: (renders so far, best score so far) after each batch, the start's first.
    algorithm: the best candidate's 1-based algorithm, where the search chose among several.
  """

  classes: np.ndarray
  score: float
  start_score: float
  renders: int
  seconds: float
  trace: tuple[tuple[int, float], ...]
  algorithm: int | None = None


class Objective:
  """MFCCD of candidate class vectors of one algorithm against one target clip.

  Args:
    target: `[samples]` the clip to match; its MFCC is computed once.
    space: decodes candidates into voices.
    algorithm: 1-based DX7 algorithm (1..32) of every candidate.
    renderer: renders candidates (in parallel where it is thread-safe).
    n_mfcc: MFCC coefficients of the distance.
    batch_size: clips per MFCC call; every call gets exactly this many, so it compiles once.

  Attributes:
    renders: candidates rendered so far, over all calls.
  """

  def __init__(self, target: np.ndarray, space: ParameterSpace, algorithm: int,
               renderer: render.Renderer, n_mfcc: int = 13, batch_size: int = 16):
    target = np.asarray(target, np.float32)
    if target.ndim != 1:
      raise ValueError(f"target must be one clip [samples], got shape {target.shape}")
    if not 1 <= algorithm <= params.NUM_ALGORITHMS:
      raise ValueError(f"algorithm must be 1..{params.NUM_ALGORITHMS} (1-based), got {algorithm}")
    if batch_size < 1 or n_mfcc < 1:
      raise ValueError(f"batch_size and n_mfcc must be >= 1, got {batch_size}, {n_mfcc}")
    self.space = space
    self.algorithm = algorithm
    self.renderer = renderer
    self.n_mfcc = n_mfcc
    self.batch_size = batch_size
    self.spec = FeatureSpec(clip=renderer.settings)
    self.target_mfcc = mfccd.mfcc(target[None], n_mfcc=n_mfcc, spec=self.spec)
    self.renders = 0

  def __call__(self, classes: np.ndarray, algorithms: np.ndarray | None = None) -> np.ndarray:
    """Class indices `[n, num_params]` -> MFCCD `[n]` float64 of their renderings.

    `algorithms` `[n]` (1-based) plays each candidate with its own algorithm instead.
    """
    classes = np.asarray(classes)
    if classes.ndim != 2:
      raise ValueError(f"expected candidates [n, num_params], got shape {classes.shape}")
    algorithms = self.algorithm if algorithms is None else np.asarray(algorithms)
    audio = rendering.render_classes(self.space, classes, algorithms, self.renderer)
    self.renders += len(classes)
    candidates = mfccd.mfcc_batched(audio, n_mfcc=self.n_mfcc, spec=self.spec,
                                    batch_size=self.batch_size)
    return np.asarray(mfccd.mfcc_distance(candidates, self.target_mfcc), np.float64)


def uniform_proposal(space: ParameterSpace) -> np.ndarray:
  """`[total_classes]` proposal that is uniform within each parameter's block."""
  return 1.0 / np.repeat(space.num_classes, space.num_classes).astype(np.float64)


def local_search(objective: Objective, start: np.ndarray, proposal: np.ndarray, budget: Budget,
                 rng: np.random.Generator, *, batch_size: int = 16, max_changes: int = 3,
                 frozen: Sequence[int] = ()) -> SearchResult:
  """Batched steepest descent from `start`, with moves drawn from `proposal`.

  Scores the start, then repeatedly scores `batch_size` neighbours of the best candidate so
  far and moves to the best of them if it is strictly better. A neighbour changes 1 to
  `max_changes` parameters; a parameter moves with weight 1 - (proposal of its current
  class) + a floor, and takes a new class drawn from its proposal block (mixed with 1%
  uniform) without its current one. The last batch shrinks to spend the budget exactly.

  Args:
    objective: scores candidates.
    start: `[num_params]` class indices to start from.
    proposal: `[total_classes]` class probabilities in the flat layout (`space.blocks` splits
      it; each block is normalised here); the network's to refine, `uniform_proposal` to
      hill-climb.
    budget: the start's render counts against it.
    rng: draws the moves.
    batch_size: neighbours rendered per step.
    max_changes: the most parameters a neighbour changes.
    frozen: indices of parameters that never move.
  Returns:
    The best candidate found.
  """
  space = objective.space
  start = _check_classes(start, space)
  movable = np.ones(space.num_params, bool)
  frozen = np.asarray(frozen, np.int64)
  if np.any((frozen < 0) | (frozen >= space.num_params)):
    raise ValueError(f"frozen parameter indices must be in [0, {space.num_params}), "
                     f"got {frozen.tolist()}")
  movable[frozen] = False
  if not movable.any():
    raise ValueError("every parameter is frozen: nothing to search")
  if batch_size < 1 or max_changes < 1:
    raise ValueError(f"batch_size and max_changes must be >= 1, got {batch_size}, {max_changes}")
  proposal = _mix_uniform(proposal, space, _CLASS_FLOOR)
  blocks = space.blocks(proposal)

  started = time.monotonic()
  best, best_score = start, float(objective(start[None])[0])
  start_score, used, trace = best_score, 1, [(1, best_score)]
  while used < budget.renders and time.monotonic() - started < budget.seconds:
    current = proposal[space.flat_index(best)]
    weights = np.where(movable, 1.0 - current + _MOVE_FLOOR, 0.0)
    candidates = np.stack([_neighbour(rng, best, blocks, weights, max_changes)
                           for _ in range(min(batch_size, budget.renders - used))])
    scores = objective(candidates)
    used += len(candidates)
    if scores.min() < best_score:
      best, best_score = candidates[scores.argmin()], float(scores.min())
    trace.append((used, best_score))
  return SearchResult(best, best_score, start_score, used, time.monotonic() - started,
                      tuple(trace))


def hill_climb(objective: Objective, budget: Budget, rng: np.random.Generator, *,
               batch_size: int = 16, max_changes: int = 3) -> SearchResult:
  """The hill-climbing baseline: `local_search` with a uniform proposal from a prior voice."""
  start = _prior_classes(rng, objective.space, objective.algorithm, 1)[0]
  return local_search(objective, start, uniform_proposal(objective.space), budget, rng,
                      batch_size=batch_size, max_changes=max_changes)


def genetic(objective: Objective, budget: Budget, rng: np.random.Generator, *, population: int = 32, elite: int = 2,
            tournament: int = 3, mutation_rate: float | None = None) -> SearchResult:
  """The genetic-algorithm baseline, on the same render budget.

  The initial population is drawn from the prior. Each generation keeps the `elite` best
  (scores cached, not re-rendered) and breeds the rest by tournament selection, uniform
  crossover and per-parameter mutation to a uniformly drawn class. The initial population
  and the last generation shrink to spend the budget exactly.

  Args:
    objective: scores candidates.
    budget: the initial population's renders count against it.
    rng: draws everything.
    population: candidates per generation.
    elite: best candidates carried over unchanged, 0 <= elite < population.
    tournament: entrants per parent selection.
    mutation_rate: chance a child's parameter is redrawn; default 2 / num_params.
  Returns:
    The best candidate found.
  """
  space = objective.space
  if mutation_rate is None:
    mutation_rate = 2.0 / space.num_params
  if population < 1 or not 0 <= elite < population or tournament < 1:
    raise ValueError(f"need population >= 1, 0 <= elite < population and tournament >= 1, "
                     f"got {population}, {elite}, {tournament}")
  if not 0.0 <= mutation_rate <= 1.0:
    raise ValueError(f"mutation_rate must be in [0, 1], got {mutation_rate}")

  started = time.monotonic()
  classes = _prior_classes(rng, space, objective.algorithm, min(population, budget.renders))
  scores = objective(classes)
  used = len(classes)
  best, best_score = classes[scores.argmin()], float(scores.min())
  start_score, trace = best_score, [(used, best_score)]
  while used < budget.renders and time.monotonic() - started < budget.seconds:
    children = _breed(rng, classes, scores, min(population - elite, budget.renders - used),
                      space, tournament, mutation_rate)
    child_scores = objective(children)
    used += len(children)
    elites = np.argsort(scores, kind="stable")[:elite]
    classes = np.concatenate([classes[elites], children])
    scores = np.concatenate([scores[elites], child_scores])
    if child_scores.min() < best_score:
      best, best_score = children[child_scores.argmin()], float(child_scores.min())
    trace.append((used, best_score))
  return SearchResult(best, best_score, start_score, used, time.monotonic() - started,
                      tuple(trace))


def _check_classes(classes: np.ndarray, space: ParameterSpace) -> np.ndarray:
  """`[num_params]` class indices, checked, as int32."""
  classes = np.asarray(classes)
  if classes.shape != (space.num_params,):
    raise ValueError(f"expected {space.num_params} class indices, got shape {classes.shape}")
  if np.any((classes < 0) | (classes >= space.num_classes)):
    raise ValueError("class index out of range of space.num_classes")
  return classes.astype(np.int32)


def _mix_uniform(proposal: np.ndarray, space: ParameterSpace, floor: float) -> np.ndarray:
  """`[total_classes]` proposal, each block normalised, then mixed with `floor` of uniform."""
  proposal = np.asarray(proposal, np.float64)
  if proposal.shape != (space.total_classes,):
    raise ValueError(f"expected a proposal of {space.total_classes} probabilities, "
                     f"got shape {proposal.shape}")
  sums = np.add.reduceat(proposal, space.class_offsets[:-1])
  if not np.all(np.isfinite(proposal)) or np.any(proposal < 0) or np.any(sums <= 0):
    raise ValueError("proposal must be finite and non-negative, with every block summing > 0")
  sizes = space.num_classes
  return ((1.0 - floor) * proposal / np.repeat(sums, sizes)
          + floor / np.repeat(sizes, sizes).astype(np.float64))


def _neighbour(rng: np.random.Generator, classes: np.ndarray, blocks: list[np.ndarray],
               weights: np.ndarray, max_changes: int) -> np.ndarray:
  """`classes` `[num_params]` with 1..max_changes parameters, drawn by `weights`, moved to a
  class drawn from their proposal `blocks` (`ParameterSpace.blocks`)."""
  count = rng.integers(1, min(max_changes, np.count_nonzero(weights)) + 1)
  moved = rng.choice(len(classes), size=count, replace=False, p=weights / weights.sum())
  neighbour = classes.copy()
  for k in moved:
    block = blocks[k].copy()
    block[classes[k]] = 0.0
    neighbour[k] = rng.choice(len(block), p=block / block.sum())
  return neighbour


def _prior_classes(rng: np.random.Generator, space: ParameterSpace, algorithm: int,
                   count: int) -> np.ndarray:
  """`[count, num_params]` classes of prior voices of the 1-based `algorithm`."""
  return space.encode(np.stack([generate.sample_voice(rng, algorithm=algorithm)
                                for _ in range(count)]))


def _breed(rng: np.random.Generator, classes: np.ndarray, scores: np.ndarray, count: int,
           space: ParameterSpace, tournament: int, mutation_rate: float) -> np.ndarray:
  """`[count, num_params]` children of `classes` `[n, num_params]` scored `[n]` (lower wins)."""
  entrants = rng.integers(len(classes), size=(count, 2, tournament))
  winners = np.take_along_axis(entrants, scores[entrants].argmin(-1)[..., None], -1)[..., 0]
  parents = classes[winners]  # [count, 2, num_params]
  children = np.where(rng.random((count, space.num_params)) < 0.5, parents[:, 0], parents[:, 1])
  mutated = rng.random(children.shape) < mutation_rate
  redrawn = rng.integers(space.num_classes, size=children.shape)
  return np.where(mutated, redrawn, children).astype(np.int32)
