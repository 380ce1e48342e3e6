"""MFCCD of many clips against their targets, in batches that bound the STFT's memory.

As `audio.mfccd` defines it, with 13 coefficients (the paper's Table 1) and 30 (the reference
code's).
"""

from __future__ import annotations

import numpy as np

from s2s_jax.audio import mfccd

MFCCD_COEFFICIENTS = (13, 30)
_MFCCD_BATCH = 32  # clips per MFCC call: bounds the STFT's memory


def mfccd_scores(audio: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
  """`mfccd13` and `mfccd30` per pair of clips `[n, samples]` -> `[n]` each."""
  scores = {}
  for n_mfcc in MFCCD_COEFFICIENTS:
    scores[f"mfccd{n_mfcc}"] = np.concatenate([
        np.asarray(mfccd.mfccd(audio[i:i + _MFCCD_BATCH], target[i:i + _MFCCD_BATCH],
                               n_mfcc=n_mfcc))
        for i in range(0, len(audio), _MFCCD_BATCH)])
  return scores
