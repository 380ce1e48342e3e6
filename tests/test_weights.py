"""Gradient-inspired weights that skip unheard probes: the same values as rendering every probe."""

import numpy as np

from s2s_jax.audio import mfccd
from s2s_jax.data import weights as W
from s2s_jax.synth import corpus as C
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.synth import sound_key
from s2s_jax.synth.space import ParameterSpace

SPACE = ParameterSpace()


def _set(voice: np.ndarray, **values) -> np.ndarray:
  """A copy of `voice` with parameters set by name (spaces as underscores)."""
  voice = voice.copy()
  for name, value in values.items():
    voice[params.PARAM_BY_NAME[name.replace("_", " ")].voice_byte] = value
  return voice


def _skip_cases() -> dict[str, np.ndarray]:
  """Voices drawn from the prior, each with one thing that leaves probes unheard, and two
  with every operator, both LFO paths and the pitch envelope at work."""
  rng = np.random.default_rng(7)
  base = {a: generate.sample_voice(rng, algorithm=a) for a in (1, 5, 16, 32)}
  busy = {"LFO_PM_DEPTH": 40, "LFO_AM_DEPTH": 30, "P_MODE_SENS.": 3, "PITCH_EG_LEVEL_1": 60,
          "PITCH_EG_LEVEL_2": 45, "FEEDBACK": 5}
  busy.update({f"OP{op}_{name}": value for op in range(1, 7) for name, value in (
      ("OUTPUT_LEVEL", 85), ("MODE", 0), ("A_MOD_SENS.", 2), ("EG_LEVEL_1", 99),
      ("EG_LEVEL_2", 90), ("EG_LEVEL_3", 80), ("EG_LEVEL_4", 60), ("L_SCALE_DEPTH", 40),
      ("R_SCALE_DEPTH", 40), ("BREAK_POINT", 39))})
  return {
      "op3 at output level 0": _set(base[5], OP3_OUTPUT_LEVEL=0, OP3_L_SCALE_DEPTH=0,
                                    OP3_R_SCALE_DEPTH=0),
      "lfo depths 0": _set(base[16], LFO_PM_DEPTH=0, LFO_AM_DEPTH=0),
      "pitch eg levels 50": _set(base[1], **{f"PITCH_EG_LEVEL_{i}": 50 for i in range(1, 5)}),
      "init voice": params.INIT_VOICE.copy(),
      "busy, algorithm 32": _set(base[32], **busy),
      "busy, algorithm 1": _set(base[1], **busy),
  }


def _brute_force(voices, audio, renderer, settings, seed):
  """Today's weights, the slow way: render every probe, MFCCD against the voice's audio.

  MFCCs by `mfccd.mfcc` (XLA, not `gradient_weights`' SciPy one), each voice's once; a probe
  whose audio is bit-identical to the voice's has distance exactly 0 without computing it.
  Returns the weights and, per voice, the distances and which probes rendered identically.
  """
  rng = np.random.default_rng(seed)
  weights = np.ones((len(voices), SPACE.num_params), np.float32)
  reference_mfcc = mfccd.mfcc_batched(audio)
  distances, identical = [], []
  for i, voice in enumerate(voices):
    probed = (np.arange(SPACE.num_params) if settings.mode == "all" else
              np.sort(rng.choice(SPACE.num_params, settings.num_sampled, replace=False)))
    moved, change = W.neighbour_voices(SPACE, voice, probed)
    moved_audio = R.render_batch(renderer, moved)
    same = np.all(moved_audio == audio[i], axis=1)
    distance = np.zeros(len(moved))
    if not same.all():  # the paper's MFCCD: mean over coefficients of the RMS over frames
      difference = mfccd.mfcc_batched(moved_audio[~same]) - reference_mfcc[i]
      distance[~same] = np.mean(np.sqrt(np.mean(np.square(difference), axis=1)), axis=1)
    normalise = W._normalise  # pylint: disable=protected-access
    weights[i, probed] = normalise(distance / np.square(change), settings.max_weight)
    distances.append(distance)
    identical.append(same)
  return weights, distances, identical


def _skipped(voice: np.ndarray, probed: np.ndarray) -> np.ndarray:
  """`[m]` bool: probes whose moved voice has the voice's sound key."""
  moved, _ = W.neighbour_voices(SPACE, voice, probed)
  keys = sound_key.sound_keys(np.concatenate([voice[None], moved]))
  return np.all(keys[1:] == keys[0], axis=1)


