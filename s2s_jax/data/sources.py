"""Which voices a dataset holds, in which split, from which source.

Three sources, as in the paper: real presets from the user's corpus, augmented
variants of them (a few parameters redrawn), and random-walk presets. Splits are
by near-duplicate group (`synth.splits`): an augmented variant stays in its
source's split, and the test split never holds generated presets when real ones
are in the mix, so test measures held-out real sounds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from s2s_jax.synth import corpus as C
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.synth import splits

SOURCES = ("real", "augmented", "random")


@dataclasses.dataclass(frozen=True)
class SourceMix:
  """The recipe of a dataset.

  Attributes:
    algorithm: 1-based DX7 algorithm of every voice, or None for all 32.
    real: take the real presets of the corpus (the TFDS manual directory).
    augmentations_per_preset: augmented variants per real train/validation preset.
    max_augmented_changes: parameters redrawn per variant, at most.
    random_presets: random-walk presets (train and validation only when `real`).
    walk_length: presets per random walk (a walk is one near-duplicate group).
    max_differences: near-duplicate grouping threshold.
    fractions: train/validation/test shares of the groups.
    seed: everything generated depends only on this seed.
  """

  algorithm: int | None = None
  real: bool = True
  augmentations_per_preset: int = 0
  max_augmented_changes: int = 3
  random_presets: int = 0
  walk_length: int = 10
  max_differences: int = 3
  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
  seed: int = 20001101

  def __post_init__(self):
    if self.algorithm is not None and not 1 <= self.algorithm <= params.NUM_ALGORITHMS:
      raise ValueError(f"algorithm must be 1..32 or None, got {self.algorithm}")


@dataclasses.dataclass(frozen=True)
class Planned:
  """The voices of one split and where each came from. Arrays are `[n]` unless noted."""

  voices: np.ndarray  # [n, 155] uint8, as Dexed plays them
  source: np.ndarray  # index into SOURCES
  group: np.ndarray  # near-duplicate group; random walks numbered after the corpus's groups
  source_file: tuple[str, ...]
  theme: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.voices)


def plan(mix: SourceMix, renderer: R.Renderer, corpus: C.Corpus | None) -> dict[str, Planned]:
  """The voices of every split, {split name: Planned}.

  Raises:
    ValueError: the mix needs real presets and no corpus was given.
  """
  if mix.real and corpus is None:
    raise ValueError("this dataset config needs real presets: pass a preset folder as the "
                     "manual directory (--manual_dir)")
  parts = {name: [] for name in splits.SPLITS}
  next_group = 0
  if mix.real:
    groups = splits.near_duplicate_groups(corpus.voices, mix.max_differences)
    split = splits.assign_splits(corpus.voices, groups, mix.seed, mix.fractions)
    keep = np.ones(len(corpus.voices), bool) if mix.algorithm is None else (
        corpus.algorithms == mix.algorithm)
    first_file = [corpus.files[f] for f in corpus.slot_file[corpus.first_slot]]
    for s, name in enumerate(splits.SPLITS):
      index = np.nonzero(keep & (split == s))[0]
      real = Planned(params.clamp_voice(corpus.voices[index]), np.zeros(len(index), np.int8),
                     groups[index], tuple(first_file[i] for i in index),
                     tuple(corpus.themes[i] for i in index))
      parts[name].append(real)
      if mix.augmentations_per_preset and name != "test":
        parts[name].append(_augmented(real, mix, renderer))
    next_group = int(groups.max(initial=-1)) + 1
  if mix.random_presets:
    voices = generate.random_walk(renderer, mix.random_presets, mix.seed,
                                  algorithm=mix.algorithm, walk_length=mix.walk_length)
    groups = splits.near_duplicate_groups(voices, mix.max_differences)
    fractions = _renormalised(mix.fractions, without_test=mix.real)
    split = splits.assign_splits(voices, groups, mix.seed, fractions)
    for s, name in enumerate(splits.SPLITS):
      index = np.nonzero(split == s)[0]
      parts[name].append(Planned(voices[index], np.full(len(index), 2, np.int8),
                                 groups[index] + next_group, ("",) * len(index),
                                 ("random walk",) * len(index)))
  return {name: _concatenate(p) for name, p in parts.items()}


def _augmented(real: Planned, mix: SourceMix, renderer: R.Renderer) -> Planned:
  variants, sources = generate.augment(real.voices, renderer, mix.seed,
                                       copies=mix.augmentations_per_preset,
                                       max_changes=mix.max_augmented_changes)
  return Planned(variants, np.ones(len(variants), np.int8), real.group[sources],
                 tuple(real.source_file[i] for i in sources),
                 tuple(real.theme[i] for i in sources))


def _renormalised(fractions, without_test: bool) -> tuple[float, float, float]:
  if not without_test:
    return tuple(fractions)
  train, validation, _ = fractions
  return (train / (train + validation), validation / (train + validation), 0.0)


def _concatenate(parts: list[Planned]) -> Planned:
  if not parts:
    return Planned(np.zeros((0, params.VOICE_BYTES), np.uint8), np.zeros(0, np.int8),
                   np.zeros(0, np.int64), (), ())
  return Planned(np.concatenate([p.voices for p in parts]),
                 np.concatenate([p.source for p in parts]),
                 np.concatenate([p.group for p in parts]),
                 sum((p.source_file for p in parts), ()), sum((p.theme for p in parts), ()))
