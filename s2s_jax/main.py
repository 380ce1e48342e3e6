"""Trains SOUND2SYNTH: `python -m s2s_jax.main --config=configs/t6.py[:variant] --workdir=DIR`.

Override any setting with `--config.name=value` (e.g. `--config.dataset_config=alg21`). A run
resumes from the latest checkpoint in its workdir, which may be on Cloud Storage (gs://).

Multi-process jobs run this on every process with `--multihost`: each joins `jax.distributed`
first, and the cluster tells it the coordinator and its rank (Cloud TPU VMs, SLURM, Open MPI),
or `--coordinator_address`, `--num_processes` and `--process_id` do. See launch/README.md.
If any process fails (or is killed), every other one stops at its next collective with exit
status 1 and a message; where that collective waits instead of failing (3 kills in 9
here), JAX's coordination service aborts it (SIGABRT) once the dead process has sent no
heartbeat for `--heartbeat_timeout` seconds, saying that another task died. Either way,
running the same command again resumes the whole job from the last checkpoint.

Quiet by default: the dataset build, one line per logged step (loss, time left), validation
and the test table; `--verbose` adds absl, JAX, orbax and TFDS messages. `--helpfull` lists
every field of the configuration (with `--config=FILE[:VARIANT]`, that configuration's).
"""

import os
import sys

from s2s_jax.util import console

console.quiet("--verbose" in sys.argv[1:])  # before TensorFlow loads (through TFDS)

# pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import tensorflow_datasets as tfds

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
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
    "heartbeat_timeout", 100, "Seconds without a heartbeat after which the job's other "
    "processes count a process as dead and stop (JAX's default).", lower_bound=1)
_VERBOSE = flags.DEFINE_bool("verbose", False, "Also show absl, JAX, orbax and TFDS log "
                             "messages (the dataset build's status line stands for TFDS's "
                             "progress bars).")
_DEFAULT_CONFIG = "configs/t6.py:tiny"
config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG,
                                "Training configuration: FILE[:VARIANT]; override a field with "
                                "--config.FIELD=VALUE (fields: --helpfull).",
                                lock_config=True)


def config_fields(config, prefix: str = "--config.") -> list[str]:
  """`--config.FIELD: value` for every field of a ConfigDict, nested fields dotted."""
  lines = []
  for key, value in config.items():
    if hasattr(value, "items"):
      lines += config_fields(value, f"{prefix}{key}.")
    else:
      lines.append(f"  {prefix}{key}: {value!r}")
  return lines


def _help_with_config_fields(argv: list[str]) -> None:
  """For --helpfull: the module's help ends with the fields of the --config named."""
  named = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
  try:
    parser = config_flags.config_flags._ConfigFileParser  # pylint: disable=protected-access
    config = parser(name="config").parse(named[-1] if named else _DEFAULT_CONFIG)
  except Exception as e:  # pylint: disable=broad-exception-caught
    fields = [f"  (cannot list: {e})"]
  else:
    fields = config_fields(config)
  global __doc__  # pylint: disable=global-statement
  __doc__ += (f"\nConfiguration fields of {named[-1] if named else _DEFAULT_CONFIG} "
              "(override with --config.FIELD=VALUE):\n" + "\n".join(fields) + "\n")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _VERBOSE.value:
    console.quiet()  # absl's handler is set up by now
    tfds.disable_progress_bar()
  if _MULTIHOST.value or _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value,
                               heartbeat_timeout_seconds=_HEARTBEAT_TIMEOUT.value)
  if jax.process_count() > 1:  # which process this log is
    print(f"JAX process {jax.process_index()} of {jax.process_count()}, devices: "
          f"{jax.devices()}", flush=True)
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
  if "--helpfull" in sys.argv:
    _help_with_config_fields(sys.argv)
  app.run(main)
