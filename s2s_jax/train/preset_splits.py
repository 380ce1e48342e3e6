"""Splits of a preset folder held in memory: online training with no dataset build.

The folder's real voices are split as the dataset builder splits them (`data.sources.plan`,
near-duplicate groups, the recipe's seed and fractions). The training split is the pool that
online "augment" rendering mutates; a seeded sample of `eval_examples` audible voices of the
validation and test splits is rendered once, in memory, for evaluation.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from s2s_jax.audio import storage
from s2s_jax.data import sources
from s2s_jax.synth import corpus as C
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.synth.space import ParameterSpace


@dataclasses.dataclass(frozen=True)
class MemorySplits:
  """split name -> arrays of its examples.

  Every split has "voice" uint8 `[n, 155]`, "labels" int32 `[n, P]`, "weights" float32
  `[n, P]` (ones) and "algorithm" int32 `[n]` (1-based); validation and test also "audio"
  float32 `[n, samples]` (after the dataset's 16-bit storage round trip).
  """
  splits: dict[str, dict[str, np.ndarray]]


def load(manual_dir: str, mix: sources.SourceMix, space: ParameterSpace,
         renderer: R.Renderer, eval_examples: int, seed: int) -> MemorySplits:
  """Reads, splits and (validation and test) renders the voices of the folder `manual_dir`.

  Only the real voices of the recipe `mix` (its algorithm, if any) are used; augmentations
  and random presets of the recipe are left to online rendering.
  """
  corpus = C.read_corpus(os.path.expanduser(manual_dir))
  if not len(corpus.voices):
    raise ValueError(f"config.manual_dir {manual_dir!r} holds no readable DX7 voice")
  real_only = dataclasses.replace(mix, augmentations_per_preset=0, random_presets=0)
  planned = sources.plan(real_only, renderer, corpus)
  splits = {}
  for name, part in planned.items():
    if name == "train":
      splits[name] = _examples(part.voices, space)
    else:
      voices, audio = _audible_sample(part.voices, renderer, eval_examples, seed)
      splits[name] = _examples(voices, space) | {"audio": storage.as_stored(audio)}
  if not len(splits["train"]["voice"]):
    raise ValueError(f"config.manual_dir {manual_dir!r}: no voice fell in the training split")
  return MemorySplits(splits)


def _audible_sample(voices: np.ndarray, renderer: R.Renderer, count: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Up to `count` audible voices (peak > 0.01) in a seeded order and their renders:
  (`[m, 155]` uint8, `[m, samples]` float32)."""
  order = np.random.default_rng(seed).permutation(len(voices))
  chosen = np.zeros((0, params.VOICE_BYTES), np.uint8)
  audio = np.zeros((0, renderer.settings.num_samples), np.float32)
  for start in range(0, len(order), count):
    if len(chosen) >= count:
      break
    block = voices[order[start:start + count]]
    rendered = R.render_batch(renderer, block)
    audible = generate.is_audible(rendered, 0.01)
    chosen = np.concatenate([chosen, block[audible]])
    audio = np.concatenate([audio, rendered[audible]])
  return chosen[:count], audio[:count]


def _examples(voices: np.ndarray, space: ParameterSpace) -> dict[str, np.ndarray]:
  return {"voice": voices, "labels": space.encode(voices),
          "weights": np.ones((len(voices), space.num_params), np.float32),
          "algorithm": params.algorithm_of(voices)}
