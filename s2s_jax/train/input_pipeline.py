"""Training input: this host's batches from a built `dexed_presets` config, or rendered online.

Online runs with `config.online.build_dataset` False build nothing: their splits come from the
preset folder `config.manual_dir`, held in memory (`preset_splits.MemorySplits`).

Every batch is `{"audio": float32 [batch, samples], "labels": int32 [batch, num_params],
"weights": float32 [batch, num_params]}` on the host; the training step featurises on the device.
"""

from __future__ import annotations

import json
import os
import pathlib

import grain
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from s2s_jax.audio import storage
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.data import builder
from s2s_jax.data import reader
from s2s_jax.infer import workdir
from s2s_jax.synth import render as R
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import online
from s2s_jax.train import preset_splits

Dataset = pathlib.Path | preset_splits.MemorySplits  # a built dataset's folder, or in memory

BATCH_KEYS = ("audio", "labels", "weights")


def _builder(config: ml_collections.ConfigDict) -> builder.DexedPresetsBuilder:
  return builder.DexedPresetsBuilder(config=config.dataset_config,
                                     data_dir=os.path.expanduser(config.data_dir),
                                     file_format="array_record")


def _is_built(dataset: builder.DexedPresetsBuilder) -> bool:
  return (pathlib.Path(dataset.data_dir) / "dataset_info.json").exists()


def data_dir(config: ml_collections.ConfigDict, workdir) -> str:
  """Where a run's dataset lives: `config.data_dir`, or `workdir/tensorflow_datasets` if empty."""
  return config.data_dir or str(workdir / "tensorflow_datasets")


def _in_memory(config: ml_collections.ConfigDict) -> bool:
  return config.input == "online" and not config.online.get("build_dataset", True)


def check_dataset(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError, naming the setting, if `prepared_dataset` could not succeed."""
  builder.builder_config(config.dataset_config)
  if _in_memory(config):
    if config.online.mode != "augment" or not builder.builder_config(
        config.dataset_config).mix.real:
      raise ValueError("config.online.build_dataset=False needs config.online.mode='augment' "
                       "and a dataset config of real presets (e.g. 'all')")
    if not config.manual_dir or not os.path.isdir(os.path.expanduser(config.manual_dir)):
      raise ValueError(f"config.manual_dir {config.manual_dir!r} must be a folder of .syx "
                       "presets (config.online.build_dataset=False reads it directly)")
    return
  if "://" in config.data_dir:
    raise ValueError(f"config.data_dir {config.data_dir!r} must be a local folder: ArrayRecord "
                     "reads local files only; copy the built dataset there first (launch/README.md)")
  dataset = _builder(config)
  if _is_built(dataset):
    if config.num_bins != dataset.builder_config.num_bins:
      raise ValueError(f"config.num_bins={config.num_bins} but {dataset.data_dir} was built "
                       f"with {dataset.builder_config.num_bins} bins per continuous parameter")
    return
  if jax.process_count() > 1:
    raise ValueError(f"dataset {dataset.info.full_name} is not built under {config.data_dir}: "
                     "build it before a multi-host run (tfds build, or launch/)")
  if dataset.builder_config.mix.real:
    if not config.manual_dir:
      raise ValueError(f"dataset config {config.dataset_config!r} is not built under "
                       f"{config.data_dir} and reads real presets: it needs config.manual_dir "
                       "(a folder of .syx files)")
    if not os.path.isdir(os.path.expanduser(config.manual_dir)):
      raise ValueError(f"config.manual_dir {config.manual_dir!r} is not a folder")


def training_clip(config: ml_collections.ConfigDict) -> ClipSpec:
  """The clip a run trains on: its built dataset's (`reader.dataset_clip`), else (not built
  yet, or online input) its dataset config's."""
  dataset = _builder(config)
  if config.input == "dataset" and _is_built(dataset):
    return reader.dataset_clip(dataset.data_dir)
  return dataset.builder_config.clip


def prepared_dataset(config: ml_collections.ConfigDict) -> Dataset:
  """The version folder of `config.dataset_config` under `config.data_dir`, built if missing;
  or, with `config.online.build_dataset` False, the preset folder's splits in memory.

  Only a single-process job builds; a multi-host job expects the dataset built beforehand
  (`tfds build dexed_presets` or `launch/` for a distributed build). See `check_dataset`.
  """
  check_dataset(config)
  if _in_memory(config):
    return preset_splits.load(config.manual_dir, builder.builder_config(config.dataset_config).mix,
                              workdir.parameter_space(config),
                              R.DexedRenderer(training_clip(config)),
                              config.online.eval_examples, config.seed)
  dataset = _builder(config)
  if not _is_built(dataset):
    dataset.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.expanduser(config.manual_dir) if config.manual_dir else None))
  return pathlib.Path(dataset.data_dir)


