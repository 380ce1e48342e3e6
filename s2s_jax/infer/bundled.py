"""The model shipped inside the package (`s2s_jax/bundled/`), and how a workdir becomes one.

A bundled model is a folder of three files: `config.json` (as a training workdir's),
`weights.msgpack` (the best variables, flax-serialised, in bfloat16) and `MODEL_CARD.md`.
`s2s-match` and `s2s-serve` load it when no `--model` is given.

  python -m s2s_jax.infer.bundled WORKDIR [--out DIR] [--overwrite]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from etils import epath
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.models import sound2synth
from s2s_jax.util import files as files_lib

BUNDLED_DIR = pathlib.Path(__file__).resolve().parent.parent / "bundled"
WEIGHTS_FILE = "weights.msgpack"


def export(workdir: str | pathlib.Path, out: pathlib.Path, overwrite: bool = False
           ) -> pathlib.Path:
  """Writes the best variables of `workdir` and its config to the folder `out`.

  Returns the weights file. OSError (FileExistsError) if `out` already holds a bundled
  model's files and not `overwrite`.
  """
  model = workdir_lib.load_model(workdir)
  out.mkdir(parents=True, exist_ok=True)
  files = [out / WEIGHTS_FILE, out / workdir_lib.CONFIG_FILE]
  existing = [str(f) for f in files if f.exists()]
  if existing and not overwrite:
    raise FileExistsError(f"{', '.join(existing)} already exist: pass --overwrite to replace")
  half = jax.tree.map(lambda x: np.asarray(x, jnp.bfloat16), model.variables)
  files_lib.write_atomic(files[0], flax.serialization.to_bytes(half))
  workdir_lib.write_config(epath.Path(out), model.config, model.clip, model.step)
  return files[0]


def load(folder: str | pathlib.Path = BUNDLED_DIR) -> workdir_lib.TrainedModel:
  """The bundled model of `folder` (default: the package's); ModelError if unusable (weights
  that do not fit the network: when `infer.Predictor` takes them)."""
  folder = pathlib.Path(folder)
  config_path, weights = folder / workdir_lib.CONFIG_FILE, folder / WEIGHTS_FILE
  if not config_path.is_file() or not weights.is_file():
    raise workdir_lib.ModelError(
        f"bundled model {folder}: missing {config_path.name} or {weights.name} (give --model "
        "WORKDIR, or reinstall the package)")
  try:
    config, clip, step = workdir_lib.read_config(config_path)
    sound2synth.create_model(config, workdir_lib.parameter_space(config))  # a usable config
    state = flax.serialization.msgpack_restore(weights.read_bytes())
  except (ValueError, KeyError, AttributeError, TypeError) as e:
    raise workdir_lib.ModelError(f"bundled model {folder}: unusable ({e})") from None
  # Widened on the host and moved in one transfer: on the device, each weight shape would
  # compile a program of its own. `infer.Predictor` checks that they fit the network.
  variables = jax.device_put(jax.tree.map(lambda x: np.asarray(x, np.float32), state))
  return workdir_lib.TrainedModel(workdir=folder, config=config, clip=clip,
                                  algorithm=workdir_lib.model_algorithm(config),
                                  variables=variables, step=step or 0)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m s2s_jax.infer.bundled",
                                   description="Exports a training workdir as a bundled model.")
  parser.add_argument("workdir", help="a training workdir (config.json and best/)")
  parser.add_argument("--out", type=pathlib.Path, default=BUNDLED_DIR,
                      help=f"folder to write (default {BUNDLED_DIR})")
  parser.add_argument("--overwrite", action="store_true", help="replace a bundled model there")
  args = parser.parse_args(argv)
  try:
    weights = export(args.workdir, args.out, args.overwrite)
  except (workdir_lib.ModelError, OSError) as e:
    print(f"bundled: error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB) and "
        f"{weights.with_name(workdir_lib.CONFIG_FILE)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
