"""`s2s-bench quality --presets DIR` without a model: library and searches side by side."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import soundfile

from s2s_jax.synth import sysex
from s2s_jax.util import files

ROOT = pathlib.Path(__file__).parents[1]


def test_the_library_and_search_table(tmp_path, random_voices):
  presets = tmp_path / "presets"
  files.write_atomic(presets / "a.syx", sysex.bank_message(random_voices[:32]))
  files.write_atomic(presets / "b.syx", sysex.bank_message(random_voices[32:]))
  sounds = tmp_path / "sounds"
  sounds.mkdir()
  soundfile.write(sounds / "tone.wav", 0.3 * np.sin(np.arange(96_000) * 2 * np.pi * 220 / 48_000),
                  48_000)
  result = subprocess.run(
      [sys.executable, "-m", "s2s_jax.bench.cli", "quality", "--presets", presets,
       "--n-targets", "2", "--budgets", "8", "16", "--library-k", "4", "--sounds", sounds,
       "--library-cache", tmp_path / "cache", "--out", tmp_path / "out"],
      capture_output=True, text=True, timeout=900, cwd=ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads((tmp_path / "out" / "quality_search.json").read_text())
  held_out, made = report["tables"]["held-out presets"], report["tables"]["sounds"]
  assert {r["targets"] for r in held_out} == {2} and {r["targets"] for r in made} == {1}
  by = {(r["method"], r["renders"]): r for r in held_out}
  for method in ("hill climbing (64-bin classes, from a prior voice)",
                 "genetic algorithm (64-bin classes, prior population)",
                 "library + value search, 4 starts (default)"):
    fewer, more = by[method, 8]["scores"], by[method, 16]["scores"]
    assert np.all(np.array(more) <= np.array(fewer))  # the best of 16 renders includes 8's
  assert by["library alone (best of the nearest 4)", 4]["renders"] == 4
  floor = {r["condition"]: r for r in report["floor"]}
  assert floor["rendered twice"]["mfccd13_max"] == 0.0
  assert "| library + value search, 4 starts (default) | 16 |" in result.stdout
