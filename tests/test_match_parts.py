"""Matching's parts without a model: top-k decoding, pitch and TRANSPOSE, input preparation."""

import dataclasses
import itertools
import json
import pathlib

import librosa
import numpy as np
import pytest
import soundfile

from s2s_jax import config_file
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.infer import logits
from s2s_jax.infer import predictor
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.match import candidates
from s2s_jax.match import matcher as matcher_lib
from s2s_jax.match import pitch
from s2s_jax.match import target as target_lib
from s2s_jax.synth import params
from s2s_jax.synth import render
from s2s_jax.synth.space import ParameterSpace

ROOT = pathlib.Path(__file__).parents[1]
SPACE = ParameterSpace()
SETTINGS = ClipSpec()
TRANSPOSE = SPACE.names.index("TRANSPOSE")


def _probabilities(rng, uncertain: dict[int, int]) -> np.ndarray:
  """`[total_classes]`: every parameter sure of one class except `uncertain` (index -> classes
  sharing its mass)."""
  flat = np.full(SPACE.total_classes, 1e-12)
  for k, (start, stop) in enumerate(zip(SPACE.class_offsets[:-1], SPACE.class_offsets[1:])):
    shared = uncertain.get(k, 1)
    chosen = rng.choice(stop - start, size=shared, replace=False)
    flat[start + chosen] = rng.dirichlet(np.ones(shared)) if shared > 1 else 1.0
  return flat


def _log_probability(flat: np.ndarray, classes: np.ndarray) -> float:
  return float(np.sum(np.log(flat[SPACE.class_offsets[:-1] + classes])))


def test_top_k_are_the_most_probable_voices_in_order():
  rng = np.random.default_rng(0)
  uncertain = {3: 3, 40: 2, 100: 4}
  flat = _probabilities(rng, uncertain)
  best = np.array([np.argmax(flat[a:b]) for a, b in zip(SPACE.class_offsets[:-1],
                                                         SPACE.class_offsets[1:])])
  # Brute force over the uncertain parameters' likely classes (the rest are certain).
  likely = {k: np.flatnonzero(flat[SPACE.class_offsets[k]:SPACE.class_offsets[k + 1]] > 1e-6)
            for k in uncertain}
  everything = []
  for choice in itertools.product(*likely.values()):
    classes = best.copy()
    classes[list(likely)] = choice
    everything.append(classes)
  everything.sort(key=lambda c: -_log_probability(flat, c))

  top = candidates.top_k_classes(flat, SPACE, k=10)
  assert top.shape == (10, SPACE.num_params)
  np.testing.assert_array_equal(top[0], best)
  assert len({tuple(row) for row in top}) == 10
  np.testing.assert_allclose([_log_probability(flat, c) for c in top],
                             [_log_probability(flat, c) for c in everything[:10]])


def test_top_k_of_a_network_like_distribution_decreases_in_probability():
  rng = np.random.default_rng(1)
  flat = rng.dirichlet(np.ones(SPACE.total_classes)) + 1e-9
  top = candidates.top_k_classes(flat, SPACE, k=25)
  log_probabilities = [_log_probability(flat, c) for c in top]
  assert np.all(np.diff(log_probabilities) <= 1e-9)
  assert len({tuple(row) for row in top}) == 25
  with pytest.raises(ValueError, match="k must be"):
    candidates.top_k_classes(flat, SPACE, k=0)


def _sine_voice(transpose: int) -> np.ndarray:
  """INIT VOICE: one sine carrier at the played note, shifted by TRANSPOSE - 24 semitones."""
  voice = np.array(params.INIT_VOICE)
  voice[params.PARAM_BY_NAME["TRANSPOSE"].voice_byte] = transpose
  return voice


@pytest.mark.parametrize("transpose, note", [(24, 60), (36, 72), (15, 51)])
def test_pitch_of_a_rendered_sine_is_the_played_note(renderer, transpose, note):
  estimate = pitch.estimate_pitch(renderer.render(_sine_voice(transpose)), SETTINGS.sample_rate)
  assert estimate.hz is not None and estimate.voiced_fraction > 0.8
  assert abs(estimate.midi - note) < 0.3


def test_noise_is_unpitched():
  noise = np.random.default_rng(0).normal(0, 0.3, SETTINGS.num_samples).astype(np.float32)
  estimate = pitch.estimate_pitch(noise, SETTINGS.sample_rate)
  assert estimate.hz is None and estimate.note is None


def test_retune_moves_transpose_so_the_voice_plays_the_target_pitch(renderer):
  classes = SPACE.encode(_sine_voice(24))
  voice_pitch = pitch.estimate_pitch(renderer.render(_sine_voice(24)), SETTINGS.sample_rate)
  wanted = pitch.Pitch(hz=220.0, voiced_fraction=1.0)  # A3, 3 semitones under C4
  retuned, retuning = pitch.retune(classes, SPACE, voice_pitch, wanted)
  assert retuning.semitones == -3 and retuning.transpose == 21 and retuning.in_range
  assert np.sum(retuned != classes) == 1 and retuned[TRANSPOSE] == 21
  played = pitch.estimate_pitch(renderer.render(SPACE.decode(retuned, 1)), SETTINGS.sample_rate)
  assert played.note == "A3"


