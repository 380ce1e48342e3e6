"""Subprocess helper of test_train.py: train steps on two device layouts, results to an .npz.

  python tests/parallel_worker.py OUT.npz   (8 fake CPU devices in XLA_FLAGS)

runs the same steps sharded over a mesh of all 8 devices (`mesh8/...`) and of one (`mesh1/...`).

Each run takes two micro-steps of the `tiny` config (batch_size 8 over per_step_batch_size 4:
the first only accumulates the gradients, the second applies their mean) on one fixed global
batch of short clips (`SPEC`: 0.5 s, the CQT from C3), which keeps compiling and running quick.
"""

from __future__ import annotations

import functools
import pathlib
import sys

import jax
from jax import flatten_util
import numpy as np
from jax.sharding import Mesh

from s2s_jax import config_file
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.features import FeatureBanks
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.infer import logits as logits_lib
from s2s_jax.models import sound2synth
from s2s_jax.models import synthetic
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import parallel
from s2s_jax.train import train

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "t6.py") + ":tiny"
BATCH = 8
STEPS = 2
SPEC = FeatureSpec(clip=ClipSpec(note_seconds=0.25, render_seconds=0.5),  # 24 000 samples
                   cqt_fmin=130.8127826502993, cqt_octaves=7)


def _local(x: jax.Array) -> np.ndarray:
  """This process's copy of a replicated array."""
  return np.asarray(x.addressable_data(0))


def _flat(prefix: str, tree) -> dict[str, np.ndarray]:
  return {f"{prefix}{jax.tree_util.keystr(path)}": _local(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _local_row(shard) -> np.ndarray:
  """The first few samples of a shard's first row (which rows of the batch it holds)."""
  return np.asarray(shard.data[0, :4])


class Job:
  """The tiny model, its initial train state (host arrays) and the global batch.

  The state is built once on one device, so every layout starts from the same values.
  """

  def __init__(self):
    self.config = config_file.load(CONFIG)
    self.space = ParameterSpace(self.config.num_bins)
    self.layout = logits_lib.ClassLayout.create(self.space)
    model = sound2synth.create_model(self.config, self.space)
    optimizer = train.create_optimizer(self.config, updates_per_epoch=4)
    self.banks = FeatureBanks.create(SPEC)
    create = functools.partial(train.create_state, model, optimizer, seed=self.config.seed,
                               batch_size=1)
    self.state = jax.device_get(jax.jit(create)(self.banks))
    self.batch = synthetic.synthetic_batch(BATCH, self.space, SPEC)

  def run(self, mesh: Mesh) -> dict[str, np.ndarray]:
    """`STEPS` train steps over `mesh`; this process feeds its host slice of the batch."""
    replicated = parallel.replicated(mesh)
    state = jax.tree.map(lambda x: jax.make_array_from_process_local_data(replicated, x),
                         self.state)
    banks = jax.device_put(self.banks, replicated)
    step = jax.jit(functools.partial(train.train_step, layout=self.layout, config=self.config),
                   in_shardings=(replicated, parallel.batch_sharded(mesh), replicated),
                   out_shardings=(replicated, replicated))
    batch = parallel.global_batch(mesh, parallel.host_slice(self.batch))
    audio = batch["audio"]
    record = {"batch_shape": np.array(audio.shape),
              "batch_devices": np.array(len(audio.sharding.device_set)),
              "local_rows": np.array([s.data.shape[0] for s in audio.addressable_shards]),
              "local_first_rows": np.stack([_local_row(s) for s in audio.addressable_shards])}
    for i in range(STEPS):
      state, metrics = step(state, batch, banks)
      record |= _flat(f"step{i}/", metrics)
      if i == 0:  # the first micro-step of two only accumulates the gradients
        unravel = flatten_util.ravel_pytree(state.params)[1]  # the optimiser's flat vector
        record |= _flat("grads", unravel(state.opt_state.acc_grads))
    record |= _flat("params", state.params) | _flat("batch_stats", state.batch_stats)
    change = jax.tree.map(lambda new, old: float(np.max(np.abs(_local(new) - old))),
                          state.params, self.state.params)
    record["max_param_change"] = np.array(max(jax.tree.leaves(change)))
    return record


def main(argv: list[str]) -> None:
  assert jax.device_count() == 8, jax.devices()
  job = Job()
  record = {f"mesh8/{k}": v for k, v in job.run(parallel.data_mesh()).items()}
  one = Mesh(np.array(jax.devices()[:1]), (parallel.DATA_AXIS,))
  record |= {f"mesh1/{k}": v for k, v in job.run(one).items()}
  record["batch_start"] = job.batch["audio"][:, :4]
  np.savez(argv[1], **record)


if __name__ == "__main__":
  main(sys.argv)
