"""Dexed host values: the Sound2Synth JSON and DawDreamer settings by name."""

import json
import subprocess
import sys

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest

from s2s_jax.synth import host
from s2s_jax.synth import params

_voices = hnp.arrays(np.uint8, (155,), elements=st.integers(0, 127)).map(params.clamp_voice)


@hypothesis.given(voice=_voices)
def test_dexed_json_round_trip(voice):
  values = json.loads(json.dumps(host.to_dexed_json(voice)))
  assert len(values) == 155 and all(0.0 <= v <= 1.0 for v in values.values())
  np.testing.assert_array_equal(host.from_dexed_json(values)[:145], voice[:145])


def test_dexed_json_values_follow_dexed_host_scaling():
  voice = params.INIT_VOICE.copy()
  voice[params.ALGORITHM_BYTE] = 31
  values = host.to_dexed_json(voice)
  assert values["ALGORITHM"] == 1.0 and values["TRANSPOSE"] == 0.5
  assert values["OP1 F COARSE"] == pytest.approx(1 / 31) and values["OP1 OSC DETUNE"] == 0.5
  assert values["Cutoff"] == 1.0 and values["OP4 SWITCH"] == 1.0 and values["Output"] == 1.0


def test_reading_dexed_json_names_the_problem():
  values = host.to_dexed_json(params.INIT_VOICE)
  with pytest.raises(ValueError, match="'OP7 EG RATE 1'"):
    host.from_dexed_json({**values, "OP7 EG RATE 1": 0.5})
  with pytest.raises(ValueError, match="missing.*FEEDBACK"):
    host.from_dexed_json({k: v for k, v in values.items() if k != "FEEDBACK"})
  for bad in (1.5, -0.1, "0.5", None, float("nan"), True):
    with pytest.raises(ValueError, match="'LFO SPEED'"):
      host.from_dexed_json({**values, "LFO SPEED": bad})
  # Plug-in-only controls are accepted and ignored: a voice has no place for them.
  np.testing.assert_array_equal(host.from_dexed_json({**values, "Cutoff": 0.3})[:145],
                                params.INIT_VOICE[:145])


def _dexed_names(mono_mode: bool) -> list[str]:
  names = [p.name for p in params.DEXED_PARAMS]
  return names[:3] + ["MonoMode"] + names[3:] if mono_mode else names


@pytest.mark.parametrize("mono_mode", [False, True])
def test_dawdreamer_setting_resolves_names_for_both_dexed_layouts(mono_mode):
  names = _dexed_names(mono_mode)
  indices = host.dawdreamer_indices(names)
  setting = dict(host.dawdreamer_setting(params.INIT_VOICE, indices))
  assert len(setting) == 155
  if mono_mode:
    assert names.index("MonoMode") not in setting  # left as the user set it
  expected = host.to_dexed_json(params.INIT_VOICE)
  assert {names[i]: v for i, v in setting.items()} == expected
  assert indices["ALGORITHM"] == (5 if mono_mode else 4)


def test_a_plugin_without_dexed_parameters_is_refused():
  with pytest.raises(ValueError, match="Surge.vst3 is not Dexed.*Cutoff"):
    host.dawdreamer_indices(["Volume", "Pan", "Filter"], plugin="Surge.vst3")


def test_dawdreamer_renderer_explains_a_missing_or_broken_plugin(tmp_path):
  """Run in a fresh process: DawDreamer's plug-in loader has crashed in processes that had
  already loaded Apache Beam's native modules."""
  broken = tmp_path / "Broken.vst3"
  broken.write_bytes(b"not a plug-in")
  script = f"""
from s2s_jax.synth import render
for path in ({str(tmp_path / "Dexed.vst3")!r}, {str(broken)!r}):
  try:
    render.DawDreamerRenderer(path)
  except (FileNotFoundError, ValueError) as e:
    print(type(e).__name__, e)
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  missing, not_a_plugin = result.stdout.strip().splitlines()
  assert missing.startswith("FileNotFoundError Dexed plug-in not found")
  assert not_a_plugin.startswith("ValueError could not load") and "Broken.vst3" in not_a_plugin
