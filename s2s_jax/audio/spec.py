"""`FeatureSpec`: the features computed from a clip (`audio.clip.ClipSpec`)."""

from __future__ import annotations

import dataclasses

from s2s_jax.audio.clip import ClipSpec


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
  """The clip and the feature settings, shared by the dataset builder, training and inference.

  The defaults are the paper's: 4.0 s at 48 kHz (exactly 192 000 samples, so 376 centred
  frames of hop 512), n_fft 2048, 128 HTK mel bands, 13 MFCCs and a 432-bin CQT at 48 bins
  per octave from C1. Log spectra are `clip(ln(power + log_floor) / log_divisor, -1, 1)`:
  the reference's floor 1e-5, but /16 rather than its /12, which clipped the strongest partials
  of two thirds of real DX7 voices by up to 13 dB; /16 holds a partial of amplitude 5.8.
  cqt_sparsity is the share of each CQT kernel's spectral L1 mass left out (librosa's
  `sparsity`).
  """
  clip: ClipSpec = ClipSpec()
  n_fft: int = 2048
  hop_length: int = 512
  n_mels: int = 128
  n_mfcc: int = 13
  top_db: float = 80.0
  cqt_fmin: float = 32.70319566257483  # C1
  cqt_bins_per_octave: int = 48
  cqt_octaves: int = 9
  cqt_sparsity: float = 0.01
  log_floor: float = 1e-5
  log_divisor: float = 16.0
  mfcc_divisor: float = 1000.0

  def __post_init__(self):
    if self.n_fft % self.hop_length:
      raise ValueError(f"n_fft {self.n_fft} must be a multiple of hop_length {self.hop_length}")

  @property
  def sample_rate(self) -> int:
    return self.clip.sample_rate

  @property
  def num_samples(self) -> int:
    return self.clip.num_samples

  @property
  def num_frames(self) -> int:
    """Centred frames per clip: 1 + num_samples // hop_length (376 by default)."""
    return 1 + self.num_samples // self.hop_length

  @property
  def n_freqs(self) -> int:
    """STFT bins: n_fft // 2 + 1 (1025 by default)."""
    return self.n_fft // 2 + 1

  @property
  def cqt_bins(self) -> int:
    """CQT bins: bins_per_octave * octaves (432 by default)."""
    return self.cqt_bins_per_octave * self.cqt_octaves
