"""Data parallelism with `jax.jit` over a one-axis device mesh (no pmap).

Parameters and optimiser state are replicated; every batch is split along its first axis over
all devices of all hosts. Each host feeds its own slice of the global batch.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh() -> Mesh:
  """Every device of the job (all hosts) on the "data" axis."""
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """The first axis split over the devices."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def global_batch(mesh: Mesh, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """Assembles the hosts' slices `[local_batch, ...]` into global arrays `[global_batch, ...]`.

  Host i contributes rows i * local : (i + 1) * local; the global batch must split evenly
  over the devices.
  """
  sharding = batch_sharded(mesh)
  return {key: jax.make_array_from_process_local_data(sharding, value)
          for key, value in local_batch.items()}


def check_batch_size(mesh: Mesh, global_batch_size: int) -> None:
  if global_batch_size % mesh.size:
    raise ValueError(f"per_step_batch_size {global_batch_size} does not split over "
                     f"{mesh.size} devices")


def host_slice(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """This host's rows of a batch every host holds whole (e.g. an evaluation batch)."""
  count, index = jax.process_count(), jax.process_index()
  return {key: np.array_split(value, count)[index] for key, value in batch.items()}
