"""Synth-in-the-loop search with the real Dexed engine: objective, budgets, determinism."""

import dataclasses

import numpy as np
import pytest

from s2s_jax.audio import mfccd
from s2s_jax.match import search
from s2s_jax.synth import generate
from s2s_jax.synth import render
from s2s_jax.synth.space import ParameterSpace

SPACE = ParameterSpace()
ALGORITHM = 5  # 1-based


class RecordingObjective(search.Objective):
  """The real objective, keeping every batch of candidates it scores."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.batches = []

  def __call__(self, classes, algorithms=None):
    self.batches.append(np.array(classes))
    return super().__call__(classes, algorithms)


@dataclasses.dataclass(frozen=True)
class Target:
  classes: np.ndarray  # [num_params], the voice that made `audio`
  audio: np.ndarray  # [samples]
  start: np.ndarray  # [num_params], `classes` with 6 parameters changed


@pytest.fixture(scope="module")
def target(renderer) -> Target:
  """An audible prior voice of ALGORITHM, its rendering and a perturbed start."""
  rng = np.random.default_rng(0)
  while True:
    classes = SPACE.encode(generate.sample_voice(rng, algorithm=ALGORITHM))
    audio = render.render_batch(renderer, SPACE.decode(classes[None], ALGORITHM))[0]
    if generate.is_audible(audio, 0.1):
      break
  start = classes.copy()
  changed = rng.choice(SPACE.num_params, size=6, replace=False)
  start[changed] = (classes[changed] + rng.integers(1, SPACE.num_classes[changed])
                    ) % SPACE.num_classes[changed]
  return Target(classes, audio, start)


def objective(renderer, target, **kwargs) -> RecordingObjective:
  return RecordingObjective(target.audio, SPACE, ALGORITHM, renderer, batch_size=8, **kwargs)


def oracle_proposal(classes):
  """Half the mass of each block on the true class, the rest uniform."""
  one_hot = np.zeros(SPACE.total_classes)
  one_hot[SPACE.class_offsets[:-1] + classes] = 1.0
  return 0.5 * one_hot + 0.5 * search.uniform_proposal(SPACE)


def check_result(result, budget, objective_):
  """Checks a search's result and bookkeeping, then re-scores its best candidate."""
  assert result.classes.shape == (SPACE.num_params,) and result.classes.dtype == np.int32
  assert np.all((result.classes >= 0) & (result.classes < SPACE.num_classes))
  assert result.renders == budget.renders == objective_.renders
  assert sum(len(b) for b in objective_.batches) == budget.renders
  scores = [score for _, score in result.trace]
  assert [renders for renders, _ in result.trace] == list(
      np.cumsum([len(b) for b in objective_.batches]))
  assert np.all(np.diff(scores) <= 0)
  assert scores[-1] == result.score <= result.start_score
  np.testing.assert_allclose(objective_(result.classes[None]), [result.score], rtol=1e-6)


def test_objective_is_mfccd_and_counts_renders(renderer, target, random_voices):
  objective_ = objective(renderer, target)
  classes = SPACE.encode(random_voices[:11])  # 8 + 3: a padded MFCC chunk
  scores = objective_(classes)
  assert scores.shape == (11,) and scores.dtype == np.float64
  audio = render.render_batch(renderer, SPACE.decode(classes, ALGORITHM))
  expected = mfccd.mfccd(audio, np.broadcast_to(target.audio, audio.shape))
  np.testing.assert_allclose(scores, expected, rtol=1e-5)
  assert objective_.renders == 11
  np.testing.assert_allclose(objective_(target.classes[None]), [0.0], atol=1e-6)
  assert objective_.renders == 12


def test_objective_plays_each_candidate_with_its_own_algorithm(renderer, target, random_voices):
  classes = SPACE.encode(random_voices[:6])
  algorithms = np.array([1, 5, 32, 5, 13, 1])
  mixed = objective(renderer, target)(classes, algorithms)
  for algorithm in np.unique(algorithms):
    alone = search.Objective(target.audio, SPACE, int(algorithm), renderer, batch_size=8)
    rows = algorithms == algorithm
    np.testing.assert_allclose(mixed[rows], alone(classes[rows]), rtol=1e-6)


def test_objective_rejects_bad_arguments(renderer, target):
  with pytest.raises(ValueError, match="algorithm"):
    search.Objective(target.audio, SPACE, 0, renderer)
  with pytest.raises(ValueError, match="one clip"):
    search.Objective(target.audio[None], SPACE, ALGORITHM, renderer)


