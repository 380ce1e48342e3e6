"""The grouped classifier head (paper Fig. 5): global feature -> per-parameter logits."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from s2s_jax.models.layers import GroupedDense, leaky_relu
from s2s_jax.synth import params
from s2s_jax.synth.space import ParameterSpace

# The reference's head: FC(2048 -> 153*64), then two "GroupFC" layers that are dense in
# practice (9792 -> 9792, 9792 -> 6645), all with biases.
REFERENCE_HEAD_PARAMS = (2048 + 1) * 9792 + (9792 + 1) * 9792 + (9792 + 1) * 6645


def parameter_groups(space: ParameterSpace) -> tuple[int, ...]:
  """Head group of each learnable parameter: operator k -> k - 1, global parameters -> 6."""
  return tuple(params.NUM_OPERATORS if params.operator_of(p) is None else params.operator_of(p) - 1
               for p in space.params)


def _logit_order(num_classes: tuple[int, ...]) -> np.ndarray:
  """Permutation from class-count-sorted logit chunks to the flat parameter layout.

  The head computes the logits of all parameters with n classes as one `[p_n, n]` chunk; the
  chunks are concatenated in ascending n. Returns `[total_classes]` indices into that
  concatenation, in the order of `ParameterSpace.class_offsets`.
  """
  num_classes = np.asarray(num_classes)
  source_start = {}
  position = 0
  for n in np.unique(num_classes):
    members = np.flatnonzero(num_classes == n)
    for j, k in enumerate(members):
      source_start[k] = position + j * n
    position += len(members) * n
  return np.concatenate([source_start[k] + np.arange(n) for k, n in enumerate(num_classes)])


class ParameterHead(nn.Module):
  """Global feature `[batch, d]` -> flat logits `[batch, sum(num_classes)]`.

  One dense layer with LeakyReLU makes `group_width` features per group (one group per
  operator and one global); `group_layers` block-diagonal layers refine each group privately;
  then every parameter has its own MLP (`parameter_width` hidden units) from its group's
  features to its logits. Nothing is shared across groups after the first layer, and nothing
  across parameters after the group layers: the reference's "grouped" layers were dense.
  """
  num_classes: tuple[int, ...]
  groups: tuple[int, ...]
  group_width: int = 256
  group_layers: int = 1
  parameter_width: int = 64
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    num_groups = max(self.groups) + 1
    h = leaky_relu(nn.Dense(num_groups * self.group_width, dtype=self.dtype)(x))
    h = h.reshape(x.shape[0], num_groups, self.group_width)
    for _ in range(self.group_layers):
      h = leaky_relu(GroupedDense(self.group_width, dtype=self.dtype)(h))
    h = leaky_relu(GroupedDense(self.parameter_width, dtype=self.dtype,
                                name="parameter_hidden")(h[:, np.asarray(self.groups)]))
    num_classes = np.asarray(self.num_classes)
    chunks = [GroupedDense(int(n), dtype=self.dtype, name=f"logits_{n}")(
        h[:, num_classes == n]).reshape(x.shape[0], -1) for n in np.unique(num_classes)]
    return jnp.concatenate(chunks, axis=-1)[:, _logit_order(self.num_classes)]