def _check_against_brute_force(voices, renderer, settings, seed):
  audio = R.render_batch(renderer, voices)
  fast = W.gradient_weights(SPACE, voices, audio, renderer, settings, seed=seed)
  slow, distances, identical = _brute_force(voices, audio, renderer, settings, seed)
  unheard = slow == 0
  np.testing.assert_array_equal(fast[unheard], 0.0)  # skipped probes: exactly today's 0
  np.testing.assert_array_equal(fast == 1, slow == 1)  # and the same unprobed ones
  # The rest to float32 rounding: the two MFCC implementations differ by about 1e-3 dB in
  # coefficients of hundreds, so distances by 1e-6 relative, more for the smallest.
  np.testing.assert_allclose(fast, slow, rtol=0, atol=2e-3)
  return distances, identical


def test_every_probe_matches_rendering_it(renderer):
  cases = _skip_cases()
  voices = np.stack(list(cases.values()))
  distances, identical = _check_against_brute_force(voices, renderer,
                                                    W.WeightSettings(mode="all"), seed=0)
  probed = np.arange(SPACE.num_params)
  skipped = {name: _skipped(voice, probed) for name, voice in cases.items()}
  for name, distance, same in zip(cases, distances, identical):
    assert np.all(same[skipped[name]]), name  # a skipped probe rendered bit-identical audio
    assert np.all(distance[skipped[name]] == 0), name
  names = np.array(SPACE.names)
  assert {"OP3 F COARSE", "OP3 EG RATE 1"} <= set(names[skipped["op3 at output level 0"]])
  assert {"LFO SPEED", "LFO WAVE", "LFO DELAY"} <= set(names[skipped["lfo depths 0"]])
  assert {f"PITCH EG RATE {i}" for i in range(1, 5)} <= set(names[skipped["pitch eg levels 50"]])
  # The busy voices use every operator, LFO path and the pitch envelope: only OSC KEY SYNC,
  # keyboard level scaling that moves no level at C4, and EG levels that Dexed halves onto the
  # same level, go unheard.
  for name in ("busy, algorithm 32", "busy, algorithm 1"):
    assert all(n.endswith(("OSC KEY SYNC", "SCALE DEPTH", "KEY SCALE", "BREAK POINT"))
               or "EG LEVEL" in n and "PITCH" not in n for n in names[skipped[name]])


def test_sampled_probes_match_with_and_without_skips(renderer, random_voices):
  cases = _skip_cases()
  voices = np.stack([cases["busy, algorithm 32"], cases["op3 at output level 0"],
                     cases["lfo depths 0"], *random_voices[:6]])

  def skips(seed):  # per voice, the probes skipped among those gradient_weights draws
    rng = np.random.default_rng(seed)
    return [_skipped(v, np.sort(rng.choice(SPACE.num_params, 16, replace=False))).sum()
            for v in voices]

  seed = next(s for s in range(1000) if min(skips(s)) == 0 and max(skips(s)) > 4)
  _check_against_brute_force(voices, renderer, W.WeightSettings(num_sampled=16), seed=seed)


def _assert_skips_render_identically(voices, renderer):
  audio = R.render_batch(renderer, voices)
  probed = np.arange(SPACE.num_params)
  count = 0
  for voice, clip in zip(voices, audio):
    skipped = _skipped(voice, probed)
    moved, _ = W.neighbour_voices(SPACE, voice, probed[skipped])
    for name, moved_clip in zip(np.array(SPACE.names)[skipped], R.render_batch(renderer, moved)):
      assert np.array_equal(moved_clip, clip), f"{params.voice_name(voice)}: {name}"
    count += len(moved)
  return count


def test_a_skipped_probe_renders_bit_identical_audio(renderer, random_voices):
  """One prior voice per algorithm (1406 skipped probes); `test_every_probe_matches_rendering_it`
  renders every probe of `_skip_cases`."""
  assert _assert_skips_render_identically(random_voices[:32], renderer) > 1000


def test_skips_on_real_voices_render_bit_identical_audio(renderer, shared_presets):
  corpus = C.read_corpus(shared_presets)
  voices = corpus.voices[np.random.default_rng(0).choice(len(corpus.voices), 32, replace=False)]
  assert _assert_skips_render_identically(voices, renderer) > 1000
