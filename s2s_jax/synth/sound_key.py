"""What Dexed's engine reads from a voice to play one note: equal keys, bit-identical audio.

`sound_keys` maps a voice to the values Dexed's engine (msfa's dx7note.cc, env.cc,
fm_core.cc) derives from it for one note of a `ClipSpec`, with every value that cannot reach
the output zeroed. Two voices with equal keys render the same samples, so a change of a voice
that leaves its key alone needs no rendering (`data/weights.py` skips such probes). Keys are
conservative: unequal keys may still sound alike. What is read, per operator:
- its envelope's rates, target levels, rate scaling and whether EG LEVEL 1 is 0 (a timed
  wait in env.cc): OUTPUT LEVEL, keyboard level scaling (BREAK POINT, depths, curves) and KEY
  VELOCITY enter only through the targets, so the unused side of the break point, a depth at
  the break point's own keys, and levels under the envelope's floor leave the key alone (rates
  are kept as they are: a segment that holds its level waits a time its rate sets);
- its frequency (a fixed one reads COARSE mod 4 and DETUNE above 7 only), MODE, and A MOD SENS.
  (any non-zero sensitivity scales the level alike when no amplitude LFO reaches it).
An operator is silent when every envelope target sits at the floor, under the gain below which
fm_core skips it (whatever its other values), and inaudible when silent or modulating only inaudible
operators; an inaudible operator adds nothing to the key. Operators on the two-operator
feedback loops (algorithms 4 and 6) are never taken as silent: Dexed computes them anyway.
The pitch envelope and the pitch LFO count only when an audible operator follows the key's
pitch (ratio MODE); the pitch envelope's rates only when its levels differ; the LFO's speed,
delay, wave and sync only when it modulates pitch (PM DEPTH and P MODE SENS. non-zero) or
level (AM DEPTH and an audible operator's A MOD SENS. non-zero); TRANSPOSE only through
ratio-mode operators and the level and rate scaling it moves. OSC KEY SYNC never: every render
starts a fresh note with its phases at 0.
"""

from __future__ import annotations

import dexed
import numpy as np

from s2s_jax.audio.clip import ClipSpec
from s2s_jax.synth import params

_OPS = params.NUM_OPERATORS
_LEVEL_LUT = np.array([0, 5, 9, 13, 17, 20, 23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 42, 43, 45,
                       46])
_VELOCITY = np.array([0, 70, 86, 97, 106, 114, 121, 126, 132, 138, 142, 148, 152, 156, 160, 163,
                      166, 170, 173, 174, 178, 181, 184, 186, 189, 190, 194, 196, 198, 200, 202,
                      205, 206, 209, 211, 214, 216, 218, 220, 222, 224, 225, 227, 229, 230, 232,
                      233, 235, 237, 238, 240, 241, 242, 243, 244, 246, 246, 248, 249, 250, 251,
                      252, 253, 254])
_EXP_SCALE = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14, 16, 19, 23, 27, 33, 39, 47, 56, 66,
                       80, 94, 110, 126, 142, 158, 174, 190, 206, 222, 238, 250])
# fm_core skips an operator whose gain stays under its threshold: one whose envelope targets
# all sit at the floor, 16, is never computed (checked against renders; a target of 32 is).
_SILENT_LEVEL = 16


def _scale_outlevel(level: np.ndarray) -> np.ndarray:
  """Env::scaleoutlevel: 0..99 -> 0..127."""
  return np.where(level >= 20, 28 + level, _LEVEL_LUT[np.minimum(level, 19)])


def _scale_level(note, break_point, left_depth, right_depth, left_curve, right_curve):
  """dx7note.cc ScaleLevel: keyboard level scaling at `note`, `[n]` each."""
  offset = note - break_point - 17
  right = offset >= 0
  group = np.where(right, offset + 1, 1 - offset) // 3
  depth = np.where(right, right_depth, left_depth)
  curve = np.where(right, right_curve, left_curve)
  linear = (group * depth * 329) >> 12
  exponential = (_EXP_SCALE[np.minimum(group, len(_EXP_SCALE) - 1)] * depth * 329) >> 15
  scale = np.where((curve == 0) | (curve == 3), linear, exponential)
  return np.where(curve < 2, -scale, scale)


