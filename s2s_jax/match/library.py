"""Preset libraries as match candidates: the user's own voices, rendered once, found in
milliseconds.

A library is every distinct voice (as Dexed plays it) of one or more folder trees of `.syx`
files, read by `synth.corpus`. Each voice is rendered once with the real engine and summarised
by its MFCC-13 averaged over blocks of `POOL_FRAMES` frames; the distance between summaries,
computed like MFCCD (RMS over blocks, mean over coefficients), ranks a library against a sound
so that the few nearest voices can be rendered and scored exactly.

Summaries are cached on disk, keyed by the voice's played sound bytes and by the render and
feature settings, so a later run renders only voices it has not seen. The cache is a folder of
shards, each written atomically (temporary file, then rename) as a build goes, so an interrupted
build leaves the shards already written and never a corrupt one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import pathlib
import sys
import time
import zipfile
from collections.abc import Callable, Sequence

import numpy as np

from s2s_jax.audio import mfccd
from s2s_jax.synth import corpus as corpus_lib
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.util import caches
from s2s_jax.util import files

N_MFCC = 13
POOL_FRAMES = 8  # MFCC frames averaged into one summary block: 376 frames -> 47 blocks
FEATURE_VERSION = 1  # bump when the summary changes, so old caches are not read
SHARD_VOICES = 2048  # voices rendered per cache shard (and per progress line)
MAX_SHARDS = 16  # more shards than this are merged into one when a library loads
_MFCC_BATCH = 32  # clips per MFCC call, so it compiles once


def default_cache_dir() -> pathlib.Path:
  """`library/` in the user's s2s_jax cache (`util.caches.cache_dir`)."""
  return caches.cache_dir("library")


def voice_keys(voices: np.ndarray) -> np.ndarray:
  """Voices `[n, 155]` -> `[n, 16]` uint8 digests of their played sound bytes (name ignored)."""
  sounds = params.clamp_voice(voices)[:, :params.NUM_SOUND_BYTES]
  return np.array([np.frombuffer(hashlib.blake2b(s.tobytes(), digest_size=16).digest(),
                                 np.uint8) for s in sounds]).reshape(-1, 16)


def summarise(audio: np.ndarray) -> np.ndarray:
  """Clips `[n, samples]` -> MFCC summaries `[n, blocks, 13]` float32."""
  batch = 1 if len(audio) == 1 else _MFCC_BATCH  # one clip (a sound to match) is not padded
  return pool(mfccd.mfcc_batched(audio, n_mfcc=N_MFCC, batch_size=batch))


def pool(mfcc: np.ndarray, frames: int = POOL_FRAMES) -> np.ndarray:
  """MFCC `[n, time, k]` -> block means `[n, ceil(time / frames), k]` float32."""
  n, time_, k = mfcc.shape
  blocks = -(-time_ // frames)
  padded = np.concatenate([mfcc, np.repeat(mfcc[:, -1:], blocks * frames - time_, 1)], 1)
  return padded.reshape(n, blocks, frames, k).mean(2, dtype=np.float32)


def summary_distance(library: np.ndarray, target: np.ndarray) -> np.ndarray:
  """MFCCD-like distance of summaries `[n, blocks, k]` to one `[blocks, k]` -> `[n]` float32."""
  squared = np.square(library - target[None], dtype=np.float32)
  return np.sqrt(squared.mean(1)).mean(1)


@dataclasses.dataclass(frozen=True, eq=False)
class Library:
  """Distinct voices and their summaries.

  Attributes:
    voices: `[n, 155]` uint8, as Dexed plays them, named as first found.
    features: `[n, blocks, 13]` float32 MFCC summaries of their renderings.
    sources: per voice, "folder/file.syx:slot" (1-based slot) of its first appearance.
  """
  voices: np.ndarray
  features: np.ndarray
  sources: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.voices)

  @functools.cached_property
  def _squares(self) -> np.ndarray:
    """`[n, 13]` sum over blocks of each summary's squares."""
    return np.square(self.features).sum(1)

  @property
  def algorithms(self) -> np.ndarray:
    """`[n]` 1-based DX7 algorithm of each voice."""
    return params.algorithm_of(self.voices)

  def nearest(self, audio: np.ndarray, count: int,
              algorithms: Sequence[int] | None = None) -> np.ndarray:
    """Indices of the `count` voices nearest to clip `[samples]`, nearest first, only of the
    1-based `algorithms` if given."""
    target = summarise(np.asarray(audio)[None])[0]
    # summary_distance, expanded: sum_b (f - t)^2 = sum_b f^2 - 2 sum_b f t + sum_b t^2, with
    # sum_b f^2 computed once; one pass over the features, no temporaries (5x faster).
    squared = self._squares - 2 * np.einsum("nbk,bk->nk", self.features, target) + np.square(
        target).sum(0)
    distance = np.sqrt(np.maximum(squared, 0) / self.features.shape[1]).mean(1)
    if algorithms is not None:
      distance = np.where(np.isin(self.algorithms, algorithms), distance, np.inf)
    count = min(count, int(np.isfinite(distance).sum()))
    nearest = np.argpartition(distance, count - 1)[:count] if count else np.zeros(0, int)
    return nearest[np.argsort(distance[nearest], kind="stable")]


