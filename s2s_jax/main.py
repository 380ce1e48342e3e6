"""Trains SOUND2SYNTH: `python -m s2s_jax.main --config=configs/t6.py[:variant] --workdir=DIR`.

Override any setting with `--config.name=value` (e.g. `--config.dataset_config=alg21`). A run
resumes from the latest checkpoint in its workdir, which may be on Cloud Storage (gs://).

Multi-process jobs run this on every process with `--multihost`: each joins `jax.distributed`
first, and the cluster tells it the coordinator and its rank (Cloud TPU VMs, SLURM, Open MPI),
or `--coordinator_address`, `--num_processes` and `--process_id` do. See launch/README.md.
If any process fails (or is killed), every other one stops at its next collective with exit
status 1; running the same command again resumes the whole job from the last checkpoint.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from s2s_jax.train import train

_WORKDIR = flags.DEFINE_string("workdir", "workdir", "Checkpoints, summaries and results.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join a jax.distributed job first; the cluster environment gives the "
    "coordinator and ranks unless the three flags below do.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of the coordinator (process 0); implies --multihost.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.", lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's rank, 0-based.",
                                   lower_bound=0)
config_flags.DEFINE_config_file("config", "configs/t6.py:tiny", "Training configuration.",
                                lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _MULTIHOST.value or _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  logging.info("JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    train.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value)
  except train.ConfigError as e:
    raise app.UsageError(str(e)) from e
  except train.TrainingDiverged as e:  # every process stops at the same step
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(1)
  except Exception as e:  # pylint: disable=broad-exception-caught
    if jax.process_count() == 1:
      raise
    _stop_job(e)


def _stop_job(error: Exception) -> None:
  """Ends this process of a failed multi-process job now, with exit status 1.

  A failure in one process (or a killed one) breaks the next collective in the others, so
  they all come here. Exiting normally would wait at jax.distributed's shutdown barrier for
  the dead process and then abort; an interrupted checkpoint is a temporary folder that orbax
  ignores, so nothing on disk is lost by exiting at once.
  """
  logging.exception("process %d failed", jax.process_index())
  print(f"process {jax.process_index()} of {jax.process_count()} stopped: "
        f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}\n"
        "A process of the job failed or was killed (see its log). Run the same command on "
        f"every process to resume from the last checkpoint in {_WORKDIR.value}.",
        file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(1)  # pylint: disable=protected-access


if __name__ == "__main__":
  app.run(main)
