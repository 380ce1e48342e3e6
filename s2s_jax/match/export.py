"""What a match hands the user: NAME.syx, NAME.json, NAME.wav, NAME.png and a summary entry.

- NAME.syx: a single-voice DX7 dump (Dexed and a DX7 load it);
- NAME.json: Dexed parameter names -> host values in [0, 1], ALGORITHM included (what the
  Sound2Synth plug-in applies);
- NAME.wav: the match rendered for as long as the input lasts, at most `MAX_WAV_SECONDS`
  (32-bit float: Dexed's output exceeds [-1, 1] and is not clipped);
- NAME.png: the input's and the match's mel spectrograms side by side, MFCCD in the title.

The four files of an input are written to a hidden staging folder and moved into place only
once all are complete, so a failure leaves no half-written output. Nothing already in the
folder is replaced unless asked (`overwrite`), an input never; summary.json is merged, one
entry per sound, so an input may not be called "summary".
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib
import shutil
import tempfile

import matplotlib
import numpy as np
import soundfile

from s2s_jax.audio import features
from s2s_jax.match.matcher import Match
from s2s_jax.match.target import Target
from s2s_jax.synth import host
from s2s_jax.synth import render as R
from s2s_jax.synth import sysex
from s2s_jax.util import files

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

OUTPUTS = ("syx", "json", "wav", "png")
MAX_WAV_SECONDS = 30.0  # a held DX7 note has faded long before
SUMMARY = "summary.json"
RESERVED_NAME = pathlib.Path(SUMMARY).stem


class OutputError(ValueError):
  """The output folder cannot take this run's files; the message names the path and why."""


def check_out_dir(out_dir: pathlib.Path, names: list[str], inputs: list[str],
                  overwrite: bool) -> list[dict]:
  """Checks, before any work, that `out_dir` can take the outputs of `names`.

  Creates `out_dir` if needed and proves it writable. Returns summary.json's entries so far.

  Raises:
    OutputError: `out_dir` is a file or not writable; an output's place holds a folder or an
      input; or holds a file already there and `overwrite` is False.
  """
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out_dir):
      pass
  except FileExistsError:
    raise OutputError(f"{out_dir}: --out is a file, not a folder") from None
  except OSError as e:
    raise OutputError(f"{out_dir}: the output folder is not writable ({e.strerror or e})"
                      ) from None
  existing = []
  for path in [out_dir / f"{n}.{e}" for n in names for e in OUTPUTS] + [out_dir / SUMMARY]:
    if path.is_dir():
      raise OutputError(f"{path}: a folder is where an output goes")
    if any(path.exists() and os.path.exists(i) and path.samefile(i) for i in inputs):
      raise OutputError(f"{path}: an output would replace this input; choose another --out")
    if path.exists() and path.name != SUMMARY:
      existing.append(str(path))
  if existing and not overwrite:
    more = f" (and {len(existing) - 1} more of this run's outputs)" if len(existing) > 1 else ""
    raise OutputError(f"{existing[0]}: already exists{more}; pass --overwrite to replace")
  return read_summary(out_dir / SUMMARY, overwrite)


def read_summary(path: pathlib.Path, overwrite: bool) -> list[dict]:
  """summary.json's entries ([] if none); OutputError if it is not one, unless `overwrite`."""
  try:
    entries = json.loads(path.read_bytes())
  except FileNotFoundError:
    return []
  except (OSError, ValueError) as e:
    entries = e
  if isinstance(entries, list) and all(isinstance(e, dict) and "name" in e for e in entries):
    return entries
  if overwrite:
    return []
  raise OutputError(f"{path}: not a summary written by s2s-match (pass --overwrite to "
                    "replace it)")


def write_summary(out_dir: pathlib.Path, entries: list[dict]) -> None:
  """Writes summary.json: `entries`, one per name, a later entry replacing an earlier one."""
  merged = {entry["name"]: entry for entry in entries}
  files.write_atomic(out_dir / SUMMARY,
                     (json.dumps(list(merged.values()), indent=2) + "\n").encode())


