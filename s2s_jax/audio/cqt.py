"""Constant-Q transform in JAX: one FFT per clip, narrow-band kernels, folded small IFFTs.

Bin k correlates the clip with librosa's Hann-windowed complex sinusoid at
f_k = fmin * 2 ** (k / bins_per_octave), L1-normalised (`librosa.filters.wavelet`, norm 1, no
tuning estimation). The correlation is computed in the frequency domain: the clip's spectrum,
taken once at a length L = M * hop long enough that the longest kernel never wraps around,
is multiplied by each kernel's spectrum inside a window around f_k (the window holds all but
`spec.cqt_sparsity` of the kernel's spectral L1 mass, as librosa's `sparsity`). Keeping every
hop-th output sample is the same as summing the product's aliases modulo M = L / hop bins
("folds"), so each bin needs one M-point inverse FFT. Windows start anywhere; that only rotates
the folded spectrum, a phase ramp over frames that the magnitude ignores. One clip costs one
L-point FFT, about 0.8 M complex multiply-adds and 432 small IFFTs.

The output is calibrated like the STFT: a steady sinusoid of amplitude A gives A * n_fft / 4
in its bin (as in a Hann-windowed `n_fft` STFT), at every frequency, so the CQT and STFT share
one log scaling and loudness is kept (no per-octave or per-frame normalisation). Up to that
constant it equals `librosa.cqt(..., tuning=0, scale=False) / lengths` at the same settings.
"""

from __future__ import annotations

import hashlib
import io
import math
import pathlib
import zipfile

import flax.struct
import jax
import jax.numpy as jnp
import librosa
import numpy as np
import scipy.fft

from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.util import caches
from s2s_jax.util import files

# Bins per kernel group: bins of a group share one window width (their widest need).
_GROUP_SIZE = 16


@flax.struct.dataclass
class CqtKernels:
  """Kernel spectra in windows, grouped by width.

  starts[g]: [bins] int32, first rfft bin of each kernel's window.
  spectra[g]: [bins, width] complex64, the kernel spectrum in that window (width % M == 0).
  """
  starts: tuple[jax.Array, ...]
  spectra: tuple[jax.Array, ...]
  spec: FeatureSpec = flax.struct.field(pytree_node=False)
  fft_length: int = flax.struct.field(pytree_node=False)


def cqt_frequencies(spec: FeatureSpec) -> np.ndarray:
  """Centre frequencies in Hz, [cqt_bins]: bin distance d(f, g) = B * log2(g / f)."""
  return librosa.cqt_frequencies(n_bins=spec.cqt_bins, fmin=spec.cqt_fmin,
                                 bins_per_octave=spec.cqt_bins_per_octave)


def cqt_kernels(spec: FeatureSpec) -> CqtKernels:
  """The kernel spectra of `spec`: read from the user's cache (`util.caches`, folder `cqt/`),
  else built (about 4 s of CPU) and kept there. A missing, unreadable or unwritable cache only
  means building them."""
  path = caches.cache_dir("cqt") / f"{_cache_key(spec)}.npz"
  try:
    with np.load(path) as stored:
      groups = len(stored.files) // 2
      starts = [stored[f"starts{g}"] for g in range(groups)]
      spectra = [stored[f"spectra{g}"] for g in range(groups)]
  except (OSError, ValueError, KeyError, zipfile.BadZipFile):
    starts, spectra = _build_kernels(spec)
    buffer = io.BytesIO()
    np.savez(buffer, **{f"starts{g}": a for g, a in enumerate(starts)},
             **{f"spectra{g}": a for g, a in enumerate(spectra)})
    try:
      files.write_atomic(path, buffer.getvalue())
    except OSError:
      pass
  return CqtKernels(tuple(jnp.asarray(a) for a in starts), tuple(jnp.asarray(a) for a in spectra),
                    spec, _fft_length(spec))


def _cache_key(spec: FeatureSpec) -> str:
  """Names the kernels of `spec` as built by this module's code and this librosa."""
  key = repr(spec).encode() + librosa.__version__.encode() + pathlib.Path(__file__).read_bytes()
  return hashlib.sha256(key).hexdigest()[:24]


