"""Preset libraries: real .syx folders rendered by the real engine, the feature cache, lookup."""

import numpy as np
import pytest

from s2s_jax.audio import mfccd
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.match import library as L
from s2s_jax.synth import params
from s2s_jax.synth import render
from s2s_jax.synth import sysex
from s2s_jax.util import files


@pytest.fixture(scope="module")
def folder(tmp_path_factory, random_voices):
  """Two banks sharing a voice, a renamed copy, a single voice, a bad file: 41 distinct voices."""
  root = tmp_path_factory.mktemp("my presets")
  (root / "bank").mkdir()
  files.write_atomic(root / "bank" / "A.syx", sysex.bank_message(random_voices[:32]))
  files.write_atomic(root / "bank" / "B.syx", sysex.bank_message(
      np.concatenate([random_voices[32:40], random_voices[:24]])))
  files.write_atomic(root / "copy.syx",
                     sysex.voice_message(params.with_name(random_voices[3], "COPY")))
  files.write_atomic(root / "single.syx", sysex.voice_message(random_voices[40]))
  (root / "broken.syx").write_bytes(b"\xf0\x43 not a voice")
  return root


class Lines(list):
  """Collects progress lines."""

  def __call__(self, line):
    self.append(line)


def test_every_distinct_voice_is_rendered_once_and_cached(folder, tmp_path, renderer,
                                                          random_voices):
  lines = Lines()
  library = L.build_library([folder], renderer, tmp_path, lines)
  assert len(library) == 41  # 32 + 8 new in B + the single voice; the copy is voice 3 renamed
  np.testing.assert_array_equal(library.voices[:, :params.NUM_SOUND_BYTES],
                                params.clamp_voice(random_voices[:41])[:, :params.NUM_SOUND_BYTES])
  assert library.sources[0] == f"{folder / 'bank' / 'A.syx'}:1"
  assert library.sources[32] == f"{folder / 'bank' / 'B.syx'}:1"
  assert library.sources[40] == f"{folder / 'single.syx'}:1"
  assert library.features.shape == (41, 47, 13) and library.features.dtype == np.float32
  assert "rendering 41 not in the cache" in lines[0]

  again = Lines()
  cached = L.build_library([folder], renderer, tmp_path, again)
  assert again == []  # nothing rendered
  np.testing.assert_array_equal(cached.features, library.features)

  # Features are the pooled MFCC of the real rendering (float16 on disk).
  audio = render.render_batch(renderer, random_voices[[0, 40]])
  expected = L.pool(np.asarray(mfccd.mfcc(audio)))
  np.testing.assert_allclose(cached.features[[0, 40]], expected, rtol=1e-3, atol=0.01)


def test_only_new_voices_are_rendered_and_folders_combine(folder, tmp_path, renderer,
                                                          random_voices):
  L.build_library([folder], renderer, tmp_path, Lines())
  more = tmp_path / "more"
  files.write_atomic(more / "new.syx", sysex.bank_message(random_voices[32:64]))  # 41..63 are new
  lines = Lines()
  library = L.build_library([folder, more], renderer, tmp_path, lines)
  assert len(library) == 64
  assert "rendering 23 not in the cache" in lines[0]


def test_an_interrupted_build_keeps_what_it_wrote(folder, tmp_path, renderer, monkeypatch):
  monkeypatch.setattr(L, "SHARD_VOICES", 16)

  class Interrupt(Exception):
    pass

  def stop_after_first_shard(line):
    if line.startswith("library: 16/"):
      raise Interrupt

  with pytest.raises(Interrupt):
    L.build_library([folder], renderer, tmp_path, stop_after_first_shard)
  assert [p.name.startswith(".") for p in L.FeatureCache(renderer, tmp_path).folder.iterdir()
          ].count(True) == 0  # no temporary file left behind
  lines = Lines()
  L.build_library([folder], renderer, tmp_path, lines)
  assert "rendering 25 not in the cache" in lines[0]  # 41 - the 16 already cached


def test_an_unreadable_shard_is_rendered_again(folder, tmp_path, renderer):
  L.build_library([folder], renderer, tmp_path, Lines())
  shard, = L.FeatureCache(renderer, tmp_path).folder.glob("shard-*.npz")
  shard.write_bytes(b"PK\x03\x04 truncated")
  lines = Lines()
  library = L.build_library([folder], renderer, tmp_path, lines)
  assert "rendering 41 not in the cache" in lines[0] and len(library) == 41


def test_the_cache_is_keyed_by_render_settings(tmp_path, renderer):
  softer = render.DexedRenderer(ClipSpec(velocity=100))
  assert L.FeatureCache(renderer, tmp_path).folder != L.FeatureCache(softer, tmp_path).folder
  assert L.FeatureCache(renderer, tmp_path).folder == L.FeatureCache(
      render.DexedRenderer(), tmp_path).folder


def test_the_default_cache_is_the_users_not_the_preset_folder(monkeypatch, tmp_path):
  monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path / "c"))
  assert L.default_cache_dir() == tmp_path / "c" / "library"
  monkeypatch.delenv("S2S_CACHE_DIR")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
  assert L.default_cache_dir() == tmp_path / "x" / "s2s_jax" / "library"


def test_nearest_finds_a_library_voice_from_its_sound(folder, tmp_path, renderer):
  library = L.build_library([folder], renderer, tmp_path, Lines())
  for j in (0, 17, 40):
    audio = renderer.render(library.voices[j])
    assert library.nearest(audio, 5)[0] == j
  only = library.algorithms[17]
  found = library.nearest(renderer.render(library.voices[17]), 100, algorithms=[only])
  assert found[0] == 17 and np.all(library.algorithms[found] == only)
  assert len(found) == np.count_nonzero(library.algorithms == only)


def test_the_summary_distance_without_pooling_is_mfccd(renderer, random_voices):
  audio = render.render_batch(renderer, random_voices[:3])
  mfcc = np.asarray(mfccd.mfcc(audio))
  expected = np.asarray(mfccd.mfccd(audio[1:], np.repeat(audio[:1], 2, 0)))
  np.testing.assert_allclose(L.summary_distance(L.pool(mfcc[1:], 1), mfcc[0]), expected,
                             rtol=1e-4)
