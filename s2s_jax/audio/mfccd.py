"""MFCCD, the distance the paper reports, exactly as the reference code measures it.

MFCC as torchaudio's `MFCC` (the reference's metric): power STFT (n_fft 2048, hop 512,
centred, reflect padding, periodic Hann), 128 HTK mel bands with Slaney-normalised filters,
power to dB (amin 1e-10, floored 80 dB under the clip's maximum), orthonormal DCT-II. MFCCD is
then, per coefficient, the RMS over frames of the difference, averaged over coefficients:

  MFCCD(a, b) = mean_k sqrt(mean_t (mfcc_a[t, k] - mfcc_b[t, k])^2)

with 13 coefficients (the paper's Table 1) or 30 (the reference code's config).

Length policy: both clips are cropped or zero-padded to the render length
(`spec.num_samples`, 4 s at 48 kHz) before comparison, so a longer input is compared on its
first 4 s and a shorter one as if followed by silence.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import scipy.fft
import scipy.sparse

from s2s_jax.audio import features
from s2s_jax.audio.spec import FeatureSpec


# Coefficients always computed: fewer are their first ones (the DCT's first rows, bit for bit),
# so MFCCD-13 and MFCCD-30 share one compiled program per batch size.
COMPUTED_COEFFICIENTS = 30


def mfcc(audio: jax.Array, *, n_mfcc: int = 13, spec: FeatureSpec = FeatureSpec()
         ) -> jax.Array:
  """Unscaled MFCC of clips: audio [batch, samples] -> [batch, time, n_mfcc]."""
  return _mfcc(audio, max(n_mfcc, COMPUTED_COEFFICIENTS), spec)[..., :n_mfcc]


@functools.partial(jax.jit, static_argnums=(1, 2))
def _mfcc(audio: jax.Array, n_mfcc: int, spec: FeatureSpec) -> jax.Array:
  audio = features.fit_length(jnp.asarray(audio, jnp.float32), spec.num_samples)
  power = features.power_spectrogram(features.frames(audio, spec))
  mel_power = jnp.matmul(power, features.mel_filters(spec), precision=jax.lax.Precision.HIGHEST)
  return features.mfcc_from_mel(mel_power, n_mfcc, spec.top_db)


def mfcc_batched(audio: np.ndarray, *, n_mfcc: int = 13, spec: FeatureSpec = FeatureSpec(),
                 batch_size: int = 32) -> np.ndarray:
  """`mfcc` of any number of clips `[n, samples]` -> `[n, time, n_mfcc]`, in batches of
  `batch_size` (the last zero-padded): bounds the STFT's memory and compiles once."""
  audio = np.asarray(audio, np.float32)
  padded = np.pad(audio, ((0, -len(audio) % batch_size), (0, 0)))
  return np.concatenate(
      [np.asarray(mfcc(padded[i:i + batch_size], n_mfcc=n_mfcc, spec=spec))
       for i in range(0, len(padded), batch_size)]
      or [np.zeros((0, spec.num_frames, n_mfcc), np.float32)])[:len(audio)]


def mfcc_host(audio: np.ndarray, *, n_mfcc: int = 13, spec: FeatureSpec = FeatureSpec()
              ) -> np.ndarray:
  """`mfcc` of one clip `[samples]` -> `[time, n_mfcc]` float32 in SciPy on the calling thread
  (its FFTs release the GIL; no BLAS, whose threads stall on a busy machine): half of XLA's CPU
  time, for many clips computed beside their rendering. Equal to `mfcc` to float32 rounding."""
  window, filters = _host_banks(spec)
  audio = np.asarray(audio, np.float32)[:spec.num_samples]
  padded = np.pad(np.pad(audio, (0, spec.num_samples - len(audio))), spec.n_fft // 2,
                  mode="reflect")
  hops = spec.n_fft // spec.hop_length
  blocks = padded[:(spec.num_frames + hops - 1) * spec.hop_length].reshape(-1, spec.hop_length)
  frames = np.concatenate([blocks[i:i + spec.num_frames] for i in range(hops)], axis=1)
  spectrum = scipy.fft.rfft(frames * window, axis=-1)
  power = np.square(spectrum.real) + np.square(spectrum.imag)  # [time, n_freqs]
  db = 10.0 * np.log10(np.maximum(filters @ power.T, 1e-10)).T  # [time, n_mels]
  db = np.maximum(db, db.max() - spec.top_db)
  return scipy.fft.dct(db, type=2, norm="ortho", axis=-1)[:, :n_mfcc].astype(np.float32)


@functools.cache
def _host_banks(spec: FeatureSpec) -> tuple[np.ndarray, scipy.sparse.csr_array]:
  """`mfcc_host`'s window `[n_fft]` and sparse mel filters `[n_mels, n_freqs]`."""
  window = librosa.filters.get_window("hann", spec.n_fft, fftbins=True).astype(np.float32)
  return window, scipy.sparse.csr_array(features.mel_filters(spec).T)


@jax.jit
def mfcc_distance(mfcc_a: jax.Array, mfcc_b: jax.Array) -> jax.Array:
  """mean_k sqrt(mean_t (a - b)^2): [batch, time, n_mfcc] twice (broadcast) -> [batch]."""
  return jnp.mean(jnp.sqrt(jnp.mean(jnp.square(mfcc_a - mfcc_b), axis=-2)), axis=-1)


def mfccd(a: jax.Array, b: jax.Array, *, n_mfcc: int = 13,
          spec: FeatureSpec = FeatureSpec()) -> jax.Array:
  """MFCCD of pairs of clips: a, b [batch, samples] (any lengths, see above) -> [batch].

  Made of the programs `mfcc` and `mfcc_distance` compile (bit for bit what one program of
  both gives), so scoring and this share them.
  """
  return mfcc_distance(mfcc(a, n_mfcc=n_mfcc, spec=spec), mfcc(b, n_mfcc=n_mfcc, spec=spec))
