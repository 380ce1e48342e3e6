"""`train_and_evaluate`: the paper's recipe as one jit-compiled, data-parallel program.

The step featurises the clips on the device (the same `featurise` inference uses), adds the
training-only input noise, and applies AdamW with global-norm clipping, a linear warm-up and a
cosine decay, accumulating gradients up to the effective batch (optax.MultiSteps), all on one
flat vector of the parameters (optax.flatten). The loop evaluates every `eval_every_epochs`,
keeps the best variables, stops early, averages weights over the last epochs (SWA, batch-norm
statistics recomputed), checkpoints the whole state and the data position so a killed run
resumes exactly, and ends with the test split: parameter metrics and MFCCD of rendered
predictions, side by side with two baselines.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from typing import Any, Callable

from absl import logging
from etils import epath
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from s2s_jax.audio.features import FeatureBanks
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.infer import logits as logits_lib
from s2s_jax.infer import rendering
from s2s_jax.infer import scoring
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.infer.inputs import model_inputs
from s2s_jax.models import sound2synth
from s2s_jax.models.layers import BN_MOMENTUM
from s2s_jax.synth import render as R
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import checkpointing
from s2s_jax.train import evaluate
from s2s_jax.train import input_pipeline
from s2s_jax.train import losses
from s2s_jax.train import parallel
from s2s_jax.train import writers
from s2s_jax.util import report


class TrainState(train_state.TrainState):
  """Parameters, optimiser, step (micro-steps), batch norm statistics, RNG and SWA average."""
  batch_stats: Any
  rng: jax.Array  # uint32 [2]: the run's key; step keys fold in the step
  swa_params: Any
  swa_count: jax.Array  # int32 []: epochs averaged into swa_params


def create_optimizer(config: ml_collections.ConfigDict, updates_per_epoch: int
                     ) -> optax.GradientTransformation:
  """AdamW with clipping and its schedule (in optimiser updates), accumulating micro-batches."""
  accumulation, remainder = divmod(config.batch_size, config.per_step_batch_size)
  if remainder or accumulation < 1:
    raise ValueError(f"batch_size {config.batch_size} must be a multiple of "
                     f"per_step_batch_size {config.per_step_batch_size}")
  warmup = config.warmup_epochs * updates_per_epoch
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.01 * config.learning_rate, peak_value=config.learning_rate,
      warmup_steps=max(warmup, 1), decay_steps=max(config.num_epochs * updates_per_epoch,
                                                   warmup + 1), end_value=1e-8)
  optimizer = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm),
                          optax.adamw(schedule, weight_decay=config.weight_decay))
  # Skip every non-finite update (the loop counts them and stops the run after a few in a row).
  optimizer = optax.apply_if_finite(optimizer, max_consecutive_errors=np.iinfo(np.int32).max)
  accumulating = optax.MultiSteps(optimizer, every_k_schedule=accumulation)
  # On one vector of all parameters: the same arithmetic as leaf by leaf (up to the order of
  # the global norm's sum), in a few dozen ops instead of a few per leaf, which halves the
  # step's XLA compile time on CPU.
  return optax.flatten(accumulating.gradient_transformation())


def create_state(model: nn.Module, optimizer, banks: FeatureBanks, seed: int,
                 batch_size: int) -> TrainState:
  audio = jnp.zeros((batch_size, banks.spec.num_samples), jnp.float32)
  variables = model.init(jax.random.key(seed), model_inputs(banks, audio), train=False)
  params = variables["params"]
  return TrainState.create(apply_fn=model.apply, params=params, tx=optimizer,
                           batch_stats=variables.get("batch_stats", {}),
                           rng=jax.random.PRNGKey(seed), swa_params=params,
                           swa_count=jnp.zeros((), jnp.int32))


def network_variables(params, batch_stats) -> dict:
  """The variables `model.apply` takes, as `model.init` gives them: no "batch_stats"
  collection for a network without batch norm (so its checkpoints load as inference builds
  them)."""
  return {"params": params} | ({"batch_stats": batch_stats} if batch_stats else {})


def train_step(state: TrainState, batch: dict[str, jax.Array], banks: FeatureBanks, *,
               layout: logits_lib.ClassLayout, config: ml_collections.ConfigDict
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One micro-step on a global batch: audio [batch, samples], labels and weights [batch, P]."""
  key = jax.random.fold_in(state.rng, state.step)
  audio = batch["audio"] + config.input_noise * jax.random.normal(key, batch["audio"].shape)
  return inputs_step(state, model_inputs(banks, audio), batch, layout=layout, config=config)


