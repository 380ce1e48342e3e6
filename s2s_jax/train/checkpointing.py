"""Orbax checkpoints: the latest (to resume exactly) and the best (by validation loss).

`workdir/checkpoints/` keeps the latest full state: the train state (parameters, batch-norm
statistics, optimiser, step, RNG, SWA average), every host's data-iterator position (grain's
handler, one file per process) and the loop's `train.LoopState` as JSON (epochs, early
stopping, non-finite steps).
`workdir/best/` keeps the variables of the best validation loss and their metrics.
The workdir may be on Cloud Storage (gs://). In a multi-process job every process calls every
save and restore; each manager names its barriers apart, as both may save the same step at once.
"""

from __future__ import annotations

from etils import epath
import grain
import jax
import orbax.checkpoint as ocp


def _write_whole_shards_on_cpu() -> None:
  """On CPU devices, each replicated array is written whole by its first replica.

  Orbax's default (replica-parallel, off on GPUs) splits every replicated array between its
  replicas with one op-by-op slice each: on CPU that compiles and runs a program per array
  shape and adds seconds to a tiny model's first checkpoint. TPU and GPU keep their defaults.
  """
  if jax.default_backend() == "cpu":
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)


def _manager(directory: epath.Path) -> ocp.CheckpointManager:
  """Keeps the newest checkpoint under `directory`; barrier keys prefixed with its name."""
  return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
      max_to_keep=1, create=True,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix=directory.name)))


class Checkpoints:
  """The two checkpoint managers of a run."""

  def __init__(self, workdir: epath.Path):
    _write_whole_shards_on_cpu()
    self.latest = _manager(workdir / "checkpoints")
    self.best = _manager(workdir / "best")

  def save_latest(self, step: int, state, batches, progress: dict) -> None:
    self.latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(batches),
        progress=ocp.args.JsonSave(progress)))

  def restore_latest(self, state, batches) -> tuple[object, dict] | None:
    """(state, progress) of the latest checkpoint, the iterator restored in place; or None."""
    step = self.latest.latest_step()
    if step is None:
      return None
    restored = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(state), data=grain.checkpoint.CheckpointRestore(batches),
        progress=ocp.args.JsonRestore()))
    return restored.state, restored.progress

  def save_best(self, step: int, variables: dict, metrics: dict) -> None:
    self.best.save(step, args=ocp.args.Composite(
        variables=ocp.args.StandardSave(variables), metrics=ocp.args.JsonSave(metrics)),
        force=True)

  def restore_best(self, variables: dict) -> tuple[dict, dict] | None:
    """(variables, metrics) of the best checkpoint, shaped like `variables`; or None."""
    step = self.best.latest_step()
    if step is None:
      return None
    restored = self.best.restore(step, args=ocp.args.Composite(
        variables=ocp.args.StandardRestore(variables), metrics=ocp.args.JsonRestore()))
    return restored.variables, restored.metrics

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()
