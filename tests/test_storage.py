"""Stored audio: block-scaled int16 round trip, its size, and features after the round trip."""

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import numpy as np
import pytest
from hypothesis import strategies as st

from s2s_jax.audio import features
from s2s_jax.audio import mfccd
from s2s_jax.audio import storage
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.synth import render

SPEC = FeatureSpec()


def test_an_example_fits_in_400_kb():
  assert storage.encoded_bytes(SPEC.num_samples) <= 400_000
  pcm, scales = storage.encode_audio(np.zeros((2, SPEC.num_samples), np.float32))
  assert pcm.dtype == np.int16 and pcm.shape == (2, SPEC.num_samples)
  assert scales.dtype == np.float32
  assert pcm[0].nbytes + scales[0].nbytes == storage.encoded_bytes(SPEC.num_samples)


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(
    audio=hnp.arrays(np.float32, st.tuples(st.integers(1, 2), st.integers(1, 1100)),
                     elements=st.floats(-8, 8, width=32)),
    gains=st.lists(st.sampled_from([1.0, 1e-3, 1e-6, 1e-40, 0.0]), min_size=4, max_size=4),
    block_size=st.sampled_from([1, 7, 512]))
def test_round_trip_error_is_bounded_by_each_blocks_peak(audio, gains, block_size):
  # Fade the clip through very different levels, down to silence, as Dexed's decays do.
  audio = audio * np.repeat(gains, -(-audio.shape[1] // 4))[:audio.shape[1]].astype(np.float32)
  pcm, scales = storage.encode_audio(audio, block_size)
  decoded = np.asarray(storage.decode_audio(pcm, scales, block_size))
  assert decoded.shape == audio.shape and decoded.dtype == np.float32
  blocks = -(-audio.shape[1] // block_size)
  padded = np.pad(audio, ((0, 0), (0, blocks * block_size - audio.shape[1])))
  peaks = np.abs(padded.reshape(audio.shape[0], blocks, block_size)).max(axis=-1)
  bound = np.repeat(peaks, block_size, axis=-1)[:, :audio.shape[1]] / (2 * storage.PCM_MAX)
  tiny = np.finfo(np.float32).tiny  # the smallest scale
  rounding = 4 * np.spacing(np.abs(audio))  # float32 arithmetic in encode and decode
  assert np.all(np.abs(decoded - audio) <= np.maximum(bound, tiny / 2) + rounding)


def test_peaks_above_one_survive():
  audio = np.array([[4.7, -3.1, 0.5, 0.0]], np.float32)
  decoded = np.asarray(storage.decode_audio(*storage.encode_audio(audio, 2), 2))
  np.testing.assert_allclose(decoded, audio, rtol=1e-4)


def test_non_finite_audio_is_refused():
  with pytest.raises(ValueError, match="NaN"):
    storage.encode_audio(np.array([0.0, np.nan], np.float32))


def test_decoding_runs_inside_jit(renderer, random_voices):
  audio = render.render_batch(renderer, random_voices[6:7])
  pcm, scales = storage.encode_audio(audio)
  np.testing.assert_array_equal(jax.jit(storage.decode_audio)(pcm, scales),
                                storage.decode_audio(pcm, scales))


def test_features_after_the_round_trip_match_the_original(renderer, random_voices):
  """What training computes from stored audio matches what inference computes from the float."""
  audio = render.render_batch(renderer, random_voices[7:9])
  banks = features.FeatureBanks.create(SPEC)
  featurise = jax.jit(features.featurise)
  original = featurise(banks, audio)
  stored = featurise(banks, storage.as_stored(audio))
  for name in ("mfcc", "mel", *features.STATISTICS):
    np.testing.assert_allclose(stored[name], original[name], atol=5e-3, err_msg=name)
  for name in ("stft", "cqt"):
    # 16 bits hold 96 dB under each block's peak; the log spectra reach deeper, so the
    # quietest bins move a little.
    error = np.abs(np.asarray(stored[name]) - np.asarray(original[name]))
    assert error.max() < 0.05 and np.percentile(error, 99) < 5e-3, name
  assert np.all(np.asarray(mfccd.mfccd(audio, storage.as_stored(audio))) < 0.05)
