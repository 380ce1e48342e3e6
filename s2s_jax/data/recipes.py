"""The `dexed_presets` configs as plain data: what each dataset holds and how it is rendered.

Kept apart from the TFDS builder (`data.builder` wraps each recipe in a BuilderConfig) so that
inference can tell what a model was trained on without loading TensorFlow Datasets.
"""

from __future__ import annotations

import dataclasses

from s2s_jax.audio.clip import ClipSpec
from s2s_jax.data import sources
from s2s_jax.data import weights as W
from s2s_jax.synth import params


@dataclasses.dataclass(frozen=True)
class DatasetRecipe:
  """A dataset config: sources, the clip each voice is rendered to, labels and loss weights."""

  name: str
  description: str
  mix: sources.SourceMix = sources.SourceMix()
  clip: ClipSpec = ClipSpec()
  num_bins: int = 64
  weights: W.WeightSettings = W.WeightSettings()


def _t6(algorithm: int) -> DatasetRecipe:
  return DatasetRecipe(
      name=f"alg{algorithm:02d}",
      description=(f"DX7 algorithm {algorithm}: the paper's T6 mix (real presets, about 4 "
                   "augmented variants each, random walks; test holds real presets only)."),
      mix=sources.SourceMix(algorithm=algorithm, augmentations_per_preset=4, random_presets=1678))


RECIPES = (
    DatasetRecipe(
        name="tiny",
        description="60 random-walk presets of algorithm 5 as 1 s clips (key held 0.5 s), no "
                    "user data: tests and demos.",
        mix=sources.SourceMix(algorithm=5, real=False, random_presets=60, walk_length=3),
        clip=ClipSpec(note_seconds=0.5, render_seconds=1.0),  # a quarter of the paper's: cheap
        weights=W.WeightSettings(mode="sampled", num_sampled=8)),
    *(_t6(a) for a in range(1, params.NUM_ALGORITHMS + 1)),
    DatasetRecipe(
        name="all", description="Every real preset of every algorithm (algorithm as a feature).",
        mix=sources.SourceMix(algorithm=None)),
    DatasetRecipe(
        name="all_light",
        description="Every real preset, one augmented variant each, as 1 s clips (key held "
                    "0.5 s), 4 probed weights: a quick check of a preset folder, and the "
                    "builder test on dummy data.",
        mix=sources.SourceMix(algorithm=None, augmentations_per_preset=1),
        clip=ClipSpec(note_seconds=0.5, render_seconds=1.0),  # as `tiny`'s: cheap
        weights=W.WeightSettings(mode="sampled", num_sampled=4)),
)


def recipe(name: str) -> DatasetRecipe:
  """The recipe called `name`; ValueError listing the names if there is none."""
  for candidate in RECIPES:
    if candidate.name == name:
      return candidate
  raise ValueError(f"unknown dataset config {name!r}: use tiny, alg01..alg32, all or all_light")
