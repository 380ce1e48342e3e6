"""Featuriser speed: the JAX featuriser against librosa computing the same features.

All of STFT, mel, MFCC, CQT and the per-frame statistics of a batch of Dexed renders of voices
drawn from the generator's prior, timed as medians. librosa runs per clip, two ways: the reference's (nine one-octave `chroma_cqt` calls
with tuning estimation) and one 432-bin `librosa.cqt`. A second table measures the storage
formats considered for the dataset: bytes per example and feature error after the round trip.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from collections.abc import Callable

import jax
import librosa
import numpy as np
import scipy.fft

from s2s_jax.audio import cqt
from s2s_jax.audio import features
from s2s_jax.audio import mfccd
from s2s_jax.audio import storage
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.synth import generate
from s2s_jax.synth import render
from s2s_jax.util import report


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--batch", type=int, default=32, help="clips per batch")
  parser.add_argument("--rounds", type=int, default=5,
                      help="timed rounds; each times every method once, interleaved")


def run(args: argparse.Namespace) -> None:
  spec = FeatureSpec()
  rng = np.random.default_rng(0)
  voices = np.stack([generate.sample_voice(rng, algorithm=i % 32 + 1) for i in range(args.batch)])
  audio = render.render_batch(render.DexedRenderer(), voices)
  start = time.perf_counter()
  banks = features.FeatureBanks.create(spec)
  build_s = time.perf_counter() - start
  featurise = jax.jit(features.featurise)
  start = time.perf_counter()
  jax.block_until_ready(featurise(banks, audio))
  compile_s = time.perf_counter() - start

  methods = {
      "jax featurise (jit, batched)": lambda: jax.block_until_ready(featurise(banks, audio)),
      "librosa, reference (9 chroma_cqt)":
          lambda: [librosa_features(y, spec, "chroma") for y in audio],
      "librosa, one cqt": lambda: [librosa_features(y, spec, "cqt") for y in audio],
  }
  timings = _interleaved_medians(methods, args.rounds)
  ours_wall, ours_cpu = timings["jax featurise (jit, batched)"]
  rows = [{"method": name, "batch": args.batch, "median_batch_s": wall,
           "ms_per_clip": 1000 * wall / args.batch, "cpu_ms_per_clip": 1000 * cpu / args.batch,
           "jax_speedup": wall / ours_wall, "jax_cpu_speedup": cpu / ours_cpu}
          for name, (wall, cpu) in timings.items()]
  settings = {"batch": args.batch, "rounds": args.rounds, "bank_build_s": build_s,
              "jax_compile_s": compile_s, "jax_backend": jax.default_backend(),
              "spec": repr(spec)}
  report.publish("features", rows, args.json, settings)
  print(f"(filter banks built in {build_s:.1f} s; first call with compilation {compile_s:.1f} s)")

  json_path = pathlib.Path(args.json)
  report.publish("features-storage", storage_rows(featurise, banks, audio, args.rounds),
                 json_path.with_name(json_path.stem + "-storage.json"), settings)


def _interleaved_medians(methods: dict[str, Callable[[], object]], rounds: int
                         ) -> dict[str, tuple[float, float]]:
  """Median (wall, CPU) seconds per method over rounds that run each method once, after a
  warm-up; interleaving spreads load from other processes over every method alike, and CPU
  time (all threads of this process) hardly depends on it."""
  for fn in methods.values():
    fn()
  times = {name: [] for name in methods}
  for _ in range(rounds):
    for name, fn in methods.items():
      wall, cpu = time.perf_counter(), time.process_time()
      fn()
      times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
  return {name: tuple(np.median(values, axis=0)) for name, values in times.items()}


def storage_rows(featurise, banks: features.FeatureBanks, audio: np.ndarray,
                 repeats: int) -> list[dict[str, object]]:
  """Bytes per example and feature error after the round trip, for each storage format.

  Audio formats are featurised at training time (cost: decode + featurise per clip).
  """
  spec = banks.spec
  n = spec.num_samples
  reference = {k: np.asarray(v) for k, v in featurise(banks, audio).items()}
  audio_formats = [
      ("float32 audio", 4 * n, audio),
      ("float16 audio", 2 * n, audio.astype(np.float16).astype(np.float32)),
      ("int16, one scale per clip", storage.encoded_bytes(n, block_size=n),
       storage.as_stored(audio, block_size=n)),
      ("int16, scale per 512 (chosen)", storage.encoded_bytes(n), storage.as_stored(audio)),
  ]
  pcm, scales = storage.encode_audio(audio)
  step = jax.jit(lambda p, s: features.featurise(banks, storage.decode_audio(p, s)))
  step_ms = 1000 * report.median_seconds(
      lambda: jax.block_until_ready(step(pcm, scales)), repeats) / len(audio)
  rows = []
  for name, num_bytes, decoded in audio_formats:
    errors = {k: np.asarray(v) - reference[k] for k, v in featurise(banks, decoded).items()}
    rows.append(_storage_row(name, num_bytes, errors, mfccd.mfccd(audio, decoded), step_ms))
  # Every feature stored instead, each quantised to 256 levels over its range.
  errors = {k: _uint8_round_trip(v) - v for k, v in reference.items()}
  rows.append(_storage_row("uint8 features", sum(v[0].size for v in reference.values()),
                           errors, np.full(len(audio), np.nan), 0.0))
  return rows


def _storage_row(name: str, num_bytes: int, errors: dict[str, np.ndarray],
                 distances: np.ndarray, train_ms: float) -> dict[str, object]:
  """Errors are in feature units (log spectra span [-1, 1])."""
  row = {"format": name, "bytes_per_example": int(num_bytes),
         "fits_400KB": num_bytes <= 400_000}
  for key in ("stft", "cqt"):
    row[f"{key}_err_max"] = float(np.abs(errors[key]).max())
    row[f"{key}_err_p99"] = float(np.percentile(np.abs(errors[key]), 99))
  for key in ("mel", "mfcc"):
    row[f"{key}_err_max"] = float(np.abs(errors[key]).max())
  row["stats_err_max"] = float(max(np.abs(errors[k]).max() for k in features.STATISTICS))
  row["mfccd13_vs_float32"] = float(np.max(distances))
  row["train_ms_per_clip"] = train_ms
  return row


def _uint8_round_trip(values: np.ndarray) -> np.ndarray:
  """Quantises to 256 levels between the minimum and the maximum, and back."""
  lo, hi = float(values.min()), float(values.max())
  step = max(hi - lo, 1e-12) / 255
  return np.round((values - lo) / step) * step + lo


def librosa_features(y: np.ndarray, spec: FeatureSpec, cqt_method: str) -> dict[str, np.ndarray]:
  """The same feature set with librosa, for one clip [samples] (time-major outputs)."""
  stft_args = dict(n_fft=spec.n_fft, hop_length=spec.hop_length, center=True, pad_mode="reflect")
  power = np.abs(librosa.stft(y, **stft_args)) ** 2
  mel_power = librosa.feature.melspectrogram(S=power, sr=spec.sample_rate, n_mels=spec.n_mels,
                                             htk=True, norm="slaney", fmin=0.0,
                                             fmax=spec.sample_rate / 2)
  db = librosa.power_to_db(mel_power, ref=1.0, amin=1e-10, top_db=spec.top_db)
  mfcc = scipy.fft.dct(db, type=2, norm="ortho", axis=0)[:spec.n_mfcc]
  fmin, bpo = spec.cqt_fmin, spec.cqt_bins_per_octave
  if cqt_method == "chroma":
    response = np.concatenate([
        librosa.feature.chroma_cqt(y=y, sr=spec.sample_rate, hop_length=spec.hop_length,
                                   fmin=fmin * 2.0 ** octave, n_octaves=1, n_chroma=bpo,
                                   bins_per_octave=bpo)
        for octave in range(spec.cqt_octaves)])
  else:
    lengths, _ = librosa.filters.wavelet_lengths(freqs=cqt.cqt_frequencies(spec),
                                                 sr=spec.sample_rate)
    magnitude = np.abs(librosa.cqt(y, sr=spec.sample_rate, hop_length=spec.hop_length,
                                   fmin=fmin, n_bins=spec.cqt_bins, bins_per_octave=bpo,
                                   scale=False))
    response = np.square(magnitude / lengths[:, None] * (spec.n_fft / 2))
  log = lambda p: np.clip(np.log(p + spec.log_floor) / spec.log_divisor, -1, 1)
  stft, mel = log(power).T, log(mel_power).T
  frames = librosa.util.frame(np.pad(y, spec.n_fft // 2, mode="reflect"),
                              frame_length=spec.n_fft, hop_length=spec.hop_length)
  return {
      "stft": stft, "mel": mel, "cqt": log(response).T,
      "mfcc": np.clip(mfcc.T / spec.mfcc_divisor, -1, 1),
      "envelope": np.abs(frames).max(axis=0),
      "rms": librosa.feature.rms(y=y, frame_length=spec.n_fft, hop_length=spec.hop_length,
                                 pad_mode="reflect")[0],
      "zcr": librosa.feature.zero_crossing_rate(y, frame_length=spec.n_fft,
                                                hop_length=spec.hop_length)[0],
      "flatness": librosa.feature.spectral_flatness(S=np.sqrt(power))[0],
      "stft_max": stft.max(axis=1), "stft_rms": np.sqrt(np.mean(stft ** 2, axis=1)),
      "mel_max": mel.max(axis=1), "mel_rms": np.sqrt(np.mean(mel ** 2, axis=1)),
  }
