"""Matching from a preset library, with no model: s2s-match --library on real .syx folders."""

import io
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import requests
import soundfile

from s2s_jax.match import cli as match_cli
from s2s_jax.match import library as library_lib
from s2s_jax.match import matcher as matcher_lib
from s2s_jax.match import search
from s2s_jax.match import target as target_lib
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import sysex
from s2s_jax.util import files
import in_process

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def presets(tmp_path_factory, random_voices) -> pathlib.Path:
  """Two banks of prior voices (64 distinct, every algorithm twice)."""
  root = tmp_path_factory.mktemp("user presets")
  files.write_atomic(root / "one.syx", sysex.bank_message(random_voices[:32]))
  files.write_atomic(root / "sub" / "two.syx", sysex.bank_message(random_voices[32:]))
  return root


@pytest.fixture(scope="module")
def library_cache(tmp_path_factory) -> pathlib.Path:
  """The features cache of `library`: every voice of `presets` once it is built."""
  return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def library(presets, renderer, library_cache) -> library_lib.Library:
  return library_lib.build_library([presets], renderer, library_cache, lambda line: None)


def audible(library, renderer, start):
  """Index of the first library voice from `start` on that sounds (peak > 0.1)."""
  for j in range(start, len(library)):
    if generate.is_audible(renderer.render(library.voices[j]), 0.1):
      return j
  raise AssertionError("no audible voice")


def test_a_library_voice_is_found_from_its_own_sound(library, renderer, presets):
  j = audible(library, renderer, 40)
  target = target_lib.prepare_target(renderer.render(library.voices[j]), renderer.settings,
                                     "voice", "voice")
  matcher = matcher_lib.Matcher([], matcher_lib.MatchSettings(library_k=8), renderer, library)
  match = matcher.match(target)
  assert match.network["mfccd13"] == pytest.approx(0.0, abs=1e-4)
  assert match.model == f"library:{presets / 'sub' / 'two.syx'}:{j - 32 + 1}"
  np.testing.assert_array_equal(match.voice[:params.NUM_SOUND_BYTES],
                                library.voices[j][:params.NUM_SOUND_BYTES])
  assert match.candidates == 8 and match.algorithm == library.algorithms[j]


def test_the_search_improves_on_the_library(library, renderer, random_voices):
  """A voice near (not in) the library: the search gets closer than the nearest voice."""
  j = audible(library, renderer, 3)
  near = random_voices[j].copy()
  level = params.PARAM_BY_NAME["OP1 EG RATE 1"].voice_byte
  near[level] = (int(near[level]) + 40) % 100
  target = target_lib.prepare_target(renderer.render(near), renderer.settings, "near", "near")
  settings = matcher_lib.MatchSettings(library_k=8, refine=search.Budget(renders=96))
  match = matcher_lib.Matcher([], settings, renderer, library).match(target)
  assert match.refine_renders == 96
  assert match.refined["mfccd13"] <= match.network["mfccd13"]


def test_library_voices_of_other_algorithms_are_left_out(library, renderer):
  target = target_lib.prepare_target(renderer.render(library.voices[0]), renderer.settings,
                                     "v", "v")
  allowed = (int(library.algorithms[1]),)
  match = matcher_lib.Matcher([], matcher_lib.MatchSettings(algorithms=allowed, library_k=4),
                              renderer, library).match(target)
  assert match.algorithm == allowed[0] and match.candidates == 2  # 2 voices per algorithm


def test_no_model_and_no_library_is_an_error(renderer):
  with pytest.raises(ValueError, match="give a model, a preset library or both"):
    matcher_lib.Matcher([], matcher_lib.MatchSettings(), renderer)


def _s2s_match(*args) -> in_process.Result:
  """`s2s-match ARGS` in this process (see tests/in_process.py)."""
  return in_process.run(match_cli.main, *args)


def test_s2s_match_with_a_library_and_no_model(presets, library, renderer, tmp_path):
  j = audible(library, renderer, 10)
  soundfile.write(tmp_path / "in.wav", renderer.render(library.voices[j]), 48_000,
                  subtype="FLOAT")
  cache = tmp_path / "cache"
  args = [tmp_path / "in.wav", "--no-model", "--library", presets, "--library-cache", cache,
          "--refine-renders", "40", "--out", tmp_path / "out"]
  first = _s2s_match(*args)
  assert first.returncode == 0, first.stderr
  assert "rendering 64 not in the cache" in first.stderr
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())[0]
  assert summary["model"] == f"library:{presets / 'one.syx'}:{j + 1}"  # its own voice
  assert summary["refined"]["mfccd13"] <= summary["network"]["mfccd13"] < 1.0  # trim: BUILD_NOTES
  assert sysex.read(tmp_path / "out" / "in.syx").shape == (1, params.VOICE_BYTES)
  assert not any(p.suffix == ".npz" for p in presets.rglob("*"))  # the user's folder untouched

  again = _s2s_match(*args[:-1], tmp_path / "again")
  assert again.returncode == 0 and "rendering" not in again.stderr  # all from the cache


def test_s2s_match_no_model_needs_a_library(tmp_path, renderer):
  soundfile.write(tmp_path / "in.wav", renderer.render(params.INIT_VOICE), 48_000)
  result = _s2s_match(tmp_path / "in.wav", "--no-model", "--out", tmp_path / "out")
  assert result.returncode == 2
  assert "--no-model takes candidates from --library only" in result.stderr


def test_a_shared_corpus_folder_as_a_library(shared_presets, renderer, tmp_path):
  folder = min((p for p in shared_presets.iterdir() if p.is_dir()),
               key=lambda p: sum(f.stat().st_size for f in p.rglob("*.syx")) or 1e12)
  library = library_lib.build_library([folder], renderer, tmp_path, lambda line: None)
  j = audible(library, renderer, 0)
  target = target_lib.prepare_target(renderer.render(library.voices[j]), renderer.settings,
                                     "v", "v")
  match = matcher_lib.Matcher([], matcher_lib.MatchSettings(library_k=4), renderer,
                              library).match(target)
  assert match.network["mfccd13"] == pytest.approx(0.0, abs=1e-4)


def test_s2s_serve_with_a_library_and_no_model(presets, library, renderer, library_cache):
  cache = library_cache  # filled by `library`: the server loads it rather than render again
  with subprocess.Popen(
      [sys.executable, "-m", "s2s_jax.serve.cli", "--no-model", "--library", str(presets),
       "--library-cache", str(cache), "--port", "0", "--refine-renders", "16", "--library-k", "4"],
      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT) as process:
    try:
      line = process.stdout.readline()
      ready = re.match(r"s2s-serve: listening on (http://\S+) \(0 models, 64 library voices\)",
                       line)
      assert ready, line
      assert requests.get(ready[1] + "/ping", timeout=60).json()["library_voices"] == 64
      j = audible(library, renderer, 20)
      upload = io.BytesIO()
      soundfile.write(upload, renderer.render(library.voices[j]), 48_000, format="WAV")
      answer = requests.post(ready[1] + "/", files={"Upload File": ("a.wav", upload.getvalue())},
                             timeout=120)
      assert answer.status_code == 200
      assert len(answer.json()) == 155 and all(0 <= v <= 1 for v in answer.json().values())
    finally:
      process.terminate()
      process.wait(timeout=30)
