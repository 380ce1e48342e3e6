"""Rendering through the real Dexed engine (dexed-py)."""

import numpy as np
import pytest

from s2s_jax.audio.clip import ClipSpec
from s2s_jax.synth import params
from s2s_jax.synth import render


def test_render_length_and_dtype(renderer, random_voices):
  audio = renderer.render(random_voices[0])
  assert audio.shape == (192_000,) and audio.dtype == np.float32
  assert render.peak(audio) > 0.01


def test_distinct_voices_give_distinct_audio(renderer, random_voices):
  audio = render.render_batch(renderer, random_voices[:16])
  for i in range(16):
    for j in range(i + 1, 16):
      assert not np.allclose(audio[i], audio[j], atol=1e-3)


def test_rendering_is_deterministic_with_no_state_between_renders(renderer, random_voices):
  a, b = random_voices[0], random_voices[1]
  first = renderer.render(a)
  renderer.render(b)
  np.testing.assert_array_equal(renderer.render(a), first)  # A, B, A: bit-identical
  np.testing.assert_array_equal(render.DexedRenderer().render(a), first)  # a fresh synth


def test_sample_and_hold_lfo_repeats(renderer):
  voice = params.INIT_VOICE.copy()
  for name, value in {"LFO WAVE": 5, "LFO SPEED": 70, "LFO PM DEPTH": 99, "P MODE SENS.": 7,
                      "LFO AM DEPTH": 99, "OP1 A MOD SENS.": 3, "LFO KEY SYNC": 0}.items():
    voice[params.PARAM_BY_NAME[name].voice_byte] = value
  first = renderer.render(voice)
  renderer.render(params.INIT_VOICE)
  np.testing.assert_array_equal(renderer.render(voice), first)
  steady = renderer.render(params.INIT_VOICE)
  assert not np.allclose(first, steady, atol=1e-3)  # the LFO really modulates


def test_batch_on_threads_equals_serial(renderer, random_voices):
  np.testing.assert_array_equal(render.render_batch(renderer, random_voices[:8], workers=2),
                                np.stack([renderer.render(v) for v in random_voices[:8]]))
  assert render.render_batch(renderer, random_voices[:0]).shape == (0, 192_000)


def test_settings_shape_the_render(random_voices):
  short = render.DexedRenderer(ClipSpec(sample_rate=44_100, render_seconds=1.0, note_seconds=0.5))
  assert short.render(random_voices[0]).shape == (44_100,)
  lower = render.DexedRenderer(ClipSpec(note=48)).render(random_voices[0])
  assert not np.allclose(lower, render.DexedRenderer().render(random_voices[0]), atol=1e-3)


@pytest.mark.parametrize("kwargs", [{"note": 128}, {"velocity": 0},
                                    {"note_seconds": 5.0}, {"note_seconds": 0.0}])
def test_bad_settings_are_refused(kwargs):
  with pytest.raises(ValueError):
    ClipSpec(**kwargs)


def test_out_of_range_values_play_clamped(renderer):
  loud = params.INIT_VOICE.copy()
  loud[params.PARAM_BY_NAME["OP1 OUTPUT LEVEL"].voice_byte] = 127
  np.testing.assert_array_equal(renderer.render(loud), renderer.render(params.INIT_VOICE))
