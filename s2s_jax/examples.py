"""Example sounds the project makes, and `s2s-demo DIR`: match them with the bundled model.

The sounds are synthesised here (numpy, no samples shipped), at C4 like the training renders:
a plucked string, a bell, a sawtooth lead, a sine and a square-ish organ. `s2s-demo DIR` writes
them to DIR/sounds/, matches each with the model bundled in the package (no training, no
presets), writes the presets to DIR/matches/ as `s2s-match` does, and prints a table. Nothing
already in DIR is replaced: the command stops, naming the file, if an output exists.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
import soundfile

from s2s_jax.infer import bundled
from s2s_jax.infer.workdir import ModelError
from s2s_jax.match import export
from s2s_jax.match import matcher as matcher_lib
from s2s_jax.match import search
from s2s_jax.match import target as target_lib
from s2s_jax.synth import render as R
from s2s_jax.util import caches
from s2s_jax.util import console
from s2s_jax.util import report
from s2s_jax.util.arguments import HelpFormatter

SAMPLE_RATE = 48_000
C4_HZ = 261.6256
SECONDS = 3.0


NOTE_SECONDS = 2.0  # the note is held this long, as in training


def _decaying(t: np.ndarray, attack: float, decay: float) -> np.ndarray:
  """A linear attack of `attack` s, then an exponential decay of time constant `decay` s."""
  return np.minimum(t / attack, 1.0) * np.exp(-np.maximum(t - attack, 0.0) / decay)


def _held(t: np.ndarray, attack: float, release: float) -> np.ndarray:
  """A linear attack, held until NOTE_SECONDS, then an exponential release."""
  return np.minimum(t / attack, 1.0) * np.exp(-np.maximum(t - NOTE_SECONDS, 0.0) / release)


def _harmonics(t: np.ndarray, numbers, amplitudes) -> np.ndarray:
  return sum(a * np.sin(2 * np.pi * C4_HZ * h * t) for h, a in zip(numbers, amplitudes))


def _pluck(t, rng):
  """Karplus-Strong string: a noise burst through a damped, averaging delay line."""
  period = int(round(SAMPLE_RATE / C4_HZ))
  out = np.zeros(len(t))
  out[:period + 1] = rng.uniform(-1, 1, period + 1)
  for i in range(period + 1, len(out)):
    out[i] = 0.498 * (out[i - period] + out[i - period - 1])
  return out


def _bell(t, rng):
  del rng
  ratios, amps, decays = (1.0, 2.76, 5.4, 8.93), (1.0, 0.6, 0.35, 0.2), (1.5, 0.8, 0.4, 0.25)
  return sum(a * np.sin(2 * np.pi * C4_HZ * r * t) * _decaying(t, 0.002, d)
             for r, a, d in zip(ratios, amps, decays))


def _saw(t, rng):
  del rng
  numbers = np.arange(1, 41)
  return _harmonics(t, numbers, 1.0 / numbers) * _held(t, 0.01, 0.1)


def _sine(t, rng):
  del rng
  return _harmonics(t, [1], [1.0]) * _held(t, 0.02, 0.2)


def _organ(t, rng):
  del rng
  return _harmonics(t, [1, 3, 5, 7], [1, 1 / 3, 1 / 5, 1 / 7]) * _held(t, 0.005, 0.05)


SOUNDS = {"pluck": _pluck, "bell": _bell, "saw": _saw, "sine": _sine, "organ": _organ}


def example_sound(name: str) -> np.ndarray:
  """The example `name` of `SOUNDS`: `[SECONDS * SAMPLE_RATE]` float32, peak 0.5."""
  t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
  audio = SOUNDS[name](t, np.random.default_rng(0))
  return (0.5 * audio / np.max(np.abs(audio))).astype(np.float32)


def write_examples(folder: pathlib.Path) -> list[pathlib.Path]:
  """Writes every example as `folder/NAME.wav`; FileExistsError (nothing written) if one is
  there already."""
  paths = [folder / f"{name}.wav" for name in SOUNDS]
  existing = [str(p) for p in paths if p.exists()]
  if existing:
    raise FileExistsError(f"{existing[0]}: already exists; choose another folder")
  folder.mkdir(parents=True, exist_ok=True)
  for path in paths:
    soundfile.write(path, example_sound(path.stem), SAMPLE_RATE, subtype="PCM_16")
  return paths


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="s2s-demo", formatter_class=HelpFormatter,
      description="Writes example sounds to DIR/sounds and matches them with the bundled model\n"
      "into DIR/matches (.syx, a 32-voice _bank.syx, Dexed .json, .wav, .png), then prints\n"
      "a table; a status line shows the sound and the time left on a terminal.")
  parser.add_argument("folder", type=pathlib.Path, metavar="DIR",
                      help="output folder (new or without the demo's files)")
  parser.add_argument("--refine-renders", type=int, default=200, metavar="N",
                      help="search renders per sound (default 200)")
  args = parser.parse_args(argv)
  console.quiet()
  sounds, matches = args.folder / "sounds", args.folder / "matches"
  caches.use_compilation_cache()
  bar = console.status(len(SOUNDS), "loading the model", unit="sound")
  try:
    export.check_out_dir(matches, list(SOUNDS), [], overwrite=False)
    paths = write_examples(sounds)
    model = bundled.load()
  except (OSError, ModelError, ValueError) as e:
    bar.close()
    print(f"s2s-demo: error: {e}", file=sys.stderr)
    return 2
  renderer = R.DexedRenderer(model.clip)
  matcher = matcher_lib.Matcher([model], matcher_lib.MatchSettings(
      refine=search.Budget(renders=max(args.refine_renders, 1), seconds=20.0)), renderer)
  rows = []
  for n, path in enumerate(paths):
    bar.set_description(f"{path.stem} ({n + 1}/{len(paths)})")
    started = time.perf_counter()
    target = target_lib.load_target(path, renderer.settings)
    match = matcher.match(target, progress=lambda done, n=n: bar.update(n + done - bar.n))
    written = export.write_outputs(matches, match, target, renderer, path)
    rows.append({"sound": str(path), "algorithm": match.algorithm,
                 "MFCCD-13": round(match.mfccd["mfccd13"], 2),
                 "seconds": round(time.perf_counter() - started, 1),
                 "preset": str(written.paths["syx"])})
  bar.close()
  print(report.format_table(rows))
  print(f"each preset also as a 32-voice bank of alternatives, Dexed JSON, rendering and "
        f"picture in {matches}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
