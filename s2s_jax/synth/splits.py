"""Leak-free splits: near-duplicate voices are grouped, groups are split.

About a third of the distinct voices of a typical corpus have another voice
within three parameters, so a split by voice (or by file) leaks. Voices are
linked when they differ in at most `max_differences` of the 145 sound
parameters (compared as Dexed plays them, i.e. clamped), groups are the
connected components, and each group goes wholly to one split.
"""

from __future__ import annotations

import hashlib

import numpy as np

from s2s_jax.synth import params

SPLITS = ("train", "validation", "test")


class _DisjointSets:
  """Union-find over 0..n-1 with path halving."""

  def __init__(self, n: int):
    self.parent = np.arange(n)

  def find(self, i: int) -> int:
    parent = self.parent
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  def union(self, i: int, j: int) -> None:
    self.parent[self.find(i)] = self.find(j)


def near_duplicate_groups(voices: np.ndarray, max_differences: int = 3,
                          chunk: int = 512) -> np.ndarray:
  """Groups voices `[n, 155]` that differ in at most `max_differences` parameters.

  Two voices within d differences agree exactly on at least one of d + 1
  disjoint parameter blocks (pigeonhole), so only voices sharing a block are
  compared. Blocks interleave the parameters so none is dominated by common
  defaults.

  Returns:
    `[n]` group ids in 0..num_groups-1, numbered by each group's first voice.
  """
  sounds = params.clamp_voice(voices)[:, :params.NUM_SOUND_BYTES]
  sets = _DisjointSets(len(sounds))
  for block in range(max_differences + 1):
    keys = sounds[:, block::max_differences + 1]
    _, bucket, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    order = np.argsort(bucket.reshape(-1), kind="stable")
    ends = np.cumsum(counts)
    for b in np.nonzero(counts > 1)[0]:
      members = order[ends[b] - counts[b]:ends[b]]
      for start in range(0, len(members), chunk):
        rows = members[start:start + chunk]
        differences = (sounds[rows, None, :] != sounds[None, members, :]).sum(-1)
        for i, j in zip(*np.nonzero(differences <= max_differences)):
          sets.union(rows[i], members[j])
  roots = np.array([sets.find(i) for i in range(len(sounds))], dtype=np.int64)
  _, first, group = np.unique(roots, return_index=True, return_inverse=True)
  rank = np.empty_like(first)
  rank[np.argsort(first)] = np.arange(len(first))
  return rank[group.reshape(-1)]


def assign_splits(voices: np.ndarray, groups: np.ndarray, seed: int = 20001101,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> np.ndarray:
  """Assigns each group wholly to train, validation or test.

  A group's split is drawn from a hash of the seed and the group's smallest
  voice, so it depends only on the group itself, not on the rest of the
  corpus or the order of files.

  Args:
    voices: `[n, 155]` uint8.
    groups: `[n]` group ids from `near_duplicate_groups`.
    seed: different seeds give different, equally leak-free splits.
    fractions: expected share of groups per split, summing to 1.
  Returns:
    `[n]` int8 index into `SPLITS`.
  """
  if len(fractions) != len(SPLITS) or min(fractions) < 0 or not np.isclose(sum(fractions), 1):
    raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
  sounds = np.ascontiguousarray(params.clamp_voice(voices)[:, :params.NUM_SOUND_BYTES])
  keys = [min(group_keys) for group_keys in _keys_by_group(sounds, groups)]
  draws = np.array([_uniform(seed, key) for key in keys])
  group_split = np.searchsorted(np.cumsum(fractions)[:-1], draws, side="right")
  return group_split[groups].astype(np.int8)


def _keys_by_group(sounds: np.ndarray, groups: np.ndarray) -> list[list[bytes]]:
  members: list[list[bytes]] = [[] for _ in range(int(groups.max(initial=-1)) + 1)]
  for row, group in zip(sounds, groups):
    members[group].append(row.tobytes())
  return members


def _uniform(seed: int, key: bytes) -> float:
  digest = hashlib.blake2b(key, digest_size=8, key=str(seed).encode()).digest()
  return int.from_bytes(digest, "little") / 2.0**64
