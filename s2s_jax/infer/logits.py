"""The flat logits of the network: which block belongs to which parameter; classes, softmax.

The model emits flat logits `[batch, total_classes]`; parameter k owns the block
`logits[:, offsets[k]:offsets[k + 1]]` (`ParameterSpace.class_offsets`). This flat layout is
the one contract between the head, the losses, the predictor and the search: on the host,
`ParameterSpace.blocks` and `ParameterSpace.flat_index` split it; on the device, `ClassLayout`
gathers the blocks into one padded `[batch, num_params, max_classes]` array, padding at
-inf, so each parameter's softmax is one vectorised op instead of a loop over 144 blocks.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from s2s_jax.audio.clip import ClipSpec
from s2s_jax.synth import params
from s2s_jax.synth.space import ParameterSpace

# An operator's parameters that set its level at the played note, in the order
# `train.losses.active_mask` reads them.
LEVEL_PARAMS = ("OUTPUT LEVEL", "BREAK POINT", "L SCALE DEPTH", "R SCALE DEPTH", "L KEY SCALE",
                "R KEY SCALE")


@flax.struct.dataclass
class ClassLayout:
  """Where each parameter's classes sit in the flat logits, and which labels silence which.

  A pytree (arrays on the device, sizes static): pass it into jitted functions as an argument
  or close over it; either way no Python loop over parameters is traced.

  index: [num_params, max_classes] int32, flat logit index of class c of parameter k
    (0 where c >= num_classes[k]).
  valid: [num_params, max_classes] bool, c < num_classes[k].
  valid_positions: [total_classes] int32, where the valid entries sit in `valid` flattened
    (made here in numpy: `jnp.flatnonzero` in a jitted function would be a cumsum that XLA
    constant-folds in seconds).
  num_classes: [num_params] int32.
  is_continuous: [num_params] bool, the binned 0..99 parameters.
  level_params: [num_params, 6] int32, for a parameter of operator o the indices of o's
    `LEVEL_PARAMS` (for a global parameter, of OP1's: unused).
  silenceable: [num_params] bool, k belongs to an operator and is not its OUTPUT LEVEL.
  transpose: the index of TRANSPOSE.
  note: the MIDI note the clips are played at (`ClipSpec.note`).
  """
  index: jax.Array
  valid: jax.Array
  valid_positions: jax.Array
  num_classes: jax.Array
  is_continuous: jax.Array
  level_params: jax.Array
  silenceable: jax.Array
  transpose: int = flax.struct.field(pytree_node=False)
  note: int = flax.struct.field(pytree_node=False)
  num_bins: int = flax.struct.field(pytree_node=False)
  total_classes: int = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, space: ParameterSpace, clip: ClipSpec = ClipSpec()) -> ClassLayout:
    num_classes = space.num_classes
    classes = np.arange(num_classes.max())
    valid = classes[None, :] < num_classes[:, None]
    index = np.where(valid, space.class_offsets[:-1, None] + classes[None, :], 0)
    operators = [params.operator_of(p) or 1 for p in space.params]
    level_params = [[space.names.index(f"OP{op} {name}") for name in LEVEL_PARAMS]
                    for op in operators]
    silenceable = [params.operator_of(p) is not None and not p.name.endswith(" OUTPUT LEVEL")
                   for p in space.params]
    return cls(index=jnp.asarray(index, jnp.int32), valid=jnp.asarray(valid),
               valid_positions=jnp.asarray(np.flatnonzero(valid), jnp.int32),
               num_classes=jnp.asarray(num_classes, jnp.int32),
               is_continuous=jnp.asarray(space.is_continuous),
               level_params=jnp.asarray(level_params, jnp.int32),
               silenceable=jnp.asarray(silenceable), transpose=space.names.index("TRANSPOSE"),
               note=clip.note, num_bins=space.num_bins, total_classes=space.total_classes)


def padded_logits(logits: jax.Array, layout: ClassLayout) -> jax.Array:
  """Flat logits [batch, total_classes] -> [batch, num_params, max_classes] float32.

  Padding classes are -inf, so softmax and argmax over the last axis stay per parameter.
  """
  if logits.ndim != 2 or logits.shape[1] != layout.total_classes:
    raise ValueError(f"logits must be [batch, {layout.total_classes}], got {logits.shape}")
  blocks = jnp.take(logits.astype(jnp.float32), layout.index, axis=1)
  return jnp.where(layout.valid, blocks, -jnp.inf)


def predicted_classes(logits: jax.Array, layout: ClassLayout) -> jax.Array:
  """The most likely class of each parameter: [batch, total_classes] -> [batch, num_params]."""
  return jnp.argmax(padded_logits(logits, layout), axis=-1).astype(jnp.int32)


def class_probabilities(logits: jax.Array, layout: ClassLayout) -> jax.Array:
  """Each parameter's softmax, back in the flat layout: [batch, total_classes] -> same shape."""
  probabilities = jax.nn.softmax(padded_logits(logits, layout), axis=-1)
  flat = probabilities.reshape(probabilities.shape[0], -1)
  return jnp.take(flat, layout.valid_positions, axis=1)
