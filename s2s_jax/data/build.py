"""Builds `dexed_presets` without TensorFlow (array_record files).

  python -m s2s_jax.data.build --config=tiny [--manual_dir=PRESETS] [--data_dir=DIR] [--beam]

The same builder as `tfds build dexed_presets` (datasets/dexed_presets/). Rendering runs on
all cores; `--beam` runs the generation as an Apache Beam pipeline (DirectRunner here, with
one worker per core; pass other `--beam_pipeline_options` for Dataflow, Flink or Spark).
TFDS writes into an `incomplete.*` folder and renames it only when every split is done, so an
interrupted build never leaves a dataset that looks complete.

Quiet by default: a line as the build starts, a status line while it renders (voices done, rate,
time left; on a terminal only), the splits when done; `--verbose` adds absl and TFDS messages.
"""

import importlib.util
import os
import pathlib
import sys

from absl import app
from absl import flags
import tensorflow_datasets as tfds

from s2s_jax.data import builder
from s2s_jax.synth import corpus as C
from s2s_jax.util import console

_CONFIG = flags.DEFINE_enum("config", "tiny", [c.name for c in builder.BUILDER_CONFIGS],
                            "Builder config.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Folder tree of .syx presets; needed by every config but tiny "
    "(default: not set).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Where datasets are written (default: TFDS's, $TFDS_DATA_DIR or "
    "~/tensorflow_datasets).")
_BEAM = flags.DEFINE_bool("beam", False, "Generate with an Apache Beam pipeline.")
_BEAM_OPTIONS = flags.DEFINE_string(
    "beam_pipeline_options", None, "Comma-separated Beam options, e.g. 'runner=DataflowRunner,"
    "project=...'; implies --beam. Default with --beam: DirectRunner on all cores.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Also show absl and TFDS log messages.")


def beam_options(text: str | None):
  """Beam PipelineOptions from 'key=value,...' (DirectRunner on all cores when empty)."""
  beam = tfds.core.lazy_imports.apache_beam
  if text:
    return beam.options.pipeline_options.PipelineOptions([f"--{o}" for o in text.split(",")])
  return beam.options.pipeline_options.PipelineOptions(
      direct_num_workers=os.cpu_count(), direct_running_mode="multi_threading")


def _holds_presets(folder: str | None) -> bool:
  """Whether `folder` is a folder with a .syx file in it or below."""
  return bool(folder) and bool(C.find_syx_files(pathlib.Path(folder).expanduser())[0])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  console.quiet(_VERBOSE.value)
  use_beam = _BEAM.value or _BEAM_OPTIONS.value
  if use_beam and importlib.util.find_spec("apache_beam") is None:
    sys.exit("s2s_jax.data.build: error: --beam needs Apache Beam, in the [build] extra: "
             "pip install -e '.[build]' in the s2s_jax folder (or build without --beam)")
  dataset = builder.DexedPresetsBuilder(config=_CONFIG.value, data_dir=_DATA_DIR.value,
                                        file_format="array_record")
  download_config = tfds.download.DownloadConfig(
      manual_dir=_MANUAL_DIR.value and os.path.expanduser(_MANUAL_DIR.value),
      beam_options=beam_options(_BEAM_OPTIONS.value) if use_beam else None)
  if dataset.is_prepared():
    print(f"{dataset.info.full_name} is built already, in {dataset.data_dir}")
  elif dataset.builder_config.mix.real and not _holds_presets(_MANUAL_DIR.value):
    sys.exit(f"s2s_jax.data.build: error: --config={_CONFIG.value} reads your presets: "
             "--manual_dir must name a folder holding .syx files"
             + (f" ({_MANUAL_DIR.value} does not)" if _MANUAL_DIR.value else ""))
  else:  # the builder prints a line as it starts and one when done
    dataset.download_and_prepare(download_config=download_config)
  for name, split in dataset.info.splits.items():
    print(f"  {name:<11}{split.num_examples:>7} examples")


if __name__ == "__main__":
  app.run(main)