@pytest.mark.parametrize("proposal", ["oracle", "uniform"])
def test_local_search_improves_a_perturbed_start(renderer, target, proposal):
  objective_ = objective(renderer, target)
  budget = search.Budget(renders=64)
  proposal = (oracle_proposal(target.classes) if proposal == "oracle"
              else search.uniform_proposal(SPACE))
  result = search.local_search(objective_, target.start, proposal, budget,
                               np.random.default_rng(1), batch_size=8)
  check_result(result, budget, objective_)
  assert result.trace[0] == (1, result.start_score)
  assert result.score < result.start_score
  np.testing.assert_array_equal(objective_.batches[0], target.start[None])


def test_local_search_spends_the_budget_exactly_and_keeps_frozen_parameters(renderer, target):
  objective_ = objective(renderer, target)
  budget = search.Budget(renders=50)
  frozen = np.arange(0, SPACE.num_params, 2)
  result = search.local_search(objective_, target.start, search.uniform_proposal(SPACE), budget,
                               np.random.default_rng(2), batch_size=8, max_changes=3, frozen=frozen)
  assert [len(b) for b in objective_.batches] == [1] + [8] * 6 + [1]
  for batch in objective_.batches:
    np.testing.assert_array_equal(batch[:, frozen], np.broadcast_to(target.start[frozen],
                                                                    (len(batch), len(frozen))))
  check_result(result, budget, objective_)


def test_local_search_moves_one_to_max_changes_parameters(renderer, target):
  objective_ = objective(renderer, target)
  search.local_search(objective_, target.start, search.uniform_proposal(SPACE),
                      search.Budget(renders=9), np.random.default_rng(3), batch_size=8,
                      max_changes=2)
  changes = np.count_nonzero(objective_.batches[1] != target.start, axis=1)
  assert np.all((changes >= 1) & (changes <= 2))


def test_same_seed_same_result(renderer, target):
  def run(fn):
    result = fn(objective(renderer, target), np.random.default_rng(4))
    return result.classes, result.score, result.trace

  budget = search.Budget(renders=40)
  for fn in (lambda o, rng: search.local_search(o, target.start, search.uniform_proposal(SPACE),
                                                budget, rng, batch_size=8),
             lambda o, rng: search.genetic(o, budget, rng, population=16)):
    (classes_a, score_a, trace_a), (classes_b, score_b, trace_b) = run(fn), run(fn)
    np.testing.assert_array_equal(classes_a, classes_b)
    assert score_a == score_b and trace_a == trace_b


def test_hill_climb(renderer, target):
  objective_ = objective(renderer, target)
  budget = search.Budget(renders=48)
  result = search.hill_climb(objective_, budget, np.random.default_rng(5), batch_size=8)
  assert [len(b) for b in objective_.batches] == [1] + [8] * 5 + [7]
  check_result(result, budget, objective_)


def test_genetic(renderer, target):
  objective_ = objective(renderer, target)
  budget = search.Budget(renders=50)
  result = search.genetic(objective_, budget, np.random.default_rng(6), population=16,
                          elite=2)
  assert [len(b) for b in objective_.batches] == [16, 14, 14, 6]  # elites are not re-rendered
  check_result(result, budget, objective_)
  np.testing.assert_allclose(result.start_score, objective_(objective_.batches[0]).min(), rtol=1e-6)


def test_a_spent_time_limit_stops_after_the_start(renderer, target):
  budget = search.Budget(renders=100, seconds=1e-9)
  objective_ = objective(renderer, target)
  assert search.local_search(objective_, target.start, search.uniform_proposal(SPACE), budget,
                             np.random.default_rng(7)).renders == 1
  objective_ = objective(renderer, target)
  assert search.genetic(objective_, budget, np.random.default_rng(7),
                        population=8).renders == 8


@pytest.mark.parametrize("kwargs, field", [({"renders": 0}, "renders"),
                                           ({"renders": 2.5}, "renders"),
                                           ({"renders": 8, "seconds": 0.0}, "seconds"),
                                           ({"renders": 8, "seconds": float("nan")}, "seconds")])
def test_bad_budget(kwargs, field):
  with pytest.raises(ValueError, match=f"Budget.{field}"):
    search.Budget(**kwargs)


def test_local_search_rejects_bad_arguments(renderer, target):
  objective_ = objective(renderer, target)
  uniform = search.uniform_proposal(SPACE)
  budget = search.Budget(renders=8)
  rng = np.random.default_rng(8)
  with pytest.raises(ValueError, match="proposal"):
    search.local_search(objective_, target.start, uniform[:-1], budget, rng)
  with pytest.raises(ValueError, match="frozen"):
    search.local_search(objective_, target.start, uniform, budget, rng,
                        frozen=range(SPACE.num_params))
  with pytest.raises(ValueError, match="class indices"):
    search.local_search(objective_, target.start[:-1], uniform, budget, rng)
  assert objective_.renders == 0
