"""Top-k decoding: the k most probable voices under the network's per-parameter probabilities.

The network predicts each parameter independently, so a voice's probability is the product
of its classes' probabilities. The most probable voice takes every parameter's best class; the
next ones trade the cheapest losses in log-probability. They are enumerated exactly, best first,
by a lazy best-first search over rank vectors: a state's successors raise the rank of its last
changed parameter, or move one later parameter from its best class to its second, so every
rank vector is reached once and never before a better one.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from s2s_jax.synth.space import ParameterSpace


def top_k_classes(probabilities: np.ndarray, space: ParameterSpace, k: int) -> np.ndarray:
  """Class probabilities `[total_classes]` -> the k most probable class vectors `[k, num_params]`.

  Rows are in decreasing probability; the first is every parameter's most likely class.
  """
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  blocks = space.blocks(np.asarray(probabilities, np.float64))
  order = [np.argsort(-block, kind="stable") for block in blocks]
  # cost[p][r]: log-probability lost by taking parameter p's r-th best class instead of its best.
  cost = [np.log(np.maximum(block[o[0]], 1e-300)) - np.log(np.maximum(block[o], 1e-300))
          for block, o in zip(blocks, order)]
  num_params = len(blocks)
  ranks = np.zeros(num_params, np.int64)
  heap = [(0.0, 0, -1, ranks)]  # (cost, tie-break, last changed parameter, ranks)
  counter = 1
  found = []
  while heap and len(found) < k:
    total, _, last, ranks = heapq.heappop(heap)
    found.append(ranks)
    successors = []
    if last >= 0 and ranks[last] + 1 < len(cost[last]):
      successors.append(last)
    successors += [p for p in range(last + 1, num_params) if len(cost[p]) > 1]
    for p in successors:
      new = ranks.copy()
      new[p] += 1
      heapq.heappush(heap, (total + cost[p][new[p]] - cost[p][ranks[p]], counter, p, new))
      counter += 1
  return np.array([[order[p][r[p]] for p in range(num_params)] for r in found], np.int32)


def top_algorithms(probabilities: np.ndarray, space: ParameterSpace, allowed: Sequence[int],
                   count: int) -> list[int]:
  """The `count` most probable of the `allowed` 1-based algorithms under a network that
  predicts ALGORITHM (`space.predict_algorithm`), most probable first."""
  block = space.blocks(np.asarray(probabilities))[space.names.index("ALGORITHM")]
  allowed = np.asarray(sorted(allowed))
  order = np.argsort(-block[allowed - 1], kind="stable")
  return allowed[order[:count]].tolist()


def top_k_given_algorithm(probabilities: np.ndarray, space: ParameterSpace, algorithm: int,
                          k: int) -> np.ndarray:
  """The k most probable class vectors `[k, num_params]` whose ALGORITHM is `algorithm`."""
  blocks = space.blocks(np.array(probabilities, np.float64))
  index = space.names.index("ALGORITHM")
  blocks[index][:] = 0.0
  blocks[index][algorithm - 1] = 1.0
  return top_k_classes(np.concatenate(blocks), space, k)
