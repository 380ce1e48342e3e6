"""The featuriser: one batched, jit-able function from clips to every feature the model reads.

The dataset builder, the training step and inference all call `featurise`, so features are
computed one way everywhere. Everything is time-major, `[batch, time, freq]`, with
time = `spec.num_frames` centred frames (hop 512) of the `[batch, spec.num_samples]` input.

Spectral features (reflect-padded, periodic Hann, power 2, as the reference's torchaudio):
  stft  [batch, time, 1025]  log power STFT
  mel   [batch, time, 128]   log power mel spectrogram (HTK scale, Slaney-normalised filters)
  cqt   [batch, time, 432]   log power constant-Q transform, 48 bins per octave from C1,
                             calibrated like the STFT (see `cqt.py`); frequency is the PDC axis
  mfcc  [batch, time, 13]    MFCC (torchaudio's definition, see `mfcc`) / 1000, clipped
Log spectra are `clip(ln(power + 1e-5) / 16, -1, 1)`: the reference's floor, but /16 where it
has /12, which clipped the loudest partials of most real DX7 voices (see FeatureSpec).
Per-frame statistics, each [batch, time], named in `STATISTICS`:
  envelope  max |x| over the frame          rms       sqrt(mean x^2) over the frame
  zcr       zero-crossing rate (librosa)    flatness  spectral flatness of the power STFT
  stft_max, stft_rms, mel_max, mel_rms      max and RMS over frequency of the log spectra
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
import librosa
import numpy as np
import scipy.fft

from s2s_jax.audio import cqt
from s2s_jax.audio.spec import FeatureSpec

STATISTICS = ("envelope", "rms", "zcr", "flatness", "stft_max", "stft_rms", "mel_max",
              "mel_rms")

# Matmuls at full float32 precision: accelerators otherwise default to bf16 / tf32 passes.
_HIGHEST = jax.lax.Precision.HIGHEST


@flax.struct.dataclass
class FeatureBanks:
  """Filter banks for one spec, as arrays (they live on the device next to the batch).

  mel: [n_freqs, n_mels] float32; cqt: the CQT kernels, or None for features without "cqt".
  """
  mel: jax.Array
  cqt: cqt.CqtKernels | None
  spec: FeatureSpec = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, spec: FeatureSpec = FeatureSpec(), with_cqt: bool = True) -> FeatureBanks:
    """The banks of `spec`: built with librosa once per process, then shared (they are
    immutable jax arrays). The CQT kernels take most of the time (seconds): `with_cqt=False`
    leaves them out, for a network that reads no CQT."""
    return _banks(cls, spec, with_cqt)


@functools.lru_cache(maxsize=4)
def _banks(cls, spec: FeatureSpec, with_cqt: bool) -> FeatureBanks:
  return cls(mel=jnp.asarray(mel_filters(spec)),
             cqt=cqt.cqt_kernels(spec) if with_cqt else None, spec=spec)


def featurise(banks: FeatureBanks, audio: jax.Array) -> dict[str, jax.Array]:
  """All features of a batch of clips: audio [batch, spec.num_samples] float32.

  Returns the dict described in the module docstring ("cqt" only if `banks.cqt`). Pure:
  `jax.jit(featurise)(banks, audio)`, or call it inside a jitted training step to featurise
  on the device.
  """
  spec = banks.spec
  if audio.ndim != 2 or audio.shape[1] != spec.num_samples:
    raise ValueError(f"audio must be [batch, {spec.num_samples}], got {audio.shape}")
  audio = jnp.asarray(audio, jnp.float32)
  blocks = _blocks(jnp.pad(audio, ((0, 0), (spec.n_fft // 2,) * 2), mode="reflect"), spec)
  power = power_spectrogram(_frames(blocks, spec))
  mel_power = jnp.matmul(power, banks.mel, precision=_HIGHEST)
  stft = log_scale(power, spec)
  mel = log_scale(mel_power, spec)
  constant_q = ({} if banks.cqt is None else
                {"cqt": log_scale(jnp.square(cqt.cqt_magnitude(banks.cqt, audio)), spec)})
  return {
      "stft": stft,
      "mel": mel,
      **constant_q,
      "mfcc": jnp.clip(mfcc_from_mel(mel_power, spec.n_mfcc, spec.top_db) / spec.mfcc_divisor,
                       -1, 1),
      "envelope": _over_frames(jnp.max(jnp.abs(blocks), axis=-1), jnp.max, spec),
      "rms": jnp.sqrt(_over_frames(jnp.sum(jnp.square(blocks), axis=-1), jnp.sum, spec)
                      / spec.n_fft),
      "zcr": zero_crossing_rate(audio, spec),
      "flatness": spectral_flatness(power),
      "stft_max": jnp.max(stft, axis=-1),
      "stft_rms": jnp.sqrt(jnp.mean(jnp.square(stft), axis=-1)),
      "mel_max": jnp.max(mel, axis=-1),
      "mel_rms": jnp.sqrt(jnp.mean(jnp.square(mel), axis=-1)),
  }


@functools.partial(jax.jit, static_argnames="spec")
def log_mel(audio: jax.Array, spec: FeatureSpec) -> jax.Array:
  """`featurise`'s "mel" alone (for pictures): audio [batch, spec.num_samples] ->
  [batch, time, n_mels] in [-1, 1]."""
  power = power_spectrogram(frames(jnp.asarray(audio, jnp.float32), spec))
  return log_scale(jnp.matmul(power, mel_filters(spec), precision=_HIGHEST), spec)


def fit_length(audio: jax.Array | np.ndarray, num_samples: int) -> jax.Array:
  """Crops or zero-pads the last axis to `num_samples` (the render length)."""
  audio = jnp.asarray(audio)[..., :num_samples]
  padding = [(0, 0)] * (audio.ndim - 1) + [(0, num_samples - audio.shape[-1])]
  return jnp.pad(audio, padding)


def frames(audio: jax.Array, spec: FeatureSpec) -> jax.Array:
  """Centred, reflect-padded frames: [batch, samples] -> [batch, time, n_fft]."""
  padded = jnp.pad(audio, ((0, 0), (spec.n_fft // 2,) * 2), mode="reflect")
  return _frames(_blocks(padded, spec), spec)


def _blocks(padded: jax.Array, spec: FeatureSpec) -> jax.Array:
  """Hop-sized blocks of a padded signal: [batch, >= samples + n_fft] -> [batch, blocks, hop].

  Frame t is blocks t .. t + n_fft / hop - 1 (n_fft is a multiple of hop).
  """
  count = spec.num_frames + spec.n_fft // spec.hop_length - 1
  return padded[:, :count * spec.hop_length].reshape(padded.shape[0], count, spec.hop_length)


def _frames(blocks: jax.Array, spec: FeatureSpec) -> jax.Array:
  """[batch, blocks, hop] -> [batch, time, n_fft]."""
  return jnp.concatenate(
      [blocks[:, i:i + spec.num_frames] for i in range(spec.n_fft // spec.hop_length)], axis=-1)


def _over_frames(per_block: jax.Array, reduce, spec: FeatureSpec) -> jax.Array:
  """Reduces per-block values over each frame's blocks: [batch, blocks] -> [batch, time]."""
  shifted = [per_block[:, i:i + spec.num_frames] for i in range(spec.n_fft // spec.hop_length)]
  return reduce(jnp.stack(shifted), axis=0)


def power_spectrogram(frames: jax.Array) -> jax.Array:
  """|rfft(periodic Hann * frame)|^2: [batch, time, n_fft] -> [batch, time, n_fft // 2 + 1]."""
  window = librosa.filters.get_window("hann", frames.shape[-1], fftbins=True)
  spectrum = jnp.fft.rfft(frames * window.astype(np.float32), axis=-1)
  return jnp.square(spectrum.real) + jnp.square(spectrum.imag)


def mel_filters(spec: FeatureSpec) -> np.ndarray:
  """HTK-scale, Slaney-normalised triangles from 0 Hz to Nyquist: [n_freqs, n_mels]."""
  return librosa.filters.mel(sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels,
                             fmin=0.0, fmax=spec.sample_rate / 2, htk=True,
                             norm="slaney").T.astype(np.float32)


def log_scale(power: jax.Array, spec: FeatureSpec) -> jax.Array:
  """The reference's log spectrum: clip(ln(power + log_floor) / log_divisor, -1, 1)."""
  return jnp.clip(jnp.log(power + spec.log_floor) / spec.log_divisor, -1.0, 1.0)


def power_to_db(power: jax.Array, top_db: float) -> jax.Array:
  """10 log10(max(power, 1e-10)), floored top_db under each clip's maximum: [batch, ...]."""
  db = 10.0 * jnp.log10(jnp.maximum(power, 1e-10))
  peak = jnp.max(db, axis=tuple(range(1, db.ndim)), keepdims=True)
  return jnp.maximum(db, peak - top_db)


def mfcc_from_mel(mel_power: jax.Array, n_mfcc: int, top_db: float) -> jax.Array:
  """torchaudio's MFCC (log_mels=False): orthonormal DCT-II of the dB mel power.

  mel_power [batch, time, n_mels] -> [batch, time, n_mfcc].
  """
  dct = scipy.fft.dct(np.eye(mel_power.shape[-1]), type=2, norm="ortho", axis=0)[:n_mfcc]
  return jnp.matmul(power_to_db(mel_power, top_db), dct.T.astype(np.float32),
                    precision=_HIGHEST)


def zero_crossing_rate(audio: jax.Array, spec: FeatureSpec) -> jax.Array:
  """librosa's zero-crossing rate: edge-padded frames, |x| <= 1e-10 counts as positive.

  audio [batch, samples] -> [batch, time].
  """
  negative = audio < -1e-10
  # crossings[i]: between samples i - 1 and i. Edge padding adds none, and a frame counts
  # the crossings into its samples 1 .. n_fft - 1, so not the one into its first sample.
  crossings = jnp.pad((negative[:, 1:] != negative[:, :-1]).astype(jnp.float32),
                      ((0, 0), (spec.n_fft // 2 + 1, spec.n_fft // 2)))
  blocks = _blocks(crossings, spec)
  counts = _over_frames(jnp.sum(blocks, axis=-1), jnp.sum, spec)
  return (counts - blocks[:, :spec.num_frames, 0]) / spec.n_fft


def spectral_flatness(power: jax.Array, amin: float = 1e-10) -> jax.Array:
  """Geometric over arithmetic mean of the power spectrum: [batch, time, freq] -> [batch, time]."""
  power = jnp.maximum(power, amin)
  return jnp.exp(jnp.mean(jnp.log(power), axis=-1)) / jnp.mean(power, axis=-1)
