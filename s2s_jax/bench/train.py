"""Training speed: the JAX step against the same network in PyTorch, and against the CPU's peak.

  s2s-bench train [--configs configs/t6.py:cpu configs/t6.py:reference] [--batch N]
                  [--matmul-size 2048]

For each config, on the same synthetic batch shapes (the config's per-step batch), in one run:
- jax: the jitted training step (forward, loss, backward, AdamW) from features, compile
  excluded, with this process's environment (`default`) and with `TUNED_ALLOCATOR` and
  `TUNED_XLA_FLAGS` (`tuned`);
- torch: the same network in PyTorch (`bench/torch_model.py`, the `bench` extra; skipped with a
  note when torch is absent), with glibc's default allocator and for-loop AdamW (`default`),
  and with `TUNED_ALLOCATOR` and fused AdamW (`tuned`);
- peak: a 2048^3 matrix product (`--matmul-size`), float32 in each framework and bfloat16 in
  JAX; the faster of the two frameworks is this machine's measured peak.
The featuriser is left out on both sides (`s2s-bench features` times it). Each measurement runs
in its own process, since allocators read their settings at start-up. FLOPs per sample are
the dot products and convolutions of the JAX step (`model_flops`); both frameworks do them, so
achieved GFLOP/s = FLOPs / step time for either. Step times are medians of `--repeats` after a
warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import jax
import jax.extend
import jax.numpy as jnp
import ml_collections
import numpy as np

from s2s_jax import config_file
from s2s_jax.audio.features import FeatureBanks
from s2s_jax.infer import logits as logits_lib
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.models import sound2synth
from s2s_jax.models import synthetic
from s2s_jax.train import parallel
from s2s_jax.train import train
from s2s_jax.util import report

# glibc malloc keeping freed memory for reuse, instead of returning it to the system and
# page-faulting it back in on the next step: large blocks from the heap, not from mmap.
TUNED_ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 32), "MALLOC_TRIM_THRESHOLD_": str(2 ** 36),
                   "MALLOC_TOP_PAD_": str(2 ** 30)}
# XLA's CPU backend without YNNPACK (on by default for dots in jax 0.10): one 3x3 convolution's
# forward and backward took 0.42 CPU-s instead of 0.66 (BUILD_NOTES, "JAX against PyTorch").
TUNED_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type="
MATMUL_SIZE = 2048
SETTINGS = ("default", "tuned")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--configs", nargs="+", default=["configs/t6.py:cpu",
                                                       "configs/t6.py:reference"],
                      help="config files[:variant] to time")
  parser.add_argument("--batch", type=int, default=None,
                      help="global batch per step (default: each config's per_step_batch_size)")
  parser.add_argument("--repeats", type=int, default=3, help="timed steps (median kept)")
  parser.add_argument("--dtype", default=None, help="override config.model.dtype (JAX)")
  parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS,
                      help="environments to time each framework in")
  parser.add_argument("--matmul-size", type=int, default=MATMUL_SIZE,
                      help="side of the square matrix product timed for the peak (default: "
                      f"{MATMUL_SIZE}; a smaller one is quicker and may read a lower peak)")


@dataclasses.dataclass
class CompiledStep:
  """A jitted training step compiled for one config and batch, with what it runs on.

  Attributes:
    config: the training settings.
    compiled: the compiled step: (state, *arguments) -> (state, metrics).
    state: the train state it updates (donated: `run` replaces it).
    batch: the synthetic global batch (audio, labels, weights), sharded over the devices.
    banks: the featuriser's filter banks, replicated.
    arguments: what the step reads besides the state: (batch, banks), or (features, batch)
      for a step from features.
    compile_s: seconds to trace, lower and compile.
    flops: the model's FLOPs of one step on one device (`model_flops`).
  """
  config: ml_collections.ConfigDict
  compiled: jax.stages.Compiled
  state: object
  batch: dict[str, jax.Array]
  banks: FeatureBanks
  arguments: tuple
  compile_s: float
  flops: float

  @property
  def batch_size(self) -> int:
    return int(self.batch["audio"].shape[0])

  def run(self) -> None:
    """One training step, waited for."""
    self.state, metrics = self.compiled(self.state, *self.arguments)
    jax.block_until_ready(metrics)


def compile_step(config: ml_collections.ConfigDict, batch_size: int,
                 from_features: bool = False) -> CompiledStep:
  """The training step of `config` on a synthetic batch of `batch_size` clips, on all devices.

  The step featurises the clips (`train.train_step`), or with `from_features` reads random
  features of the same shapes (`train.inputs_step`).
  """
  space = workdir_lib.parameter_space(config)
  mesh = parallel.data_mesh()
  replicated = parallel.replicated(mesh)
  banks = jax.device_put(FeatureBanks.create(), replicated)
  model = sound2synth.create_model(config, space)
  optimizer = train.create_optimizer(config, updates_per_epoch=100)
  state = jax.jit(functools.partial(train.create_state, model, optimizer, seed=0, batch_size=1),
                  out_shardings=replicated)(banks)
  batch = parallel.global_batch(mesh, synthetic.synthetic_batch(batch_size, space, banks.spec))
  layout = logits_lib.ClassLayout.create(space)
  if from_features:
    features = parallel.global_batch(mesh, synthetic.random_features(batch_size, banks.spec))
    step, arguments = train.inputs_step, (features, batch)
  else:
    step, arguments = train.train_step, (batch, banks)
  step = jax.jit(functools.partial(step, layout=layout, config=config), donate_argnums=0)
  start = time.perf_counter()
  traced = step.trace(state, *arguments)
  compiled = traced.lower().compile()
  return CompiledStep(config, compiled, state, batch, banks, arguments,
                      time.perf_counter() - start, model_flops(traced))


def model_flops(traced: jax.stages.Traced) -> float:
  """The model FLOPs of a traced program per device: its dot products and convolutions, 2 per
  multiply-add, counted from its jaxpr. XLA's cost analysis varies by backend (a GPU's compiled
  program counts cuDNN's convolutions as nothing, its lowered one is not analysed)."""
  return matmul_flops(traced.jaxpr.jaxpr) / jax.device_count()


