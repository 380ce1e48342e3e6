"""Small layers the backbones and the head share."""

from __future__ import annotations

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
  `[batch, h // wh, w // ww, c]`, its gradient routed by index (`region_max`).

  XLA's CPU backend made `nn.max_pool`'s gradient a reduce-window carrying four index arrays:
  37 % of a `t6.py:cpu` step with the iotas feeding it; this one took 0.21 s where that took
  0.33 (the mel CNN's first pool, gradient included, batch 32).
  """
  batch, height, width, channels = x.shape
  wh, ww = window
  x = x[:, :height // wh * wh, :width // ww * ww]
  return region_max(x.reshape(batch, height // wh, wh, width // ww, ww, channels), (2, 4))


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
