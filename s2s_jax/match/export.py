"""What a match hands the user: its files and its summary entry.

- NAME.syx: the match, a single-voice DX7 dump (Dexed and a DX7 load it);
- NAME_bank.syx: a 32-voice bank of the distinct voices the match rendered, best first
  (`Match.ranked`; slot 1 is NAME.syx), to audition in Dexed one by one;
- NAME.json: the voice by Dexed parameter name, as host values in [0, 1] (what the
  Sound2Synth plug-in applies) and as DX7 values;
- NAME.wav: the match rendered for as long as the input lasts, at most `MAX_WAV_SECONDS`, at
  the input's sample rate in 24-bit PCM (lowered to fit where Dexed exceeds full scale);
- NAME.png: the input's and the match's mel spectrograms side by side, MFCCD in the title.

`summary_entry` is one schema for summary.json and the HTTP API. The files of an input are
written to a hidden staging folder and moved into place only
once all are complete, so a failure leaves no half-written output. Nothing already in the
folder is replaced unless asked (`overwrite`), an input never; summary.json is merged, one
entry per sound, so an input may not be called "summary".
"""

from __future__ import annotations

import dataclasses
import io as io_lib
import json
import os
import pathlib
import shutil
import tempfile

import librosa
from matplotlib.figure import Figure
import numpy as np
import soundfile

from s2s_jax.audio import cli as mfccd_cli
from s2s_jax.audio import features
from s2s_jax.audio import io
from s2s_jax.audio import mfccd
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.match import pitch as pitch_lib
from s2s_jax.match import target as target_lib
from s2s_jax.match.matcher import RANKED, Match
from s2s_jax.match.target import Target
from s2s_jax.synth import host
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.synth import sysex
from s2s_jax.util import files

OUTPUTS = {"syx": ".syx", "bank": "_bank.syx", "json": ".json", "wav": ".wav", "png": ".png"}
WAV_SUBTYPE = "PCM_24"
WAV_PEAK = 10 ** (-0.1 / 20)  # a louder match is scaled to -0.1 dBFS
AGREE = 0.01  # MFCCD-13: the written files' score is reported when it differs by more
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
  for path in [out_dir / f"{n}{e}" for n in names for e in OUTPUTS.values()] + [
      out_dir / SUMMARY]:
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


@dataclasses.dataclass(frozen=True)
class Written:
  """One input's files (`paths` by kind, see `OUTPUTS`) and what was measured on them:
  `wav` (sample_rate, subtype, gain_db), `match_pitch` (of the match as written) and
  `files_mfccd13` (what `s2s-mfccd INPUT NAME.wav` gives); `scored_clip`: the clips the match
  was scored on (its model's)."""
  paths: dict[str, pathlib.Path]
  wav: dict[str, object]
  match_pitch: pitch_lib.Pitch
  files_mfccd13: float
  scored_clip: ClipSpec


def write_outputs(out_dir: pathlib.Path, match: Match, target: Target, renderer: R.Renderer,
                  input_path: str | os.PathLike, overwrite: bool = False) -> Written:
  """Writes the outputs of one input (read from `input_path`) into `out_dir`.

  Raises FileExistsError, writing nothing, if one is there already and `overwrite` is False.
  """
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = {kind: out_dir / f"{match.name}{suffix}" for kind, suffix in OUTPUTS.items()}
  for path in paths.values():
    if not overwrite and os.path.lexists(path):
      raise FileExistsError(f"{path}: already exists (pass --overwrite to replace it)")
  rate = io.probe(input_path).samplerate
  rendering = match_rendering(match, target, renderer)
  wav, gain_db = wav_bytes(rendering, renderer.settings.sample_rate, rate)
  contents = {
      "syx": sysex.voice_message(match.voice),
      "bank": sysex.bank_message(bank_voices(match)),
      "json": (json.dumps(parameters(match.voice), indent=2) + "\n").encode(),
      "wav": wav,
      "png": comparison_png(target, match, renderer),
  }
  staging = pathlib.Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{match.name}."))
  try:
    for kind, data in contents.items():
      (staging / paths[kind].name).write_bytes(data)
    files_spec = mfccd_cli.SPEC
    written = target_lib.read_fitted(staging / paths["wav"].name, files_spec.clip)
    files_mfccd13 = float(mfccd.mfccd(
        target_lib.read_fitted(input_path, files_spec.clip)[None], written[None],
        spec=files_spec)[0])
    for path in paths.values():
      (staging / path.name).replace(path)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return Written(paths, {"sample_rate": rate, "subtype": WAV_SUBTYPE, "gain_db": gain_db},
                 pitch_lib.estimate_pitch(rendering, renderer.settings.sample_rate),
                 files_mfccd13, renderer.settings)


def parameters(voice: np.ndarray) -> dict[str, object]:
  """NAME.json: the voice's name, its Dexed host values in [0, 1] (what the Sound2Synth
  plug-in applies) and its DX7 values as the panel shows them (ALGORITHM 1..32, levels and
  rates 0..99), both by Dexed parameter name."""
  voice = params.clamp_voice(voice)
  return {"name": params.voice_name(voice), "host": host.to_dexed_json(voice),
          "dx7": {p.name: int(voice[p.voice_byte]) + (p.name == "ALGORITHM")
                  for p in params.VOICE_PARAMS}}