def matmul_flops(jaxpr: jax.extend.core.Jaxpr) -> float:
  """FLOPs of the dot products and convolutions in `jaxpr` and the jaxprs inside it: a scan
  counts each of its steps, a cond its costliest branch, a while loop's body once."""
  total = 0.0
  for eqn in jaxpr.eqns:
    name, params = eqn.primitive.name, eqn.params
    outputs = math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
    if name == "dot_general":
      (contracting, _), _ = params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2 * outputs * math.prod(lhs[d] for d in contracting)
    elif name == "conv_general_dilated":
      kernel = eqn.invars[1].aval.shape  # one output feature reads all but its out dimension
      total += 2 * outputs * math.prod(kernel) // kernel[params["dimension_numbers"].rhs_spec[0]]
    else:
      inner = [matmul_flops(j) for j in jax.extend.core.jaxprs_in_params(params)]
      if name == "cond":
        total += max(inner, default=0.0)
      else:
        total += sum(inner) * (params["length"] if name == "scan" else 1)
  return total


def bench_config(spec: str, dtype: str | None) -> ml_collections.ConfigDict:
  """The config of `spec`, applying AdamW on every step (as the PyTorch step does)."""
  config = config_file.load(spec)
  if dtype:
    config.model.dtype = dtype
  config.batch_size = config.per_step_batch_size
  return config


def measure_jax(spec: str, batch: int, repeats: int, dtype: str | None) -> dict[str, object]:
  step = compile_step(bench_config(spec, dtype), batch, from_features=True)
  return {"dtype": step.config.model.dtype,
          "params": sound2synth.count_parameters(step.state.params),
          "compile_s": step.compile_s, **_timed(step.run, repeats), "flops": step.flops}


def measure_torch(spec: str, batch: int, repeats: int, fused: bool) -> dict[str, object]:
  from s2s_jax.bench import torch_model  # pylint: disable=g-import-not-at-top
  from s2s_jax.train import losses  # pylint: disable=g-import-not-at-top
  config = bench_config(spec, None)
  space = workdir_lib.parameter_space(config)
  layout = logits_lib.ClassLayout.create(space)
  data = synthetic.synthetic_batch(batch, space)
  weights = data["weights"] * (np.asarray(losses.active_mask(data["labels"], layout))
                               if config.mask_inactive else 1.0)
  targets = np.asarray(losses.smoothed_targets(data["labels"], layout, config.label_smoothing))
  step = torch_model.TrainStep(
      sound2synth.create_model(config, space), config, synthetic.random_features(batch),
      targets, weights.astype(np.float32),
      {"index": layout.index, "valid": layout.valid, "num_classes": layout.num_classes},
      fused=fused)
  start = time.perf_counter()
  step.run()
  return {"dtype": "float32", "params": torch_model.count_parameters(step.model),
          "compile_s": time.perf_counter() - start,  # the first step (nothing to compile)
          **_timed(step.run, repeats)}


def _timed(run_step, repeats: int) -> dict[str, float]:
  """Median wall seconds of a step, and its mean CPU seconds (all threads, warm-up included)."""
  cpu = time.process_time()
  step_s = report.median_seconds(run_step, repeats)
  return {"step_s": step_s, "cpu_s": (time.process_time() - cpu) / (repeats + 1)}


def measure_peak(framework: str, size: int) -> dict[str, float]:
  """FLOP/s of a `size`^3 product per dtype in one framework.

  bfloat16 in JAX only: PyTorch's CPU bfloat16 product without AVX-512 BF16 or AMX ran one
  2048^3 product for minutes here.
  """
  flops = {}
  for dtype in ("float32", "bfloat16") if framework == "jax" else ("float32",):
    if framework == "jax":
      flops[dtype] = matmul_flops_per_s(size, dtype)
    else:
      import torch  # pylint: disable=g-import-not-at-top
      a, b = (torch.randn((size,) * 2, dtype=getattr(torch, dtype)) for _ in range(2))
      flops[dtype] = 2 * size ** 3 / report.median_seconds(lambda: torch.matmul(a, b), 5)
  return flops