def test_retune_folds_an_out_of_range_pitch_by_octaves_and_says_so():
  classes = SPACE.encode(_sine_voice(24))
  c4 = pitch.Pitch(hz=261.63, voiced_fraction=1.0)
  far_up = pitch.Pitch(hz=261.63 * 2 ** (29 / 12), voiced_fraction=1.0)  # F6: +29 semitones
  retuned, retuning = pitch.retune(classes, SPACE, c4, far_up)
  assert not retuning.in_range and retuning.transpose == 24 + 29 - 12
  assert "1 octave lower" in retuning.message
  unpitched = pitch.Pitch(hz=None, voiced_fraction=0.0)
  same, none = pitch.retune(classes, SPACE, c4, unpitched)
  assert none is None and same is classes


def test_target_is_mono_at_the_render_rate_trimmed_and_fitted(tmp_path, renderer):
  sound = librosa.resample(renderer.render(_sine_voice(24))[:48_000 * 3], orig_sr=48_000,
                           target_sr=44_100)
  left = np.concatenate([np.zeros(22_050, np.float32), sound])  # half a second of silence first
  stereo = np.stack([left, left * 0.5], axis=1)
  path = tmp_path / "stereo.flac"
  soundfile.write(path, stereo / np.abs(stereo).max(), 44_100)
  target = target_lib.load_target(path)
  assert target.audio.shape == (SETTINGS.num_samples,) and target.audio.dtype == np.float32
  assert abs(target.seconds - 3.0) < 0.01  # the half second of silence is trimmed
  assert np.abs(target.audio[:64]).max() > 0  # starts with the sound
  assert np.all(target.audio[round(3.0 * 48_000) + 1:] == 0)  # padded to 4 s
  assert target.name == "stereo" and target.pitch.note == "C4"


def test_target_reads_mp3_at_any_rate(tmp_path, renderer):
  path = tmp_path / "c4.mp3"
  sound = renderer.render(_sine_voice(24))
  soundfile.write(path, (sound / np.abs(sound).max())[::2], 24_000, format="MP3")
  target = target_lib.load_target(path)
  assert target.pitch.note == "C4" and 3.9 < target.seconds <= 4.01


def _text(path):
  path.write_text("not audio")
  return path


def _write(path, audio, rate=48_000, subtype=None):
  soundfile.write(path, np.asarray(audio, np.float32), rate, subtype=subtype)
  return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.wav", "no such file"),
    (lambda p: _text(p / "notes.wav"), "not a readable"),
    (lambda p: _write(p / "empty.wav", np.zeros(0)), "no audio samples"),
    (lambda p: _write(p / "silent.wav", np.zeros(48_000)), "silent"),
    (lambda p: _write(p / "nan.wav", np.full(48_000, np.nan), subtype="FLOAT"), "NaN"),
    (lambda p: _write(p / "click.wav", np.r_[np.zeros(4_800), np.ones(2_400) * 0.5]), "too short"),
])
def test_bad_inputs_are_named_and_explained(tmp_path, make, message):
  path = make(tmp_path)
  with pytest.raises(target_lib.TargetError, match=message) as error:
    target_lib.load_target(path)
  assert str(path) in str(error.value)


def test_a_model_reads_only_clips_like_those_it_was_trained_on():
  config = config_file.load(str(ROOT / "configs" / "t6.py") + ":tiny")
  model = workdir_lib.TrainedModel(workdir=pathlib.Path("m60"), config=config, clip=ClipSpec(),
                                   algorithm=5, variables={}, step=0)
  with pytest.raises(ValueError, match="model m60 .* than the renderer's: note 60 vs 48"):
    matcher_lib.Matcher([model], renderer=render.DexedRenderer(ClipSpec(note=48)))
  other = dataclasses.replace(model, workdir=pathlib.Path("m44"),
                              clip=ClipSpec(sample_rate=44_100))
  with pytest.raises(workdir_lib.ModelError, match="model m44 .*: sample_rate 44100 vs 48000"):
    predictor.Predictor([model, other])
  assert logits.ClassLayout.create(SPACE, ClipSpec(note=48)).note == 48  # the silent-operator mask


def test_clips_round_trip_and_default_to_the_papers():
  clip = ClipSpec(sample_rate=44_100, note=48, velocity=100, note_seconds=1.0, render_seconds=3.0)
  assert ClipSpec.from_dict(json.loads(json.dumps(clip.to_dict()))) == clip
  assert ClipSpec.from_dict(None) == ClipSpec(48_000, 60, 127, 2.0, 4.0)
  assert clip.num_samples == 132_300
