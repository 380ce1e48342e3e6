"""Small layers the backbones and the head share."""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

LEAKY_SLOPE = 0.01  # the reference's LeakyReLU slope, used everywhere
BN_MOMENTUM = 0.9  # PyTorch's batch-norm momentum 0.1, in Flax's convention


def leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, LEAKY_SLOPE)


def batch_norm(train: bool, dtype: Any) -> nn.BatchNorm:
  """Batch norm with PyTorch's defaults (eps 1e-5, `BN_MOMENTUM`)."""
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=1e-5,
                      dtype=dtype)


class GroupedDense(nn.Module):
  """A block-diagonal dense layer: one private `[in, out]` matrix per group.

  x `[..., groups, in]` -> `[..., groups, out]`. Equivalent to a dense layer whose weight is
  zero outside the diagonal blocks, without storing (or training) the zeros.
  """
  features: int
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    groups, width = x.shape[-2:]
    kernel = self.param("kernel", nn.initializers.lecun_normal(batch_axis=(0,)),
                        (groups, width, self.features), self.param_dtype)
    x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
    y = jnp.einsum("...gi,gio->...go", x, kernel)
    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros, (groups, self.features),
                        self.param_dtype)
      y = y + bias.astype(y.dtype)
    return y


def region_max(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
  """Max over `axes` of `[batch, ..., channels]`, its gradient routed by the argmax's index.

  The value is `jnp.max`'s. `jnp.max`'s gradient instead marks the inputs equal to the max; XLA
  on CPU may recompute those inputs in another fusion with different rounding, so no input
  matched and the gradient was lost (compiled gradients 20-90 % off, even in float64). A
  gather by index has no such comparison.
  """
  kept = [a for a in range(x.ndim) if a not in axes]
  flat = jnp.transpose(x, kept + list(axes)).reshape(*(x.shape[a] for a in kept), -1)
  index = jnp.argmax(flat, axis=-1)
  return jnp.take_along_axis(flat, index[..., None], axis=-1)[..., 0]


def max_pool(x: jax.Array, window: tuple[int, int]) -> jax.Array:
  """`nn.max_pool(x, window, strides=window)` ('VALID'): `[batch, h, w, c]` ->
  `[batch, h // wh, w // ww, c]`, its gradient routed to one input of each window.

  The window's wh * ww strided slices are compared in turn, and a chain of selects keeps the
  first largest (a NaN once met), as an argmax would; the gradient goes to that input alone,
  written in one elementwise pass from the kept positions. Both directions are elementwise,
  which XLA fuses. `nn.max_pool`'s gradient on XLA's CPU backend was a reduce-window carrying
  four index arrays (37 % of a `t6.py:cpu` step); `region_max` over a reshaped window needs a
  transposed copy and a variadic (value, index) reduce of 4 values per output, which on an
  H200 took 109 ms of the full network's 279 ms step.
  """
  wh, ww = window
  return _max_pool_whole(x[:, :x.shape[1] // wh * wh, :x.shape[2] // ww * ww], window)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool_whole(x: jax.Array, window: tuple[int, int]) -> jax.Array:
  """`max_pool` of `[batch, h, w, c]` whose h and w are multiples of the window."""
  return _max_and_position(x, window)[0]


def _max_and_position(x: jax.Array, window: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
  """Each window's first largest value and its position i * ww + j: two `[batch, h // wh,
  w // ww, c]` arrays, the second int8."""
  wh, ww = window
  best = x[:, ::wh, ::ww]
  position = jnp.zeros(best.shape, jnp.int8)
  for offset in range(1, wh * ww):
    i, j = divmod(offset, ww)
    candidate = x[:, i::wh, j::ww]
    take = (candidate > best) | (jnp.isnan(candidate) & ~jnp.isnan(best))
    best = jnp.where(take, candidate, best)
    position = jnp.where(take, jnp.int8(offset), position)
  return best, position


def _max_pool_gradient(window: tuple[int, int], position: jax.Array,
                       gradient: jax.Array) -> tuple[jax.Array]:
  wh, ww = window
  batch, height, width, channels = gradient.shape
  offsets = jnp.arange(wh * ww, dtype=jnp.int8).reshape(1, 1, wh, 1, ww, 1)
  kept = position[:, :, None, :, None] == offsets  # [batch, h, wh, w, ww, c]
  spread = jnp.where(kept, gradient[:, :, None, :, None], 0)
  return (spread.reshape(batch, height * wh, width * ww, channels),)


_max_pool_whole.defvjp(_max_and_position, _max_pool_gradient)


def adaptive_max_pool(x: jax.Array, output_size: tuple[int, int]) -> jax.Array:
  """PyTorch's AdaptiveMaxPool2d: `[batch, h, w, c]` -> `[batch, oh, ow, c]`.

  Bin i of an axis of length n spans [floor(i n / o), ceil((i + 1) n / o)), so bins overlap
  when o does not divide n.
  """
  def bins(n: int, o: int) -> list[slice]:
    return [slice(i * n // o, math.ceil((i + 1) * n / o)) for i in range(o)]

  height, width = x.shape[1:3]
  rows = [jnp.stack([region_max(x[:, r, c], (1, 2)) for c in bins(width, output_size[1])],
                    axis=1)
          for r in bins(height, output_size[0])]
  return jnp.stack(rows, axis=1)
