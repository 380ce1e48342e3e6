"""DX7 sysex messages: round trips, agreement with dexed-py, and every bad file."""

import warnings

import dexed
import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest

from s2s_jax.synth import params
from s2s_jax.synth import sysex
from s2s_jax.util import files

_valid_voices = hnp.arrays(np.uint8, (155,), elements=st.integers(0, 127)).map(
    params.clamp_voice).map(lambda v: params.with_name(v, "HYPO VOICE"))


@hypothesis.given(voice=_valid_voices)
def test_single_voice_round_trip(voice):
  message = sysex.voice_message(voice)
  assert len(message) == sysex.VOICE_SIZE
  np.testing.assert_array_equal(sysex.parse(message), voice[None])


@hypothesis.given(voices=hnp.arrays(np.uint8, (32, 155), elements=st.integers(0, 127)))
@hypothesis.settings(max_examples=25)
def test_bank_round_trip_clamps_like_dexed(voices):
  message = sysex.bank_message(voices)
  assert len(message) == sysex.BANK_SIZE
  np.testing.assert_array_equal(sysex.parse(message)[:, :145], params.clamp_voice(voices)[:, :145])


@hypothesis.given(seed=st.integers(0, 2**32 - 1))
@hypothesis.settings(max_examples=25)
def test_bank_reading_agrees_with_dexed_py_after_clamping(seed, tmp_path_factory):
  """Any 7-bit payload: our voices, clamped, are what dexed-py's bank loader plays."""
  payload = np.random.default_rng(seed).integers(0, 128, 4096, dtype=np.uint8).tobytes()
  message = bytes([0xF0, 0x43, 0x00, 0x09, 0x20, 0x00]) + payload + bytes(
      [sysex.checksum(payload), 0xF7])
  path = tmp_path_factory.mktemp("bank") / "random.syx"
  path.write_bytes(message)
  ours = params.clamp_voice(sysex.read(path))
  theirs = np.stack([np.frombuffer(p.to_sysex()[:155], np.uint8)
                     for p in dexed.Patch.load_bank(str(path))])
  np.testing.assert_array_equal(ours[:, :145], theirs[:, :145])


def test_high_bit_bytes_are_masked_before_unpacking():
  voice = params.INIT_VOICE.copy()
  bank = bytearray(sysex.bank_message(np.stack([voice] * 32)))
  bank[6] |= 0x80  # OP6 EG RATE 1 of voice 0: bit 7 is "don't care"
  bank[-2] = sysex.checksum(bank[6:-2])
  assert sysex.parse(bytes(bank))[0, 0] == 99


def test_byte_count_quirk_is_accepted():
  bank = bytearray(sysex.bank_message(np.stack([params.INIT_VOICE] * 32)))
  bank[4] = 0x10
  assert sysex.parse(bytes(bank)).shape == (32, 155)


def _bank() -> bytes:
  return sysex.bank_message(np.stack([params.INIT_VOICE] * 32))


def _bad_checksum() -> bytes:
  data = bytearray(_bank())
  data[-2] ^= 0x01
  return bytes(data)


@pytest.mark.parametrize("data,reason", [
    (b"", "not sysex"),
    (b"RIFF....WAVEfmt ", "not sysex"),
    (bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x00, 0xF7]), "not a DX7 voice dump"),
    (bytes([0xF0, 0x43, 0x00, 0x01, 0x01, 0x1B]) + bytes(160), "not a DX7 voice dump"),
    (_bank()[:2000], "truncated"),
    (_bank()[:4], "truncated"),
    (_bank() + b"\x00", "wrong size"),
    (_bank()[:4] + b"\x01\x1b" + _bank()[6:], "wrong size"),
    (_bank()[:-1] + b"\x00", "not sysex"),
    (_bad_checksum(), "bad checksum"),
])
def test_bad_messages_are_rejected_with_a_reason(data, reason):
  with pytest.raises(sysex.SysexError) as error:
    sysex.parse(data, "cart.syx")
  assert error.value.reason == reason
  assert str(error.value).startswith(f"cart.syx: {reason}")


def test_unreadable_file_is_a_sysex_error(tmp_path):
  with pytest.raises(sysex.SysexError, match="unreadable"):
    sysex.read(tmp_path / "missing.syx")


def test_bank_message_is_what_dexed_py_loads(tmp_path):
  rng = np.random.default_rng(0)
  voices = params.clamp_voice(rng.integers(0, 128, (32, 155), dtype=np.uint8))
  path = tmp_path / "bank.syx"
  files.write_atomic(path, sysex.bank_message(voices))
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a checksum warning would fail the test
    patches = dexed.Patch.load_bank(str(path))
  assert [p.name for p in patches] == [bytes(v[145:155] & 0x7F).decode() for v in voices]


def test_voice_message_rejects_a_wrong_shape():
  with pytest.raises(ValueError, match="155"):
    sysex.voice_message(np.zeros(156, np.uint8))