def match_rendering(match: Match, target: Target, renderer: R.Renderer) -> np.ndarray:
  """The match played for the input's length, at most MAX_WAV_SECONDS `[samples]` (the note
  held as in training)."""
  seconds = min(target.seconds, MAX_WAV_SECONDS)
  settings = dataclasses.replace(
      renderer.settings, render_seconds=seconds,
      note_seconds=min(renderer.settings.note_seconds, seconds))
  return renderer.with_settings(settings).render(match.voice)


def write_outputs(out_dir: pathlib.Path, match: Match, target: Target, renderer: R.Renderer,
                  overwrite: bool = False) -> dict[str, pathlib.Path]:
  """Writes the four outputs of one input into `out_dir`; returns their paths by extension.

  Raises FileExistsError, writing nothing, if one is there already and `overwrite` is False.
  """
  out_dir.mkdir(parents=True, exist_ok=True)
  contents = {
      "syx": sysex.voice_message(match.voice),
      "json": (json.dumps(host.to_dexed_json(match.voice), indent=2) + "\n").encode(),
      "wav": wav_bytes(match_rendering(match, target, renderer), renderer.settings.sample_rate),
      "png": comparison_png(target, match, renderer),
  }
  paths = {extension: out_dir / f"{match.name}.{extension}" for extension in OUTPUTS}
  for path in paths.values():
    if not overwrite and os.path.lexists(path):
      raise FileExistsError(f"{path}: already exists (pass --overwrite to replace it)")
  staging = pathlib.Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{match.name}."))
  try:
    for extension, data in contents.items():
      (staging / f"{match.name}.{extension}").write_bytes(data)
    for path in paths.values():
      (staging / path.name).replace(path)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return paths


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
  buffer = io.BytesIO()
  soundfile.write(buffer, audio, sample_rate, format="WAV", subtype="FLOAT")
  return buffer.getvalue()


def comparison_png(target: Target, match: Match, renderer: R.Renderer) -> bytes:
  """Input and match mel spectrograms (the clips MFCCD compares), side by side."""
  rendered = renderer.render(match.voice)
  mel = np.asarray(features.log_mel(np.stack([target.audio, rendered])))
  seconds = len(target.audio) / renderer.settings.sample_rate
  figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, layout="constrained")
  for axis, spectrogram, title in zip(axes, mel, ("input", f"match (algorithm {match.algorithm})")):
    image = axis.imshow(spectrogram.T, origin="lower", aspect="auto", cmap="magma",
                        vmin=-1, vmax=1, extent=(0, seconds, 0, spectrogram.shape[1]))
    axis.set_title(title)
    axis.set_xlabel("seconds")
  axes[0].set_ylabel("mel band")
  figure.colorbar(image, ax=axes, label="log power (scaled)")
  scores = match.mfccd
  figure.suptitle(f"{match.name}: MFCCD-13 {scores['mfccd13']:.2f}, "
                  f"MFCCD-30 {scores['mfccd30']:.2f}")
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=100)
  plt.close(figure)
  return buffer.getvalue()


def summary_entry(match: Match, target: Target, source: str,
                  outputs: dict[str, pathlib.Path]) -> dict:
  """One input's line of summary.json."""
  retuning = match.retuning
  return {
      "input": source,
      "name": match.name,
      "algorithm": match.algorithm,
      "model": match.model,
      "network": match.network,
      "refined": match.refined,
      "pitch": {
          "input_hz": target.pitch.hz, "input_note": target.pitch.note,
          "voiced_fraction": target.pitch.voiced_fraction,
          "transpose": None if retuning is None else retuning.transpose,
          "in_range": None if retuning is None else retuning.in_range,
          "note": (retuning.message if retuning else
                   "input unpitched: TRANSPOSE left as predicted" if target.pitch.hz is None
                   else "match unpitched: TRANSPOSE left as predicted"),
      },
      "candidates": match.candidates,
      "refine_renders": match.refine_renders,
      "seconds": match.seconds,
      "outputs": {k: str(v) for k, v in outputs.items()},
  }
