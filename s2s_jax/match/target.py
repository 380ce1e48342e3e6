"""The sound to match: read, checked, trimmed, fitted to the render length, its pitch measured.

Whatever libsndfile reads (wav, flac, ogg, mp3, aiff...) at any rate and channel count becomes
one mono clip at the render rate. Leading silence is trimmed (the renders start with the note);
the clip is then cropped or zero-padded to the render length, which is what the network reads
and what MFCCD compares.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from s2s_jax.audio import io
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.match import pitch as pitch_lib

SILENCE_PEAK = 1e-4  # -80 dBFS: quieter than this everywhere is silence
TRIM_DB = 50.0  # leading samples more than this under the peak are trimmed...
LEAD_SECONDS = 0.001  # ...but for this much before the onset: renders start so (see BUILD_NOTES)
MIN_SECONDS = 0.1  # shortest sound (after trimming) worth matching


class TargetError(ValueError):
  """An input that cannot be matched; the message names the file and says why."""


@dataclasses.dataclass(frozen=True)
class Target:
  """A prepared input.

  Attributes:
    name: what outputs are called (the file name's stem).
    audio: `[settings.num_samples]` float32 mono at the render rate, trimmed and fitted.
    sample_rate: the render rate.
    seconds: the trimmed sound's own length.
    pitch: its fundamental.
  """
  name: str
  audio: np.ndarray
  sample_rate: int
  seconds: float
  pitch: pitch_lib.Pitch


def load_target(path: str | os.PathLike, settings: ClipSpec = ClipSpec(),
                name: str | None = None, source: str | None = None) -> Target:
  """Reads and prepares one sound file; TargetError if it cannot be matched.

  Errors name the file as `source` (default: its path; a server names the upload instead).
  Only the render length after the leading silence is decoded.
  """
  source = source or str(path)
  try:
    clip = io.read_audio(path, settings.sample_rate, settings.render_seconds, start_db=TRIM_DB,
                         lead_seconds=LEAD_SECONDS)
  except io.AudioReadError as e:
    raise TargetError(str(e).replace(str(path), source)) from None
  _check_loud(clip.peak, source)
  return prepare_target(clip.audio, settings, name or pathlib.Path(path).stem, source=source,
                        seconds=clip.seconds)


def prepare_target(audio: np.ndarray, settings: ClipSpec, name: str,
                   source: str, seconds: float | None = None) -> Target:
  """Mono audio `[samples]` at the render rate -> Target; errors name `source`.

  `seconds`: the sound's length after its leading silence, when `audio` is only its start.
  """
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 1 or audio.size == 0:
    raise TargetError(f"{source}: no audio samples")
  if not np.all(np.isfinite(audio)):
    raise TargetError(f"{source}: the audio holds NaN or infinite samples")
  peak = float(np.max(np.abs(audio)))
  _check_loud(peak, source)
  onset = int(np.argmax(np.abs(audio) > peak * 10 ** (-TRIM_DB / 20)))
  start = max(0, onset - round(LEAD_SECONDS * settings.sample_rate))
  audio = audio[start:]
  seconds = len(audio) / settings.sample_rate if seconds is None else seconds
  if seconds < MIN_SECONDS:
    raise TargetError(f"{source}: too short, {seconds:.3f} s of sound after leading silence "
                      f"(at least {MIN_SECONDS} s needed)")
  fitted = np.zeros(settings.num_samples, np.float32)
  fitted[:min(len(audio), settings.num_samples)] = audio[:settings.num_samples]
  return Target(name=name, audio=fitted, sample_rate=settings.sample_rate, seconds=seconds,
                pitch=pitch_lib.estimate_pitch(audio, settings.sample_rate))


def read_fitted(path: str | os.PathLike, settings: ClipSpec = ClipSpec()) -> np.ndarray:
  """A sound file as matching compares it `[settings.num_samples]`: mono at the render rate,
  leading silence trimmed as `load_target` trims it, cropped or zero-padded (io.AudioReadError
  if unreadable)."""
  audio = io.read_audio(path, settings.sample_rate, settings.render_seconds, start_db=TRIM_DB,
                        lead_seconds=LEAD_SECONDS).audio
  return np.pad(audio, (0, settings.num_samples - len(audio)))


def _check_loud(peak: float, source: str) -> None:
  if peak < SILENCE_PEAK:
    raise TargetError(f"{source}: the sound is silent (peak {_dbfs(peak)} dBFS, below "
                      f"{_dbfs(SILENCE_PEAK)} dBFS)")


def fits(target: Target, settings: ClipSpec) -> bool:
  """Was `target` prepared for clips of `settings`' rate and length?"""
  return (target.sample_rate, len(target.audio)) == (settings.sample_rate, settings.num_samples)


def _dbfs(level: float) -> str:
  return f"{20 * np.log10(max(level, 1e-12)):.0f}"
