"""Shared output of every benchmark: a printed table and a JSON file.

Machines here are noisy, so benchmarks compare a candidate with a baseline in the
same run and report medians and ratios rather than single timings.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Callable, Sequence


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
  """Median wall time of `fn()` over `repeats` calls (after one warm-up call)."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def machine() -> dict[str, object]:
  """What the figures were measured on."""
  return {
      "date": datetime.date.today().isoformat(),
      "platform": platform.platform(),
      "processor": platform.processor() or platform.machine(),
      "cpu_count": os.cpu_count(),
      "python": platform.python_version(),
  }


def format_table(rows: Sequence[dict[str, object]]) -> str:
  """Renders rows (dicts sharing keys) as an aligned text table."""
  columns = list(rows[0])
  cells = [[_format(row[c]) for c in columns] for row in rows]
  widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
  lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
  lines.append("  ".join("-" * w for w in widths))
  lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
  return "\n".join(lines)


def publish(name: str, rows: Sequence[dict[str, object]], json_path: str | os.PathLike,
            settings: dict[str, object]) -> None:
  """Prints the table and writes `{benchmark, machine, settings, rows}` as JSON."""
  print(f"s2s-bench {name}")
  print(format_table(rows))
  path = pathlib.Path(json_path)
  path.parent.mkdir(parents=True, exist_ok=True)
  payload = {"benchmark": name, "machine": machine(), "settings": settings, "rows": list(rows)}
  path.write_text(json.dumps(payload, indent=2) + "\n")
  print(f"wrote {path}")


def _format(value: object) -> str:
  if isinstance(value, float):
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
  return str(value)
