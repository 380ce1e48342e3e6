"""A trained model loaded from its training workdir: settings, variables, algorithm.

A training workdir is a model: `config.json` (written when training starts) rebuilds the
network and records the clip it reads (`audio.clip.ClipSpec`; the paper's clip when absent, as
in workdirs written before it was recorded), `best/` holds the variables of the best validation
loss. The DX7 algorithm a model
predicts for is its dataset config's (`alg13` -> 13, `tiny` -> 5); a model trained on every
algorithm (`all`) is tried with each algorithm the user allows.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections

from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.data import recipes
from s2s_jax.infer.inputs import feature_banks, model_inputs
from s2s_jax.models import sound2synth
from s2s_jax.synth.space import ParameterSpace

CONFIG_FILE = "config.json"  # a run's settings, beside its checkpoints


class ModelError(ValueError):
  """A workdir that cannot be used as a model; the message names the folder and says why."""


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """One trained network and what it was trained for.

  Attributes:
    workdir: the training workdir it was loaded from.
    config: the training settings (`configs/t6.py` and overrides).
    clip: the clips it was trained on, so the clips it reads.
    algorithm: 1-based DX7 algorithm of its training voices, or None for any.
    variables: "params" and "batch_stats" of the best validation loss.
    step: the training step those variables come from.
  """
  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  clip: ClipSpec
  algorithm: int | None
  variables: dict
  step: int

  @property
  def architecture(self) -> str:
    """Equal for models whose variables have the same structure and shapes."""
    return json.dumps({"model": self.config.model.to_dict(), "num_bins": self.config.num_bins},
                      sort_keys=True, default=list)


def model_algorithm(config: ml_collections.ConfigDict) -> int | None:
  """1-based DX7 algorithm every training voice of `config` has, or None for any.

  Datasets and online runs alike take it from the dataset config (`alg13` -> 13, `tiny` -> 5).
  """
  return recipes.recipe(config.dataset_config).mix.algorithm


def parameter_space(config: ml_collections.ConfigDict) -> ParameterSpace:
  """The classes a run of `config` learns: `num_bins`, and ALGORITHM when it predicts it."""
  return ParameterSpace(config.num_bins, bool(config.get("predict_algorithm", False)))


def write_config(workdir: epath.Path, config: ml_collections.ConfigDict, clip: ClipSpec,
                 step: int | None = None) -> None:
  """Writes `workdir/config.json`: the settings, under "clip" the clip trained on and, for an
  exported model, under "step" the step its variables come from."""
  settings = json.loads(config.to_json()) | {"clip": clip.to_dict()}
  if step is not None:
    settings["step"] = step
  (workdir / CONFIG_FILE).write_text(json.dumps(settings, indent=2) + "\n")


def read_config(path: pathlib.Path) -> tuple[ml_collections.ConfigDict, ClipSpec, int | None]:
  """`write_config`'s file -> (settings, clip, step or None); ValueError, KeyError,
  AttributeError or TypeError if it is not a usable training config."""
  settings = json.loads(path.read_text())
  clip = ClipSpec.from_dict(settings.pop("clip", None))
  step = settings.pop("step", None)
  return ml_collections.ConfigDict(settings), clip, None if step is None else int(step)


def load_model(workdir: str | pathlib.Path) -> TrainedModel:
  """The best variables of a training workdir; ModelError if it is not a usable model."""
  # Imported here: orbax takes half a second to import, and the bundled model needs none.
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  workdir = pathlib.Path(workdir).expanduser()
  if not workdir.is_dir():
    raise ModelError(f"model {workdir}: no such folder")
  config_path = workdir / CONFIG_FILE
  if not config_path.is_file():
    raise ModelError(f"model {workdir}: no {CONFIG_FILE}; a model is the --workdir of a "
                     "training run (python -m s2s_jax.main)")
  try:
    config, clip, _ = read_config(config_path)
    network = sound2synth.create_model(config, parameter_space(config))
    algorithm = model_algorithm(config)
  except (ValueError, KeyError, AttributeError, TypeError) as e:
    raise ModelError(f"model {workdir}: {config_path.name} is not a usable training config "
                     f"({e})") from None
  best = workdir / "best"
  steps = ocp.utils.checkpoint_steps(best) if best.is_dir() else []
  if not steps:
    raise ModelError(f"model {workdir}: no checkpoint in {best}; training saves one at its "
                     "first validation")
  step = max(steps)
  abstract = abstract_variables(network, clip)
  with ocp.CheckpointManager(best.absolute(), options=ocp.CheckpointManagerOptions(
      create=False, read_only=True)) as manager:
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          variables=ocp.args.StandardRestore(abstract)))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise ModelError(f"model {workdir}: the checkpoint {best / str(step)} does not fit the "
                       f"network of {config_path.name} ({e})") from None
  return TrainedModel(workdir=workdir, config=config, clip=clip, algorithm=algorithm,
                      variables=restored.variables, step=step)


def abstract_variables(network, clip: ClipSpec) -> dict:
  """Shapes, dtypes and (single-device) shardings of the network's variables."""
  shapes = jax.eval_shape(functools.partial(network.init, train=False), jax.random.key(0),
                          _abstract_inputs(clip, tuple(sorted(network.backbones))))
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                      shapes)


@functools.cache
def _abstract_inputs(clip: ClipSpec, branches: tuple[str, ...]) -> dict:
  """Shapes of the inputs of a network of `branches` for one clip (tracing the featuriser
  takes a second)."""
  banks = feature_banks(FeatureSpec(clip=clip), branches)
  audio = jax.ShapeDtypeStruct((1, banks.spec.num_samples), jnp.float32)
  return jax.eval_shape(model_inputs, banks, audio)
