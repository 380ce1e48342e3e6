"""The JAX featuriser against librosa, on Dexed renders and pure tones."""

import jax
import librosa
import numpy as np
import pytest
import scipy.fft

from s2s_jax.audio import cqt
from s2s_jax.audio import features
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.synth import render

SPEC = FeatureSpec()
STFT_ARGS = dict(n_fft=SPEC.n_fft, hop_length=SPEC.hop_length, center=True, pad_mode="reflect")


@pytest.fixture(scope="module")
def banks():
  return features.FeatureBanks.create(SPEC)


@pytest.fixture(scope="module")
def featurise():
  return jax.jit(features.featurise)


@pytest.fixture(scope="module")
def voices(renderer, random_voices):
  """Two distinct Dexed voices, the second 40 dB quieter (per-clip scaling must hold)."""
  clips = render.render_batch(renderer, random_voices[:2])
  return clips * np.array([[1.0], [0.01]], np.float32)


@pytest.fixture(scope="module")
def voice_features(banks, featurise, voices):
  return {k: np.asarray(v) for k, v in featurise(banks, voices).items()}


def tone(frequency, amplitude=0.5):
  t = np.arange(SPEC.num_samples) / SPEC.sample_rate
  return (amplitude * np.cos(2 * np.pi * frequency * t)).astype(np.float32)


def librosa_power(y):
  return np.abs(librosa.stft(y.astype(np.float64), **STFT_ARGS)).T ** 2


def librosa_mel_power(y):
  return librosa.feature.melspectrogram(
      S=librosa_power(y).T, sr=SPEC.sample_rate, n_mels=SPEC.n_mels, htk=True, norm="slaney",
      fmin=0.0, fmax=SPEC.sample_rate / 2).T


def librosa_cqt(y):
  """librosa.cqt at the featuriser's settings, as an L1 response calibrated like the STFT."""
  lengths, _ = librosa.filters.wavelet_lengths(freqs=cqt.cqt_frequencies(SPEC),
                                               sr=SPEC.sample_rate)
  magnitude = np.abs(librosa.cqt(y, sr=SPEC.sample_rate, hop_length=SPEC.hop_length,
                                 fmin=SPEC.cqt_fmin, n_bins=SPEC.cqt_bins,
                                 bins_per_octave=SPEC.cqt_bins_per_octave, tuning=0.0,
                                 scale=False))
  return (magnitude / lengths[:, None]).T * (SPEC.n_fft / 2)


def log_scale(power):
  return np.clip(np.log(power + SPEC.log_floor) / SPEC.log_divisor, -1, 1)


def test_shapes_are_time_major(voice_features):
  frames = SPEC.num_frames
  assert frames == 376
  expected = {"stft": (2, frames, 1025), "mel": (2, frames, 128), "cqt": (2, frames, 432),
              "mfcc": (2, frames, 13)}
  expected.update({name: (2, frames) for name in features.STATISTICS})
  assert {k: v.shape for k, v in voice_features.items()} == expected
  for name, value in voice_features.items():
    assert value.dtype == np.float32 and np.all(np.isfinite(value)), name
  for name in ("stft", "mel", "cqt", "mfcc"):
    assert np.all(np.abs(voice_features[name]) <= 1), name


def test_power_stft_and_mel_match_librosa(banks, voices):
  power = np.asarray(jax.jit(features.power_spectrogram)(features.frames(voices, SPEC)))
  mel_power = power @ np.asarray(banks.mel)
  for i, y in enumerate(voices):
    reference = librosa_power(y)
    np.testing.assert_allclose(power[i], reference, rtol=1e-4, atol=1e-6 * reference.max())
    reference = librosa_mel_power(y)
    np.testing.assert_allclose(mel_power[i], reference, rtol=1e-4, atol=1e-6 * reference.max())


def test_log_features_match_librosa(voice_features, voices):
  for i, y in enumerate(voices):
    # float32 FFT rounding moves bins more than 100 dB under their frame's peak slightly.
    np.testing.assert_allclose(voice_features["stft"][i], log_scale(librosa_power(y)),
                               atol=5e-3)
    np.testing.assert_allclose(voice_features["mel"][i], log_scale(librosa_mel_power(y)),
                               atol=1e-4)


