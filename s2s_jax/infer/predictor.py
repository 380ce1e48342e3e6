"""Trained models (`infer.workdir`) applied together: clips -> class probabilities."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np

from s2s_jax.audio import storage
from s2s_jax.audio.clip import check_same_clip
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.infer import logits as logits_lib
from s2s_jax.infer.inputs import feature_banks, model_inputs
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.infer.workdir import ModelError, TrainedModel
from s2s_jax.models import sound2synth


def network_probabilities(network, layout: logits_lib.ClassLayout, variables: dict,
                          inputs: dict) -> jax.Array:
  """One network's per-parameter softmax: inputs for n clips -> `[n, total_classes]`."""
  return logits_lib.class_probabilities(network.apply(variables, inputs, train=False), layout)


class Predictor:
  """Class probabilities of several models for the same clips.

  The clips are featurised once; each model then runs the program compiled for its
  architecture (most often one for all: one architecture trained per algorithm). Applying the
  models one after the other beat stacking them under one `vmap` on CPU (`s2s-bench match`).
  """

  def __init__(self, models: Sequence[TrainedModel]):
    if not models:
      raise ModelError("no model given")
    spaces = {workdir_lib.parameter_space(m.config) for m in models}
    if len(spaces) > 1:
      raise ModelError(f"models disagree on their classes ({sorted(map(str, spaces))}): "
                       "num_bins or predict_algorithm differ")
    self.models = tuple(models)
    self.clip = models[0].clip
    for m in models[1:]:
      try:
        check_same_clip(m.clip, f"model {m.workdir}", self.clip, f"model {models[0].workdir}'s")
      except ValueError as e:
        raise ModelError(str(e)) from None
    self.space = spaces.pop()
    self.layout = logits_lib.ClassLayout.create(self.space, self.clip)
    self._banks = feature_banks(FeatureSpec(clip=self.clip),
                                [b for m in self.models for b in m.config.model.branches])
    self._inputs = jax.jit(model_inputs)
    self._apply = {}  # architecture -> jitted network_probabilities of that network
    for m in self.models:
      if m.architecture not in self._apply:
        network = sound2synth.create_model(m.config, self.space)
        self._apply[m.architecture] = jax.jit(
            functools.partial(network_probabilities, network, self.layout))
    # Each model traced once, here, on one clip's shapes: its variables must fit its network,
    # and the first `probabilities` reuses the trace.
    clip = jax.eval_shape(self._inputs, self._banks, jax.ShapeDtypeStruct(
        (1, self._banks.spec.num_samples), jnp.float32))
    for m in self.models:
      try:
        jax.eval_shape(self._apply[m.architecture], m.variables, clip)
      except (ValueError, KeyError, TypeError, flax.errors.FlaxError) as e:
        raise ModelError(f"model {m.workdir}: its variables do not fit its network ({e})"
                         ) from None

  def inputs(self, audio: np.ndarray) -> dict:
    """What the networks read, for clips `[n, samples]` as `self.clip` describes.

    The clips first take the dataset's 16-bit storage round trip (`storage.as_stored`), so the
    networks read the samples training read.
    """
    return self._inputs(self._banks, jnp.asarray(storage.as_stored(audio), jnp.float32))

  def probabilities(self, audio: np.ndarray) -> np.ndarray:
    """Clips `[n, samples]` (`self.clip`) -> `[num_models, n, total_classes]` float32."""
    inputs = self.inputs(audio)
    return np.asarray(jnp.stack([self._apply[m.architecture](m.variables, inputs)
                                 for m in self.models]))
