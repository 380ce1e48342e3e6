"""The prime-dilated convolution (PDC) of SOUND2SYNTH (IJCAI 2022, Section 2.3).

A PDC filter is a sparse 1-D filter along the frequency axis of a log-frequency input with
`bins_per_octave` (B) bins per octave. Its taps sit at k_j = round(B * log2 r(p_j)), the
distances of the prime ratios r(2) = 2, r(3) = 1.5, r(5) = 1.25, ... so that a few stacked
layers connect a partial to the partials of its harmonic series. Layout is NHWC with H = time
and W = frequency: inputs are `[batch, time, freq, channels]` and the filter runs along
frequency (the reference code shifted along time).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype


def first_primes(count: int) -> tuple[int, ...]:
  """The first `count` primes: 2, 3, 5, 7, ..."""
  primes = []
  candidate = 2
  while len(primes) < count:
    if all(candidate % p for p in primes):
      primes.append(candidate)
    candidate += 1
  return tuple(primes)


def prime_ratio(prime: int) -> float:
  """r(p) = p / 2^s with s the largest integer such that 2^s < p, in (1, 2]."""
  if prime < 2:
    raise ValueError(f"prime must be >= 2, got {prime}")
  return prime / 2 ** ((prime - 1).bit_length() - 1)


def prime_ratio_offsets(bins_per_octave: int, num_primes: int,
                        symmetric: bool) -> tuple[int, ...]:
  """Sorted, distinct tap offsets in bins: {0, k_1..k_l}, with -k_l..-k_1 if `symmetric`.

  k_j = round(B * log2 r(p_j)) over the first `num_primes` (l) primes; for B = 48, l = 3:
  (0, 15, 28, 48).
  """
  if bins_per_octave < 1:
    raise ValueError(f"bins_per_octave must be >= 1, got {bins_per_octave}")
  if num_primes < 1:
    raise ValueError(f"num_primes must be >= 1, got {num_primes}")
  positive = {round(bins_per_octave * math.log2(prime_ratio(p)))
              for p in first_primes(num_primes)}
  negative = {-k for k in positive} if symmetric else set()
  return tuple(sorted(positive | negative | {0}))


def dilation_mask(offsets: Sequence[int]) -> np.ndarray:
  """`[span]` bool, True at index k + max|k| for each offset k; span = 2 max|k| + 1."""
  _check_offsets(offsets)
  radius = max(abs(k) for k in offsets)
  mask = np.zeros(2 * radius + 1, bool)
  mask[np.asarray(offsets) + radius] = True
  return mask


def dense_kernel(taps: jax.Array, offsets: Sequence[int]) -> jax.Array:
  """Scatters taps `[num_taps, ...]` into the full-span kernel `[span, ...]`, zero off-mask.

  Tap j lands at index offsets[j] + max|k| (see `dilation_mask`). Built from zeros, so the
  kernel carries no weight, and no gradient, anywhere else.
  """
  _check_offsets(offsets)
  if taps.shape[0] != len(offsets):
    raise ValueError(f"{len(offsets)} offsets but {taps.shape[0]} taps")
  radius = max(abs(k) for k in offsets)
  kernel = jnp.zeros((2 * radius + 1,) + taps.shape[1:], taps.dtype)
  return kernel.at[np.asarray(offsets) + radius].set(taps)


class PrimeDilatedConv(nn.Module):
  """A sparse convolution along frequency: out[..., f, :] = sum_j w_j x[..., f + k_j, :].

  Cross-correlation with zero padding ('SAME': the output keeps the input's freq length, any
  length works, bins beyond the edges read as zeros). Computed as a sum over the few taps of
  statically shifted slices, not as a dense convolution over the whole span.

  Attributes:
    offsets: the tap offsets k_j in bins (see `prime_ratio_offsets`), distinct.
    features: None for the depthwise filter (one weight per tap and channel, no channel
      mixing: the reference's variant 2); an int for the mixing filter (a `[in, features]`
      matrix per tap: variant 3).
    use_bias: whether to add a bias `[out channels]`.
    dtype: the compute dtype; None promotes the input and parameter dtypes.
    param_dtype: the dtype of the parameters.
    kernel_init: initialiser of the taps, `[num_taps, channels]` or `[num_taps, in, features]`.
      The default is uniform(+-1 / sqrt(fan_in)) with fan_in = num_taps (times `in` when
      mixing), the weights an output really reads: PyTorch's kaiming-uniform(a=sqrt(5)) of the
      reference, without counting the masked-out zeros of the span in the fan-in.
    bias_init: initialiser of the bias.
  """

  offsets: tuple[int, ...]
  features: int | None = None
  use_bias: bool = False
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
      1 / 3, "fan_in", "uniform")
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """`[batch, time, freq, channels]` -> `[batch, time, freq, features or channels]`."""
    _check_offsets(self.offsets)
    if x.ndim < 2:
      raise ValueError(f"x must be [..., freq, channels], got shape {x.shape}")
    channels = x.shape[-1]
    tap_shape = (channels,) if self.features is None else (channels, self.features)
    taps = self.param("taps", self.kernel_init, (len(self.offsets),) + tap_shape,
                      self.param_dtype)
    bias = (self.param("bias", self.bias_init, tap_shape[-1:], self.param_dtype)
            if self.use_bias else None)
    x, taps, bias = promote_dtype(x, taps, bias, dtype=self.dtype)
    if self.features is None:
      out = depthwise_taps_sum(x, taps, tuple(int(k) for k in self.offsets))
    else:
      shifted = _shifted_along_freq(x, self.offsets)
      out = jnp.einsum("...ti,tio->...o", jnp.stack(shifted, axis=-2), taps)
    return out if bias is None else out + bias


def _check_offsets(offsets: Sequence[int]) -> None:
  if not offsets:
    raise ValueError("offsets must not be empty")
  if not all(isinstance(k, (int, np.integer)) for k in offsets):
    raise ValueError(f"offsets must be integers, got {offsets}")
  if len(set(offsets)) != len(offsets):
    raise ValueError(f"offsets must be distinct, got {offsets}")


def _taps_sum(x: jax.Array, taps: jax.Array, offsets: tuple[int, ...]) -> jax.Array:
  """sum_j taps[j] * x[..., f + k_j, :]: x `[..., freq, channels]`, taps `[num_taps, channels]`."""
  return sum(s * w for s, w in zip(_shifted_along_freq(x, offsets), taps))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_taps_sum(x: jax.Array, taps: jax.Array, offsets: tuple[int, ...]) -> jax.Array:
  """The depthwise PDC, `_taps_sum`, with its gradient written as the same kind of sum.

  Autodiff of the shifted slices pads each tap's gradient back to the whole input and adds
  them: a full-size array written per tap. The input's gradient is the same filter with the
  offsets negated (dx[f] = sum_j w_j g[f - k_j]), one pass over the output's gradient: a layer's
  forward and backward take half the time on a CPU (1.3 against 0.65 s at `[32, 376, 336, 4]`).
  """
  return _taps_sum(x, taps, offsets)


def _depthwise_forward(x, taps, offsets):
  return _taps_sum(x, taps, offsets), (x, taps)


def _depthwise_gradient(offsets, residuals, gradient):
  x, taps = residuals
  dx = _taps_sum(gradient, taps, tuple(-k for k in offsets))
  axes = tuple(range(x.ndim - 1))
  dtaps = jnp.stack([jnp.sum(gradient * s, axis=axes)
                     for s in _shifted_along_freq(x, offsets)])
  return dx, dtaps.astype(taps.dtype)


depthwise_taps_sum.defvjp(_depthwise_forward, _depthwise_gradient)


def _shifted_along_freq(x: jax.Array, offsets: Sequence[int]) -> list[jax.Array]:
  """x[..., f + k, :] for each offset k, zero beyond the edges: `[..., freq, channels]` each."""
  left, right = max(0, -min(offsets)), max(0, max(offsets))
  padding = [(0, 0)] * (x.ndim - 2) + [(left, right), (0, 0)]
  padded = jnp.pad(x, padding)
  num_freqs = x.shape[-2]
  return [padded[..., left + k:left + k + num_freqs, :] for k in offsets]
