"""The search in the voices' own values, with the real engine: lossless values, moves, budgets."""

import numpy as np
import pytest

from s2s_jax.match import search
from s2s_jax.match import value_search as V
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth.space import ParameterSpace

SPACE = V.VALUE_SPACE
ALGORITHM = 5  # 1-based


def test_values_hold_any_real_voice_exactly(random_voices):
  played = params.clamp_voice(random_voices)
  decoded = SPACE.decode(SPACE.encode(played), params.algorithm_of(played))
  sound = slice(0, params.NUM_SOUND_BYTES)
  np.testing.assert_array_equal(decoded[:, sound], played[:, sound])
  # ... which the network's 64 bins cannot: a level of 51 comes back as 50.
  grid = ParameterSpace()
  level = SPACE.names.index("OP1 OUTPUT LEVEL")
  values = SPACE.encode(played)
  values[:, level] = 51
  assert np.all(SPACE.encode(grid.decode(grid.encode(SPACE.decode(values, 4)), 4))[:, level]
                == 50)


def test_ordered_and_unordered_parameters():
  ordered = dict(zip(SPACE.names, V.is_ordered()))
  assert ordered["OP1 OUTPUT LEVEL"] and ordered["OP3 F COARSE"] and ordered["FEEDBACK"]
  assert ordered["TRANSPOSE"] and ordered["OP2 BREAK POINT"]
  assert not ordered["OP1 MODE"] and not ordered["LFO WAVE"] and not ordered["OP4 L KEY SCALE"]
  assert not ordered["OSC KEY SYNC"] and not ordered["LFO KEY SYNC"]
  assert sum(ordered.values()) == SPACE.num_params - 3 - 6 * 3  # 3 global, 3 per operator


def test_a_network_bin_shares_its_mass_among_its_values():
  grid = ParameterSpace()
  probabilities = np.zeros(grid.total_classes)
  probabilities[grid.class_offsets[:-1]] = 1.0  # every parameter: all mass on class 0
  level = grid.names.index("OP1 OUTPUT LEVEL")
  probabilities[grid.class_offsets[level]:grid.class_offsets[level + 1]] = 0
  probabilities[grid.class_offsets[level] + 32] = 1.0  # bin 32 of 64 decodes 50 or 51 -> 50
  proposal = V.value_proposal(probabilities, grid)
  sums = np.add.reduceat(proposal, SPACE.class_offsets[:-1])
  np.testing.assert_allclose(sums, 1.0)
  block = proposal[SPACE.class_offsets[level]:SPACE.class_offsets[level + 1]]
  # values v with round(v * 63 / 99) == 32: 50 (31.8) and 51 (32.5); 49 is 31.2, 52 is 33.1
  np.testing.assert_allclose(block[[50, 51]], 0.5)
  assert block.sum() == pytest.approx(1.0) and np.count_nonzero(block) == 2


@pytest.fixture(scope="module")
def target(renderer):
  """An audible prior voice of ALGORITHM (as values) and its rendering."""
  rng = np.random.default_rng(3)
  while True:
    voice = generate.sample_voice(rng, algorithm=ALGORITHM)
    audio = renderer.render(voice)
    if generate.is_audible(audio, 0.1):
      return SPACE.encode(voice), audio


def perturbed(values, seed, count=6, size=12):
  """`values` with `count` ordered parameters moved by `size` values (clipped)."""
  rng = np.random.default_rng(seed)
  moved = rng.choice(np.flatnonzero(V.is_ordered() & (SPACE.num_classes == 100)), count,
                     replace=False)
  out = values.copy()
  out[moved] = np.clip(out[moved] + rng.choice((-size, size), count), 0, 99)
  return out


def test_the_search_spends_its_budget_and_never_gets_worse(renderer, target):
  values, audio = target
  objective = search.Objective(audio, SPACE, ALGORITHM, renderer, batch_size=8)
  starts = np.stack([perturbed(values, 1), perturbed(values, 2)])
  result = V.value_search(objective, starts, [ALGORITHM] * 2, search.Budget(90),
                          np.random.default_rng(0))
  assert result.renders == objective.renders == 90
  assert [r for r, _ in result.trace][0] == 2 and result.trace[-1][0] == 90
  assert np.all(np.diff([s for _, s in result.trace]) <= 0)
  assert result.score < result.start_score  # 88 moves from 12 values off find something
  assert result.algorithm == ALGORITHM
  np.testing.assert_allclose(objective(result.classes[None]), [result.score], rtol=1e-6)
  again = V.value_search(search.Objective(audio, SPACE, ALGORITHM, renderer, batch_size=8),
                         starts, [ALGORITHM] * 2, search.Budget(90), np.random.default_rng(0))
  np.testing.assert_array_equal(again.classes, result.classes)


def test_the_search_keeps_the_best_start_and_its_algorithm(renderer, target):
  values, audio = target
  objective = search.Objective(audio, SPACE, ALGORITHM, renderer)
  other = SPACE.encode(generate.sample_voice(np.random.default_rng(9), algorithm=1))
  result = V.value_search(objective, np.stack([other, values]), [1, ALGORITHM],
                          search.Budget(40), np.random.default_rng(0), start_scores=[30.0, 0.0])
  assert result.score == 0.0 and result.algorithm == ALGORITHM
  np.testing.assert_array_equal(result.classes, values)
  assert result.renders == objective.renders == 40  # known start scores are not re-rendered


def test_frozen_parameters_never_move(renderer, target):
  values, audio = target
  start = perturbed(values, 4)
  transpose = SPACE.names.index("TRANSPOSE")

  class Watching(search.Objective):
    seen = []

    def __call__(self, classes, algorithms=None):
      self.seen.append(np.array(classes))
      return super().__call__(classes, algorithms)

  watching = Watching(audio, SPACE, ALGORITHM, renderer)
  V.value_search(watching, start[None], [ALGORITHM], search.Budget(48),
                 np.random.default_rng(1), frozen=[transpose])
  assert np.all(np.concatenate(Watching.seen)[:, transpose] == start[transpose])


def test_ordered_moves_are_small_steps(target):
  """With a fixed step of 4 values, a moved 0..99 parameter moves by a few values."""
  values, _ = target
  settings = V.SearchSettings(step=4.0, adapt_step=False, max_changes=1, learn_weights=False)
  moves = V._Moves(  # pylint: disable=protected-access
      SPACE, settings, None, np.ones(SPACE.num_params, bool), np.random.default_rng(0))
  continuous = SPACE.num_classes == 100
  steps = []
  for _ in range(400):
    child, moved = moves.child(values)
    if continuous[moved[0]] and V.is_ordered()[moved[0]]:
      steps.append(abs(int(child[moved[0]]) - int(values[moved[0]])))
  steps = np.array(steps)
  assert np.all(steps >= 1) and np.median(steps) <= 4 and np.percentile(steps, 99) <= 16


def test_a_start_of_another_space_is_refused(renderer, target):
  _, audio = target
  objective = search.Objective(audio, ParameterSpace(), ALGORITHM, renderer)
  with pytest.raises(ValueError, match="VALUE_SPACE"):
    V.value_search(objective, np.zeros((1, SPACE.num_params)), [ALGORITHM], search.Budget(4),
                   np.random.default_rng(0))
