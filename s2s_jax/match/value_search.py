"""Search in the voice's own values, from several starts, with the engine in the loop.

Candidates are DX7 values, not the network's class grid: `VALUE_SPACE` has one class per value
of every parameter (100 for the 0..99 ones), so any real voice is representable exactly and
`VALUE_SPACE.encode` / `decode` are lossless. Moves respect each parameter's kind:
- ordered parameters (the 0..99 levels and rates, ratios, detune, scalings, feedback,
  transpose...) take a small step, about `step` values out of 100 (scaled to their range);
- unordered ones (operator mode, key-scaling curves, LFO wave, sync switches) are redrawn;
- where a network is given, a share of moves redraws from its probabilities instead.
The search keeps a population of the best distinct candidates found (`parents`, seeded with the
starts, which may be of different algorithms) and breeds each batch from them: an elitist
(mu + lambda) evolution strategy whose step size follows the 1/5 success rule, and whose
choice of which parameters to move learns, per parameter, how often moving it helped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from s2s_jax.match import search
from s2s_jax.synth.space import ParameterSpace

VALUE_SPACE = ParameterSpace(num_bins=100)  # one class per DX7 value: classes are values
_UNORDERED = ("MODE", "L KEY SCALE", "R KEY SCALE", "LFO WAVE", "OSC KEY SYNC", "LFO KEY SYNC")


@dataclasses.dataclass(frozen=True)
class SearchSettings:
  """How the value search moves.

  Attributes:
    batch_size: children rendered per generation.
    parents: best distinct candidates kept and bred from.
    max_changes: most parameters one child changes.
    step: initial step size, in values out of 100 (scaled to each parameter's range).
    adapt_step: follow the 1/5 success rule (else the step stays).
    learn_weights: favour parameters whose moves have helped (else uniform).
    network_share: share of moves drawn from the network's probabilities, when given.
  """
  batch_size: int = 16
  parents: int = 4
  max_changes: int = 3
  step: float = 8.0
  adapt_step: bool = True
  learn_weights: bool = True
  network_share: float = 0.3

  def __post_init__(self):
    if min(self.batch_size, self.parents, self.max_changes) < 1 or not self.step > 0:
      raise ValueError(f"batch_size, parents, max_changes must be >= 1 and step > 0: {self}")
    if not 0 <= self.network_share <= 1:
      raise ValueError(f"network_share must be in [0, 1], got {self.network_share}")


def is_ordered() -> np.ndarray:
  """`[num_params]` bool: True where a small step means a small change of sound."""
  return np.array([p.name.split(" ", 1)[-1] not in _UNORDERED and p.name not in _UNORDERED
                   for p in VALUE_SPACE.params])


def value_proposal(probabilities: np.ndarray, space: ParameterSpace) -> np.ndarray:
  """A network's class probabilities `[space.total_classes]` -> per-value probabilities
  `[VALUE_SPACE.total_classes]`: a bin's mass shared evenly among the values it decodes to."""
  blocks = []
  for k, block in enumerate(space.blocks(np.asarray(probabilities, np.float64))):
    if space.names[k] not in VALUE_SPACE.names:  # ALGORITHM: the search keeps each start's
      continue
    if space.is_continuous[k]:
      values = np.arange(100)
      bins = np.floor(values * (space.num_bins - 1) / 99 + 0.5).astype(int)  # as space.encode
      block = block[bins] / np.bincount(bins, minlength=len(block))[bins]
    blocks.append(block / block.sum())
  return np.concatenate(blocks)


def value_search(objective: search.Objective, starts: np.ndarray, algorithms: Sequence[int],
                 budget: search.Budget, rng: np.random.Generator, *,
                 start_scores: Sequence[float] | None = None, proposal: np.ndarray | None = None,
                 settings: SearchSettings = SearchSettings(), frozen: Sequence[int] = ()
                 ) -> search.SearchResult:
  """Evolves the best of `starts` within `budget`.

  Args:
    objective: scores candidates of `VALUE_SPACE`.
    starts: `[m, num_params]` values to start from, best first if `start_scores` is None.
    algorithms: `[m]` 1-based algorithm of each start; children keep their parent's.
    budget: renders (the starts' included when they are scored here) and seconds.
    rng: draws every move.
    start_scores: `[m]` the starts' MFCCD if already known (then they are not rendered).
    proposal: `[VALUE_SPACE.total_classes]` a network's per-value probabilities, or None.
    settings: how to move.
    frozen: indices of parameters that never move.
  Returns:
    The best candidate found; its `algorithm` is set.
  """
  space = VALUE_SPACE
  if objective.space is not space:
    raise ValueError("the objective must score candidates of VALUE_SPACE")
  starts = np.asarray(starts, np.int32).reshape(-1, space.num_params)
  algorithms = np.asarray(algorithms, np.int64).reshape(-1)
  if len(starts) != len(algorithms) or not len(starts):
    raise ValueError(f"need one algorithm per start, got {len(starts)} and {len(algorithms)}")
  movable = np.ones(space.num_params, bool)
  movable[np.asarray(frozen, np.int64)] = False
  started, used = time.monotonic(), 0
  if start_scores is None:
    starts, algorithms = starts[:budget.renders], algorithms[:budget.renders]
    scores = objective(starts, algorithms)
    used = len(starts)
  else:
    scores = np.asarray(start_scores, np.float64)
  moves = _Moves(space, settings, proposal, movable, rng)

  pool_values, pool_algorithms, pool_scores = _distinct_best(
      starts, algorithms, scores, settings.parents)
  start_score = float(pool_scores[0])
  trace = [(used, start_score)]
  while used < budget.renders and time.monotonic() - started < budget.seconds:
    count = min(settings.batch_size, budget.renders - used)
    which = rng.choice(len(pool_scores), size=count, p=_rank_weights(len(pool_scores)))
    children, changed = zip(*(moves.child(pool_values[w]) for w in which))
    children = np.stack(children)
    child_scores = objective(children, pool_algorithms[which])
    used += count
    better = child_scores < pool_scores[which]
    moves.learn(changed, better)
    pool_values, pool_algorithms, pool_scores = _distinct_best(
        np.concatenate([pool_values, children]),
        np.concatenate([pool_algorithms, pool_algorithms[which]]),
        np.concatenate([pool_scores, child_scores]), settings.parents)
    trace.append((used, float(pool_scores[0])))
  return search.SearchResult(pool_values[0], float(pool_scores[0]), start_score, used,
                             time.monotonic() - started, tuple(trace),
                             algorithm=int(pool_algorithms[0]))


class _Moves:
  """Draws children and learns from their outcome (step size, parameter weights)."""

  def __init__(self, space: ParameterSpace, settings: SearchSettings,
               proposal: np.ndarray | None, movable: np.ndarray, rng: np.random.Generator):
    self.space, self.settings, self.rng = space, settings, rng
    self.proposal_blocks = (None if proposal is None
                            else space.blocks(np.asarray(proposal, np.float64)))
    self.movable = movable
    self.ordered = is_ordered()
    self.maxima = space.num_classes - 1
    self.step = settings.step
    self.tries = np.zeros(space.num_params)
    self.wins = np.zeros(space.num_params)

  def child(self, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`[num_params]` a moved copy of `parent`, indices of the parameters moved)."""
    weights = np.where(self.movable, (self.wins + 1) / (self.tries + 2)
                       if self.settings.learn_weights else 1.0, 0.0)
    count = self.rng.integers(1, min(self.settings.max_changes, self.movable.sum()) + 1)
    moved = self.rng.choice(len(parent), size=count, replace=False, p=weights / weights.sum())
    child = parent.copy()
    for k in moved:
      child[k] = self._move(k, int(parent[k]))
    return child, moved

  def _move(self, k: int, value: int) -> int:
    top = int(self.maxima[k])
    network = self.proposal_blocks is not None and self.rng.random() < self.settings.network_share
    if network or not self.ordered[k]:
      block = np.full(top + 1, 1.0 / (top + 1))
      if network:
        block += self.proposal_blocks[k]
      block[value] = 0.0
      return int(self.rng.choice(top + 1, p=block / block.sum()))
    size = max(1.0, self.step * (top + 1) / 100)
    delta = int(np.round(self.rng.normal(0.0, size)))
    if delta == 0:
      delta = int(self.rng.choice((-1, 1)))
    moved = int(np.clip(value + delta, 0, top))
    return moved if moved != value else int(np.clip(value - delta, 0, top))

  def learn(self, changed: Sequence[np.ndarray], better: np.ndarray) -> None:
    for moved, won in zip(changed, better):
      self.tries[moved] += 1
      self.wins[moved] += won
    if self.settings.adapt_step:
      self.step = float(np.clip(self.step * (1.25 if better.mean() > 0.2 else 0.92), 1.0, 40.0))


def _rank_weights(n: int) -> np.ndarray:
  """`[n]` breeding probabilities of the best-first pool: linear in rank."""
  weights = np.arange(n, 0, -1, dtype=np.float64)
  return weights / weights.sum()


def _distinct_best(values: np.ndarray, algorithms: np.ndarray, scores: np.ndarray, count: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The `count` best distinct (values, algorithm) rows, best first."""
  keyed = np.concatenate([values, algorithms[:, None].astype(values.dtype)], 1)
  _, first = np.unique(keyed, axis=0, return_index=True)
  best = first[np.argsort(scores[first], kind="stable")][:count]
  return values[best], algorithms[best], scores[best]
