"""Reading a user's sound file as one mono clip at the render sample rate."""

from __future__ import annotations

import os

import librosa
import numpy as np
import soundfile


class AudioReadError(Exception):
  """A file could not be read as audio; the message names the file and says why."""


def read_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
  """Any file libsndfile reads (wav, flac, ogg, mp3, aiff...) -> mono float32 [samples].

  Channels are averaged; the clip is resampled to `sample_rate` (soxr, high quality).
  Raises AudioReadError for a missing, unreadable, non-audio or empty file.
  """
  if not os.path.exists(path):
    raise AudioReadError(f"{path}: no such file")
  if not os.path.isfile(path):
    raise AudioReadError(f"{path}: not a file")
  try:
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
    raise AudioReadError(f"{path}: not a readable audio file ({error})") from None
  if audio.size == 0:
    raise AudioReadError(f"{path}: the file holds no audio samples")
  audio = audio.mean(axis=1)
  if not np.all(np.isfinite(audio)):
    raise AudioReadError(f"{path}: the audio holds NaN or infinite samples")
  if rate != sample_rate:
    audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
  return audio.astype(np.float32)
