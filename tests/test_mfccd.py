"""MFCCD against a composition of librosa calls, its properties, and the `s2s-mfccd` command."""

import pathlib
import subprocess
import sys

import librosa
import numpy as np
import pytest
import scipy.fft
import soundfile

from s2s_jax.audio import cli
from s2s_jax.audio import mfccd
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.synth import render

SPEC = FeatureSpec()


@pytest.fixture(scope="module")
def voices(renderer, random_voices):
  return render.render_batch(renderer, random_voices[2:6])


def librosa_mfcc(y, n_mfcc):
  """The reference's torchaudio MFCC, composed from librosa calls."""
  power = np.abs(librosa.stft(y.astype(np.float64), n_fft=2048, hop_length=512, center=True,
                              pad_mode="reflect")) ** 2
  mel = librosa.feature.melspectrogram(S=power, sr=48000, n_mels=128, htk=True, norm="slaney",
                                       fmin=0.0, fmax=24000.0)
  db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
  return scipy.fft.dct(db, type=2, norm="ortho", axis=0)[:n_mfcc]


def librosa_mfccd(a, b, n_mfcc):
  difference = librosa_mfcc(a, n_mfcc) - librosa_mfcc(b, n_mfcc)
  return np.mean(np.sqrt(np.mean(difference ** 2, axis=1)))


@pytest.mark.parametrize("n_mfcc", [13, 30])
def test_matches_librosa_batched(voices, n_mfcc):
  a, b = voices[:2], voices[2:]
  ours = np.asarray(mfccd.mfccd(a, b, n_mfcc=n_mfcc))
  assert ours.shape == (2,)
  expected = [librosa_mfccd(x, y, n_mfcc) for x, y in zip(a, b)]
  np.testing.assert_allclose(ours, expected, rtol=1e-4)
  assert np.all(ours > 1)


@pytest.mark.parametrize("n_mfcc", [13, 30])
def test_host_mfcc_matches_librosa_and_the_jax_one(voices, n_mfcc):
  host = np.stack([mfccd.mfcc_host(clip, n_mfcc=n_mfcc) for clip in voices])
  assert host.shape == (4, SPEC.num_frames, n_mfcc) and host.dtype == np.float32
  np.testing.assert_allclose(np.asarray(mfccd.mfcc_distance(host[:2], host[2:])),
                             [librosa_mfccd(x, y, n_mfcc) for x, y in zip(voices[:2], voices[2:])],
                             rtol=1e-4)
  np.testing.assert_allclose(host, mfccd.mfcc(voices, n_mfcc=n_mfcc), atol=1e-2)
  short = mfccd.mfcc_host(voices[0, :1000], n_mfcc=n_mfcc)  # padded to the render length
  np.testing.assert_allclose(short, mfccd.mfcc(voices[:1, :1000], n_mfcc=n_mfcc)[0], atol=1e-2)


def test_zero_for_identical_clips_and_symmetric(voices):
  a, b = voices[:2], voices[2:]
  np.testing.assert_array_equal(mfccd.mfccd(a, a), [0.0, 0.0])
  np.testing.assert_allclose(mfccd.mfccd(a, b), mfccd.mfccd(b, a), rtol=1e-6)


def test_a_gain_moves_only_the_first_coefficient(voices):
  """A gain g shifts every dB value (and the clip's floor) by 20 log10 g, so only c0 changes,
  by that shift times sqrt(n_mels) under the orthonormal DCT."""
  shift = 20 * np.log10(2.0) * np.sqrt(SPEC.n_mels)
  for n_mfcc in (13, 30):
    np.testing.assert_allclose(mfccd.mfccd(voices, 0.5 * voices, n_mfcc=n_mfcc),
                               shift / n_mfcc, rtol=1e-4)


def test_clips_are_cropped_or_padded_to_the_render_length(voices):
  clip = voices[:1]
  longer = np.concatenate([clip, np.ones((1, 5000), np.float32)], axis=1)
  np.testing.assert_array_equal(mfccd.mfccd(longer, clip), [0.0])
  shorter = clip[:, :100_000]
  silenced = clip.copy()
  silenced[:, 100_000:] = 0
  np.testing.assert_array_equal(mfccd.mfccd(shorter, silenced), [0.0])


@pytest.fixture(scope="module")
def sound_files(voices, tmp_path_factory):
  folder = tmp_path_factory.mktemp("sounds")
  a, b = folder / "a.wav", folder / "b.flac"
  soundfile.write(a, voices[0], SPEC.sample_rate, subtype="FLOAT")
  # b: stereo at 44.1 kHz, so the command must downmix and resample it.
  stereo = np.stack([voices[1], voices[1]], axis=1)
  soundfile.write(b, librosa.resample(stereo.T, orig_sr=48000, target_sr=44100).T, 44100)
  return a, b


def test_command_prints_the_mfccd(sound_files, voices, capsys):
  a, b = sound_files
  assert cli.main([str(a), str(b), "--n-mfcc", "30"]) == 0
  printed = float(capsys.readouterr().out)
  expected = float(mfccd.mfccd(voices[:1], voices[1:2], n_mfcc=30)[0])
  # b went through FLAC (16 bit) and two resamplings.
  assert printed == pytest.approx(expected, rel=0.02)
  assert cli.main([str(a), str(a)]) == 0
  assert float(capsys.readouterr().out) == 0.0


def bad_inputs(folder: pathlib.Path):
  text = folder / "notes.wav"
  text.write_text("not audio at all\n")
  empty = folder / "empty.wav"
  soundfile.write(empty, np.zeros(0, np.float32), 48000)
  return {"missing": folder / "missing.wav", "not audio": text, "empty": empty}


@pytest.mark.parametrize("kind", ["missing", "not audio", "empty"])
def test_bad_input_is_one_line_naming_the_file(sound_files, tmp_path, capsys, kind):
  bad = bad_inputs(tmp_path)[kind]
  assert cli.main([str(sound_files[0]), str(bad)]) == 2
  captured = capsys.readouterr()
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and str(bad) in lines[0] and captured.out == ""


def test_console_script_reports_errors_without_traceback(tmp_path):
  bad = bad_inputs(tmp_path)["not audio"]
  script = pathlib.Path(sys.executable).with_name("s2s-mfccd")
  command = [str(script)] if script.exists() else [sys.executable, "-m", "s2s_jax.audio.cli"]
  result = subprocess.run(command + [str(bad), str(bad)], capture_output=True, text=True,
                          check=False)
  assert result.returncode == 2
  assert "Traceback" not in result.stderr and str(bad) in result.stderr
