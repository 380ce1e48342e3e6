"""One backbone per input modality (paper Figures 2-4), each ending in a feature vector.

Every backbone maps its input to `[batch, output_width]` and takes `train` (batch norm mode).
Widths default to the paper's appendix: 512 for the convolutional branches, 128 for the rest.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2s_jax.models import pdc
from s2s_jax.models.layers import (GroupedDense, adaptive_max_pool, batch_norm, leaky_relu,
                                   max_pool, region_max)

# The VGG-11-BN-like stages of the reference (64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512):
# 3x3 convolutions within a stage, a 2x2 max-pool between stages.
VGG_STAGES = ((64,), (128,), (256, 256), (512, 512), (512, 512))


class SpectrogramCnn(nn.Module):
  """VGG-style CNN with batch norm on a spectrogram `[batch, time, freq]` (STFT or mel).

  `input_pool` (time, freq) average-pools the spectrogram first: a coarser, cheaper input.
  """
  stages: tuple[tuple[int, ...], ...] = VGG_STAGES
  output_width: int = 512
  input_pool: tuple[int, int] = (1, 1)
  dtype: Any = None

  @nn.compact
  def __call__(self, spectrogram: jax.Array, train: bool) -> jax.Array:
    x = spectrogram[..., None]
    if tuple(self.input_pool) != (1, 1):
      x = nn.avg_pool(x, tuple(self.input_pool), strides=tuple(self.input_pool))
    for i, stage in enumerate(self.stages):
      if i:
        x = max_pool(x, (2, 2))
      for channels in stage:
        x = nn.Conv(channels, (3, 3), dtype=self.dtype)(x)
        x = leaky_relu(batch_norm(train, self.dtype)(x))
    x = adaptive_max_pool(x, (2, 2)).reshape(x.shape[0], -1)
    return leaky_relu(nn.Dense(self.output_width, dtype=self.dtype)(x))


class PdcNetwork(nn.Module):
  """The PDC network on the CQT `[batch, time, freq]` (paper Fig. 4).

  Each stage is a 7x7 convolution followed by `pdc_layers` stacked PDC layers along frequency,
  batch norm and ReLU; a `pool` x `pool` max-pool divides time and frequency between stages, so
  the PDC offsets are recomputed for `bins_per_octave / pool**i` bins per octave. With
  `pdc_layers=0` it is the plain-CNN ablation (the reference's VCNN).
  """
  bins_per_octave: int = 48
  stages: tuple[int, ...] = (64, 128)
  kernel_size: int = 7
  pool: int = 4
  pdc_layers: int = 3
  num_primes: int = 3
  symmetric: bool = True
  channel_mixing: bool = False
  output_width: int = 512
  dtype: Any = None

  def stage_bins_per_octave(self) -> tuple[int, ...]:
    """Bins per octave seen by each stage's PDC layers."""
    bins = []
    for i in range(len(self.stages)):
      resolution, remainder = divmod(self.bins_per_octave, self.pool ** i)
      if remainder or resolution < 1:
        raise ValueError(f"bins_per_octave {self.bins_per_octave} is not divisible by the "
                         f"pooling {self.pool}**{i} before stage {i}")
      bins.append(resolution)
    return tuple(bins)

  @nn.compact
  def __call__(self, cqt: jax.Array, train: bool) -> jax.Array:
    x = cqt[..., None]
    for i, (channels, bins) in enumerate(zip(self.stages, self.stage_bins_per_octave())):
      if i:
        x = max_pool(x, (self.pool, self.pool))
      x = nn.Conv(channels, (self.kernel_size,) * 2, use_bias=False, dtype=self.dtype)(x)
      offsets = pdc.prime_ratio_offsets(bins, self.num_primes, self.symmetric)
      for _ in range(self.pdc_layers):
        x = pdc.PrimeDilatedConv(offsets, features=channels if self.channel_mixing else None,
                                 dtype=self.dtype)(x)
      x = nn.relu(batch_norm(train, self.dtype)(x))
    x = adaptive_max_pool(x, (2, 2)).reshape(x.shape[0], -1)
    return leaky_relu(nn.Dense(self.output_width, dtype=self.dtype)(x))


class MfccLstm(nn.Module):
  """Bidirectional LSTM on the MFCCs `[batch, time, n_mfcc]`.

  The final hidden states of every layer and direction, `[batch, 2 * layers * hidden]`, feed
  one dense layer (the reference's design, with its input size fixed to the 13 MFCCs).
  """
  hidden: int = 256
  num_layers: int = 2
  output_width: int = 128
  dtype: Any = None

  @nn.compact
  def __call__(self, mfcc: jax.Array, train: bool) -> jax.Array:
    del train  # no batch norm or dropout here
    x, finals = mfcc, []
    for _ in range(self.num_layers):
      outputs = []
      for reverse in (False, True):
        cell = nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype)
        (_, h), y = nn.RNN(cell, return_carry=True, reverse=reverse, keep_order=True)(x)
        finals.append(h)
        outputs.append(y)
      x = jnp.concatenate(outputs, axis=-1)
    return leaky_relu(nn.Dense(self.output_width, dtype=self.dtype)(
        jnp.concatenate(finals, axis=-1)))


class StatisticsMlp(nn.Module):
  """One private two-layer MLP per statistic: `[batch, statistics, time]` -> `[batch, s * w]`.

  The reference's seven separate LinearBackbones, run as one block-diagonal layer pair.
  """
  hidden: int = 256
  output_width: int = 128
  dtype: Any = None

  @nn.compact
  def __call__(self, statistics: jax.Array, train: bool) -> jax.Array:
    del train
    x = leaky_relu(GroupedDense(self.hidden, dtype=self.dtype)(statistics))
    x = leaky_relu(GroupedDense(self.output_width, dtype=self.dtype)(x))
    return x.reshape(x.shape[0], -1)


# (channels, kernel, stride) of the waveform branch: 192 000 samples -> 188 frames.
WAVEFORM_LAYERS = ((32, 64, 16), (64, 16, 4), (128, 16, 4), (128, 8, 4))


class WaveformCnn(nn.Module):
  """Strided 1-D convolutions on the raw clip `[batch, samples]`, max- and mean-pooled."""
  layers: tuple[tuple[int, int, int], ...] = WAVEFORM_LAYERS
  output_width: int = 128
  dtype: Any = None

  @nn.compact
  def __call__(self, audio: jax.Array, train: bool) -> jax.Array:
    x = audio[..., None]
    for channels, kernel, stride in self.layers:
      x = nn.Conv(channels, (kernel,), strides=(stride,), dtype=self.dtype)(x)
      x = leaky_relu(batch_norm(train, self.dtype)(x))
    x = jnp.concatenate([region_max(x, (1,)), jnp.mean(x, axis=1)], axis=-1)
    return leaky_relu(nn.Dense(self.output_width, dtype=self.dtype)(x))