def _graph(algorithm: int, feedback_on: np.ndarray) -> np.ndarray:
  """`[n, 6, 6]` bool, [i, j]: operator j (0 = OP1) feeds operator i, feedback included."""
  edges = np.repeat(dexed.get_mod_matrix(algorithm).astype(bool)[None], len(feedback_on), 0)
  source, target = dexed.get_feedback_edge(algorithm)
  edges[:, target, source] |= feedback_on
  return edges


def sound_keys(voices: np.ndarray, clip: ClipSpec = ClipSpec()) -> np.ndarray:
  """Voices `[n, 155]` (as stored; clamped as Dexed plays them) -> keys `[n, 114]` int64.

  Voices with equal keys render bit-identical audio with a renderer of `clip`.
  """
  v = params.clamp_voice(np.asarray(voices)).astype(np.int64)
  n = len(v)
  ops = np.stack([v[:, (_OPS - 1 - i) * 21:][:, :21] for i in range(_OPS)], axis=1)  # [n, 6, 21]
  rates, levels = ops[..., 0:4], ops[..., 4:8]
  note = clip.note + v[:, 144, None] - 24  # [n, 1]
  scaling = _scale_level(note, *(ops[..., k] for k in range(8, 13)))
  velocity = ((ops[..., 15] * (_VELOCITY[min(max(clip.velocity, 0), 127) >> 1] - 239) + 7)
              >> 3) << 4
  outlevel = np.maximum(0, (np.minimum(127, _scale_outlevel(ops[..., 16]) + scaling) << 5)
                        + velocity)
  targets = np.maximum(16, ((_scale_outlevel(levels) >> 1) << 6) + outlevel[..., None] - 4256)
  rate_scaling = (ops[..., 13] * np.clip(note // 3 - 7, 0, 31)) >> 3
  fixed = ops[..., 17] == 1
  frequency = np.stack([np.where(fixed, ops[..., 18] & 3, ops[..., 18]), ops[..., 19],
                        np.where(fixed, np.maximum(ops[..., 20] - 7, 0), ops[..., 20])], -1)

  algorithm = params.algorithm_of(v) - 1
  feedback_on = v[:, 135] > 0
  audible = np.zeros((n, _OPS), bool)
  for a in np.unique(algorithm):
    rows = algorithm == a
    silent = targets[rows].max(-1) <= _SILENT_LEVEL
    source, target = dexed.get_feedback_edge(int(a))
    if source != target:
      silent[:, [source, target]] = False
    edges = _graph(int(a), feedback_on[rows])
    heard = ~silent & np.isin(np.arange(_OPS), dexed.get_carriers(int(a)))
    for _ in range(_OPS):
      heard |= ~silent & np.any(edges & heard[:, :, None], axis=1)
    audible[rows] = heard

  pitch_used = np.any(audible & ~fixed, axis=1)
  pitch_lfo = pitch_used & (v[:, 139] > 0) & (v[:, 143] > 0)
  amp_lfo = (v[:, 140] > 0) & np.any(audible & (ops[..., 14] > 0), axis=1)
  sensitivity = np.where(amp_lfo[:, None], ops[..., 14], np.minimum(ops[..., 14], 1))
  per_op = np.concatenate([audible[..., None], rates, targets, levels[..., :1] == 0,
                           rate_scaling[..., None],
                           fixed[..., None], frequency, sensitivity[..., None]], -1)
  per_op = per_op * audible[..., None]  # [n, 6, 16]
  pitch_levels = v[:, 130:134]
  flat_pitch = np.all(pitch_levels == pitch_levels[:, :1], axis=1)
  source_target = np.array([dexed.get_feedback_edge(int(a)) for a in range(32)])[algorithm]
  feedback_heard = np.take_along_axis(audible, source_target, axis=1).any(axis=1)
  lfo = (pitch_lfo | amp_lfo)[:, None] * v[:, [137, 138, 141, 142]]
  rest = np.concatenate([
      algorithm[:, None], (v[:, 135] * feedback_heard)[:, None],
      lfo,
      (pitch_lfo[:, None] * v[:, [139, 143]]), (amp_lfo * v[:, 140])[:, None],
      (v[:, 144] * pitch_used)[:, None],
      pitch_used[:, None] * pitch_levels,
      (pitch_used & ~flat_pitch)[:, None] * v[:, 126:130]], axis=1)  # [n, 18]
  return np.concatenate([per_op.reshape(n, -1), rest], axis=1)
