"""Reading users' sound files: limits probed before decoding, bounded decoding, fuzzed files."""

import io
import subprocess
import sys

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import soundfile

from s2s_jax.audio import io as audio_io


def _write(path, audio, rate, **kwargs):
  soundfile.write(path, audio, rate, **kwargs)
  return path


@pytest.mark.parametrize("rate, channels, seconds, message", [
    (1, 1, 1000.0, "sample rate 1 Hz is outside 8000..384000 Hz"),
    (7999, 1, 1.0, "sample rate 7999 Hz is outside 8000..384000 Hz"),
    (8000, 9, 1.0, "9 channels (at most 8)"),
    (8000, 1, 300.5, "duration 300.5 s is longer than 300 s"),
])
def test_files_out_of_limits_are_refused_from_their_header(tmp_path, rate, channels, seconds,
                                                           message):
  path = _write(tmp_path / "x.wav", np.zeros((round(rate * seconds), channels), np.int16), rate)
  with pytest.raises(audio_io.AudioReadError) as error:
    audio_io.read_audio(path, 48_000)
  assert str(error.value) == f"{path}: {message}"


def test_only_the_seconds_asked_for_are_kept_and_leading_silence_is_skipped(tmp_path):
  rate = 44_100
  tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(20 * rate) / rate)
  audio = np.r_[np.zeros(3 * rate), tone]  # 3 s of silence, then 20 s of tone
  path = _write(tmp_path / "long.flac", np.stack([audio, 0.5 * audio], 1), rate)
  clip = audio_io.read_audio(path, 48_000, seconds=4.0, start_db=50)
  assert clip.audio.shape == (4 * 48_000,) and clip.audio.dtype == np.float32
  assert clip.seconds == pytest.approx(20.0, abs=1e-3)  # after the silence, to the end
  assert clip.peak == pytest.approx(0.375, abs=1e-3)  # the mean of the channels
  assert np.abs(clip.audio[:10]).max() > 0  # starts on the tone, not in the silence
  assert np.max(np.abs(clip.audio)) == pytest.approx(0.375, abs=0.01)
  whole = audio_io.read_audio(path, 48_000)
  assert whole.seconds == pytest.approx(23.0, abs=1e-3)
  assert abs(len(whole.audio) - 23 * 48_000) <= 1


def test_s2s_mfccd_peak_memory_stays_small_on_the_largest_files(tmp_path):
  rate, channels, seconds = 384_000, 8, 150  # 0.9 GB of 16-bit samples, 1.8 GB as float32
  large, short = tmp_path / "large.wav", tmp_path / "short.wav"
  tone = (16_384 * np.sin(2 * np.pi * 440 * np.arange(10 * rate) / rate)).astype(np.int16)
  block = np.repeat(tone[:, None], channels, 1)  # 10 s, written as it is (no conversion)
  with soundfile.SoundFile(large, "w", rate, channels, "PCM_16") as file:
    for _ in range(seconds // 10):
      file.write(block)
  soundfile.write(short, block, rate, "PCM_16")  # the large file's first 10 s
  # The process's own peak (VmHWM), not getrusage's ru_maxrss: Linux carries the forking
  # process's peak into that across exec, and a pytest worker may have held gigabytes.
  code = ("import re, sys; from s2s_jax.audio import cli; rc = cli.main(sys.argv[1:]); "
          "status = open('/proc/self/status').read(); "
          "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)); sys.exit(rc)")
  result = subprocess.run([sys.executable, "-c", code, str(large), str(short)],
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  distance, peak_kib = result.stdout.split()
  assert float(distance) == pytest.approx(0.0, abs=1e-6)  # read as its first 10 s are
  assert int(peak_kib) < 1.5 * 2**20, f"peak {int(peak_kib) / 2**20:.2f} GiB"


def _wav(audio: np.ndarray, rate: int) -> bytes:
  buffer = io.BytesIO()
  soundfile.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
  return buffer.getvalue()


_VALID = _wav(0.3 * np.sin(np.arange(4800) / 5), 48_000)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(data=st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda at, new: _VALID[:at] + new + _VALID[at + len(new):],
              st.integers(0, 80), st.binary(min_size=1, max_size=8)),
    st.builds(lambda cut: _VALID[:cut], st.integers(0, len(_VALID)))))
def test_fuzzed_files_read_or_give_a_one_line_reason(tmp_path_factory, data):
  path = tmp_path_factory.mktemp("fuzz") / "fuzz.wav"
  path.write_bytes(data)
  try:
    clip = audio_io.read_audio(path, 48_000, seconds=4.0, start_db=50)
  except audio_io.AudioReadError as e:
    assert str(e).startswith(f"{path}: ") and "\n" not in str(e)
  else:
    assert clip.audio.ndim == 1 and clip.audio.size <= 4 * 48_000 + 1
    assert np.all(np.isfinite(clip.audio)) and 0 <= clip.seconds <= audio_io.MAX_SECONDS
