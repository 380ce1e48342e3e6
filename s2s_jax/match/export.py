"""What a match hands the user: NAME.syx, NAME.json, NAME.wav, NAME.png and a summary entry.

- NAME.syx: a single-voice DX7 dump (Dexed and a DX7 load it);
- NAME.json: Dexed parameter names -> host values in [0, 1], ALGORITHM included (what the
  Sound2Synth plug-in applies);
- NAME.wav: the match rendered for as long as the input lasts (32-bit float: Dexed's output
  exceeds [-1, 1] and is not clipped);
- NAME.png: the input's and the match's mel spectrograms side by side, MFCCD in the title.

The four files of an input are written to a hidden staging folder and moved into place only
once all are complete, so a failure leaves no half-written output.
"""

from __future__ import annotations

import dataclasses
import io
import json
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

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

OUTPUTS = ("syx", "json", "wav", "png")


def match_rendering(match: Match, target: Target, renderer: R.Renderer) -> np.ndarray:
  """The match played for the input's length `[samples]` (the note held as in training)."""
  settings = dataclasses.replace(
      renderer.settings, render_seconds=target.seconds,
      note_seconds=min(renderer.settings.note_seconds, target.seconds))
  return renderer.with_settings(settings).render(match.voice)


def write_outputs(out_dir: pathlib.Path, match: Match, target: Target,
                  renderer: R.Renderer) -> dict[str, pathlib.Path]:
  """Writes the four outputs of one input into `out_dir`; returns their paths by extension."""
  out_dir.mkdir(parents=True, exist_ok=True)
  contents = {
      "syx": sysex.voice_message(match.voice),
      "json": (json.dumps(host.to_dexed_json(match.voice), indent=2) + "\n").encode(),
      "wav": wav_bytes(match_rendering(match, target, renderer), renderer.settings.sample_rate),
      "png": comparison_png(target, match, renderer),
  }
  staging = pathlib.Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{match.name}."))
  try:
    for extension, data in contents.items():
      (staging / f"{match.name}.{extension}").write_bytes(data)
    paths = {}
    for extension in OUTPUTS:
      paths[extension] = out_dir / f"{match.name}.{extension}"
      (staging / paths[extension].name).replace(paths[extension])
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
