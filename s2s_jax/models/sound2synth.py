"""The multimodal SOUND2SYNTH network (paper Figure 2) and its construction from a config.

Each selected branch turns one feature of `audio.features.featurise` into a vector; the vectors
are concatenated (in `BRANCHES` order), projected to the global feature and classified by the
grouped head. Single-branch models are the ablations.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from s2s_jax.audio.features import STATISTICS
from s2s_jax.models import backbones
from s2s_jax.models.head import ParameterHead, parameter_groups
from s2s_jax.models.layers import leaky_relu
from s2s_jax.synth.space import ParameterSpace

BRANCHES = ("stft", "mel", "cqt", "mfcc", "statistics", "waveform")


def branch_input(features: dict[str, jax.Array], branch: str) -> jax.Array:
  """The array a branch reads: a feature, the stacked statistics, or the clip ("audio")."""
  if branch == "statistics":
    return jnp.stack([features[name] for name in STATISTICS], axis=1)
  return features["audio" if branch == "waveform" else branch]


class Sound2Synth(nn.Module):
  """Features (plus "audio" for the waveform branch) -> logits `[batch, total_classes]`.

  Attributes:
    num_classes, groups: per learnable parameter (see `ParameterHead`).
    backbones: branch name -> backbone module, for the selected branches.
    global_width: the fused feature width (2048 in the paper).
    head: settings of `ParameterHead` other than num_classes, groups and dtype.
    dtype: compute dtype (bfloat16 for mixed precision); parameters stay float32.
  """
  num_classes: tuple[int, ...]
  groups: tuple[int, ...]
  backbones: dict[str, nn.Module]
  global_width: int = 2048
  head: dict[str, int] = None
  dtype: Any = None

  @nn.compact
  def __call__(self, features: dict[str, jax.Array], train: bool) -> jax.Array:
    branch_features = [self.backbones[b](branch_input(features, b), train)
                       for b in BRANCHES if b in self.backbones]
    x = leaky_relu(nn.Dense(self.global_width, dtype=self.dtype, name="fusion")(
        jnp.concatenate(branch_features, axis=-1)))
    logits = ParameterHead(self.num_classes, self.groups, dtype=self.dtype, name="head",
                           **(self.head or {}))(x)
    return logits.astype(jnp.float32)


_BACKBONES = {
    "stft": backbones.SpectrogramCnn,
    "mel": backbones.SpectrogramCnn,
    "cqt": backbones.PdcNetwork,
    "mfcc": backbones.MfccLstm,
    "statistics": backbones.StatisticsMlp,
    "waveform": backbones.WaveformCnn,
}


def create_model(config: ml_collections.ConfigDict, space: ParameterSpace) -> Sound2Synth:
  """Builds the network from `config.model` (see `configs/t6.py`).

  `config.model.branches` names the branches; `config.model.<branch>` holds each branch's
  settings (the backbone's attributes); `config.model.head` the head's; `config.model.dtype`
  is "float32" or "bfloat16".
  """
  model = config.model
  unknown = set(model.branches) - set(BRANCHES)
  if unknown or not model.branches:
    raise ValueError(f"config.model.branches must be a non-empty subset of {BRANCHES}, "
                     f"got {tuple(model.branches)}")
  dtype = jnp.dtype(model.dtype)
  return Sound2Synth(
      num_classes=tuple(int(n) for n in space.num_classes),
      groups=parameter_groups(space),
      backbones={b: _BACKBONES[b](dtype=dtype, **_as_attributes(model.get(b, {})))
                 for b in model.branches},
      global_width=model.global_width,
      head=_as_attributes(model.head),
      dtype=dtype)


def count_parameters(tree) -> int:
  """Numbers in a pytree of arrays (or of shapes from `jax.eval_shape`)."""
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))


def _as_attributes(settings) -> dict[str, Any]:
  """ConfigDict -> module attributes, lists made tuples (modules must be hashable)."""
  def freeze(value):
    return tuple(freeze(v) for v in value) if isinstance(value, (list, tuple)) else value
  items = settings.items() if settings else ()
  return {key: freeze(value) for key, value in items}
