"""MFCCD of many clips against their targets, as `audio.mfccd` defines it, with 13
coefficients (the paper's Table 1) and 30 (the reference code's)."""

from __future__ import annotations

import numpy as np

from s2s_jax.audio import mfccd
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.spec import FeatureSpec

MFCCD_COEFFICIENTS = (13, 30)
MAX_BATCH = 32  # clips per MFCC call


def mfccd_scores(audio: np.ndarray, target: np.ndarray, clip: ClipSpec = ClipSpec()
                 ) -> dict[str, np.ndarray]:
  """`mfccd13` and `mfccd30` per pair of clips `[n, samples]` (of `clip`) -> `[n]` each.

  The MFCCs are computed once, with the most coefficients (the first ones are the same), in
  batches of at most `MAX_BATCH` clips: n clips take the next power of two, so one pair is not
  padded to 32.
  """
  spec = FeatureSpec(clip=clip)
  batch = min(MAX_BATCH, 1 << max(len(audio) - 1, 0).bit_length())
  a, b = (mfccd.mfcc_batched(clips, n_mfcc=max(MFCCD_COEFFICIENTS), spec=spec, batch_size=batch)
          for clips in (audio, target))
  return {f"mfccd{n}": np.asarray(mfccd.mfcc_distance(a[..., :n], b[..., :n]))
          for n in MFCCD_COEFFICIENTS}
