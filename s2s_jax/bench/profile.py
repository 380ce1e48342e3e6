"""Where a compiled step's time goes: a JAX profiler trace, summed by XLA operation.

`trace` runs a function a few times under `jax.profiler.trace` (TensorBoard's profile plugin and
Perfetto read the folder); `op_times` sums the trace's XLA operations, the events whose
arguments name an `hlo_op` (kernels on a GPU's streams, thunks on a CPU), by kind: the HLO
name without its number (`fusion.12` and `fusion.3` are both `fusion`). Each operation counts
its own time, not that of operations nested in it (a `while` loop's body on a CPU). Times are
summed over threads and streams, so they can add up to more than the wall time where
operations run side by side.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import pathlib
import re
from typing import Callable

import jax

_DEVICE_PROCESS = re.compile(r"^/device:(GPU|TPU)")


@dataclasses.dataclass(frozen=True)
class OpTime:
  """One kind of XLA operation in a trace: its time and calls, summed over the traced runs."""
  kind: str
  seconds: float
  count: int


def trace(run: Callable[[], None], runs: int, logdir: str | pathlib.Path) -> pathlib.Path:
  """Runs `run()` `runs` times under the profiler; returns the trace's Perfetto JSON file."""
  logdir = pathlib.Path(logdir)
  with jax.profiler.trace(str(logdir), create_perfetto_trace=True):
    for _ in range(runs):
      run()
  return max(logdir.glob("plugins/profile/*/perfetto_trace.json.gz"),
             key=lambda path: path.stat().st_mtime)


def op_kind(hlo_op: str) -> str:
  """`loop_multiply_fusion.12` -> `loop_multiply_fusion`; `dot` stays `dot`."""
  return re.sub(r"\.\d+$", "", hlo_op)


def op_times(trace_path: str | pathlib.Path) -> list[OpTime]:
  """The trace's XLA operations by kind, the longest first.

  On an accelerator only the device's own events count (its kernels), not the host's
  launches of them.
  """
  with gzip.open(trace_path, "rt") as f:
    events = json.load(f)["traceEvents"]
  device_processes = {event["pid"] for event in events
                      if event.get("ph") == "M" and event.get("name") == "process_name"
                      and _DEVICE_PROCESS.match(event["args"]["name"])}
  ops = [event for event in events
         if event.get("ph") == "X" and "hlo_op" in (event.get("args") or {})]
  if any(event["pid"] in device_processes for event in ops):
    ops = [event for event in ops if event["pid"] in device_processes]
  seconds, counts = collections.Counter(), collections.Counter()
  for event, own_us in zip(ops, self_times(ops)):
    kind = op_kind(event["args"]["hlo_op"])
    seconds[kind] += own_us * 1e-6  # Perfetto's times are in microseconds
    counts[kind] += 1
  return [OpTime(kind, seconds[kind], counts[kind]) for kind, _ in seconds.most_common()]


def self_times(events: list[dict]) -> list[float]:
  """Each event's duration less those of the events nested in it on its thread."""
  own = [float(event["dur"]) for event in events]
  threads = collections.defaultdict(list)
  for index, event in enumerate(events):
    threads[event["pid"], event["tid"]].append(index)
  for indices in threads.values():
    indices.sort(key=lambda i: (events[i]["ts"], -events[i]["dur"]))
    open_events: list[int] = []  # the enclosing events of the current one, innermost last
    for i in indices:
      start = events[i]["ts"]
      while open_events and start >= events[open_events[-1]]["ts"] + events[open_events[-1]]["dur"]:
        open_events.pop()
      if open_events:
        own[open_events[-1]] -= events[i]["dur"]
      open_events.append(i)
  return own
