"""The compilation cache `s2s-match` keeps: where it is, that a second process reads what the
first compiled, the off switch, and an unwritable folder that must not break matching."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest
import soundfile

from s2s_jax import examples
from s2s_jax.util import caches

# The test session's own cache settings (conftest) would hide the defaults under test.
_SESSION_SETTINGS = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                     "S2S_CACHE_DIR", "XDG_CACHE_HOME", caches.OFF_SWITCH)


@pytest.fixture
def default_jax_cache(monkeypatch):
  """This process's JAX cache folder unset for the test (restored after)."""
  saved = jax.config.jax_compilation_cache_dir
  jax.config.update("jax_compilation_cache_dir", None)
  for name in _SESSION_SETTINGS:
    monkeypatch.delenv(name, raising=False)
  yield
  jax.config.update("jax_compilation_cache_dir", saved)


def test_the_cache_folder_is_the_users(default_jax_cache, monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert caches.compilation_cache_dir() == tmp_path / "home" / ".cache" / "s2s_jax" / "jax"
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
  assert caches.compilation_cache_dir() == tmp_path / "x" / "s2s_jax" / "jax"
  monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path / "s"))
  assert caches.compilation_cache_dir() == tmp_path / "s" / "jax"
  assert (tmp_path / "s" / "jax").is_dir()
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "j"))  # JAX's own setting wins
  assert caches.compilation_cache_dir() == tmp_path / "j"


@pytest.mark.parametrize("value", ["0", "off", "False", "no"])
def test_the_off_switch_turns_the_cache_off(default_jax_cache, monkeypatch, tmp_path, value):
  monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path))
  monkeypatch.setenv(caches.OFF_SWITCH, value)
  assert caches.compilation_cache_dir() is None
  monkeypatch.delenv(caches.OFF_SWITCH)
  assert caches.compilation_cache_dir(enabled=False) is None
  assert list(tmp_path.iterdir()) == []  # nothing made either way


def test_an_unusable_cache_folder_turns_the_cache_off(default_jax_cache, monkeypatch, tmp_path):
  (tmp_path / "a_file").write_text("not a folder")
  monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path / "a_file"))
  assert caches.compilation_cache_dir() is None


@pytest.fixture(scope="module")
def sound(tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp("sound") / "pluck.wav"
  soundfile.write(path, examples.example_sound("pluck"), examples.SAMPLE_RATE)
  return path


def _match(sound: pathlib.Path, out: pathlib.Path, prefix=(), **env: str) -> list[dict]:
  """`s2s-match SOUND` (after the command `prefix`) with the bundled model, no refinement,
  under the user's default cache settings changed by `env`; the summary's entries. Its
  stderr must be empty."""
  environment = {k: v for k, v in os.environ.items() if k not in _SESSION_SETTINGS} | env
  result = subprocess.run([*prefix, sys.executable, "-m", "s2s_jax.match.cli", str(sound),
                           "--out", str(out), "--refine-renders", "0"], capture_output=True,
                          text=True, timeout=600, env=environment)
  assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
  assert result.stdout.startswith("pluck: MFCCD-13 ")
  return json.loads((out / "summary.json").read_text())


def _cached(folder: pathlib.Path) -> set[str]:
  return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_second_process_reads_what_the_first_compiled(sound, tmp_path):
  first = _match(sound, tmp_path / "one", S2S_CACHE_DIR=str(tmp_path / "cache"))
  written = _cached(tmp_path / "cache" / "jax")
  assert len(written) >= 4  # the network, the featuriser, the MFCCs, the picture's mel
  second = _match(sound, tmp_path / "two", S2S_CACHE_DIR=str(tmp_path / "cache"))
  assert _cached(tmp_path / "cache" / "jax") == written  # everything was read back
  keys = ("algorithm", "mfccd", "network", "alternatives")
  assert [{k: e[k] for k in keys} for e in first] == [{k: e[k] for k in keys} for e in second]


def test_matching_without_a_cache_writes_none(sound, tmp_path):
  _match(sound, tmp_path / "out", S2S_CACHE_DIR=str(tmp_path / "cache"),
         **{caches.OFF_SWITCH: "0"})
  assert not (tmp_path / "cache").exists()


def test_an_unwritable_cache_does_not_stop_matching(sound, tmp_path, unprivileged):
  (tmp_path / "cache").mkdir(mode=0o555)
  _match(sound, tmp_path / "out", prefix=unprivileged, S2S_CACHE_DIR=str(tmp_path / "cache"))
  assert list((tmp_path / "cache").iterdir()) == []