def bank_voices(match: Match) -> np.ndarray:
  """`[32, 155]`: the ranked voices (the match first), any slot left INIT VOICE."""
  voices = [r.voice for r in match.ranked] or [match.voice]
  return np.stack(voices + [params.INIT_VOICE] * (RANKED - len(voices)))


def wav_bytes(audio: np.ndarray, sample_rate: int, out_rate: int) -> tuple[bytes, float]:
  """`audio` `[samples]` at `sample_rate` -> (a WAV file at `out_rate` in `WAV_SUBTYPE`, the
  gain in dB applied: 0, or negative where Dexed's output exceeds full scale)."""
  if out_rate != sample_rate:
    audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=out_rate, res_type="soxr_hq")
  peak = float(np.max(np.abs(audio), initial=0.0))
  gain = min(1.0, WAV_PEAK / peak) if peak else 1.0
  buffer = io_lib.BytesIO()
  soundfile.write(buffer, audio * gain, out_rate, format="WAV", subtype=WAV_SUBTYPE)
  return buffer.getvalue(), round(20 * float(np.log10(gain)), 2)


def comparison_png(target: Target, match: Match, renderer: R.Renderer) -> bytes:
  """Input and match mel spectrograms (the clips MFCCD compares), side by side."""
  rendered = renderer.render(match.voice)
  mel = np.asarray(features.log_mel(np.stack([target.audio, rendered]),
                                    FeatureSpec(clip=renderer.settings)))
  seconds = len(target.audio) / renderer.settings.sample_rate
  figure = Figure(figsize=(11, 4), layout="constrained")  # no pyplot: no global state
  axes = figure.subplots(1, 2, sharey=True)
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
  buffer = io_lib.BytesIO()
  figure.savefig(buffer, format="png", dpi=100)
  return buffer.getvalue()


def summary_entry(match: Match, target: Target, source: str, written: Written) -> dict:
  """One input's entry of summary.json, and the body of the HTTP API's answer."""
  files = (None if abs(written.files_mfccd13 - match.mfccd["mfccd13"]) <= AGREE else {
      "mfccd13": written.files_mfccd13,
      "why": _why_files_differ(written, target.sample_rate)})
  return {
      "name": match.name,
      "input": source,
      "algorithm": match.algorithm,
      "model": match.model,
      "mfccd": match.mfccd,
      "mfccd_of_files": files,
      "network": match.network,
      "refined": match.refined,
      "pitch": pitch_entry(match, target.pitch, written.match_pitch),
      "alternatives": [{"slot": i + 1, "name": params.voice_name(r.voice),
                        "algorithm": r.algorithm, "mfccd13": r.mfccd13, "source": r.source}
                       for i, r in enumerate(match.ranked)],
      "wav": written.wav,
      "candidates": match.candidates,
      "refine_renders": match.refine_renders,
      "seconds": match.seconds,
      "outputs": {kind: path.name for kind, path in written.paths.items()},
  }


def pitch_entry(match: Match, heard: pitch_lib.Pitch, played: pitch_lib.Pitch) -> dict:
  """What the input sounds at (`heard`), what the match as written plays (`played`), and
  what was done to TRANSPOSE, in one sentence (`note`)."""
  retuning = match.retuning
  if heard.hz is None:
    note = "input unpitched: TRANSPOSE left as found"
  elif retuning is None:
    note = f"input {heard.note}: match unpitched at selection, TRANSPOSE left as found"
  else:
    note = f"input {heard.note}: {retuning.message}"
  note += (f"; the match plays {played.note}" if played.hz is not None
           else "; the match plays no clear pitch")
  return {"input_hz": heard.hz, "input_note": heard.note,
          "voiced_fraction": heard.voiced_fraction,
          "match_hz": played.hz, "match_note": played.note,
          "transpose": None if retuning is None else retuning.transpose,
          "in_range": None if retuning is None else retuning.in_range, "note": note}


def _why_files_differ(written: Written, sample_rate: int) -> str:
  """Why MFCCD on the written files is not the match's score."""
  reasons, wav, clip = [], written.wav, written.scored_clip
  if clip != mfccd_cli.SPEC.clip:
    reasons.append(f"the match was scored on its model's clips ({clip.render_seconds:g} s, key "
                   f"held {clip.note_seconds:g} s), s2s-mfccd compares "
                   f"{mfccd_cli.SPEC.clip.render_seconds:g} s")
  if wav["sample_rate"] != sample_rate:
    reasons.append(f"NAME.wav is at the input's {wav['sample_rate']} Hz, the match was scored "
                   f"at {sample_rate} Hz")
  if wav["gain_db"]:
    reasons.append(f"NAME.wav is {-wav['gain_db']:.2f} dB under Dexed's level, which exceeds "
                   "full scale, and MFCCD depends on level")
  return "; ".join(reasons) or f"NAME.wav is rounded to {wav['subtype']}"