def test_log_mel_alone_is_featurise_mel(voice_features, voices):
  np.testing.assert_allclose(features.log_mel(voices, SPEC), voice_features["mel"], atol=1e-5)


def test_mfcc_matches_librosa(voice_features, voices):
  for i, y in enumerate(voices):
    db = librosa.power_to_db(librosa_mel_power(y).T, ref=1.0, amin=1e-10, top_db=SPEC.top_db)
    reference = scipy.fft.dct(db, type=2, norm="ortho", axis=0)[:SPEC.n_mfcc].T
    reference = np.clip(reference / SPEC.mfcc_divisor, -1, 1)
    np.testing.assert_allclose(voice_features["mfcc"][i], reference, rtol=1e-4,
                               atol=1e-4 * np.abs(reference).max())


def test_frame_statistics_match_librosa(voice_features, voices):
  frame = dict(frame_length=SPEC.n_fft, hop_length=SPEC.hop_length)
  for i, y in enumerate(voices):
    padded = np.pad(y, SPEC.n_fft // 2, mode="reflect")
    frames = librosa.util.frame(padded, frame_length=SPEC.n_fft, hop_length=SPEC.hop_length)
    np.testing.assert_allclose(voice_features["envelope"][i], np.abs(frames).max(axis=0))
    np.testing.assert_allclose(voice_features["rms"][i],
                               librosa.feature.rms(y=y, pad_mode="reflect", **frame)[0],
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(voice_features["zcr"][i],
                                  librosa.feature.zero_crossing_rate(y, **frame)[0])
    np.testing.assert_allclose(
        voice_features["flatness"][i],
        librosa.feature.spectral_flatness(y=y, n_fft=SPEC.n_fft, hop_length=SPEC.hop_length,
                                          pad_mode="reflect")[0], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(voice_features["stft_max"][i], voice_features["stft"][i].max(1))
    np.testing.assert_allclose(voice_features["mel_rms"][i],
                               np.sqrt(np.mean(voice_features["mel"][i] ** 2, axis=1)),
                               rtol=1e-6)


def test_clips_in_a_batch_are_independent(banks, featurise, voices, voice_features):
  alone = featurise(banks, voices[1:])
  for name, value in alone.items():
    np.testing.assert_allclose(np.asarray(value)[0], voice_features[name][1], rtol=1e-5,
                               atol=1e-6, err_msg=name)


def test_rejects_a_clip_of_the_wrong_length(banks):
  with pytest.raises(ValueError, match="192000"):
    features.featurise(banks, np.zeros((1, SPEC.num_samples - 1), np.float32))


def test_fit_length_crops_and_pads():
  clip = np.arange(1, 11, dtype=np.float32)[None]
  np.testing.assert_array_equal(features.fit_length(clip, 4), [[1, 2, 3, 4]])
  np.testing.assert_array_equal(features.fit_length(clip, 12)[0, 9:], [10, 0, 0])


@pytest.fixture(scope="module")
def cqt_transform(banks):
  compiled = jax.jit(cqt.cqt_magnitude)
  return lambda audio: np.asarray(compiled(banks.cqt, np.asarray(audio, np.float32)))


# Bin centres and points between bins, from the lowest octave to the top one.
TONE_BINS = (3.0, 60.3, 131.0, 200.7, 250.0, 333.2, 397.0, 425.4)


@pytest.fixture(scope="module")
def tones(cqt_transform):
  frequencies = SPEC.cqt_fmin * 2.0 ** (np.array(TONE_BINS) / SPEC.cqt_bins_per_octave)
  clips = np.stack([tone(f) for f in frequencies])
  return clips, cqt_transform(clips)


def test_cqt_tone_peaks_fall_on_librosa_bins(tones):
  clips, ours = tones
  middle = slice(100, 276)  # away from the edges, where the longest kernels see padding
  for i, (clip, position) in enumerate(zip(clips, TONE_BINS)):
    reference = librosa_cqt(clip)
    peaks = ours[i, middle].argmax(axis=1)
    np.testing.assert_array_equal(peaks, reference[middle].argmax(axis=1))
    np.testing.assert_array_equal(peaks, round(position))
    assert np.corrcoef(ours[i].ravel(), reference.ravel())[0, 1] > 0.99


def test_cqt_is_calibrated_like_the_stft_and_keeps_loudness(tones, cqt_transform):
  clips, ours = tones
  # A sinusoid of amplitude A on a bin centre reads A * n_fft / 4 at every frequency.
  centred = [i for i, position in enumerate(TONE_BINS) if position == round(position)]
  peaks = ours[centred, 100:276].max(axis=(1, 2))
  np.testing.assert_allclose(peaks, 0.5 * SPEC.n_fft / 4, rtol=0.01)
  np.testing.assert_allclose(cqt_transform(0.01 * clips[:2]), 0.01 * ours[:2],
                             rtol=1e-3, atol=1e-3 * ours[:2].max())


def test_cqt_harmonics_sit_at_pdc_offsets(cqt_transform):
  """Harmonic m of a tone lies B * log2(m) bins above it: the PDC's offsets along frequency."""
  fundamental_bin = 130
  f0 = SPEC.cqt_fmin * 2.0 ** (fundamental_bin / SPEC.cqt_bins_per_octave)
  clip = sum(tone(m * f0, 0.5 / m) for m in range(1, 6))
  frame = cqt_transform(clip[None])[0, 188]
  for m in range(1, 6):
    expected = fundamental_bin + round(SPEC.cqt_bins_per_octave * np.log2(m))
    window = frame[expected - 3:expected + 4]
    assert window.argmax() == 3, (m, window)
  assert [round(48 * np.log2(r)) for r in (2, 1.5, 1.25)] == [48, 28, 15]


def test_cqt_of_dexed_voices_matches_librosa(voices, cqt_transform):
  ours = cqt_transform(voices)
  for i, clip in enumerate(voices):
    reference = librosa_cqt(clip)
    assert np.corrcoef(ours[i].ravel(), reference.ravel())[0, 1] > 0.99
    # Frames with a clear peak (within 40 dB of the clip's loudest, 10% above the runner-up).
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = (top2[:, 1] > 0.01 * reference.max()) & (top2[:, 1] > 1.1 * top2[:, 0])
    assert clear.sum() > 50
    np.testing.assert_array_equal(ours[i, clear].argmax(axis=1),
                                  reference[clear].argmax(axis=1))


# Two octaves of 12 bins from C4: built in a fraction of a second.
SMALL_CQT = FeatureSpec(cqt_fmin=261.63, cqt_bins_per_octave=12, cqt_octaves=2)


def _same_kernels(a: cqt.CqtKernels, b: cqt.CqtKernels) -> bool:
  return a.fft_length == b.fft_length and len(a.spectra) == len(b.spectra) and all(
      np.array_equal(x, y) for x, y in zip(a.starts + a.spectra, b.starts + b.spectra))


def test_cqt_kernels_are_kept_in_the_cache_and_read_back_unchanged(tmp_path, monkeypatch):
  monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path))
  built = cqt.cqt_kernels(SMALL_CQT)
  kept = list((tmp_path / "cqt").glob("*.npz"))
  assert len(kept) == 1
  stamp = kept[0].stat().st_mtime_ns
  assert _same_kernels(cqt.cqt_kernels(SMALL_CQT), built)
  assert kept[0].stat().st_mtime_ns == stamp  # read, not built and written again
  other = FeatureSpec(cqt_fmin=261.63, cqt_bins_per_octave=12, cqt_octaves=1)
  assert cqt.cqt_kernels(other).spectra[0].shape[0] == 12
  assert len(list((tmp_path / "cqt").glob("*.npz"))) == 2  # one file per spec


def test_a_damaged_or_unwritable_cqt_cache_only_means_building(tmp_path, monkeypatch):
  monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path / "fresh"))
  expected = cqt.cqt_kernels(SMALL_CQT)
  monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path))
  (tmp_path / "cqt").mkdir()
  damaged = tmp_path / "cqt" / next((tmp_path / "fresh" / "cqt").glob("*.npz")).name
  damaged.write_bytes(b"not an npz")
  assert _same_kernels(cqt.cqt_kernels(SMALL_CQT), expected)
  assert damaged.stat().st_size > 100  # replaced by the kernels
  monkeypatch.setenv("S2S_CACHE_DIR", "/dev/null/cache")  # a folder that cannot exist
  assert _same_kernels(cqt.cqt_kernels(SMALL_CQT), expected)
