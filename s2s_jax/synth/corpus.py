"""A preset corpus: every DX7 voice in a folder tree of `.syx` files.

Any folder works: 32-voice banks (including the `10 00` byte-count quirk) and
single voices are read; bad files are rejected with a reason, never a crash.
Voices recur across cartridges, so they are deduplicated on their 145 sound
parameters (as stored); each distinct voice keeps where it was found, and its
theme is the folder of the first file it was found in.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections import Counter

import numpy as np

from s2s_jax.synth import params
from s2s_jax.synth import sysex


@dataclasses.dataclass(frozen=True)
class Rejection:
  path: str  # relative to the corpus root
  reason: str  # one of `sysex.REJECT_REASONS`
  message: str


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
  """The voices of a preset folder.

  Attributes:
    root: the folder read.
    files: the valid files, as posix paths relative to `root`, sorted.
    rejected: the files that were not valid DX7 dumps.
    slots: `[num_slots, 155]` uint8, every voice slot of every valid file, as stored.
    slot_file: `[num_slots]` index into `files` of each slot.
    voices: `[num_voices, 155]` uint8, the distinct voices (named as first found).
    slot_voice: `[num_slots]` index into `voices` of each slot.
  """

  root: pathlib.Path
  files: tuple[str, ...]
  rejected: tuple[Rejection, ...]
  slots: np.ndarray
  slot_file: np.ndarray
  voices: np.ndarray
  slot_voice: np.ndarray

  @property
  def rejected_by_reason(self) -> dict[str, int]:
    return dict(sorted(Counter(r.reason for r in self.rejected).items()))

  @functools.cached_property
  def first_slot(self) -> np.ndarray:
    """`[num_voices]` the slot each distinct voice was first found in."""
    first = np.full(len(self.voices), len(self.slots))
    np.minimum.at(first, self.slot_voice, np.arange(len(self.slots)))
    return first

  @functools.cached_property
  def themes(self) -> tuple[str, ...]:
    """Per distinct voice: the folder (relative to root) of the file it was first found in."""
    file_themes = [str(pathlib.PurePosixPath(f).parent) for f in self.files]
    return tuple(file_themes[i] for i in self.slot_file[self.first_slot])

  @property
  def algorithms(self) -> np.ndarray:
    """`[num_voices]` 1-based DX7 algorithm of each distinct voice."""
    return params.algorithm_of(self.voices)


def find_syx_files(root: pathlib.Path) -> list[pathlib.Path]:
  """Every `.syx` file (any case) under `root`, sorted by path."""
  return sorted(p for p in root.rglob("*") if p.suffix.lower() == ".syx" and p.is_file())


def read_corpus(root: str | os.PathLike) -> Corpus:
  """Reads every `.syx` file under `root`.

  Raises:
    NotADirectoryError: `root` is not a folder.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise NotADirectoryError(f"preset folder not found: {root}")
  files, rejected, blocks = [], [], []
  for path in find_syx_files(root):
    relative = path.relative_to(root).as_posix()
    try:
      blocks.append(sysex.read(path))
    except sysex.SysexError as e:
      rejected.append(Rejection(relative, e.reason, str(e)))
      continue
    files.append(relative)
  slots = np.concatenate(blocks) if blocks else np.zeros((0, params.VOICE_BYTES), np.uint8)
  slot_file = np.repeat(np.arange(len(blocks), dtype=np.int32), [len(b) for b in blocks])
  _, first, slot_voice = np.unique(slots[:, :params.NUM_SOUND_BYTES], axis=0, return_index=True,
                                   return_inverse=True)
  order = np.argsort(first)  # distinct voices in order of first appearance
  rank = np.empty_like(order)
  rank[order] = np.arange(len(order))
  return Corpus(root=root, files=tuple(files), rejected=tuple(rejected), slots=slots,
                slot_file=slot_file, voices=slots[first[order]],
                slot_voice=rank[slot_voice.reshape(-1)])