def read_voices(folders: Sequence[str | os.PathLike]) -> tuple[np.ndarray, tuple[str, ...]]:
  """The distinct played voices `[n, 155]` of folder trees of .syx, and where each was first
  found. Raises NotADirectoryError for a missing folder."""
  voices, sources = [], []
  for folder in folders:
    corpus = corpus_lib.read_corpus(folder)
    for v, slot in enumerate(corpus.first_slot):
      file_ = corpus.slot_file[slot]
      voices.append(corpus.voices[v])
      start = np.searchsorted(corpus.slot_file, file_)
      sources.append(f"{corpus.root / corpus.files[file_]}:{slot - start + 1}")
  if not voices:
    return np.zeros((0, params.VOICE_BYTES), np.uint8), ()
  voices = params.clamp_voice(np.stack(voices))
  _, first = np.unique(voice_keys(voices), axis=0, return_index=True)
  first = np.sort(first)
  return voices[first], tuple(sources[i] for i in first)


class FeatureCache:
  """Summaries on disk, keyed by voice content, in a folder per render and feature settings.

  Args:
    root: the cache folder (default `default_cache_dir()`).
    renderer: its engine and settings name the folder.
  """

  def __init__(self, renderer: R.Renderer, root: str | os.PathLike | None = None):
    self.root = pathlib.Path(root) if root else default_cache_dir()
    description = {"engine": _engine(renderer), "render": dataclasses.asdict(renderer.settings),
                   "n_mfcc": N_MFCC, "pool_frames": POOL_FRAMES, "version": FEATURE_VERSION}
    digest = hashlib.blake2b(json.dumps(description, sort_keys=True).encode(), digest_size=8)
    self.folder = self.root / digest.hexdigest()
    self._description = description

  def load(self) -> tuple[np.ndarray, np.ndarray]:
    """Every cached (keys `[m, 16]` uint8, summaries `[m, blocks, 13]` float32); unreadable
    shards are skipped (their voices are rendered again)."""
    keys, features = [], []
    for shard in sorted(self.folder.glob("shard-*.npz")):
      try:
        with np.load(shard) as data:
          keys.append(data["keys"])
          features.append(data["features"].astype(np.float32))
      except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        continue
    if not keys:
      return np.zeros((0, 16), np.uint8), np.zeros((0, 0, N_MFCC), np.float32)
    keys, features = np.concatenate(keys), np.concatenate(features)
    _, first = np.unique(keys, axis=0, return_index=True)
    return keys[first], features[first]

  def add(self, keys: np.ndarray, features: np.ndarray) -> pathlib.Path:
    """Writes one shard atomically; returns its path."""
    description = self.folder / "settings.json"
    if not description.exists():
      files.write_atomic(description, json.dumps(self._description, indent=2).encode())
    name = hashlib.blake2b(keys.tobytes(), digest_size=8).hexdigest()
    path = self.folder / f"shard-{name}.npz"
    data = io.BytesIO()
    np.savez(data, keys=keys, features=features.astype(np.float16))  # 1e-3 relative: ample
    files.write_atomic(path, data.getvalue())
    return path

  def compact(self) -> None:
    """Merges the shards into one when there are more than `MAX_SHARDS`."""
    shards = sorted(self.folder.glob("shard-*.npz"))
    if len(shards) <= MAX_SHARDS:
      return
    keys, features = self.load()
    merged = self.add(keys, features)
    for shard in shards:
      if shard != merged:
        shard.unlink(missing_ok=True)


def build_library(folders: Sequence[str | os.PathLike], renderer: R.Renderer,
                  cache_dir: str | os.PathLike | None = None,
                  progress: Callable[[str], None] | None = None) -> Library:
  """The library of folder trees of .syx files (NotADirectoryError if one is missing); see
  `library_of`."""
  voices, sources = read_voices(folders)
  return library_of(voices, sources, renderer, cache_dir, progress)


def library_of(voices: np.ndarray, sources: Sequence[str], renderer: R.Renderer,
               cache_dir: str | os.PathLike | None = None,
               progress: Callable[[str], None] | None = None) -> Library:
  """A library of distinct played voices `[n, 155]`: new ones rendered and cached.

  Args:
    voices: distinct as Dexed plays them (`read_voices` makes them so).
    sources: where each voice came from.
    renderer: renders new voices; its settings are part of the cache key.
    cache_dir: where summaries are kept (default `default_cache_dir()`).
    progress: called with a line of text per shard rendered (default: stderr).
  """
  progress = _print_to_stderr if progress is None else progress
  keys = voice_keys(voices)
  cache = FeatureCache(renderer, cache_dir)
  cached_keys, cached = cache.load()
  known = dict(zip((k.tobytes() for k in cached_keys), cached))
  missing = [i for i, k in enumerate(keys) if k.tobytes() not in known]
  if missing:
    started = time.perf_counter()
    progress(f"library: {len(voices)} distinct voices, rendering {len(missing)} not in the "
             f"cache {cache.folder}")
    for done in range(0, len(missing), SHARD_VOICES):
      chunk = np.array(missing[done:done + SHARD_VOICES])
      features = summarise(R.render_batch(renderer, voices[chunk]))
      features = features.astype(np.float16).astype(np.float32)  # as the cache keeps them
      cache.add(keys[chunk], features)
      known.update(zip((k.tobytes() for k in keys[chunk]), features))
      progress(f"library: {done + len(chunk)}/{len(missing)} rendered "
               f"({time.perf_counter() - started:.0f} s)")
    cache.compact()
  features = (np.stack([known[k.tobytes()] for k in keys]) if len(keys)
              else np.zeros((0, 0, N_MFCC), np.float32))
  return Library(voices=np.asarray(voices, np.uint8), features=features, sources=tuple(sources))


def _print_to_stderr(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def _engine(renderer: R.Renderer) -> str:
  """What renders: the renderer's class and, for dexed-py, its version."""
  if isinstance(renderer, R.DexedRenderer):
    from importlib import metadata  # pylint: disable=import-outside-toplevel
    return f"dexed-py {metadata.version('dexed-py')}"
  return f"{type(renderer).__name__} {getattr(renderer, '_path', '')}"