def inputs_step(state: TrainState, inputs: dict[str, jax.Array], batch: dict[str, jax.Array], *,
                layout: logits_lib.ClassLayout, config: ml_collections.ConfigDict
                ) -> tuple[TrainState, dict[str, jax.Array]]:
  """`train_step` from the network's inputs (`model_inputs`: name -> `[batch, time, ...]`);
  labels and weights `[batch, P]` from `batch`."""

  def loss_fn(params):
    logits, updates = state.apply_fn(network_variables(params, state.batch_stats), inputs,
                                     train=True, mutable=["batch_stats"])
    loss, metrics = losses.loss_and_metrics(
        logits, batch["labels"], batch["weights"], layout, sigma=config.label_smoothing,
        use_weights=config.use_gradient_weights, mask_inactive=config.mask_inactive)
    return loss, (metrics, updates.get("batch_stats", {}))

  (loss, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  grad_norm = optax.global_norm(grads)
  # Non-finite iff a gradient is (or their squares overflow float32, a step as diverged).
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  # A skipped step leaves the batch-norm statistics as they were, like the parameters.
  batch_stats = jax.tree.map(lambda new, old: jnp.where(finite, new, old), batch_stats,
                             state.batch_stats)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, metrics | {"grad_norm": grad_norm, "finite": finite}


def eval_step(variables: dict, batch: dict[str, jax.Array], banks: FeatureBanks, *,
              model: nn.Module, layout: logits_lib.ClassLayout, config: ml_collections.ConfigDict
              ) -> tuple[dict[str, jax.Array], jax.Array]:
  """(metric sums over the batch's real rows, predicted classes [batch, P])."""
  logits = model.apply(variables, model_inputs(banks, batch["audio"]), train=False)
  _, metrics = losses.loss_and_metrics(
      logits, batch["labels"], batch["weights"], layout, sigma=config.label_smoothing,
      use_weights=config.use_gradient_weights, mask_inactive=config.mask_inactive,
      example_mask=batch["mask"])
  count = jnp.sum(batch["mask"])
  sums = {name: value * count for name, value in metrics.items()}
  return sums, logits_lib.predicted_classes(logits, layout)


def swa_update(state: TrainState) -> TrainState:
  """Adds the current parameters to the running SWA average."""
  count = state.swa_count + 1
  swa = jax.tree.map(lambda avg, p: avg + (p - avg) / count, state.swa_params, state.params)
  return state.replace(swa_params=swa, swa_count=count)


def batch_statistics(model: nn.Module, params, batch_stats, batch, banks: FeatureBanks):
  """The batch-norm statistics of one batch alone (for recomputing them after SWA).

  A training-mode pass from zero running statistics leaves (1 - momentum) * batch statistic.
  """
  zeros = jax.tree.map(jnp.zeros_like, batch_stats)
  _, updates = model.apply(network_variables(params, zeros),
                           model_inputs(banks, batch["audio"]), train=True,
                           mutable=["batch_stats"])
  return jax.tree.map(lambda s: s / (1.0 - BN_MOMENTUM), updates.get("batch_stats", {}))


def workdir_path(workdir: str) -> epath.Path:
  """`workdir` as an absolute path: a local folder, or a Cloud Storage one (gs://...)."""
  path = epath.Path(workdir)
  return path if "://" in workdir else path.absolute()


class ConfigError(ValueError):
  """A setting that cannot run, named in the message."""


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the setting if `config` cannot run; before any work starts."""
  try:
    if config.input not in ("dataset", "online"):
      raise ValueError(f"config.input must be 'dataset' or 'online', got {config.input!r}")
    if config.online.mode not in ("random", "augment"):
      raise ValueError(f"config.online.mode must be 'random' or 'augment', got "
                       f"{config.online.mode!r}")
    create_optimizer(config, updates_per_epoch=1)
    sound2synth.create_model(config, workdir_lib.parameter_space(config))
    input_pipeline.check_dataset(config)
  except ValueError as e:
    raise ConfigError(str(e)) from e


class TrainingDiverged(RuntimeError):
  """The loss or gradients were not finite at too many steps in a row; the message says why."""


@dataclasses.dataclass
class LoopState:
  """Where the loop stands beyond the TrainState; checkpointed with it (as JSON)."""
  epochs_done: int = 0
  best_loss: float = math.inf
  evals_without_improvement: int = 0
  stopped_early: bool = False
  nonfinite_steps: int = 0  # steps whose loss or gradients were not finite (update skipped)
  nonfinite_in_a_row: int = 0

  def count_step(self, step: int, finite: bool, config: ml_collections.ConfigDict) -> None:
    """Counts a non-finite step and logs it; raises TrainingDiverged after too many in a row."""
    if finite:
      self.nonfinite_in_a_row = 0
      return
    self.nonfinite_steps += 1
    self.nonfinite_in_a_row += 1
    logging.warning("step %d: non-finite loss or gradients, update skipped (%d in a row, %d in "
                    "all)", step, self.nonfinite_in_a_row, self.nonfinite_steps)
    limit = config.max_nonfinite_in_a_row
    if self.nonfinite_in_a_row >= limit:
      raise TrainingDiverged(
          f"stopped at step {step}: the loss or gradients were not finite at "
          f"{self.nonfinite_in_a_row} steps in a row (steps {step - self.nonfinite_in_a_row + 1}"
          f" to {step}; config.max_nonfinite_in_a_row={limit}), and their updates were skipped. "
          f"Try a lower config.learning_rate (now {config.learning_rate}) or "
          f"config.grad_clip_norm (now {config.grad_clip_norm}), and check the data for NaN, "
          "infinite or empty audio and weights. The last checkpoint holds parameters from "
          "before these steps.")


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """Validation and test of one run: metrics, MFCCD of rendered predictions, best checkpoint.

  `run_eval(variables, split, keep)` gives the split's metric means and its first `keep`
  examples' predicted classes, algorithms and audio (`evaluate.split_metrics`).
  """
  config: ml_collections.ConfigDict
  space: ParameterSpace
  dataset: Any
  run_eval: Callable[[dict, str, int], tuple[dict, dict]]
  checkpoints: checkpointing.Checkpoints
  writer: writers.MetricWriter

  def _algorithms(self, kept: dict) -> np.ndarray | None:
    """The algorithms predictions play with: the examples' own, or (a space that predicts the
    algorithm) None, each prediction's own."""
    return None if self.space.predict_algorithm else kept["algorithm"]

  def validate(self, variables: dict, step: int, loop: LoopState, label: str = "validation"
               ) -> dict[str, float]:
    """Validation metrics; saves the best checkpoint; early stopping (`label` "validation")."""
    means, kept = self.run_eval(variables, "validation", self.config.eval_mfccd_examples)
    if len(kept["classes"]):
      renderer = R.DexedRenderer(input_pipeline.training_clip(self.config))
      audio = rendering.render_classes(self.space, kept["classes"], self._algorithms(kept),
                                       renderer)
      scores = scoring.mfccd_scores(audio, kept["audio"], renderer.settings)
      means |= {name: float(np.mean(value)) for name, value in scores.items()}
      shown = min(self.config.image_summaries, len(audio))
      self.writer.images(step, evaluate.spectrogram_pairs(kept["audio"][:shown], audio[:shown],
                                                           renderer.settings))
    self.writer.scalars(step, label, means)
    print(f"{label} at step {step}: "
          + "  ".join(f"{k} {v:.4f}" for k, v in sorted(means.items())), flush=True)
    if means["loss"] < loop.best_loss:
      loop.best_loss = float(means["loss"])
      loop.evals_without_improvement = 0
      self.checkpoints.save_best(step, variables, {"source": label, "step": step, **means})
    elif label == "validation":
      loop.evals_without_improvement += 1
      if loop.evals_without_improvement >= self.config.early_stopping_patience:
        logging.info("early stopping: no better validation loss in %d evaluations",
                     self.config.early_stopping_patience)
        loop.stopped_early = True
    return means

  def test(self, state: TrainState, step: int, loop: LoopState) -> dict[str, Any]:
    """Scores the best variables on the test split beside the baselines; writes results.json."""
    variables = network_variables(state.params, state.batch_stats)
    best = self.checkpoints.restore_best(variables)
    if best is not None:
      variables, best_metrics = best
    else:
      best_metrics = {}
    num_test = input_pipeline.num_examples(self.dataset, "test")
    means, kept = self.run_eval(variables, "test", num_test)
    renderer = R.DexedRenderer(input_pipeline.training_clip(self.config))
    train_labels = input_pipeline.split_column(self.dataset, "train", "labels").astype(np.int32)
    predictions = {"model": kept["classes"]} | evaluate.baseline_classes(
        train_labels, self.space, len(kept["classes"]), self.config.seed)
    rows = []
    for name, classes in predictions.items():
      audio = rendering.render_classes(self.space, classes, self._algorithms(kept), renderer)
      scores = scoring.mfccd_scores(audio, kept["audio"], renderer.settings)
      rows.append({"predictor": name, "examples": len(classes),
                   **{k: float(np.mean(v)) for k, v in scores.items()},
                   **{f"{k}_median": float(np.median(v)) for k, v in scores.items()}})
    self.writer.scalars(step, "test", means | {f"{r['predictor']}_{k}": v for r in rows
                                               for k, v in r.items() if k.startswith("mfccd")})
    print(f"test split of {self.config.dataset_config}: {num_test} examples, model from "
          f"{best_metrics.get('source', 'last state')} at step {best_metrics.get('step', step)}")
    print(report.format_table(rows))
    results = {"step": step, "best_validation": best_metrics, "test_metrics": means,
               "test_mfccd": rows, "stopped_early": loop.stopped_early,
               "nonfinite_steps": loop.nonfinite_steps}
    if jax.process_index() == 0:
      (epath.Path(self.checkpoints.latest.directory).parent / "results.json").write_text(
          json.dumps(results, indent=2, default=float) + "\n")
    return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains per `config`, writing checkpoints and summaries under `workdir`.

  Returns the final results: the best validation metrics and the test split's scores. The
  settings go to `workdir/config.json` first, so a workdir is a loadable model.
  An empty `config.data_dir` means `workdir/tensorflow_datasets`. Raises ConfigError before
  writing anything if a setting cannot run, and TrainingDiverged if the loss stays non-finite.
  """
  workdir = workdir_path(workdir)
  config.data_dir = input_pipeline.data_dir(config, workdir)
  validate_config(config)
  workdir.mkdir(parents=True, exist_ok=True)
  clip = input_pipeline.training_clip(config)
  if jax.process_index() == 0:  # what `infer.workdir.load_model` rebuilds the network from
    workdir_lib.write_config(workdir, config, clip)
  space = workdir_lib.parameter_space(config)
  layout = logits_lib.ClassLayout.create(space, clip)
  dataset = input_pipeline.prepared_dataset(config)
  num_train = (config.online.examples_per_epoch if config.input == "online"
               else input_pipeline.num_examples(dataset, "train"))
  steps_per_epoch = max(num_train // config.per_step_batch_size, 1)
  updates_per_epoch = max(num_train // config.batch_size, 1)
  total_steps = config.num_epochs * steps_per_epoch
  mesh = parallel.data_mesh()
  parallel.check_batch_size(mesh, config.per_step_batch_size)
  replicated = parallel.replicated(mesh)

  banks = jax.device_put(FeatureBanks.create(FeatureSpec(clip=clip)), replicated)
  model = sound2synth.create_model(config, space)
  optimizer = create_optimizer(config, updates_per_epoch)
  state = jax.jit(functools.partial(create_state, model, optimizer, seed=config.seed,
                                    batch_size=1), out_shardings=replicated)(banks)

  batches = input_pipeline.train_batches(config, dataset, space)
  checkpoints = checkpointing.Checkpoints(workdir)
  loop = LoopState()
  restored = checkpoints.restore_latest(state, batches)
  if restored is not None:
    state, progress = restored
    loop = LoopState(**progress)
    print(f"resumed from step {int(state.step)}", file=sys.stderr, flush=True)
  writer = writers.MetricWriter(workdir, restored_step=int(state.step))

  p_train_step = jax.jit(functools.partial(train_step, layout=layout, config=config),
                         in_shardings=(replicated, parallel.batch_sharded(mesh), replicated),
                         out_shardings=(replicated, replicated), donate_argnums=0)
  p_eval_step = jax.jit(functools.partial(eval_step, model=model, layout=layout, config=config),
                        in_shardings=(replicated, parallel.batch_sharded(mesh), replicated),
                        out_shardings=(replicated, replicated))
  p_swa_update = jax.jit(swa_update, out_shardings=replicated, donate_argnums=0)

  def run_eval(variables, split: str, keep: int):
    batches_ = input_pipeline.eval_batches(dataset, split, config.per_step_batch_size)
    return evaluate.split_metrics(
        lambda b: p_eval_step(variables, parallel.global_batch(mesh, parallel.host_slice(b)),
                              banks), batches_, keep)

  evaluator = Evaluator(config, space, dataset, run_eval, checkpoints, writer)
  step = int(state.step)
  if jax.process_index() == 0:
    print(f"training on {config.dataset_config}: "
          f"{sound2synth.count_parameters(state.params):,} parameters, {total_steps} steps "
          f"({config.num_epochs} epochs), checkpoints in {workdir}; compiling the first step",
          flush=True)
  clock = writers.Progress(total_steps, step)
  started = time.perf_counter()
  train_metrics = []
  try:
    while step < total_steps and not loop.stopped_early:
      batch = parallel.global_batch(mesh, next(batches))
      state, metrics = p_train_step(state, batch, banks)
      step += 1
      train_metrics.append(metrics)
      if step % config.log_every_steps == 0 or step == total_steps:
        fetched = jax.device_get(train_metrics)
        train_metrics = []
        for offset, metrics_ in enumerate(fetched):
          loop.count_step(step - len(fetched) + 1 + offset, bool(metrics_["finite"]), config)
        summary = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]
                   if k != "finite"}
        writer.scalars(step, "train", summary)
        print(clock.line(step, step / steps_per_epoch, summary["loss"]), flush=True)
      out_of_time = (config.max_train_seconds
                     and time.perf_counter() - started > config.max_train_seconds)
      if step % steps_per_epoch == 0 or out_of_time:
        epoch = step // steps_per_epoch
        if epoch > loop.epochs_done and epoch > config.swa_start_epoch:
          state = p_swa_update(state)
        loop.epochs_done = epoch
        if epoch % config.eval_every_epochs == 0 or out_of_time or step == total_steps:
          evaluator.validate(network_variables(state.params, state.batch_stats), step, loop)
      if step % config.checkpoint_every_steps == 0 or out_of_time:
        checkpoints.save_latest(step, state, batches, dataclasses.asdict(loop))
      if out_of_time:
        logging.info("stopping: max_train_seconds=%s reached", config.max_train_seconds)
        break
    checkpoints.save_latest(step, state, batches, dataclasses.asdict(loop))
    batches.close()

    if int(state.swa_count) > 0:
      num_batches = 32 if config.input == "online" else min(32, steps_per_epoch)
      swa_stats = _recomputed_batch_stats(model, state, config, dataset, space, mesh, banks,
                                          num_batches)
      logging.info("SWA over %d epochs", int(state.swa_count))
      evaluator.validate(network_variables(state.swa_params, swa_stats), step, loop, label="swa")
    checkpoints.wait()
    return evaluator.test(state, step, loop)
  finally:
    batches.close()  # again after a failure: closing twice is harmless
    checkpoints.close()
    writer.close()


def _recomputed_batch_stats(model, state: TrainState, config, dataset, space, mesh, banks,
                            num_batches: int):
  """Batch-norm statistics of the SWA parameters, averaged over `num_batches` training batches."""
  batches = input_pipeline.train_batches(config, dataset, space)
  stats_fn = jax.jit(functools.partial(batch_statistics, model))
  total = None
  for _ in range(num_batches):
    stats = stats_fn(state.swa_params, state.batch_stats,
                     parallel.global_batch(mesh, next(batches)), banks)
    total = stats if total is None else jax.tree.map(jnp.add, total, stats)
  batches.close()
  return jax.tree.map(lambda s: s / num_batches, total)
