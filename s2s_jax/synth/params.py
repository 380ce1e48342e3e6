"""Dexed's 155 plug-in parameters, in one table, and the DX7 voice they describe.

Everything else (learnable classes, sysex, Dexed JSON, DawDreamer settings) is
derived from `DEXED_PARAMS`. A *voice* is the 155-byte unpacked DX7 voice (VCED):
bytes 0..144 are the 145 sound parameters, bytes 145..154 the name.

The table follows Dexed's `PluginParam.cpp` (0.9.4 to 0.9.7 order; 0.9.8 and
later insert `MonoMode` at index 3, which `host.py` handles by name).
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

VOICE_BYTES = 155
NUM_SOUND_BYTES = 145  # voice bytes 0..144; 145..154 hold the name
NAME_BYTES = slice(145, 155)
ALGORITHM_BYTE = 134  # holds the algorithm minus 1: read and write it by the functions below
NUM_OPERATORS = 6
NUM_ALGORITHMS = 32


class Kind(enum.Enum):
  CONTINUOUS = "continuous"  # a 0..99 DX7 value, learnt in K ordinal bins
  DISCRETE = "discrete"  # a DX7 value learnt as one class per value
  ALGORITHM = "algorithm"  # a DX7 value fixed per model (one model per algorithm)
  PLUGIN = "plugin"  # a control of the Dexed plug-in only, fixed at `neutral`


@dataclasses.dataclass(frozen=True)
class DexedParam:
  """One Dexed plug-in parameter.

  Attributes:
    index: position among Dexed's 155 plug-in parameters (0.9.7 layout).
    name: the name exactly as Dexed shows it (and as the JSON protocol uses it).
    voice_byte: offset in the 155-byte voice, or None for plug-in-only controls.
    steps: the DX7 maximum value; Dexed's host value is `value / steps`.
    kind: how the parameter is treated (see `Kind`).
    neutral: the host value a plug-in-only control is fixed at.
  """

  index: int
  name: str
  voice_byte: int | None
  steps: int | None
  kind: Kind
  neutral: float | None = None

  @property
  def num_values(self) -> int:
    return self.steps + 1

  def host_value(self, value: int) -> float:
    """DX7 value -> Dexed host value in [0, 1]."""
    return value / self.steps

  def dx_value(self, host_value: float) -> int:
    """Dexed host value in [0, 1] -> DX7 value, rounding as Dexed does."""
    return int(np.floor(host_value * self.steps + 0.5))


# Per-operator parameters in Dexed's order: (name, offset in the operator's
# 21-byte block, DX7 maximum). OP6's block comes first in the voice.
_OPERATOR_PARAMS = (
    *((f"EG RATE {i + 1}", i, 99) for i in range(4)),
    *((f"EG LEVEL {i + 1}", 4 + i, 99) for i in range(4)),
    ("OUTPUT LEVEL", 16, 99),
    ("MODE", 17, 1),
    ("F COARSE", 18, 31),
    ("F FINE", 19, 99),
    ("OSC DETUNE", 20, 14),
    ("BREAK POINT", 8, 99),
    ("L SCALE DEPTH", 9, 99),
    ("R SCALE DEPTH", 10, 99),
    ("L KEY SCALE", 11, 3),
    ("R KEY SCALE", 12, 3),
    ("RATE SCALING", 13, 7),
    ("A MOD SENS.", 14, 3),
    ("KEY VELOCITY", 15, 7),
)

# Global DX7 parameters after ALGORITHM, in Dexed's order: (name, byte, maximum).
_GLOBAL_PARAMS = (
    ("FEEDBACK", 135, 7),
    ("OSC KEY SYNC", 136, 1),
    ("LFO SPEED", 137, 99),
    ("LFO DELAY", 138, 99),
    ("LFO PM DEPTH", 139, 99),
    ("LFO AM DEPTH", 140, 99),
    ("LFO KEY SYNC", 141, 1),
    ("LFO WAVE", 142, 5),
    ("TRANSPOSE", 144, 48),
    ("P MODE SENS.", 143, 7),
    *((f"PITCH EG RATE {i + 1}", 126 + i, 99) for i in range(4)),
    *((f"PITCH EG LEVEL {i + 1}", 130 + i, 99) for i in range(4)),
)

# Plug-in-only controls and the values they are fixed at (the render neutral):
# filter open (Cutoff 1.0 bypasses it), no resonance, full output gain as the
# reference renders, master tune centred, every operator on.
_PLUGIN_NEUTRAL = {
    "Cutoff": 1.0,
    "Resonance": 0.0,
    "Output": 1.0,
    "MASTER TUNE ADJ": 0.5,
    "SWITCH": 1.0,
}


def _dx_kind(name: str, steps: int) -> Kind:
  if name == "ALGORITHM":
    return Kind.ALGORITHM
  if steps == 99 and not name.endswith("BREAK POINT"):
    return Kind.CONTINUOUS
  return Kind.DISCRETE  # includes BREAK POINT: 100 note values, one class each


def _build_table() -> tuple[DexedParam, ...]:
  rows: list[tuple[str, int | None, int | None]] = [
      ("Cutoff", None, None),
      ("Resonance", None, None),
      ("Output", None, None),
      ("MASTER TUNE ADJ", None, None),
      ("ALGORITHM", ALGORITHM_BYTE, 31),
      *_GLOBAL_PARAMS,
  ]
  for op in range(NUM_OPERATORS):
    block = (NUM_OPERATORS - 1 - op) * 21
    rows += [(f"OP{op + 1} {name}", block + offset, steps)
             for name, offset, steps in _OPERATOR_PARAMS]
    rows.append((f"OP{op + 1} SWITCH", None, 1))
  table = []
  for index, (name, byte, steps) in enumerate(rows):
    if byte is None:
      neutral = _PLUGIN_NEUTRAL[name.split(" ", 1)[1] if name.endswith("SWITCH") else name]
      table.append(DexedParam(index, name, None, steps, Kind.PLUGIN, neutral))
    else:
      table.append(DexedParam(index, name, byte, steps, _dx_kind(name, steps)))
  return tuple(table)


DEXED_PARAMS: tuple[DexedParam, ...] = _build_table()
PARAM_BY_NAME: dict[str, DexedParam] = {p.name: p for p in DEXED_PARAMS}
VOICE_PARAMS: tuple[DexedParam, ...] = tuple(
    sorted((p for p in DEXED_PARAMS if p.voice_byte is not None), key=lambda p: p.voice_byte))

# DX7 maximum of each of the 145 sound bytes, `[145]` uint8.
VOICE_MAXIMA = np.array([p.steps for p in VOICE_PARAMS], dtype=np.uint8)
# Bit mask of each of the 155 voice bytes: 7 bits (MIDI data), narrowed to the
# field width of the parameters the packed format stores as bit fields
# (maxima up to 31), as dexed-py's readers keep them. `[155]` uint8.
VOICE_FIELD_MASKS = np.full(VOICE_BYTES, 0x7F, dtype=np.uint8)
VOICE_FIELD_MASKS[[p.voice_byte for p in VOICE_PARAMS if p.steps <= 31]] = [
    (1 << p.steps.bit_length()) - 1 for p in VOICE_PARAMS if p.steps <= 31]


def operator_of(param: DexedParam) -> int | None:
  """1-based operator number of a per-operator parameter, else None."""
  if param.name.startswith("OP") and param.name[2].isdigit():
    return int(param.name[2])
  return None


def clamp_voice(voices: np.ndarray) -> np.ndarray:
  """The voices as Dexed plays them: fields masked to their width, then clamped.

  Args:
    voices: `[..., 155]` voices as stored in a cartridge (which may hold values
      above a parameter's maximum; about 3,000 real voices do).
  Returns:
    `[..., 155]` uint8 voices with every sound byte within its DX7 range, as
    dexed-py's sysex reader and writer make them; names are masked to 7 bits.
  """
  voices = np.asarray(voices).astype(np.uint8) & VOICE_FIELD_MASKS
  voices[..., :NUM_SOUND_BYTES] = np.minimum(voices[..., :NUM_SOUND_BYTES], VOICE_MAXIMA)
  return voices


def algorithm_of(voices: np.ndarray) -> np.ndarray:
  """1-based DX7 algorithm (1..32) of voices `[..., 155]` -> int32 `[...]`."""
  return np.asarray(voices)[..., ALGORITHM_BYTE].astype(np.int32) + 1


def set_algorithm(voices: np.ndarray, algorithm: int | np.ndarray) -> None:
  """Writes the 1-based `algorithm` (a scalar or `[...]`) into voices `[..., 155]`, in place."""
  algorithm = np.asarray(algorithm)
  if np.any((algorithm < 1) | (algorithm > NUM_ALGORITHMS)):
    raise ValueError(f"algorithm must be 1..{NUM_ALGORITHMS} (1-based), got {algorithm}")
  voices[..., ALGORITHM_BYTE] = algorithm - 1


def voice_name(voice: np.ndarray) -> str:
  """The voice's 10-character name, printable ASCII, trailing spaces stripped."""
  raw = bytes(int(b) & 0x7F for b in voice[NAME_BYTES])
  return "".join(c if 32 <= ord(c) < 127 else "?" for c in raw.decode("ascii")).rstrip()


def with_name(voice: np.ndarray, name: str) -> np.ndarray:
  """A copy of `voice` [155] named `name` (ASCII, cut or padded to 10 characters)."""
  encoded = name.encode("ascii", errors="replace")[:10].ljust(10)
  voice = np.array(voice, dtype=np.uint8, copy=True)
  voice[NAME_BYTES] = np.frombuffer(encoded, dtype=np.uint8)
  return voice


def _init_voice() -> np.ndarray:
  """The DX7's INIT VOICE: algorithm 1, only OP1 sounding, a plain sine at C4."""
  voice = np.zeros(VOICE_BYTES, dtype=np.uint8)
  values = {
      "PITCH EG RATE": 99, "PITCH EG LEVEL": 50, "LFO SPEED": 35, "OSC KEY SYNC": 1,
      "LFO KEY SYNC": 1, "P MODE SENS.": 3, "TRANSPOSE": 24,
  }
  operator_values = {
      "EG RATE": 99, "EG LEVEL 1": 99, "EG LEVEL 2": 99, "EG LEVEL 3": 99,
      "F COARSE": 1, "OSC DETUNE": 7, "BREAK POINT": 39,
  }
  for p in VOICE_PARAMS:
    op = operator_of(p)
    table = values if op is None else operator_values
    short = p.name if op is None else p.name.split(" ", 1)[1]
    for prefix, value in table.items():
      if short.startswith(prefix):
        voice[p.voice_byte] = value
  voice[PARAM_BY_NAME["OP1 OUTPUT LEVEL"].voice_byte] = 99
  return with_name(voice, "INIT VOICE")


INIT_VOICE = _init_voice()
INIT_VOICE.flags.writeable = False