class _TrainingBatch(grain.transforms.Map):
  """Stored example batch -> `BATCH_KEYS` (audio decoded from its 16-bit storage)."""

  def map(self, batch: dict) -> dict[str, np.ndarray]:
    return {"audio": storage.decode_audio(batch["audio_pcm"], batch["audio_scales"]),
            "labels": batch["labels"].astype(np.int32),
            "weights": batch["gradient_weights"].astype(np.float32)}


class Batches:
  """An endless iterator of this host's training batches that checkpoints its position.

  Wraps a grain dataset iterator or an `online.OnlineSource`; `get_state` / `set_state`
  speak bytes (their JSON positions) so grain's orbax handler (`grain.checkpoint`) saves
  either, one file per process.
  """

  def __init__(self, iterator):
    self._iterator = iterator

  def __iter__(self) -> Batches:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self._iterator)
    return {key: batch[key] for key in BATCH_KEYS}

  def get_state(self) -> bytes:
    return json.dumps(self._iterator.get_state()).encode()

  def set_state(self, state: bytes) -> None:
    self._iterator.set_state(json.loads(state))

  def start_prefetch(self) -> None:
    """Called by grain's handler after a restore; the wrapped iterators prefetch by themselves."""

  def close(self) -> None:
    if isinstance(self._iterator, online.OnlineSource):
      self._iterator.close()


def train_batches(config: ml_collections.ConfigDict, dataset: Dataset | None,
                  space: ParameterSpace) -> Batches:
  """This host's rows of endless shuffled global batches of `config.per_step_batch_size`.

  From a dataset, the global batches are the same for any number of hosts (`reader.loader`).
  """
  if config.input == "online":
    batch_size = reader.local_batch_size(config.per_step_batch_size)
    settings = online.OnlineSettings(
        mode=config.online.mode, algorithm=workdir.model_algorithm(config),
        max_changes=config.online.max_changes, batch_size=batch_size,
        workers=config.online.workers or None, prefetch=config.online.prefetch,
        seed=config.seed)
    pool = (split_column(dataset, "train", "voice").astype(np.uint8)
            if config.online.mode == "augment" else None)
    return Batches(online.OnlineSource(settings, pool, space=space,
                                       renderer=R.DexedRenderer(training_clip(config))))
  batches = reader.loader(reader.data_source(dataset, "train"), config.per_step_batch_size,
                          seed=config.seed, num_epochs=None, batch_operations=(_TrainingBatch(),))
  return Batches(iter(batches))


def split_column(dataset: Dataset, split: str, key: str) -> np.ndarray:
  """One feature of every example of a split, stacked: `[examples, ...]`."""
  if isinstance(dataset, preset_splits.MemorySplits):
    return dataset.splits[split][key]
  source = reader.data_source(dataset, split)
  return np.stack([np.asarray(source[i][key]) for i in range(len(source))])


def num_examples(dataset: Dataset, split: str) -> int:
  if isinstance(dataset, preset_splits.MemorySplits):
    return len(dataset.splits[split]["voice"])
  return len(reader.data_source(dataset, split))


def eval_batches(dataset: Dataset, split: str, batch_size: int):
  """One pass over a split in order, in batches of `batch_size` padded to full size.

  Yields `BATCH_KEYS` plus "mask" float32 [batch] (0 for padding rows) and "algorithm" int32
  [batch] (1-based).
  Every host reads the whole split (evaluation runs on the primary host's view).
  """
  if isinstance(dataset, preset_splits.MemorySplits):
    arrays = dataset.splits[split]
    for start in range(0, len(arrays["voice"]), batch_size):
      batch = {key: arrays[key][start:start + batch_size]
               for key in BATCH_KEYS + ("algorithm",)}
      batch["mask"] = np.ones(len(batch["labels"]), np.float32)
      yield {key: _pad(value, batch_size) for key, value in batch.items()}
    return
  source = reader.data_source(dataset, split)
  for start in range(0, len(source), batch_size):
    rows = [source[i] for i in range(start, min(start + batch_size, len(source)))]
    stacked = {key: np.stack([np.asarray(row[key]) for row in rows])
               for key in ("audio_pcm", "audio_scales", "labels", "gradient_weights",
                           "algorithm")}
    batch = _TrainingBatch().map(stacked)
    batch["algorithm"] = stacked["algorithm"].astype(np.int32)
    batch["mask"] = np.ones(len(rows), np.float32)
    yield {key: _pad(value, batch_size) for key, value in batch.items()}


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  """Zero rows appended up to `size`."""
  padding = [(0, size - len(x))] + [(0, 0)] * (x.ndim - 1)
  return np.pad(x, padding)
