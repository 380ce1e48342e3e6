"""Renderers: a DX7 voice -> audio, played and recorded as an `audio.clip.ClipSpec` says.

`DexedRenderer` (default) embeds Dexed's own engine through dexed-py;
`DawDreamerRenderer` hosts a user's Dexed VST3 through DawDreamer.

Level policy: renderers return the engine's raw output as float32, never
clipped nor normalised. Dexed's output exceeds [-1, 1] (median peak about 1.6,
up to about 4.2 on real cartridges); loudness is part of the sound, features
are computed on this scale, and the audibility threshold is on this scale.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

import dexed
import numpy as np

from s2s_jax.audio.clip import ClipSpec
from s2s_jax.synth import host
from s2s_jax.synth import params

_ALL_OPERATORS_ON = b"\x3f"
T = TypeVar("T")
U = TypeVar("U")


class Renderer(Protocol):
  """Renders DX7 voices with fixed `settings`."""

  settings: ClipSpec
  thread_safe: bool  # may `render` run on several threads at once?

  def render(self, voice: np.ndarray) -> np.ndarray:
    """Voice `[155]` uint8 -> mono audio `[settings.num_samples]` float32."""

  def with_settings(self, settings: ClipSpec) -> Renderer:
    """The same engine playing voices with other settings."""


def _fit(audio: np.ndarray, num_samples: int) -> np.ndarray:
  """Crops or zero-pads `[samples]` to exactly `num_samples`."""
  audio = np.asarray(audio, dtype=np.float32)[:num_samples]
  return np.pad(audio, (0, num_samples - audio.shape[0]))


class DexedRenderer:
  """Dexed's engine embedded through dexed-py, one synth per thread.

  Every render loads the whole voice (all operators on) into the thread's synth
  and starts a fresh note, so nothing carries over between renders.
  """

  thread_safe = True

  def __init__(self, settings: ClipSpec = ClipSpec()):
    self.settings = settings
    self._local = threading.local()

  def __getstate__(self):  # picklable for Beam workers: each builds its own synths
    return {"settings": self.settings}

  def __setstate__(self, state):
    self.__init__(state["settings"])

  def with_settings(self, settings: ClipSpec) -> DexedRenderer:
    return DexedRenderer(settings)

  def _synth(self) -> dexed.DexedSynth:
    if not hasattr(self._local, "synth"):
      self._local.synth = dexed.DexedSynth(float(self.settings.sample_rate))
    return self._local.synth

  def render(self, voice: np.ndarray) -> np.ndarray:
    synth = self._synth()
    synth.load_patch(dexed.Patch.from_sysex(bytes(params.clamp_voice(voice)) + _ALL_OPERATORS_ON))
    s = self.settings
    audio = synth.render(s.note, s.velocity, s.note_seconds, s.render_seconds)
    return _fit(audio, s.num_samples)


class DawDreamerRenderer:
  """A user's Dexed VST3 (or other plug-in build) hosted by DawDreamer.

  Parameters are resolved by name, so Dexed 0.9.7 (155 parameters) and 0.9.8+
  (156, `MonoMode` at index 3) both work; plug-in-only controls are set to the
  neutral values of `params.DEXED_PARAMS`. Renders channel 0.
  """

  thread_safe = False

  def __init__(self, plugin_path: str | os.PathLike,
               settings: ClipSpec = ClipSpec(), block_size: int = 512):
    import dawdreamer  # pylint: disable=import-outside-toplevel

    path = pathlib.Path(plugin_path).expanduser()
    if not path.exists():
      raise FileNotFoundError(f"Dexed plug-in not found: {path}")
    self.settings = settings
    self._path, self._block_size = path, block_size
    self._engine = dawdreamer.RenderEngine(settings.sample_rate, block_size)
    try:
      self._plugin = self._engine.make_plugin_processor("dexed", str(path))
    except Exception as e:  # DawDreamer raises plain Exceptions for unloadable files.
      raise ValueError(f"could not load {path} as an audio plug-in: {e}") from e
    names = [d["name"] for d in self._plugin.get_parameters_description()]
    self._indices = host.dawdreamer_indices(names, plugin=str(path))
    self._engine.load_graph([(self._plugin, [])])

  def with_settings(self, settings: ClipSpec) -> DawDreamerRenderer:
    return DawDreamerRenderer(self._path, settings, self._block_size)

  def render(self, voice: np.ndarray) -> np.ndarray:
    for index, value in host.dawdreamer_setting(voice, self._indices):
      self._plugin.set_parameter(index, value)
    s = self.settings
    self._plugin.clear_midi()
    self._plugin.add_midi_note(s.note, s.velocity, 0.0, s.note_seconds)
    self._engine.render(s.render_seconds)
    return _fit(self._engine.get_audio()[0], s.num_samples)


def map_with(renderer: Renderer, fn: Callable[[T], U], items: Iterable[T],
             workers: int | None = None) -> Iterator[U]:
  """`fn(item)` for each item, in order: on `workers` threads (default: all cores) when the
  renderer `fn` uses is thread-safe (dexed-py releases the GIL while it computes), otherwise
  serially on the calling thread, as plug-in hosts prefer."""
  workers = (workers or os.cpu_count() or 1) if renderer.thread_safe else 1
  if workers == 1:
    return map(fn, items)
  pool = concurrent.futures.ThreadPoolExecutor(workers)
  results = pool.map(fn, items)
  pool.shutdown(wait=False)  # map has already submitted every item
  return results


def render_batch(renderer: Renderer, voices: np.ndarray, workers: int | None = None) -> np.ndarray:
  """Renders voices `[n, 155]` -> audio `[n, samples]` float32, on all cores if it can."""
  voices = np.asarray(voices)
  audio = np.zeros((len(voices), renderer.settings.num_samples), np.float32)
  for i, clip in enumerate(map_with(renderer, renderer.render, voices, workers)):
    audio[i] = clip
  return audio


def peak(audio: np.ndarray) -> np.ndarray:
  """Peak absolute level `[...]` of audio `[..., samples]`."""
  return np.max(np.abs(audio), axis=-1)
