"""The `dexed_presets` TFDS builder: render once, store audio, labels and weights.

Like TFDS's `nsynth`, the expensive part (here, running Dexed) happens once at
build time. Each example stores the rendering as block-scaled 16-bit PCM
(`audio.storage`, 385.5 KB for 4 s), not features: the training step decodes it and
runs the same `featurise` as inference, on the device, so features at training
and inference are identical by construction.

`datasets/dexed_presets/` holds the folder `tfds build` runs in; it subclasses
this builder. `python -m s2s_jax.data.build` builds the same dataset with no
TensorFlow installed (array_record files).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import types

from etils import epath
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle

from s2s_jax.audio import storage
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.data import recipes
from s2s_jax.data import sources
from s2s_jax.data import weights as W
from s2s_jax.synth import corpus as C
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import render as R
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.util import console

CHUNK = 32  # voices rendered, encoded and weighted together


class _NeverRaised(Exception):
  """Stands for tf.errors.ResourceExhaustedError, which only TensorFlow's files raise."""


# TFDS spills examples beyond `shuffle.MAX_MEM_BUFFER_SIZE` (1 GB) to bucket files through
# `tf.io.gfile`, which fails with TensorFlow absent; epath opens the same paths without it.
shuffle.tf = types.SimpleNamespace(
    io=types.SimpleNamespace(gfile=types.SimpleNamespace(
        GFile=lambda path, mode: epath.Path(path).open(mode),
        exists=lambda path: epath.Path(path).exists(),
        remove=lambda path: epath.Path(path).unlink())),
    errors=types.SimpleNamespace(ResourceExhaustedError=_NeverRaised))


@dataclasses.dataclass(kw_only=True)
class DexedPresetsConfig(tfds.core.BuilderConfig):
  """A `recipes.DatasetRecipe` as TFDS reads it: sources, clip, labels, weights."""

  mix: sources.SourceMix = sources.SourceMix()
  clip: ClipSpec = ClipSpec()
  num_bins: int = 64
  weights: W.WeightSettings = W.WeightSettings()

  @classmethod
  def from_recipe(cls, recipe: recipes.DatasetRecipe) -> DexedPresetsConfig:
    return cls(**{field.name: getattr(recipe, field.name)
                  for field in dataclasses.fields(recipe)})


BUILDER_CONFIGS = [DexedPresetsConfig.from_recipe(recipe) for recipe in recipes.RECIPES]


def builder_config(name: str) -> DexedPresetsConfig:
  """The config called `name`; ValueError listing the names if there is none."""
  recipes.recipe(name)
  return next(config for config in BUILDER_CONFIGS if config.name == name)


class DexedPresetsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """DX7 voices rendered by Dexed, with their class labels and gradient-inspired weights."""

  name = "dexed_presets"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: 16-bit audio, labels, voice, weights, metadata."}
  BUILDER_CONFIGS = BUILDER_CONFIGS
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Configs with real presets read a folder tree of DX7 .syx files (32-voice banks or single "
      "voices) given as the manual directory: `tfds build dexed_presets --manual_dir=DIR` or "
      "`python -m s2s_jax.data.build --manual_dir=DIR`. `tiny` needs none.")

  def __init__(self, *, file_format: str | None = None, **kwargs):
    # array_record by default, so the TF-free reader (`data.reader`) loads every build.
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    num_params = ParameterSpace(config.num_bins).num_params
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n\n")[0],
        features=tfds.features.FeaturesDict({
            # Raw bytes: 1 ms to serialise against 42 ms as TFDS's default int64 list.
            "audio_pcm": tfds.features.Tensor(shape=(config.clip.num_samples,), dtype=np.int16,
                                              encoding=tfds.features.Encoding.BYTES),
            "audio_scales": tfds.features.Tensor(
                shape=(-(-config.clip.num_samples // storage.BLOCK_SIZE),), dtype=np.float32),
            "labels": tfds.features.Tensor(shape=(num_params,), dtype=np.int32),
            "voice": tfds.features.Tensor(shape=(params.VOICE_BYTES,), dtype=np.uint8),
            "gradient_weights": tfds.features.Tensor(shape=(num_params,), dtype=np.float32),
            "algorithm": tfds.features.Scalar(dtype=np.int32, doc="1-based DX7 algorithm"),
            "voice_name": tfds.features.Text(),
            "source_file": tfds.features.Text(),
            "theme": tfds.features.Text(),
            "group": tfds.features.Scalar(dtype=np.int64, doc="near-duplicate group"),
            "source": tfds.features.ClassLabel(names=sources.SOURCES),
        }),
        homepage="https://github.com/Sound2Synth/Sound2Synth",
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(sample_rate=config.clip.sample_rate,
                                        num_bins=config.num_bins, clip=config.clip.to_dict()),
        # Examples stay in generation order: readers shuffle (grain samplers do), and
        # skipping TFDS's hash-and-rewrite pass makes builds faster.
        disable_shuffling=True,
    )

  def _log_download_bytes(self) -> None:
    """One line as the build starts (TFDS's own speaks of a download that never happens)."""
    self._build_started = time.perf_counter()
    print(f"building dataset {self.info.full_name} in {self.data_dir} (rendering every voice)",
          flush=True)

  def _log_download_done(self) -> None:
    print(f"built dataset {self.info.full_name} in "
          f"{time.perf_counter() - self._build_started:.0f} s", flush=True)

  def _download_and_prepare(self, dl_manager, download_config):
    self._use_beam = bool(download_config.beam_runner or download_config.beam_options)
    self._status = None  # the status line of a build without Beam, from `_split_generators`
    try:
      with console.without_tfds_bars():
        return super()._download_and_prepare(dl_manager, download_config)
    finally:
      if self._status is not None:
        self._status.close()

  def _split_generators(self, dl_manager):
    config = self.builder_config
    corpus = C.read_corpus(dl_manager.manual_dir) if config.mix.real else None
    plan = sources.plan(config.mix, R.DexedRenderer(config.clip), corpus)
    plan = {name: planned for name, planned in plan.items() if len(planned)}
    if not self._use_beam:
      self._status = console.status(sum(map(len, plan.values())), config.name, "voices",
                                    counted=True)
    return {name: self._generate_examples(planned, name) for name, planned in plan.items()}

  def _generate_examples(self, planned: sources.Planned, split: str = ""):
    job = ChunkJob(self.builder_config, planned, R.DexedRenderer(self.builder_config.clip))
    starts = range(0, len(planned), CHUNK)
    if self._use_beam:
      beam = tfds.core.lazy_imports.apache_beam
      return beam.Create(list(starts)) | beam.FlatMap(job)
    return self._counted(job, starts, split)

  def _counted(self, job: ChunkJob, starts: range, split: str):
    """`job`'s examples, chunk after chunk, advancing the status line by the voices done."""
    for start in starts:
      self._status.set_description_str(f"{self.builder_config.name} {split}")
      yield from job(start)
      self._status.update(min(CHUNK, len(job.planned) - start))


@dataclasses.dataclass(frozen=True)
class ChunkJob:
  """Turns `CHUNK` planned voices from `start` into keyed examples (picklable for Beam)."""

  config: DexedPresetsConfig
  planned: sources.Planned
  renderer: R.DexedRenderer

  def __call__(self, start: int):
    config, planned, renderer = self.config, self.planned, self.renderer
    index = np.arange(start, min(start + CHUNK, len(planned)))
    rendered = R.map_with(renderer, lambda voice: _render_and_encode(renderer, voice),
                          planned.voices[index])  # encoding on the render threads too
    audio, pcm, scales = (np.stack(x) for x in zip(*rendered))
    audible = generate.is_audible(audio)
    if not audible.all():
      logging.info("skipping %d inaudible voices", int(np.sum(~audible)))
    index, audio, pcm, scales = index[audible], audio[audible], pcm[audible], scales[audible]
    space = ParameterSpace(config.num_bins)
    voices = planned.voices[index]
    gradient_weights = W.gradient_weights(space, voices, audio, renderer, config.weights,
                                          seed=config.mix.seed + start,
                                          spec=FeatureSpec(clip=config.clip))
    labels = space.encode(voices)
    for j, i in enumerate(index):
      yield int(i), {  # integer keys: examples are written in key order
          "audio_pcm": pcm[j], "audio_scales": scales[j], "labels": labels[j], "voice": voices[j],
          "gradient_weights": gradient_weights[j],
          "algorithm": int(params.algorithm_of(voices[j])),
          "voice_name": params.voice_name(voices[j]), "source_file": planned.source_file[i],
          "theme": planned.theme[i], "group": int(planned.group[i]),
          "source": sources.SOURCES[planned.source[i]],
      }


def _render_and_encode(renderer: R.Renderer, voice: np.ndarray):
  """Voice `[155]` -> (audio `[samples]`, int16 pcm `[samples]`, scales `[blocks]`)."""
  audio = renderer.render(voice)
  return (audio, *storage.encode_audio(audio))


_CITATION = """\
@inproceedings{chen2022sound2synth,
  title     = {Sound2Synth: Interpreting Sound via FM Synthesizer Parameters Estimation},
  author    = {Chen, Zui and Jing, Yansen and Yuan, Shengcheng and Xu, Yifei and Wu, Jian and
               Zhao, Hang},
  booktitle = {Proceedings of the Thirty-First International Joint Conference on
               Artificial Intelligence, {IJCAI-22}},
  pages     = {4921--4928},
  year      = {2022},
}"""
