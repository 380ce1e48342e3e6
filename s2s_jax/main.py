"""The main job. Until training lands: summarise a preset corpus, build a dataset.

  python -m s2s_jax.main --workdir=workdir [--preset_dir=DIR] [--dataset_config=tiny]

Without --preset_dir it uses the built-in default data: random-walk presets
rendered through Dexed and kept when audible, written as 32-voice banks under
`workdir/random_presets/`, then read back like any user folder. It then builds
the `dexed_presets` dataset config under `workdir/tensorflow_datasets/` (the
preset folder is its manual directory, for configs with real presets).
"""

import json
import pathlib

from absl import app
from absl import flags
from absl import logging
import tensorflow_datasets as tfds

from s2s_jax.data import builder
from s2s_jax.synth import corpus
from s2s_jax.synth import generate
from s2s_jax.synth import render
from s2s_jax.synth import summary
from s2s_jax.synth import sysex

_WORKDIR = flags.DEFINE_string("workdir", "workdir", "Where outputs are written.")
_PRESET_DIR = flags.DEFINE_string("preset_dir", None, "A folder of .syx files; default: "
                                  "random presets generated into the workdir.")
_NUM_RANDOM = flags.DEFINE_integer("num_random_presets", 256, "Random presets to generate "
                                   "when no --preset_dir is given (rounded up to whole banks).")
_DATASET_CONFIG = flags.DEFINE_string("dataset_config", "tiny", "dexed_presets config to "
                                      "build; empty to skip the dataset.")
_SEED = flags.DEFINE_integer("seed", 20001101, "Seed of the random presets and of the split.")


def write_random_presets(folder: pathlib.Path, num_presets: int, seed: int) -> None:
  """Writes audible random-walk presets as 32-voice banks `random_NNN.syx`."""
  num_banks = -(-num_presets // 32)
  voices = generate.random_walk(render.DexedRenderer(), 32 * num_banks, seed)
  for bank in range(num_banks):
    sysex.write(folder / f"random_{bank:03d}.syx", sysex.bank_message(voices[32 * bank:32 * (bank + 1)]))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  workdir = pathlib.Path(_WORKDIR.value)
  if _PRESET_DIR.value:
    preset_dir = pathlib.Path(_PRESET_DIR.value)
  else:
    preset_dir = workdir / "random_presets"
    logging.info("generating %d random presets into %s", _NUM_RANDOM.value, preset_dir)
    write_random_presets(preset_dir, _NUM_RANDOM.value, _SEED.value)
  try:
    presets = corpus.read_corpus(preset_dir)
  except NotADirectoryError as e:
    raise app.UsageError(str(e)) from e
  result = summary.summarize(presets, seed=_SEED.value)
  print(summary.format_summary(result))
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "preset_summary.json").write_text(json.dumps(result, indent=2) + "\n")
  if _DATASET_CONFIG.value:
    dataset = builder.DexedPresetsBuilder(config=_DATASET_CONFIG.value,
                                          data_dir=str(workdir / "tensorflow_datasets"))
    dataset.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(preset_dir)))
    print(f"dataset {dataset.info.full_name} in {dataset.data_dir}: " + ", ".join(
        f"{name} {split.num_examples}" for name, split in dataset.info.splits.items()))


if __name__ == "__main__":
  app.run(main)
