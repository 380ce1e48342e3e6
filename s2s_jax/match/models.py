"""Trained models loaded from their workdirs, applied together: clips -> class probabilities.

A training workdir is a model: `config.json` (written when training starts) rebuilds the
network, `best/` holds the variables of the best validation loss. The DX7 algorithm a model
predicts for is its dataset config's (`alg13` -> 13, `tiny` -> 5); a model trained on every
algorithm (`all`) is tried with each algorithm the user allows.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from s2s_jax.audio.features import FeatureBanks
from s2s_jax.models import sound2synth
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import input_pipeline
from s2s_jax.train import losses
from s2s_jax.train import train


class ModelError(ValueError):
  """A workdir that cannot be used as a model; the message names the folder and says why."""


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """One trained network and what it was trained for.

  Attributes:
    workdir: the training workdir it was loaded from.
    config: the training settings (`configs/t6.py` and overrides).
    algorithm: 1-based DX7 algorithm of its training voices, or None for any.
    variables: "params" and "batch_stats" of the best validation loss.
    step: the training step those variables come from.
  """
  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  algorithm: int | None
  variables: dict
  step: int

  @property
  def architecture(self) -> str:
    """Equal for models whose variables have the same structure and shapes."""
    return json.dumps({"model": self.config.model.to_dict(), "num_bins": self.config.num_bins},
                      sort_keys=True, default=list)


def load_model(workdir: str | pathlib.Path) -> TrainedModel:
  """The best variables of a training workdir; ModelError if it is not a usable model."""
  workdir = pathlib.Path(workdir).expanduser()
  if not workdir.is_dir():
    raise ModelError(f"model {workdir}: no such folder")
  config_path = workdir / train.CONFIG_FILE
  if not config_path.is_file():
    raise ModelError(f"model {workdir}: no {train.CONFIG_FILE}; a model is the --workdir of a "
                     "training run (python -m s2s_jax.main)")
  try:
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    network = sound2synth.create_model(config, ParameterSpace(config.num_bins))
    algorithm = input_pipeline.model_algorithm(config)
  except (ValueError, KeyError, AttributeError, TypeError) as e:
    raise ModelError(f"model {workdir}: {config_path.name} is not a usable training config "
                     f"({e})") from None
  best = workdir / "best"
  steps = ocp.utils.checkpoint_steps(best) if best.is_dir() else []
  if not steps:
    raise ModelError(f"model {workdir}: no checkpoint in {best}; training saves one at its "
                     "first validation")
  step = max(steps)
  abstract = _abstract_variables(network)
  with ocp.CheckpointManager(best.absolute(), options=ocp.CheckpointManagerOptions(
      create=False, read_only=True)) as manager:
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          variables=ocp.args.StandardRestore(abstract)))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise ModelError(f"model {workdir}: the checkpoint {best / str(step)} does not fit the "
                       f"network of {config_path.name} ({e})") from None
  return TrainedModel(workdir=workdir, config=config, algorithm=algorithm,
                      variables=restored.variables, step=step)


def _abstract_variables(network) -> dict:
  """Shapes, dtypes and (single-device) shardings of the network's variables."""
  shapes = jax.eval_shape(functools.partial(network.init, train=False), jax.random.key(0),
                          _abstract_inputs())
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                      shapes)


@functools.cache
def _abstract_inputs() -> dict:
  """Shapes of the network's inputs for one clip (tracing the featuriser takes a second)."""
  banks = FeatureBanks.create()
  audio = jax.ShapeDtypeStruct((1, banks.spec.num_samples), jnp.float32)
  return jax.eval_shape(train.model_inputs, banks, audio)


def class_probabilities(network, layout: losses.ClassLayout, variables: dict,
                        inputs: dict) -> jax.Array:
  """One network's per-parameter softmax: inputs for n clips -> `[n, total_classes]`."""
  return losses.class_probabilities(network.apply(variables, inputs, train=False), layout)


class Predictor:
  """Class probabilities of several models for the same clips.

  The clips are featurised once; each model then runs the program compiled for its
  architecture (most often one for all: one architecture trained per algorithm). Applying the
  models one after the other beat stacking them under one `vmap` on CPU (`s2s-bench match`).
  """

  def __init__(self, models: Sequence[TrainedModel]):
    if not models:
      raise ModelError("no model given")
    bins = {m.config.num_bins for m in models}
    if len(bins) > 1:
      raise ModelError(f"models disagree on num_bins ({sorted(bins)}): their class spaces differ")
    self.models = tuple(models)
    self.space = ParameterSpace(bins.pop())
    self.layout = losses.ClassLayout.create(self.space)
    self._banks = FeatureBanks.create()
    self._inputs = jax.jit(train.model_inputs)
    self._apply = {}  # architecture -> jitted class_probabilities of that network
    for m in self.models:
      if m.architecture not in self._apply:
        network = sound2synth.create_model(m.config, self.space)
        self._apply[m.architecture] = jax.jit(
            functools.partial(class_probabilities, network, self.layout))

  def inputs(self, audio: np.ndarray) -> dict:
    """What the networks read, for clips `[n, samples]` at the render rate."""
    return self._inputs(self._banks, jnp.asarray(audio, jnp.float32))

  def probabilities(self, audio: np.ndarray) -> np.ndarray:
    """Clips `[n, samples]` at the render rate -> `[num_models, n, total_classes]` float32."""
    inputs = self.inputs(audio)
    return np.asarray(jnp.stack([self._apply[m.architecture](m.variables, inputs)
                                 for m in self.models]))