def matmul_flops_per_s(size: int, dtype: str, repeats: int = 5) -> float:
  """FLOP/s of a `[size, size] @ [size, size]` product on random data, on the first device."""
  keys = jax.random.split(jax.random.key(0), 2)
  a, b = (jax.random.normal(k, (size, size), dtype) for k in keys)
  product = jax.jit(jnp.matmul)
  seconds = report.median_seconds(lambda: product(a, b).block_until_ready(), repeats)
  return 2 * size ** 3 / seconds


def worker(job: str) -> None:
  """Runs one measurement (a JSON job) and prints its result as JSON on the last line."""
  job = json.loads(job)
  if job["kind"] == "peak":
    result = measure_peak(job["framework"], job["size"])
  elif job["framework"] == "jax":
    result = measure_jax(job["config"], job["batch"], job["repeats"], job["dtype"])
  else:
    result = measure_torch(job["config"], job["batch"], job["repeats"],
                           fused=job["setting"] == "tuned")
  print(json.dumps(result))


def environment(framework: str, setting: str) -> dict[str, str]:
  """This process's environment, with the tuned allocator (and XLA flags) for `tuned`."""
  env = {k: v for k, v in os.environ.items() if k not in TUNED_ALLOCATOR}
  if setting == "tuned":
    env.update(TUNED_ALLOCATOR)
    if framework == "jax" and TUNED_XLA_FLAGS:
      env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {TUNED_XLA_FLAGS}".strip()
  return env


def run_job(job: dict[str, object], setting: str = "tuned") -> dict[str, object]:
  """`worker(job)` in a fresh Python with the environment of `setting`."""
  process = subprocess.run(
      [sys.executable, "-c", "import sys; from s2s_jax.bench import train; "
       "train.worker(sys.argv[1])", json.dumps(job)],
      capture_output=True, text=True, env=environment(str(job["framework"]), setting),
      check=False)
  if process.returncode:
    lines = process.stderr.strip().splitlines() or ["no output"]
    raise RuntimeError(f"s2s-bench train: {job['framework']} {job.get('config', 'peak')} "
                       f"failed: {lines[-1]}")
  return json.loads(process.stdout.strip().splitlines()[-1])


def torch_available() -> bool:
  return importlib.util.find_spec("torch") is not None


def run(args: argparse.Namespace) -> None:
  frameworks = ["jax", "torch"] if torch_available() else ["jax"]
  if "torch" not in frameworks:
    print("s2s-bench train: PyTorch is not installed (pip install -e \".[bench]\"): "
          "JAX only")
  peaks = [run_job({"kind": "peak", "framework": f, "size": args.matmul_size})
           for f in frameworks]
  peak = {dtype: max(p.get(dtype, 0.0) for p in peaks) for dtype in ("float32", "bfloat16")}
  rows = []
  for spec in args.configs:
    batch = args.batch or bench_config(spec, None).per_step_batch_size
    config_rows = []
    for framework in frameworks:
      for setting in args.settings:
        job = {"kind": "step", "framework": framework, "setting": setting, "config": spec,
               "batch": batch, "repeats": args.repeats, "dtype": args.dtype}
        result = run_job(job, setting)
        config_rows.append({"config": spec, "framework": framework, "setting": setting,
                            "batch": batch, **result})
    flops = next(r["flops"] for r in config_rows if r["framework"] == "jax")
    baseline = next((r["step_s"] for r in config_rows
                     if r["framework"] == "torch" and r["setting"] == "tuned"), None)
    for row in config_rows:
      step_s = row["step_s"]
      row.pop("flops", None)
      row.update({"samples_per_s": batch / step_s,
                  "vs_torch_tuned": baseline / step_s if baseline else None,
                  "gflop_per_sample": flops / batch / 1e9,
                  "achieved_gflop_s": flops / step_s / 1e9,
                  "pct_peak_fp32": 100 * flops / step_s / peak["float32"],
                  "pct_peak_bf16": 100 * flops / step_s / peak["bfloat16"]})
    rows += config_rows
  report.publish("train", rows, args.json, {
      "backend": jax.default_backend(), "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind, "repeats": args.repeats,
      "matmul_size": args.matmul_size,
      "peak_gflop_s": {dtype: value / 1e9 for dtype, value in peak.items()},
      "peaks_by_framework": {f: {d: v / 1e9 for d, v in p.items()}
                             for f, p in zip(frameworks, peaks)},
      "tuned_env": TUNED_ALLOCATOR, "tuned_xla_flags": TUNED_XLA_FLAGS,
      "torch": _torch_version() if "torch" in frameworks else None,
      "jax": jax.__version__, "load_average": os.getloadavg()})


def _torch_version() -> str:
  import torch  # pylint: disable=g-import-not-at-top
  return f"{torch.__version__}, {torch.get_num_threads()} threads"
