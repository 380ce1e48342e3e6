"""Where a compiled step's time goes: a JAX profiler trace, summed by XLA operation.

`trace` runs a function a few times under `jax.profiler.trace` (TensorBoard's profile plugin and
Perfetto read the folder); `op_times` sums the trace's XLA operations, the events whose
arguments name an `hlo_op` (kernels on a GPU's streams, thunks on a CPU), by kind: the HLO
name without its number (`fusion.12` and `fusion.3` are both `fusion`). XLA's GPU backend runs
most kernels inside CUDA graphs, whose events all name one `command_buffer` op: those are
grouped by the kernel's own name instead (a fusion's, or a library's kernel), likewise
without its number. Each operation counts its own time, not that of operations nested in it (a
`while` loop's body on a CPU). Times are summed over threads and streams, so they can add up
to more than the wall time where operations run side by side.
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
_KIND_CHARACTERS = 60  # library kernels' names run to 200 characters


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


def op_kind(hlo_op: str, kernel: str = "") -> str:
  """`loop_multiply_fusion.12` -> `loop_multiply_fusion`; `dot` stays `dot`; in a CUDA graph
  (`command_buffer_7`), the kernel's name: `loop_add_fusion_49` -> `loop_add_fusion`."""
  if hlo_op.startswith("command_buffer") and kernel:
    return re.sub(r"[._]\d+$", "", kernel)[:_KIND_CHARACTERS]
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
    kind = op_kind(event["args"]["hlo_op"], event.get("name", ""))
    seconds[kind] += own_us * 1e-6  # Perfetto's times are in microseconds
    counts[kind] += 1
  return [OpTime(kind, seconds[kind], counts[kind]) for kind, _ in seconds.most_common()]


def self_times(events: list[dict]) -> list[float]:
  """Each event's duration less those of the events nested in it (wholly inside it) on its
  thread. Events that only overlap, as a GPU's concurrent kernels can, keep their time."""
  own = [float(event["dur"]) for event in events]
  end = lambda i: events[i]["ts"] + events[i]["dur"]
  threads = collections.defaultdict(list)
  for index, event in enumerate(events):
    threads[event["pid"], event["tid"]].append(index)
  for indices in threads.values():
    indices.sort(key=lambda i: (events[i]["ts"], -events[i]["dur"]))
    enclosing: list[int] = []  # the events that contain the current one, innermost last
    for i in indices:
      while enclosing and end(i) > end(enclosing[-1]):
        enclosing.pop()
      if enclosing:
        own[enclosing[-1]] -= events[i]["dur"]
      enclosing.append(i)
  return own
