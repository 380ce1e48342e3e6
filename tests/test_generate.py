"""Preset generators: the prior, augmentation and random walks, with real renders."""

import numpy as np

from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import render


def _differences(a, b):
  return (params.clamp_voice(a)[..., :145] != params.clamp_voice(b)[..., :145]).sum(-1)


def test_prior_voices_are_valid_and_mostly_audible(renderer):
  rng = np.random.default_rng(7)
  voices = np.stack([generate.sample_voice(rng) for _ in range(128)])
  np.testing.assert_array_equal(params.clamp_voice(voices), voices)
  assert len(np.unique(voices[:, params.ALGORITHM_BYTE])) > 20
  audible = generate.is_audible(render.render_batch(renderer, voices))
  assert audible.mean() >= 0.9


def test_mutate_changes_exactly_the_requested_number_of_parameters(random_voices):
  rng = np.random.default_rng(0)
  for n in (1, 3, 10):
    changed = generate.mutate(random_voices[0], rng, n)
    assert _differences(changed, random_voices[0]) == n
    assert changed[params.ALGORITHM_BYTE] == random_voices[0][params.ALGORITHM_BYTE]


def test_random_walk_is_audible_seeded_and_keeps_the_algorithm(renderer):
  voices = generate.random_walk(renderer, 25, seed=3, algorithm=7, walk_length=10, max_changes=2)
  assert voices.shape == (25, 155) and (voices[:, params.ALGORITHM_BYTE] == 6).all()
  assert generate.is_audible(render.render_batch(renderer, voices)).all()
  np.testing.assert_array_equal(voices, generate.random_walk(renderer, 25, seed=3, algorithm=7))
  assert not np.array_equal(voices, generate.random_walk(renderer, 25, seed=4, algorithm=7))
  steps = _differences(voices[1:10], voices[:9])  # within a walk, each step is small
  assert ((steps >= 1) & (steps <= 2)).all()
  assert _differences(voices[10], voices[9]) > 2  # a new walk starts from the prior


def test_random_walk_fails_clearly_when_nothing_is_audible(renderer):
  try:
    generate.random_walk(renderer, 1, seed=0, min_peak=100.0, max_tries=3)
  except RuntimeError as e:
    assert "no audible preset" in str(e)
  else:
    raise AssertionError("expected a RuntimeError")


def test_augmentation_keeps_most_parameters_and_its_source(renderer, random_voices):
  variants, sources = generate.augment(random_voices[:6], renderer, seed=5, copies=3,
                                       max_changes=3)
  assert len(variants) == 18 and (np.bincount(sources) == 3).all()
  differences = _differences(variants, random_voices[sources])
  assert ((differences >= 1) & (differences <= 3)).all()
  assert generate.is_audible(render.render_batch(renderer, variants)).all()
  again, _ = generate.augment(random_voices[:6], renderer, seed=5, copies=3, max_changes=3)
  np.testing.assert_array_equal(variants, again)