def _fft_length(spec: FeatureSpec) -> int:
  """L = M * hop: the clip, then zeros at least half the longest kernel long, so that kernels
  reaching before sample 0 or after the end read zeros (librosa.cqt's constant padding), never
  the other end of the clip."""
  lengths, _ = librosa.filters.wavelet_lengths(freqs=cqt_frequencies(spec), sr=spec.sample_rate)
  folds = scipy.fft.next_fast_len(
      math.ceil((spec.num_samples + math.ceil(lengths.max()) // 2 + 1) / spec.hop_length))
  return folds * spec.hop_length


def _build_kernels(spec: FeatureSpec) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Builds the kernel spectra from librosa's wavelet filters: per group, starts [bins] int32
  and spectra [bins, width] complex64 (see `CqtKernels`)."""
  freqs = cqt_frequencies(spec)
  fft_length = _fft_length(spec)
  folds = fft_length // spec.hop_length
  # ifft over M bins gives (M / L) times the decimated correlation; fold 1 / hop and the
  # STFT calibration (sum of the Hann window, n_fft / 2) into the kernels.
  gain = (spec.n_fft / 2) / spec.hop_length
  starts, spectra = [], []
  for first in range(0, spec.cqt_bins, _GROUP_SIZE):
    group_freqs = freqs[first:first + _GROUP_SIZE]
    kernel = _kernel_spectra(group_freqs, spec.sample_rate, fft_length)
    need = max(_window_width(row, spec.cqt_sparsity) for row in np.abs(kernel))
    width = folds * math.ceil(need / folds)  # whole folds, so the product folds by reshaping
    if width > kernel.shape[1]:
      raise ValueError(f"CQT kernels near {group_freqs[-1]:.0f} Hz are too wide for {spec}")
    centres = np.round(group_freqs * fft_length / spec.sample_rate).astype(int)
    group_starts = np.clip(centres - width // 2, 0, kernel.shape[1] - width)
    windows = group_starts[:, None] + np.arange(width)
    starts.append(group_starts.astype(np.int32))
    spectra.append((gain * np.take_along_axis(kernel, windows, 1)).astype(np.complex64))
  return starts, spectra


def cqt_magnitude(kernels: CqtKernels, audio: jax.Array) -> jax.Array:
  """|CQT| of a batch: audio [batch, samples] -> [batch, time, cqt_bins] (time-major)."""
  spec = kernels.spec
  folds = kernels.fft_length // spec.hop_length
  spectrum = jnp.fft.rfft(audio, n=kernels.fft_length)
  responses = []
  for starts, spectra in zip(kernels.starts, kernels.spectra):
    bins, width = spectra.shape
    windows = jax.vmap(
        lambda start: jax.lax.dynamic_slice_in_dim(spectrum, start, width, axis=-1),
        out_axes=1)(starts)
    product = (windows * spectra).reshape(audio.shape[0], bins, width // folds, folds)
    response = jnp.fft.ifft(product.sum(axis=2), axis=-1)[..., :spec.num_frames]
    responses.append(jnp.abs(response))
  return jnp.concatenate(responses, axis=1).transpose(0, 2, 1)


def _kernel_spectra(freqs: np.ndarray, sample_rate: int, fft_length: int) -> np.ndarray:
  """Conjugate spectra of librosa's kernels centred on sample 0: [bins, fft_length // 2 + 1]."""
  filters, _ = librosa.filters.wavelet(freqs=freqs, sr=sample_rate, norm=1, pad_fft=False,
                                       dtype=np.complex128)
  size = filters.shape[1]
  centred = np.zeros((len(freqs), fft_length), np.complex128)
  centred[:, :size - size // 2] = filters[:, size // 2:]
  centred[:, fft_length - size // 2:] = filters[:, :size // 2]
  return np.conj(scipy.fft.fft(centred, axis=1, workers=-1)[:, :fft_length // 2 + 1])


def _window_width(magnitude: np.ndarray, sparsity: float) -> int:
  """Width of the window around the peak that holds 1 - sparsity of the L1 mass."""
  peak = int(np.argmax(magnitude))
  cumulative = np.concatenate([[0.0], np.cumsum(magnitude)])
  halves = np.arange(1, len(magnitude) + 1)
  held = (cumulative[np.minimum(peak + halves, len(magnitude))]
          - cumulative[np.maximum(peak - halves, 0)])
  return 2 * int(halves[np.argmax(held >= (1 - sparsity) * cumulative[-1])])
