"""What the dataset stores for a clip: block-scaled 16-bit PCM (385 500 bytes for 4 s).

Features are not stored: the training step decodes the PCM and runs the same `featurise` as
inference, on the device; inference featurises `as_stored(clip)` (`infer.predictor`), so both
see the same samples. Each block of `BLOCK_SIZE` samples (one hop) has its own float32 scale,
its peak mapping to +-32767, so the rounding error is at most 1/65534 of the block's peak: 96 dB
under the local level, following Dexed's decays (one clip-wide scale leaves release tails only
a few steps tall). Dexed's output is not limited to [-1, 1]; any finite float32 encodes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PCM_MAX = 32767
BLOCK_SIZE = 512


def encoded_bytes(num_samples: int, block_size: int = BLOCK_SIZE) -> int:
  """Bytes of one encoded clip: int16 samples plus a float32 scale per block."""
  return 2 * num_samples + 4 * -(-num_samples // block_size)


def encode_audio(audio: np.ndarray, block_size: int = BLOCK_SIZE
                 ) -> tuple[np.ndarray, np.ndarray]:
  """float audio [..., samples] -> (pcm int16 [..., samples], scales float32 [..., blocks])."""
  audio = np.asarray(audio, np.float32)
  blocks = _to_blocks(audio, block_size)
  peak = np.max(np.abs(blocks), axis=-1)  # NaN and inf propagate into the peak
  if not np.all(np.isfinite(peak)):
    raise ValueError("audio holds NaN or infinite samples")
  # Scales never go below the smallest normal float32: denormals lose precision, flush to
  # zero on accelerators, and their reciprocal overflows.
  scales = np.maximum(peak / PCM_MAX, np.finfo(np.float32).tiny).astype(np.float32)
  scaled = blocks * (1.0 / scales)[..., None]  # |scaled| <= PCM_MAX (+ rounding) by construction
  np.rint(scaled, out=scaled)
  return scaled.astype(np.int16).reshape(*audio.shape[:-1], -1)[..., :audio.shape[-1]], scales


def decode_audio(pcm: np.ndarray | jax.Array, scales: np.ndarray | jax.Array,
                 block_size: int = BLOCK_SIZE) -> np.ndarray | jax.Array:
  """(pcm int16 [..., samples], scales [..., blocks]) -> float32 audio [..., samples].

  numpy in, numpy out (on the host, e.g. in an input pipeline); a JAX array in, a JAX array
  out (inside a jitted step, on the device). Both compute the same float32 products.
  """
  xp = jnp if isinstance(pcm, jax.Array) or isinstance(scales, jax.Array) else np
  blocks = _to_blocks(xp.asarray(pcm).astype(xp.float32), block_size)
  audio = blocks * xp.asarray(scales, xp.float32)[..., None]
  return audio.reshape(*pcm.shape[:-1], -1)[..., :pcm.shape[-1]]


def as_stored(audio: np.ndarray, block_size: int = BLOCK_SIZE) -> np.ndarray:
  """The clip as training sees it after storage (numpy); inference featurises this too."""
  return decode_audio(*encode_audio(audio, block_size), block_size)


def _to_blocks(audio, block_size: int):
  """[..., samples] -> [..., blocks, block_size], zero-padding the last block."""
  xp = jnp if isinstance(audio, jax.Array) else np
  padding = [(0, 0)] * (audio.ndim - 1) + [(0, -audio.shape[-1] % block_size)]
  return xp.pad(audio, padding).reshape(*audio.shape[:-1], -1, block_size)
