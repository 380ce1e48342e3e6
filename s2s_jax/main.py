"""Trains SOUND2SYNTH: `python -m s2s_jax.main --config=configs/t6.py[:variant] --workdir=DIR`.

Override any setting with `--config.name=value` (e.g. `--config.dataset_config=alg21`). A run
resumes from the latest checkpoint in its workdir. Multi-host jobs (TPU pod slices, GPU
clusters) pass `--multihost` so every process joins `jax.distributed` first.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from s2s_jax.train import train

_WORKDIR = flags.DEFINE_string("workdir", "workdir", "Checkpoints, summaries and results.")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first "
                               "(the cluster environment gives the coordinator and ranks).")
config_flags.DEFINE_config_file("config", "configs/t6.py:tiny", "Training configuration.",
                                lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _MULTIHOST.value:
    jax.distributed.initialize()
  logging.info("JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    train.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value)
  except train.ConfigError as e:
    raise app.UsageError(str(e)) from e


if __name__ == "__main__":
  app.run(main)
