"""Gradient-inspired loss weights (the paper's Section 2.5), precomputed per example.

For a voice and a learnable parameter k, move k by one class step around the
ground truth (up, or down at the top class), render, and take

  r_k = MFCCD(audio, audio with k moved) / (change of k in [0, 1] units)^2,

the audio-space change per parameter-space MSE change (the MSE's 1/P factor
cancels below). Weights are s * r, capped at `max_weight`, with s chosen so
the mean over the probed parameters is 1: uniform weighting is the mean.
A parameter that cannot change the sound (an operator nobody hears) gets 0:
a probe whose moved voice keeps the voice's `sound_key` renders bit-identical
audio, so it is not rendered at all; the others are rendered and their MFCCs
(`mfccd.mfcc_host`) computed on the render threads. Parameters not probed
(mode "sampled") get 1.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np

from s2s_jax.audio import mfccd
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.synth import render as R
from s2s_jax.synth import sound_key
from s2s_jax.synth.space import ParameterSpace


@dataclasses.dataclass(frozen=True)
class WeightSettings:
  """How weights are computed.

  Attributes:
    mode: "all" probes every learnable parameter (144 extra renders per
      example), "sampled" probes `num_sampled` random ones, "off" stores ones.
    num_sampled: parameters probed per example in mode "sampled".
    max_weight: the largest weight (the rest are rescaled to keep the mean 1).
    n_mfcc: coefficients of the MFCCD.
  """

  mode: Literal["all", "sampled", "off"] = "sampled"
  num_sampled: int = 16
  max_weight: float = 10.0
  n_mfcc: int = 13

  def __post_init__(self):
    if self.mode not in ("all", "sampled", "off"):
      raise ValueError(f"weight mode must be 'all', 'sampled' or 'off', got {self.mode!r}")


def neighbour_voices(space: ParameterSpace, voice: np.ndarray, probed: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
  """The voice with each probed parameter moved one class step (up, or down from the top).

  Args:
    voice: `[155]` uint8, as Dexed plays it.
    probed: `[m]` indices of learnable parameters.
  Returns:
    (`[m, 155]` voices, each differing from `voice` in one byte; `[m]` size of
    each move in [0, 1] units, never 0).
  """
  classes = np.repeat(space.encode(voice)[None], len(probed), axis=0)
  rows = np.arange(len(probed))
  current = classes[rows, probed]
  classes[rows, probed] = np.where(current + 1 < space.num_classes[probed], current + 1,
                                   current - 1)
  values = space.class_values(classes)[rows, probed]
  byte = space.voice_bytes[probed]
  moved = np.repeat(voice[None], len(probed), axis=0)
  moved[rows, byte] = values
  steps = np.array([space.params[k].steps for k in probed])
  return moved, (values - voice[byte].astype(float)) / steps


def gradient_weights(space: ParameterSpace, voices: np.ndarray, audio: np.ndarray,
                     renderer: R.Renderer, settings: WeightSettings, seed: int,
                     spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
  """Per-example, per-parameter loss weights.

  Args:
    voices: `[n, 155]` uint8 voices as Dexed plays them.
    audio: `[n, samples]` their renderings.
    renderer: renders the moved voices that can sound different, on all cores (the skipped
      ones are judged by dexed-py's engine, which `R.DexedRenderer` plays).
    settings: mode and limits.
    seed: picks the probed parameters in mode "sampled".
  Returns:
    `[n, space.num_params]` float32 weights in [0, max_weight], mean 1 over the
    probed parameters.
  """
  weights = np.ones((len(voices), space.num_params), np.float32)
  if settings.mode == "off":
    return weights
  rng = np.random.default_rng(seed)
  probed = [np.arange(space.num_params) if settings.mode == "all" else
            np.sort(rng.choice(space.num_params, settings.num_sampled, replace=False))
            for _ in voices]
  moved, change = zip(*(neighbour_voices(space, voice, p) for voice, p in zip(voices, probed)))
  example = np.repeat(np.arange(len(voices)), [len(m) for m in moved])
  moved = np.concatenate(moved)
  keys = sound_key.sound_keys(np.concatenate([voices, moved]), renderer.settings)
  heard = np.any(keys[len(voices):] != keys[example], axis=1)  # the rest sound the same: 0
  rendered = np.flatnonzero(heard)
  references = np.unique(example[rendered])
  mfcc = functools.partial(mfccd.mfcc_host, n_mfcc=settings.n_mfcc, spec=spec)
  shape = (spec.num_frames, settings.n_mfcc)
  reference_mfcc = np.zeros((len(voices), *shape), np.float32)
  reference_mfcc[references] = np.reshape(list(R.map_with(renderer, mfcc, audio[references])),
                                          (-1, *shape))
  moved_mfcc = np.reshape(list(R.map_with(renderer, lambda voice: mfcc(renderer.render(voice)),
                                          moved[rendered])), (-1, *shape))  # both on one thread
  distance = np.zeros(len(moved))
  distance[rendered] = mfccd.mfcc_distance(reference_mfcc[example[rendered]], moved_mfcc)
  for i, (p, step) in enumerate(zip(probed, change)):
    weights[i, p] = _normalise(distance[example == i] / np.square(step), settings.max_weight)
  return weights


def _normalise(ratio: np.ndarray, max_weight: float) -> np.ndarray:
  """Ratios `[m]` -> min(s * ratio, max_weight) with s chosen so the mean is 1.

  Water-filling: the largest ratios are capped at `max_weight` and the rest
  rescaled. When fewer than m / max_weight ratios are non-zero, a mean of 1 is
  out of reach and every non-zero ratio gets `max_weight`; all zero gives all 1.
  """
  if not np.any(ratio > 0):
    return np.ones_like(ratio)
  m = len(ratio)
  descending = np.sort(ratio)[::-1]
  rest = np.concatenate([np.cumsum(descending[::-1])[::-1], [0.0]])  # sum of descending[k:]
  for capped in range(m):
    if m - max_weight * capped <= 0 or rest[capped] == 0:
      break
    scale = (m - max_weight * capped) / rest[capped]
    if scale * descending[capped] <= max_weight:
      return np.minimum(scale * ratio, max_weight)
  return np.where(ratio > 0, max_weight, 0.0)
