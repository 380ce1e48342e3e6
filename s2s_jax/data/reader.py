"""Reading `dexed_presets` with grain: no TensorFlow, random access, per-host batch slices."""

from __future__ import annotations

import json
import os

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds

from s2s_jax.audio.clip import ClipSpec

# What the training step needs of an example (text metadata stays on disk).
TRAINING_KEYS = ("audio_pcm", "audio_scales", "labels", "gradient_weights", "algorithm")


def data_source(dataset_dir: str | os.PathLike, split: str):
  """A random-access source over one split of a built dataset.

  Args:
    dataset_dir: the version folder, e.g. `~/tensorflow_datasets/dexed_presets/tiny/1.0.0`.
    split: "train", "validation" or "test" (TFDS slicing such as "train[:10%]" works).
  """
  path = os.path.expanduser(os.fspath(dataset_dir))
  return tfds.builder_from_directory(path).as_data_source(split=split)


def dataset_clip(dataset_dir: str | os.PathLike) -> ClipSpec:
  """The clip a built dataset's examples are rendered to, from its `metadata.json` (the
  paper's clip for a dataset built before the clip was recorded)."""
  path = os.path.join(os.path.expanduser(os.fspath(dataset_dir)), "metadata.json")
  with open(path) as f:
    return ClipSpec.from_dict(json.load(f).get("clip"))


def local_batch_size(global_batch_size: int, process_count: int | None = None) -> int:
  """A host's share of a global batch split evenly over `process_count` (default: JAX's) hosts."""
  count = jax.process_count() if process_count is None else process_count
  if global_batch_size % count:
    raise ValueError(f"batch size {global_batch_size} does not split over {count} hosts")
  return global_batch_size // count


def _training_arrays(source, rows: np.ndarray) -> dict[str, np.ndarray]:
  """The `TRAINING_KEYS` of examples `rows` of `source`, stacked: `[len(rows), ...]`."""
  examples = source.__getitems__([int(i) for i in rows])
  return {key: np.stack([np.asarray(example[key]) for example in examples])
          for key in TRAINING_KEYS}


def loader(source, batch_size: int, *, seed: int = 0, shuffle: bool = True,
           num_epochs: int | None = 1, process_index: int | None = None,
           process_count: int | None = None, read_threads: int = 4,
           batch_operations: tuple[grain.transforms.Map, ...] = ()) -> grain.IterDataset:
  """This host's rows of global batches `[batch_size, ...]` of `TRAINING_KEYS` from `source`.

  `batch_operations` run on each batch after reading (e.g. decoding the audio).

  The global batches do not depend on the number of hosts: every host walks the same
  shuffled order (reshuffled each epoch from `seed`) and host i of n (default: this JAX
  process) reads rows `i * batch_size / n` up to `(i + 1) * batch_size / n` of each. So n hosts
  train on exactly the batches one host would, and see every example once per epoch.
  The iterator's `get_state` / `set_state` give and take its position (a small dict).
  """
  process_index = jax.process_index() if process_index is None else process_index
  local = local_batch_size(batch_size, process_count)
  order = grain.MapDataset.range(len(source))
  if shuffle:
    order = order.shuffle(seed=seed)
  batches = (order.repeat(num_epochs).batch(batch_size, drop_remainder=True)
             .map(lambda rows: rows[process_index * local:(process_index + 1) * local])
             .map(lambda rows: _training_arrays(source, rows)))
  for operation in batch_operations:
    batches = batches.map(operation)
  return batches.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                                   prefetch_buffer_size=2 * read_threads))
