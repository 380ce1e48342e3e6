"""One backbone per input modality (paper Figures 2-4), each ending in a feature vector.

Every backbone maps its input to `[batch, output_width]` and takes `train` (batch norm mode).
Widths default to the paper's appendix: 512 for the convolutional branches, 128 for the rest.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
from flax.linen.recurrent import DenseParams
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


class LstmWeights(nn.Module):
  """One LSTM direction's weights, named as flax's `OptimizedLSTMCell` names them (so weights
  trained with that cell load): input kernels `i{i,f,g,o}` `[features, hidden]`, recurrent
  kernels and biases `h{i,f,g,o}` `[hidden, hidden]`, `[hidden]`, with its initialisers.

  Returns them concatenated in gate order (i, f, g, o): `[features, 4h]`, `[hidden, 4h]`, `[4h]`.
  """
  hidden: int

  @nn.compact
  def __call__(self, features: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    inputs, recurrent, biases = [], [], []
    for gate in "ifgo":  # DenseParams reads only its input's last dimension
      kernel, _ = DenseParams(self.hidden, use_bias=False, name=f"i{gate}")(
          jnp.zeros((0, features)))
      inputs.append(kernel)
      kernel, bias = DenseParams(self.hidden, kernel_init=nn.initializers.orthogonal(),
                                 name=f"h{gate}")(jnp.zeros((0, self.hidden)))
      recurrent.append(kernel)
      biases.append(bias)
    return (jnp.concatenate(inputs, axis=-1), jnp.concatenate(recurrent, axis=-1),
            jnp.concatenate(biases))


def bidirectional_lstm(x: jax.Array, forward: tuple, backward: tuple, dtype: Any
                       ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Both directions of one LSTM layer in one scan: x `[batch, time, features]`, each
  direction's `LstmWeights`. The input projection of every step is one product before the
  loop, so a step only multiplies the hidden states.

  The arithmetic of flax's `OptimizedLSTMCell` under `nn.RNN` (gates from (h W_h + b) + x W_i,
  float32 carries): returns the outputs `[batch, time, 2 * hidden]` (forward, backward, in
  time order) and each direction's final hidden state `[batch, hidden]`.
  """
  def promote(*arrays):
    kind = dtype or jnp.result_type(*arrays)
    return [a.astype(kind) for a in arrays]

  (w_in, w_h, bias), (v_in, v_h, v_bias) = forward, backward
  x, w_in, v_in = promote(x, w_in, v_in)
  projected = jnp.stack([x @ w_in, jnp.flip(x @ v_in, axis=1)])  # [2, batch, time, 4h]
  recurrent, biases = jnp.stack([w_h, v_h]), jnp.stack([bias, v_bias])[:, None]

  def step(carry, projected_t):  # projected_t [2, batch, 4h]
    c, h = carry
    h_, recurrent_, biases_ = promote(h, recurrent, biases)
    i, f, g, o = jnp.split(jnp.einsum("dbh,dhg->dbg", h_, recurrent_) + biases_ + projected_t,
                           4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (c, h), h

  hidden = w_h.shape[0]
  zeros = jnp.zeros((2, x.shape[0], hidden), jnp.float32)
  (_, final), outputs = jax.lax.scan(step, (zeros, zeros), jnp.moveaxis(projected, 2, 0))
  outputs = jnp.moveaxis(outputs, 0, 2)  # [2, batch, time, hidden]
  outputs = jnp.concatenate([outputs[0], jnp.flip(outputs[1], axis=1)], axis=-1)
  return outputs, final[0], final[1]


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
    for layer in range(self.num_layers):
      forward, backward = (LstmWeights(self.hidden, name=f"OptimizedLSTMCell_{2 * layer + d}")(
          x.shape[-1]) for d in range(2))
      x, *last = bidirectional_lstm(x, forward, backward, self.dtype)
      finals += last
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
