"""Audio -> what the network reads."""

from __future__ import annotations

from collections.abc import Iterable

import jax

from s2s_jax.audio.features import FeatureBanks, featurise
from s2s_jax.audio.spec import FeatureSpec


def feature_banks(spec: FeatureSpec, branches: Iterable[str]) -> FeatureBanks:
  """The banks `model_inputs` needs for networks of `branches`: the CQT kernels (seconds to
  build) only where one has a "cqt" branch."""
  return FeatureBanks.create(spec, with_cqt="cqt" in set(branches))


def model_inputs(banks: FeatureBanks, audio: jax.Array) -> dict[str, jax.Array]:
  """What the network reads: every feature of `featurise` (of `banks`), plus the clip for the
  waveform.

  audio: `[batch, samples]` at the render rate -> feature name -> `[batch, ...]`.
  """
  return featurise(banks, audio) | {"audio": audio}
