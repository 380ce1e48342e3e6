"""DX7 sysex: single voices (163 bytes) and 32-voice banks (4104 bytes).

Reading validates the framing and checksum here, then unpacks through
dexed-py's own reader (`dexed.Patch`), after masking every data byte to 7 bits
as the MIDI spec says (bit 7 of a data byte is "don't care"; some cartridge
rips set it). Voices come back as stored, `[155]` uint8, so values above a
parameter's maximum survive for deduplication; `params.clamp_voice` gives what
Dexed plays. Writing goes through dexed-py's writer, which clamps.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import dexed
import numpy as np

from s2s_jax.synth import params

BANK_SIZE = 4104
VOICE_SIZE = 163
_YAMAHA = 0x43
_FORMAT_VOICE = 0x00
_FORMAT_BANK = 0x09
# Byte-count fields accepted per format: 4096 (20 00) for banks, and the common
# librarian quirk 10 00 (size and checksum are right, Dexed loads them).
_BYTE_COUNTS = {_FORMAT_VOICE: {(0x01, 0x1B)}, _FORMAT_BANK: {(0x20, 0x00), (0x10, 0x00)}}
_SIZES = {_FORMAT_VOICE: VOICE_SIZE, _FORMAT_BANK: BANK_SIZE}

# Why a file is rejected. Every `SysexError` carries one of these.
REJECT_REASONS = ("not sysex", "not a DX7 voice dump", "truncated", "wrong size",
                  "bad checksum", "unreadable")


class SysexError(ValueError):
  """A file that is not a usable DX7 voice or bank dump.

  Attributes:
    reason: one of `REJECT_REASONS`.
  """

  def __init__(self, source: str, reason: str, detail: str):
    super().__init__(f"{source}: {reason}: {detail}")
    self.reason = reason


def checksum(payload: bytes) -> int:
  """DX7 sysex checksum: the low 7 bits of the two's complement of the sum."""
  return -sum(payload) & 0x7F


def parse(data: bytes, source: str = "<bytes>") -> np.ndarray:
  """A DX7 single-voice or 32-voice bank message -> voices `[n, 155]` uint8.

  Raises:
    SysexError: naming `source`, the reason and the offending value.
  """
  if not data:
    raise SysexError(source, "not sysex", "the file is empty")
  if data[0] != 0xF0:
    raise SysexError(source, "not sysex", f"starts with 0x{data[0]:02X}, not 0xF0")
  if len(data) < 6:
    raise SysexError(source, "truncated", f"only {len(data)} bytes")
  if data[1] != _YAMAHA or data[2] & 0xF0 or data[3] not in _SIZES:
    raise SysexError(source, "not a DX7 voice dump",
                     f"header {data[:4].hex(' ')} is not a Yamaha DX7 voice or bank dump")
  fmt = data[3]
  size = _SIZES[fmt]
  kind = "32-voice bank" if fmt == _FORMAT_BANK else "single voice"
  if (data[4], data[5]) not in _BYTE_COUNTS[fmt]:
    raise SysexError(source, "wrong size",
                     f"byte-count field {data[4:6].hex(' ')} does not fit a {kind}")
  if len(data) < size:
    raise SysexError(source, "truncated", f"{len(data)} bytes where a {kind} has {size}")
  if len(data) > size:
    raise SysexError(source, "wrong size", f"{len(data)} bytes where a {kind} has {size}")
  if data[-1] != 0xF7:
    raise SysexError(source, "not sysex", f"ends with 0x{data[-1]:02X}, not 0xF7")
  payload = bytes(b & 0x7F for b in data[6:-2])
  if checksum(data[6:-2]) != data[-2]:
    raise SysexError(source, "bad checksum",
                     f"stored 0x{data[-2]:02X}, computed 0x{checksum(data[6:-2]):02X}")
  if fmt == _FORMAT_VOICE:
    return (np.frombuffer(payload, np.uint8) & params.VOICE_FIELD_MASKS)[None]
  return np.stack([_unpack(payload[i * 128:(i + 1) * 128]) for i in range(32)])


def _unpack(packed: bytes) -> np.ndarray:
  """128-byte packed voice -> `[155]` uint8 as stored, via dexed-py."""
  unpacked = dexed.Patch._unpack_voice(packed)  # pylint: disable=protected-access
  return np.frombuffer(unpacked, np.uint8)[:params.VOICE_BYTES] & params.VOICE_FIELD_MASKS


def read(path: str | os.PathLike) -> np.ndarray:
  """Reads a `.syx` file -> voices `[n, 155]` uint8 (n = 1 or 32).

  Raises:
    SysexError: the file cannot be read or is not a valid DX7 dump.
  """
  try:
    data = pathlib.Path(path).read_bytes()
  except OSError as e:
    raise SysexError(str(path), "unreadable", e.strerror or str(e)) from e
  return parse(data, str(path))


def _patch(voice: np.ndarray) -> dexed.Patch:
  voice = np.asarray(voice)
  if voice.shape != (params.VOICE_BYTES,):
    raise ValueError(f"a voice is {params.VOICE_BYTES} bytes, got shape {voice.shape}")
  return dexed.Patch.from_sysex(bytes(voice.astype(np.uint8)) + b"\x3f")


def voice_message(voice: np.ndarray, channel: int = 0) -> bytes:
  """A voice `[155]` -> 163-byte DX7 single-voice dump (values clamped)."""
  body = _patch(voice).to_sysex()[:params.VOICE_BYTES]
  return bytes([0xF0, _YAMAHA, channel, _FORMAT_VOICE, 0x01, 0x1B]) + body + bytes(
      [checksum(body), 0xF7])


def bank_message(voices: np.ndarray) -> bytes:
  """32 voices `[32, 155]` -> 4104-byte DX7 bank dump, via dexed-py's writer."""
  voices = np.asarray(voices)
  if voices.shape != (32, params.VOICE_BYTES):
    raise ValueError(f"a bank holds 32 voices of {params.VOICE_BYTES} bytes, "
                     f"got shape {voices.shape}")
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "bank.syx")
    dexed.Patch.save_to_bank(path, [_patch(v) for v in voices])
    return pathlib.Path(path).read_bytes()
