"""Pitch: the fundamental of a sound, and the TRANSPOSE that plays a voice at it.

The dataset renders every voice at C4; a voice sounds at C4 plus its TRANSPOSE offset plus
whatever its frequency ratios make of it. To match an input's pitch we measure both sounds
(probabilistic YIN) and move TRANSPOSE (0..48, 24 = no shift, one step a semitone) by the
difference, which the DX7 allows within two octaves either way of the voice's own.
"""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np

from s2s_jax.synth import params
from s2s_jax.synth.space import ParameterSpace

ANALYSIS_RATE = 8_000  # Hz: enough for fundamentals up to FMAX
ANALYSIS_SECONDS = 1.5  # from the (trimmed) start: the held part of a rendered note
FMIN, FMAX = 30.0, 2000.0  # Hz searched: B0 to B6
# A frame is voiced if pYIN's HMM says so and its voiced probability reaches
# MIN_VOICED_PROBABILITY (the flag alone calls a third of white noise's frames voiced); a sound is pitched if at
# least MIN_VOICED_FRACTION of its frames are.
MIN_VOICED_PROBABILITY = 0.5
MIN_VOICED_FRACTION = 0.3
_RESOLUTION = 0.25  # semitones between pYIN's pitch states: 7x faster than 0.1, ample to round
_TRANSPOSE = params.PARAM_BY_NAME["TRANSPOSE"]


@dataclasses.dataclass(frozen=True)
class Pitch:
  """A sound's fundamental: `hz` is the median over voiced frames, None if unpitched."""
  hz: float | None
  voiced_fraction: float

  @property
  def midi(self) -> float | None:
    return None if self.hz is None else float(librosa.hz_to_midi(self.hz))

  @property
  def note(self) -> str | None:
    """The nearest note name, e.g. "A3"."""
    return None if self.hz is None else librosa.hz_to_note(self.hz, unicode=False)


def estimate_pitch(audio: np.ndarray, sample_rate: int) -> Pitch:
  """Pitch of mono audio `[samples]`, from its first `ANALYSIS_SECONDS`."""
  clip = librosa.resample(np.asarray(audio[:round(ANALYSIS_SECONDS * sample_rate)], np.float32),
                          orig_sr=sample_rate, target_sr=ANALYSIS_RATE, res_type="soxr_hq")
  f0, flag, probability = librosa.pyin(clip, fmin=FMIN, fmax=FMAX, sr=ANALYSIS_RATE,
                                       frame_length=1024, resolution=_RESOLUTION, center=False)
  voiced = flag & (probability >= MIN_VOICED_PROBABILITY)
  fraction = float(np.mean(voiced)) if len(voiced) else 0.0
  if fraction < MIN_VOICED_FRACTION:
    return Pitch(hz=None, voiced_fraction=fraction)
  return Pitch(hz=float(np.median(f0[voiced])), voiced_fraction=fraction)


@dataclasses.dataclass(frozen=True)
class Retuning:
  """What setting TRANSPOSE did: the shift applied, in semitones, and whether it was the
  whole shift wanted (False: folded back by octaves into TRANSPOSE's range)."""
  semitones: int
  transpose: int  # the DX7 TRANSPOSE value set (0..48)
  in_range: bool
  message: str  # the move in words (the notes played are measured on the final rendering)


def retune(classes: np.ndarray, space: ParameterSpace, voice_pitch: Pitch,
           target_pitch: Pitch) -> tuple[np.ndarray, Retuning | None]:
  """Moves TRANSPOSE of classes `[num_params]` so the voice sounds at `target_pitch`.

  Returns the new classes and what was done; (classes, None) unchanged when either sound is
  unpitched. A shift beyond TRANSPOSE's range is folded back by whole octaves, so the match
  plays the input's note in the nearest octave the DX7 reaches, and says so.
  """
  if voice_pitch.hz is None or target_pitch.hz is None:
    return classes, None
  index = space.names.index(_TRANSPOSE.name)
  current = int(classes[index])
  wanted = current + int(round(target_pitch.midi - voice_pitch.midi))
  transpose = wanted
  while transpose > _TRANSPOSE.steps:
    transpose -= 12
  while transpose < 0:
    transpose += 12
  message = f"TRANSPOSE {current} -> {transpose} ({transpose - current:+d} semitones)"
  if transpose != wanted:
    octaves = abs(wanted - transpose) // 12
    message += (f": the input's pitch is out of the DX7's transpose range from this voice, so "
                f"the match plays its note {octaves} octave{'s' if octaves > 1 else ''} "
                f"{'lower' if wanted > transpose else 'higher'}")
  classes = np.array(classes, copy=True)
  classes[index] = transpose
  return classes, Retuning(transpose - current, transpose, transpose == wanted, message)
