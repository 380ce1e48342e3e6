"""Accelerator readiness: the full T6 network's training speed, MFU, memory and batch limit.

  s2s-bench device [--config configs/t6.py] [--dtype bfloat16] [--budget 480] [--matmul-size N]
                   [--profile DIR]

On whatever JAX runs on (GPU, TPU or CPU), in one command of at most `--budget` seconds:
- the device's peak: a datasheet figure for known accelerators (dense bf16, per chip) and a
  measured large matrix product (`--matmul-size`), the ceiling MFU is quoted against;
- the training step of the config's network on synthetic batches (the figures do not depend
  on the values): step time (median), samples/s, model FLOPs per step (its dot products and
  convolutions), achieved FLOP/s and MFU, peak device memory;
- the largest per-step batch that fits, found by doubling while the budget lasts (each size
  compiled, its memory checked against the device's limit, then run once);
- the featuriser's clips/s on the device, and on the host the online renderer's samples/s on
  one core, so the number of host cores one device needs to be fed is known;
- with `--profile DIR`, a profiler trace of the timed step in DIR (TensorBoard, Perfetto) and a
  second table: the step's time by kind of XLA operation (`bench/profile.py`).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import time

import jax
import numpy as np

from s2s_jax import config_file
from s2s_jax.audio.features import featurise
from s2s_jax.bench import profile
from s2s_jax.bench import train as train_bench
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.models import sound2synth
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.util import report

# Dense bf16 FLOP/s per chip from the vendors' datasheets, by a substring of `device_kind`
# (first match wins): leads, beside the measured matrix product.
DATASHEET_BF16_FLOPS = (
    ("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12),
    ("A100", 312e12), ("L4", 121e12), ("A10", 125e12),
    ("TPU v4", 275e12), ("TPU v5 lite", 197e12), ("TPU v5e", 197e12), ("TPU v5", 459e12),
    ("TPU v6", 918e12),
)
_HOST_BATCHES = 3  # online batches timed for the host's rate
_PROFILE_ROWS = 12  # kinds of operation named in the profile's table; the rest are summed


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", default="configs/t6.py",
                      help="config file[:variant] of the network to train (default: the full "
                      "T6 network)")
  parser.add_argument("--dtype", default="bfloat16",
                      help="config.model.dtype for the timed step (default: bfloat16)")
  parser.add_argument("--batch", type=int, default=None,
                      help="global batch of the timed step (default: the config's "
                      "per_step_batch_size on an accelerator, 4 on a CPU)")
  parser.add_argument("--repeats", type=int, default=None,
                      help="timed steps, median kept (default: 5; 2 on a CPU)")
  parser.add_argument("--budget", type=float, default=480.0,
                      help="seconds the whole command may take; the batch search stops "
                      "early to keep within it (default: 480)")
  parser.add_argument("--matmul-size", type=int, default=None,
                      help="side of the square matrix product timed for the measured peak "
                      "(default: 16384 on an accelerator, 2048 on a CPU; a smaller one is "
                      "quicker and may read a lower peak)")
  parser.add_argument("--profile", default=None, metavar="DIR",
                      help="also trace the timed step with JAX's profiler into DIR and print "
                      "its time by kind of XLA operation (written to DIR/ops.json)")


def datasheet_peak(device_kind: str) -> float | None:
  """Dense bf16 FLOP/s of one chip by its `device_kind`, or None when unknown (CPUs)."""
  for name, flops in DATASHEET_BF16_FLOPS:
    if name.lower() in device_kind.lower():
      return flops
  return None


def bytes_needed(step: train_bench.CompiledStep) -> int:
  """Device bytes the compiled step holds at once: arguments, outputs, temporaries."""
  m = step.compiled.memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
             + m.temp_size_in_bytes)


def memory_limit() -> int:
  """Bytes one device may use: its allocator's limit, or the host's memory on a CPU."""
  stats = jax.devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def peak_memory() -> int:
  """Peak bytes in use on the first device (the process's peak RSS on a CPU)."""
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"])
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def largest_batch(config, start: int, deadline: float, first_try_s: float) -> tuple[int, str]:
  """Doubles the batch from `start` while it fits and time is left: (largest that ran, why
  the search stopped). `first_try_s` predicts the first try (compile and one step at twice
  `start`); each later try is predicted to take twice the one before."""
  fitted, batch = start, start * 2
  limit = memory_limit()
  predicted_s = first_try_s
  while time.monotonic() + predicted_s < deadline:
    began = time.monotonic()
    try:
      step = train_bench.compile_step(config, batch)
      if bytes_needed(step) > limit:
        return fitted, f"batch {batch} needs {bytes_needed(step) / 1e9:.1f} GB > {limit / 1e9:.1f}"
      step.run()
    except Exception as error:  # XLA reports an exhausted device as a runtime error
      if "RESOURCE_EXHAUSTED" not in str(error) and "out of memory" not in str(error).lower():
        raise
      return fitted, f"batch {batch} ran out of device memory"
    del step
    fitted, batch = batch, batch * 2
    predicted_s = 2 * (time.monotonic() - began)
  return fitted, "time budget reached (more may fit)"


def host_samples_per_core(space: ParameterSpace, batch_size: int = 8
                          ) -> tuple[float | None, str]:
  """Online-rendered training examples per second on one host core, or (None, why not)."""
  try:
    from s2s_jax.train import online
  except ImportError as error:  # dexed-py is missing where only the network is installed
    return None, f"not measured: {error}"
  settings = online.OnlineSettings(batch_size=batch_size, workers=1, prefetch=1)
  with online.OnlineSource(settings, space=space, process_index=0,
                           process_count=1) as source:
    next(source)
    start = time.perf_counter()
    for _ in range(_HOST_BATCHES):
      next(source)
    seconds = time.perf_counter() - start
  return _HOST_BATCHES * batch_size / seconds, "online rendering, 1 render thread"


def profile_rows(ops: list[profile.OpTime], steps: int, step_s: float) -> list[dict[str, object]]:
  """The profile's table: the longest kinds of operation per step, the rest, and the total."""
  shown, rest = ops[:_PROFILE_ROWS], ops[_PROFILE_ROWS:]
  total = sum(op.seconds for op in ops)

  def row(name: str, seconds: float, count: int) -> dict[str, object]:
    return {"operation": name, "ms per step": 1e3 * seconds / steps,
            "% of step": 100 * seconds / steps / step_s, "calls per step": count / steps}
  rows = [row(op.kind, op.seconds, op.count) for op in shown]
  if rest:
    rows.append(row(f"{len(rest)} other kinds", sum(op.seconds for op in rest),
                    sum(op.count for op in rest)))
  rows.append(row("all XLA operations", total, sum(op.count for op in ops)))
  return rows


def run(args: argparse.Namespace) -> None:
  deadline = time.monotonic() + args.budget
  device = jax.devices()[0]
  on_cpu = jax.default_backend() == "cpu"
  config = config_file.load(args.config)
  config.model.dtype = args.dtype
  batch = args.batch or (4 if on_cpu else config.per_step_batch_size)
  repeats = args.repeats or (2 if on_cpu else 5)

  size = args.matmul_size or (2048 if on_cpu else 16384)
  # A CPU may emulate bfloat16: its ceiling is the faster of the two products.
  measured, matmul_dtype = max((train_bench.matmul_flops_per_s(size, dtype), dtype)
                               for dtype in {args.dtype, "float32" if on_cpu else args.dtype})
  datasheet = datasheet_peak(device.device_kind)
  peak = datasheet or measured

  step = train_bench.compile_step(config, batch)
  step_s = report.median_seconds(step.run, repeats)
  flops = step.flops
  if args.profile:
    ops = profile.op_times(profile.trace(step.run, repeats, args.profile))
  features, banks, audio = jax.jit(featurise), step.banks, step.batch["audio"]
  featurise_s = report.median_seconds(
      lambda: jax.block_until_ready(features(banks, audio)), repeats)
  memory = peak_memory()
  params = sound2synth.count_parameters(step.state.params)
  compile_s, first_try_s = step.compile_s, step.compile_s + 2 * step_s
  del step  # frees its state before the batch search
  host_rate, host_note = host_samples_per_core(workdir_lib.parameter_space(config))
  samples_per_s = batch / step_s
  fitted, why = largest_batch(config, batch, deadline, first_try_s)

  devices = jax.device_count()
  rows = [
      {"measure": "matmul peak", "value": measured / 1e12, "unit": "TFLOP/s",
       "note": f"{size}^3 {matmul_dtype}, measured"},
      {"measure": "datasheet peak", "value": (datasheet or 0) / 1e12, "unit": "TFLOP/s",
       "note": "dense bf16" if datasheet else "unknown device: MFU uses the matmul"},
      {"measure": "train step", "value": step_s, "unit": "s",
       "note": f"batch {batch} on {devices} device(s), median of {repeats}"},
      {"measure": "samples/s", "value": samples_per_s, "unit": "1/s", "note": args.config},
      {"measure": "FLOPs per sample", "value": flops * devices / batch / 1e9, "unit": "GFLOP",
       "note": "dot products and convolutions"},
      {"measure": "achieved", "value": flops / step_s / 1e12, "unit": "TFLOP/s",
       "note": "per device"},
      {"measure": "MFU", "value": 100 * flops / step_s / peak, "unit": "%",
       "note": "of the datasheet peak" if datasheet else "of the measured matmul"},
      {"measure": "peak memory", "value": memory / 1e9, "unit": "GB",
       "note": "device" if not on_cpu else "process RSS"},
      {"measure": "largest batch", "value": fitted, "unit": "clips", "note": why},
      {"measure": "featuriser", "value": batch / featurise_s, "unit": "clips/s",
       "note": "STFT, mel, CQT, MFCC, statistics"},
      {"measure": "host loader", "value": host_rate or 0.0, "unit": "samples/s/core",
       "note": host_note},
      {"measure": "host cores per device", "value": (samples_per_s / devices / host_rate
                                                     if host_rate else 0.0),
       "unit": "cores", "note": "to feed the step with online rendering"},
  ]
  report.publish("device", rows, args.json, {
      "backend": jax.default_backend(), "device_kind": device.device_kind,
      "devices": devices, "config": args.config, "dtype": args.dtype,
      "params": params, "compile_s": compile_s,
      "budget_s": args.budget, "jax": jax.__version__, "numpy": np.__version__})
  if args.profile:
    report.publish("device profile", profile_rows(ops, repeats, step_s),
                   pathlib.Path(args.profile) / "ops.json",
                   {"config": args.config, "dtype": args.dtype, "batch": batch,
                    "steps traced": repeats, "step_s": step_s})
