"""Voices as Dexed host parameters: the Sound2Synth JSON and DawDreamer settings.

A host value is what Dexed's `setParameter` takes, in [0, 1]: a DX7 value v
becomes v / steps (Dexed rounds f * steps back), ALGORITHM included;
plug-in-only controls take their neutral values from `params.DEXED_PARAMS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from s2s_jax.synth import params


def to_dexed_json(voice: np.ndarray) -> dict[str, float]:
  """Voice `[155]` -> {Dexed parameter name: host value}, all 155 parameters.

  This is the flat object the Sound2Synth Dexed plug-in applies by name.
  """
  voice = params.clamp_voice(voice)
  return {p.name: p.neutral if p.kind is params.Kind.PLUGIN
          else p.host_value(int(voice[p.voice_byte])) for p in params.DEXED_PARAMS}


def from_dexed_json(values: Mapping[str, object], name: str = "FROM JSON") -> np.ndarray:
  """{Dexed parameter name: host value} -> voice `[155]` uint8.

  Every DX7 parameter must be present with a number in [0, 1]; plug-in-only
  controls may be present and are ignored (a DX7 voice has no place for them).

  Raises:
    ValueError: naming the unknown, missing or invalid parameter and its value.
  """
  unknown = sorted(set(values) - set(params.PARAM_BY_NAME))
  if unknown:
    raise ValueError(f"unknown Dexed parameter name(s): {', '.join(map(repr, unknown))}")
  missing = [p.name for p in params.VOICE_PARAMS if p.name not in values]
  if missing:
    raise ValueError(f"missing Dexed parameter(s): {', '.join(missing)}")
  voice = params.with_name(params.INIT_VOICE, name)
  for p in params.VOICE_PARAMS:
    value = values[p.name]
    if (isinstance(value, bool) or not isinstance(value, (int, float))
        or not math.isfinite(value) or not 0.0 <= value <= 1.0):
      raise ValueError(f"parameter {p.name!r} must be a number in [0, 1], got {value!r}")
    voice[p.voice_byte] = p.dx_value(value)
  return voice


def dawdreamer_indices(plugin_names: Sequence[str], plugin: str = "the plug-in") -> dict[str, int]:
  """Maps every Dexed parameter name to its index in a plug-in's parameter list.

  Args:
    plugin_names: the plug-in's parameter names in index order (DawDreamer's
      `get_parameters_description()`); Dexed 0.9.8+ has `MonoMode` at index 3.
    plugin: how to name the plug-in in errors.
  Raises:
    ValueError: the plug-in lacks Dexed's parameters (it is not Dexed).
  """
  positions = {name: i for i, name in enumerate(plugin_names)}
  missing = [p.name for p in params.DEXED_PARAMS if p.name not in positions]
  if missing:
    raise ValueError(f"{plugin} is not Dexed: it has no parameter(s) "
                     f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
  return {p.name: positions[p.name] for p in params.DEXED_PARAMS}


def dawdreamer_setting(voice: np.ndarray, indices: Mapping[str, int]) -> list[tuple[int, float]]:
  """Voice `[155]` -> [(plug-in parameter index, host value)] for `set_parameter`."""
  return [(indices[name], value) for name, value in to_dexed_json(voice).items()]
