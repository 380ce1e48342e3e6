"""The parameter table and the learnable space derived from it."""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest

from s2s_jax.synth import params
from s2s_jax.synth.space import ParameterSpace


def test_table_matches_dexed_layout():
  assert len(params.DEXED_PARAMS) == 155
  assert [p.index for p in params.DEXED_PARAMS] == list(range(155))
  assert sorted(p.voice_byte for p in params.VOICE_PARAMS) == list(range(145))
  # Spot checks against Dexed's PluginParam.cpp (0.9.7 indices).
  expected = {0: ("Cutoff", None), 3: ("MASTER TUNE ADJ", None), 4: ("ALGORITHM", 134),
              13: ("TRANSPOSE", 144), 14: ("P MODE SENS.", 143), 23: ("OP1 EG RATE 1", 105),
              31: ("OP1 OUTPUT LEVEL", 121), 36: ("OP1 BREAK POINT", 113), 44: ("OP1 SWITCH", None),
              133: ("OP6 EG RATE 1", 0), 146: ("OP6 BREAK POINT", 8), 153: ("OP6 KEY VELOCITY", 15)}
  for index, (name, byte) in expected.items():
    assert (params.DEXED_PARAMS[index].name, params.DEXED_PARAMS[index].voice_byte) == (name, byte)


def test_plugin_controls_are_fixed_at_neutral_values():
  plugin = {p.name: p.neutral for p in params.DEXED_PARAMS if p.kind is params.Kind.PLUGIN}
  assert plugin == {"Cutoff": 1.0, "Resonance": 0.0, "Output": 1.0, "MASTER TUNE ADJ": 0.5,
                    **{f"OP{k} SWITCH": 1.0 for k in range(1, 7)}}


def test_learnable_space_counts():
  space = ParameterSpace()
  assert space.num_params == 144 and "ALGORITHM" not in space.names
  assert int(space.is_continuous.sum()) == 84
  classes = dict(zip(space.names, space.num_classes))
  assert classes["OP1 F COARSE"] == 32 and classes["OP3 OSC DETUNE"] == 15
  assert classes["OP2 L KEY SCALE"] == 4 and classes["LFO WAVE"] == 6
  assert classes["TRANSPOSE"] == 49 and classes["FEEDBACK"] == 8
  assert classes["OP6 BREAK POINT"] == 100 and classes["OP1 EG RATE 1"] == 64
  assert space.total_classes == 84 * 64 + int(space.num_classes[~space.is_continuous].sum())
  assert ParameterSpace(num_bins=32).num_classes[space.names.index("LFO SPEED")] == 32


@pytest.mark.parametrize("bins", [1, 101])
def test_space_rejects_impossible_bin_counts(bins):
  with pytest.raises(ValueError, match="num_bins"):
    ParameterSpace(num_bins=bins)


def _voices(draw_count=8):
  return hnp.arrays(np.uint8, (draw_count, 155), elements=st.integers(0, 127))


@hypothesis.given(voices=_voices(), bins=st.sampled_from([16, 63, 64, 100]))
def test_decode_encode_is_within_half_a_bin(voices, bins):
  space = ParameterSpace(num_bins=bins)
  clamped = params.clamp_voice(voices)
  decoded = space.decode(space.encode(voices), params.algorithm_of(clamped))
  values, original = decoded[:, space.voice_bytes], clamped[:, space.voice_bytes]
  np.testing.assert_array_equal(values[:, ~space.is_continuous], original[:, ~space.is_continuous])
  error = np.abs(values[:, space.is_continuous].astype(int) - original[:, space.is_continuous])
  assert error.max(initial=0) <= 99 / (2 * (bins - 1)) + 0.5
  byte = params.ALGORITHM_BYTE
  np.testing.assert_array_equal(decoded[:, byte], clamped[:, byte])


@hypothesis.given(data=st.data(), bins=st.sampled_from([16, 64, 100]))
def test_encode_decode_returns_the_classes(data, bins):
  space = ParameterSpace(num_bins=bins)
  classes = np.array([data.draw(st.integers(0, n - 1)) for n in space.num_classes])
  voice = space.decode(classes, algorithm=data.draw(st.integers(1, 32)))
  np.testing.assert_array_equal(space.encode(voice), classes)


def test_decoding_reaches_both_ends_without_the_reference_bias():
  space = ParameterSpace()
  top = space.decode(space.num_classes - 1, algorithm=1)
  bottom = space.decode(np.zeros(space.num_params, int), algorithm=1)
  continuous = space.voice_bytes[space.is_continuous]
  assert (top[continuous] == 99).all() and (bottom[continuous] == 0).all()


def test_decode_rejects_bad_classes_and_algorithms():
  space = ParameterSpace()
  classes = np.zeros(space.num_params, int)
  classes[space.names.index("FEEDBACK")] = 8
  with pytest.raises(ValueError, match="FEEDBACK"):
    space.decode(classes, 1)
  with pytest.raises(ValueError, match="algorithm"):
    space.decode(np.zeros(space.num_params, int), 33)
  with pytest.raises(ValueError, match="144"):
    space.decode(np.zeros(10, int), 1)


def test_clamp_voice_applies_dx7_maxima_and_keeps_the_name():
  voice = params.with_name(np.full(155, 127, np.uint8), "LOUD VOICE")
  clamped = params.clamp_voice(voice)
  np.testing.assert_array_equal(clamped[:145], params.VOICE_MAXIMA)
  assert params.voice_name(clamped) == "LOUD VOICE"
  assert voice[0] == 127  # the input is not modified


def test_algorithms_are_1_based_above_the_byte():
  init = params.INIT_VOICE  # the DX7's INIT VOICE: algorithm 1
  assert init[134] == 0 and params.algorithm_of(init) == 1
  voices = np.zeros((2, 155), np.uint8)
  params.set_algorithm(voices, np.array([32, 5]))
  assert voices[:, 134].tolist() == [31, 4]
  assert params.algorithm_of(voices).tolist() == [32, 5]
  with pytest.raises(ValueError, match="1..32"):
    params.set_algorithm(voices, 0)


def test_flat_layout_blocks_and_indices():
  space = ParameterSpace(num_bins=32)
  names = list(space.names)
  flat = np.arange(space.total_classes)
  blocks = space.blocks(flat[None])
  assert len(blocks) == 144 and blocks[names.index("TRANSPOSE")].shape == (1, 49)
  assert blocks[names.index("LFO WAVE")].shape == (1, 6) and blocks[0].shape == (1, 8)
  np.testing.assert_array_equal(np.concatenate(blocks, axis=-1), flat[None])
  classes = np.zeros((2, space.num_params), np.int64)
  classes[1, :2] = 5, 1  # FEEDBACK (8 classes) then OSC KEY SYNC (2)
  index = space.flat_index(classes)
  assert index[0, 0] == 0 and index[0, 1] == 8 and index[1, 0] == 5 and index[1, 1] == 9
  np.testing.assert_array_equal(flat[index[1]], [b[0, c] for b, c in zip(blocks, classes[1])])
  with pytest.raises(ValueError, match="classes on the last axis"):
    space.blocks(flat[:-1])
