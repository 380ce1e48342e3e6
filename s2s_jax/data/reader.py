"""Reading `dexed_presets` with grain: no TensorFlow, random access, per-host shards."""

from __future__ import annotations

import os

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds

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


class _TrainingArrays(grain.transforms.Map):
  """Keeps the arrays the training step needs."""

  def map(self, example: dict) -> dict[str, np.ndarray]:
    return {key: np.asarray(example[key]) for key in TRAINING_KEYS}


def loader(source, batch_size: int, *, seed: int = 0, shuffle: bool = True,
           num_epochs: int | None = 1, shard_index: int | None = None,
           shard_count: int | None = None, worker_count: int = 0,
           batch_operations: tuple[grain.transforms.Map, ...] = ()) -> grain.DataLoader:
  """Batches `[batch_size, ...]` of `TRAINING_KEYS` from this host's shard of `source`.

  `batch_operations` run on each batch after batching (e.g. decoding the audio).

  Each host reads a disjoint shard (default: `jax.process_index()` of
  `jax.process_count()`), so a multi-host job sees every example once per epoch.
  """
  shard = grain.sharding.ShardOptions(
      shard_index=jax.process_index() if shard_index is None else shard_index,
      shard_count=jax.process_count() if shard_count is None else shard_count,
      drop_remainder=True)
  sampler = grain.samplers.IndexSampler(num_records=len(source), shard_options=shard,
                                        shuffle=shuffle, num_epochs=num_epochs, seed=seed)
  return grain.DataLoader(data_source=source, sampler=sampler, worker_count=worker_count,
                          operations=[_TrainingArrays(),
                                      grain.transforms.Batch(batch_size, drop_remainder=True),
                                      *batch_operations])
