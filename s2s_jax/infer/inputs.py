"""Audio -> what the network reads."""

from __future__ import annotations

import jax

from s2s_jax.audio.features import FeatureBanks, featurise


def model_inputs(banks: FeatureBanks, audio: jax.Array) -> dict[str, jax.Array]:
  """What the network reads: every feature of `featurise`, plus the clip for the waveform.

  audio: `[batch, samples]` at the render rate -> feature name -> `[batch, ...]`.
  """
  return featurise(banks, audio) | {"audio": audio}
