"""MFCCD of many clips against their targets, as `audio.mfccd` defines it, with 13
coefficients (the paper's Table 1) and 30 (the reference code's)."""

from __future__ import annotations

import numpy as np

from s2s_jax.audio import mfccd
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.spec import FeatureSpec

MFCCD_COEFFICIENTS = (13, 30)


def mfccd_scores(audio: np.ndarray, target: np.ndarray, clip: ClipSpec = ClipSpec()
                 ) -> dict[str, np.ndarray]:
  """`mfccd13` and `mfccd30` per pair of clips `[n, samples]` (of `clip`) -> `[n]` each."""
  spec = FeatureSpec(clip=clip)
  scores = {}
  for n_mfcc in MFCCD_COEFFICIENTS:
    a, b = (mfccd.mfcc_batched(clips, n_mfcc=n_mfcc, spec=spec) for clips in (audio, target))
    scores[f"mfccd{n_mfcc}"] = np.asarray(mfccd.mfcc_distance(a, b))
  return scores
