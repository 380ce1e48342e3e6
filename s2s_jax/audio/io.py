"""Reading a user's sound file as one mono clip at the render sample rate.

A file is probed (its header only) before any of it is decoded: rates below `MIN_RATE` or
above `MAX_RATE`, more than `MAX_CHANNELS` channels and sounds longer than `MAX_SECONDS` are
refused with the reason. Decoding then runs block by block, so memory holds only the seconds
the caller asks for, however long the file.
"""

from __future__ import annotations

import dataclasses
import os

import librosa
import numpy as np
import soundfile

MIN_RATE = 8_000  # Hz: the lowest telephone rate; below it a note loses its harmonics
MAX_RATE = 384_000  # Hz: the highest rate audio interfaces record at
MAX_CHANNELS = 8  # 7.1 surround
MAX_SECONDS = 300.0  # five minutes: far more than a note to match
BLOCK_FRAMES = 65_536


class AudioReadError(Exception):
  """A file could not be read as audio; the message names the file and says why."""


@dataclasses.dataclass(frozen=True)
class Clip:
  """The part of a sound file a caller reads.

  Attributes:
    audio: `[samples]` mono float32 at the requested rate, at most the requested seconds.
    seconds: how long the sound lasts from the clip's start to the end of the file.
    peak: the largest absolute mono sample of the whole file.
  """
  audio: np.ndarray
  seconds: float
  peak: float


def probe(path: str | os.PathLike) -> soundfile._SoundFileInfo:  # pylint: disable=protected-access
  """The file's header (rate, channels, frames); AudioReadError if it is not usable audio."""
  if not os.path.exists(path):
    raise AudioReadError(f"{path}: no such file")
  if not os.path.isfile(path):
    raise AudioReadError(f"{path}: not a file")
  try:
    info = soundfile.info(path)
  except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
    raise AudioReadError(f"{path}: not a readable audio file ({error})") from None
  if not MIN_RATE <= info.samplerate <= MAX_RATE:
    raise AudioReadError(f"{path}: sample rate {info.samplerate} Hz is outside "
                         f"{MIN_RATE}..{MAX_RATE} Hz")
  if not 1 <= info.channels <= MAX_CHANNELS:
    raise AudioReadError(f"{path}: {info.channels} channels (at most {MAX_CHANNELS})")
  if info.frames > MAX_SECONDS * info.samplerate:
    raise AudioReadError(f"{path}: duration {info.frames / info.samplerate:.1f} s is longer "
                         f"than {MAX_SECONDS:.0f} s")
  return info


def read_audio(path: str | os.PathLike, sample_rate: int, seconds: float | None = None,
               start_db: float | None = None, lead_seconds: float = 0.0) -> Clip:
  """Any file libsndfile reads (wav, flac, ogg, mp3, aiff...) -> its first `seconds` as a Clip.

  Channels are averaged; the clip is resampled to `sample_rate` (soxr, high quality). With
  `start_db`, the clip starts at the first sample less than `start_db` under the file's peak
  (leading silence skipped), less `lead_seconds`. Raises AudioReadError for a missing, unreadable, non-audio, empty
  or out-of-limits file, or one holding NaN or infinite samples.
  """
  info = probe(path)
  limit = round((MAX_SECONDS if seconds is None else seconds) * info.samplerate)
  try:
    peak, frames = _scan(path)
    if frames == 0:
      raise AudioReadError(f"{path}: the file holds no audio samples")
    if not np.isfinite(peak):
      raise AudioReadError(f"{path}: the audio holds NaN or infinite samples")
    start = 0 if start_db is None else max(0, _first_above(
        path, peak * 10 ** (-start_db / 20)) - round(lead_seconds * info.samplerate))
    audio = _decode(path, start, limit)
  except (soundfile.LibsndfileError, RuntimeError) as error:
    raise AudioReadError(f"{path}: not a readable audio file ({error})") from None
  if info.samplerate != sample_rate and audio.size:
    audio = librosa.resample(audio, orig_sr=info.samplerate, target_sr=sample_rate,
                             res_type="soxr_hq")
  if seconds is not None:
    audio = audio[:round(seconds * sample_rate)]
  return Clip(audio.astype(np.float32), (frames - start) / info.samplerate, peak)


def _blocks(path, start: int = 0):
  """The file's mono blocks `[frames]` from frame `start`, never more than MAX_SECONDS."""
  with soundfile.SoundFile(path) as file:
    file.seek(start)
    left = round(MAX_SECONDS * file.samplerate) - start
    while left > 0:
      block = file.read(min(BLOCK_FRAMES, left), dtype="float32", always_2d=True)
      if not len(block):
        return
      left -= len(block)
      yield block.mean(axis=1)


def _scan(path) -> tuple[float, int]:
  """(peak, frames) of the whole file, one block in memory at a time; NaN peak if not finite."""
  peak, frames = 0.0, 0
  for block in _blocks(path):
    frames += len(block)
    peak = max(peak, float(np.max(np.abs(block)))) if np.all(np.isfinite(block)) else np.nan
    if np.isnan(peak):
      break
  return peak, frames


def _first_above(path, level: float) -> int:
  """The first frame whose absolute mono value exceeds `level`."""
  offset = 0
  for block in _blocks(path):
    loud = np.abs(block) > level
    if loud.any():
      return offset + int(np.argmax(loud))
    offset += len(block)
  return offset


def _decode(path, start: int, frames: int) -> np.ndarray:
  """At most `frames` mono frames `[frames]` from frame `start`."""
  blocks, left = [], frames
  for block in _blocks(path, start):
    blocks.append(block[:left])
    left -= len(blocks[-1])
    if left <= 0:
      break
  return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
