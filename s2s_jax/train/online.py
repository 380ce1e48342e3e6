"""Online training data: fresh Dexed renders, batched like the on-disk dataset.

`OnlineSource` draws voices (from the prior, or as mutations of a pool of real
voices), renders them on worker threads while the accelerator trains, and yields
batches in the format the training step takes from the disk dataset once decoded.
Batch i of a host depends only on (seed, process index, i), never on the number of
workers or on timing, so a restored position (`get_state`/`set_state`) replays
exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
from typing import Literal

import jax
import numpy as np

from s2s_jax.audio import storage
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.synth.space import ParameterSpace

THREAD_NAME_PREFIX = "s2s-online"


@dataclasses.dataclass(frozen=True)
class OnlineSettings:
  """What an online source draws and how it renders.

  Attributes:
    mode: "random" draws voices from the prior (`generate.sample_voice`); "augment"
      redraws 1..max_changes parameters of a pool voice (`generate.mutate`), as the
      dataset's augmentations do.
    algorithm: 1-based DX7 algorithm of every voice, or None for any.
    max_changes: most parameters an "augment" variant changes.
    batch_size: examples per batch, per host.
    workers: render threads (default: all cores); 1 if the renderer is not thread-safe.
    prefetch: batches rendered ahead of the one being consumed.
    seed: with the process index and the batch index, fixes every batch.
    store_like_dataset: pass audio through the dataset's 16-bit storage round trip.
    include_voice: add the voices `[batch, 155]` uint8 to each batch as "voice".
    min_peak: audibility threshold; inaudible candidates are redrawn.
    max_tries: candidates drawn per example before giving up.
  """

  mode: Literal["random", "augment"] = "random"
  algorithm: int | None = None
  max_changes: int = 3
  batch_size: int = 32
  workers: int | None = None
  prefetch: int = 2
  seed: int = 0
  store_like_dataset: bool = True
  include_voice: bool = False
  min_peak: float = 0.01
  max_tries: int = 100

  def __post_init__(self):
    if self.mode not in ("random", "augment"):
      raise ValueError(f"mode must be 'random' or 'augment', got {self.mode!r}")
    if self.algorithm is not None and not 1 <= self.algorithm <= params.NUM_ALGORITHMS:
      raise ValueError(f"algorithm must be 1..32 (1-based) or None, got {self.algorithm}")
    if not 1 <= self.max_changes <= len(generate.MUTABLE_PARAMS):
      raise ValueError(f"max_changes must be 1..{len(generate.MUTABLE_PARAMS)}, "
                       f"got {self.max_changes}")
    if self.batch_size < 1 or (self.workers is not None and self.workers < 1):
      raise ValueError(f"need batch_size >= 1 and workers >= 1, got {self.batch_size}, "
                       f"{self.workers}")
    if self.prefetch < 0 or self.seed < 0 or self.max_tries < 1:
      raise ValueError(f"need prefetch >= 0, seed >= 0 and max_tries >= 1, got "
                       f"{self.prefetch}, {self.seed}, {self.max_tries}")


@dataclasses.dataclass
class _Pending:
  """A batch being rendered: buffers its examples fill, and their jobs."""

  index: int
  voices: np.ndarray  # [batch, 155] uint8
  audio: np.ndarray  # [batch, samples] float32
  jobs: list[concurrent.futures.Future]


class OnlineSource:
  """An endless iterator of freshly rendered batches, this host's share.

  Each batch holds "audio" float32 `[batch, samples]`, "labels" int32 `[batch, 144]`,
  "weights" float32 `[batch, 144]` (all ones: gradient weights cost too much online)
  and "algorithm" int32 `[batch]` (1-based, as in the dataset), plus "voice" uint8
  `[batch, 155]` with `include_voice`. Every example is audible.
  """

  def __init__(self, settings: OnlineSettings, pool: np.ndarray | None = None, *,
               renderer: R.Renderer | None = None,
               space: ParameterSpace = ParameterSpace(),
               process_index: int | None = None, process_count: int | None = None):
    """Starts nothing: rendering begins with the first batch asked for.

    Args:
      settings: what to draw and how.
      pool: `[n, 155]` voices to mutate in "augment" mode (e.g. the training split's
        real voices); only those of `settings.algorithm` are used when it is set.
      renderer: default: `render.DexedRenderer()`.
      space: labels are `space.encode(voices)`.
      process_index: this host (default `jax.process_index()`); hosts draw distinct batches.
      process_count: hosts in the job (default `jax.process_count()`).
    """
    self.settings = settings
    self.renderer = R.DexedRenderer() if renderer is None else renderer
    self.space = space
    self.process_index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    if not 0 <= self.process_index < count:
      raise ValueError(f"process_index must be in [0, {count}), got {self.process_index}")
    self._pool = self._check_pool(pool)
    workers = (settings.workers or os.cpu_count() or 1) if self.renderer.thread_safe else 1
    self._executor = concurrent.futures.ThreadPoolExecutor(workers, THREAD_NAME_PREFIX)
    self._pending: collections.deque[_Pending] = collections.deque()
    self._next_batch = 0  # the batch `next` returns
    self._next_submit = 0  # the first batch not yet submitted

  def _check_pool(self, pool: np.ndarray | None) -> np.ndarray | None:
    s = self.settings
    if s.mode == "random":
      if pool is not None:
        raise ValueError("a pool is only used in 'augment' mode")
      return None
    if pool is None or np.ndim(pool) != 2 or np.shape(pool)[1] != params.VOICE_BYTES:
      raise ValueError(f"'augment' mode needs a pool of voices [n, {params.VOICE_BYTES}], got "
                       f"{None if pool is None else np.shape(pool)}")
    pool = params.clamp_voice(pool)
    if s.algorithm is not None:
      pool = pool[params.algorithm_of(pool) == s.algorithm]
    if not len(pool):
      raise ValueError(f"the pool has no voice of algorithm {s.algorithm}")
    return pool

  def __iter__(self) -> OnlineSource:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    self._fill(max(self.settings.prefetch, 1))
    batch = self._pending.popleft()
    self._next_batch = batch.index + 1
    self._fill(self.settings.prefetch)  # renders ahead while the caller trains
    for job in batch.jobs:
      job.result()
    out = {
        "audio": batch.audio,
        "labels": self.space.encode(batch.voices),
        "weights": np.ones((len(batch.voices), self.space.num_params), np.float32),
        "algorithm": params.algorithm_of(batch.voices),
    }
    if self.settings.include_voice:
      out["voice"] = batch.voices
    return out

  def get_state(self) -> dict[str, int]:
    """The iterator's position, for checkpoints."""
    return {"next_batch": self._next_batch}

  def set_state(self, state: dict[str, int]) -> None:
    """Continues from a `get_state` position; renders ahead of it are dropped."""
    next_batch = int(state["next_batch"])
    if next_batch < 0:
      raise ValueError(f"next_batch must be >= 0, got {next_batch}")
    self._drop_pending()
    self._next_batch = self._next_submit = next_batch

  def close(self) -> None:
    """Drops renders ahead and joins the render threads."""
    self._drop_pending()
    self._executor.shutdown(wait=True, cancel_futures=True)

  def __enter__(self) -> OnlineSource:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def _drop_pending(self) -> None:
    for batch in self._pending:
      for job in batch.jobs:
        job.cancel()
    self._pending.clear()

  def _fill(self, depth: int) -> None:
    """Submits batches until `depth` are pending."""
    s = self.settings
    while len(self._pending) < depth:
      index = self._next_submit
      self._next_submit += 1
      batch = _Pending(index, np.zeros((s.batch_size, params.VOICE_BYTES), np.uint8),
                       np.zeros((s.batch_size, self.renderer.settings.num_samples), np.float32),
                       [])
      seeds = np.random.SeedSequence([s.seed, self.process_index, index]).spawn(s.batch_size)
      batch.jobs = [self._executor.submit(self._render_example, batch, j, seed)
                    for j, seed in enumerate(seeds)]
      self._pending.append(batch)

  def _render_example(self, batch: _Pending, j: int, seed: np.random.SeedSequence) -> None:
    """Fills example j of `batch` with the first audible candidate drawn from `seed`."""
    s = self.settings
    rng = np.random.default_rng(seed)
    for _ in range(s.max_tries):
      voice = self._draw(rng)
      audio = self.renderer.render(voice)
      if generate.is_audible(audio, s.min_peak):
        break
    else:
      raise RuntimeError(f"no audible voice in {s.max_tries} candidates "
                         f"(min_peak={s.min_peak}); lower min_peak or check the renderer")
    batch.voices[j] = voice
    batch.audio[j] = storage.as_stored(audio) if s.store_like_dataset else audio

  def _draw(self, rng: np.random.Generator) -> np.ndarray:
    """One candidate voice `[155]` uint8."""
    s = self.settings
    if s.mode == "random":
      return generate.sample_voice(rng, s.algorithm)
    voice = self._pool[rng.integers(len(self._pool))]
    return generate.mutate(voice, rng, int(rng.integers(1, s.max_changes + 1)))
