"""Where training reports go: TensorBoard event files, a JSON-lines log, a console line.

Only the primary host writes. `workdir/metrics.jsonl` holds one row per report (step and kind:
train, validation, swa, test), for tests and scripts; TensorBoard reads `workdir/tensorboard/`.
A resumed run drops the reports of the steps after its checkpoint, as it makes them again, and a
report made again (a finished run rerun) replaces the earlier one: no row is repeated.
A workdir on Cloud Storage (gs://) needs the `[cloud]` extra; there the log is rewritten whole
at each report, as objects cannot be appended to.
"""

from __future__ import annotations

import json
import time

from etils import epath
import jax
import numpy as np
import tensorboardX


class MetricWriter:
  """Scalars and images to TensorBoard, scalars also to `metrics.jsonl`.

  `restored_step`: the step the run starts from (0 for a new run); later reports are dropped.
  """

  def __init__(self, workdir: epath.Path, restored_step: int):
    self._active = jax.process_index() == 0
    if self._active:
      self._tensorboard = tensorboardX.SummaryWriter(str(workdir / "tensorboard"),
                                                     purge_step=restored_step + 1)
      self._log = _MetricsLog(workdir / "metrics.jsonl", restored_step)

  def scalars(self, step: int, prefix: str, values: dict[str, float]) -> None:
    if not self._active:
      return
    values = {f"{prefix}/{name}": float(value) for name, value in values.items()}
    for name, value in values.items():
      self._tensorboard.add_scalar(name, value, step)
    self._log.write(step, prefix, {"step": step, **values})

  def images(self, step: int, images: dict[str, np.ndarray]) -> None:
    """images: name -> `[height, width]` float in [0, 1] (row 0 drawn at the top)."""
    if self._active:
      for name, image in images.items():
        self._tensorboard.add_image(name, image[None], step, dataformats="CHW")

  def close(self) -> None:
    if self._active:
      self._tensorboard.close()


class _MetricsLog:
  """A JSON-lines file of one row per (step, kind), in the order first reported.

  Opening it keeps the rows up to `restored_step`. A new row is appended (locally); a row of a
  step and kind already there replaces it, and the file is rewritten (as is every write to
  Cloud Storage), through a temporary file so that a kill never leaves half a log.
  """

  def __init__(self, path: epath.Path, restored_step: int):
    self._path = path
    self._append = "://" not in str(path)
    self._rows = {}
    if path.exists():
      for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["step"] <= restored_step:
          self._rows[_key(row)] = line + "\n"
    self._rewrite()

  def write(self, step: int, prefix: str, row: dict) -> None:
    key, line = (step, prefix), json.dumps(row) + "\n"
    again = key in self._rows
    self._rows[key] = line
    if again or not self._append:
      self._rewrite()
    else:
      with open(self._path, "a", encoding="utf-8") as log:
        log.write(line)

  def _rewrite(self) -> None:
    temporary = self._path.with_name(self._path.name + ".tmp")
    temporary.write_text("".join(self._rows.values()), encoding="utf-8")
    temporary.replace(self._path)


def _key(row: dict) -> tuple[int, str]:
  """(step, kind) of a row: its kind is the prefix of its names (`train/loss` -> train)."""
  return row["step"], next((name.split("/")[0] for name in row if name != "step"), "")


class Progress:
  """The console line: step, epoch, loss, steps/s and the time left.

  Steps/s is the latest interval's; the time left divides the steps to go by the mean rate
  since the first line, as the first interval holds the compilation and later ones the
  validations as often as they recur ("?" on the first line).
  """

  def __init__(self, total_steps: int, first_step: int):
    self._total = total_steps
    self._last_step, self._last_time = first_step, time.perf_counter()
    self._first = None  # (step, time) of the first line

  def line(self, step: int, epoch: float, loss: float) -> str:
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    if self._first is None:
      self._first, eta = (step, now), float("inf")
    else:
      mean = (step - self._first[0]) / max(now - self._first[1], 1e-9)
      eta = (self._total - step) / mean if mean > 0 else float("inf")
    return (f"step {step}/{self._total}  epoch {epoch:.2f}  loss {loss:.4f}  "
            f"{rate:.2f} steps/s  ETA {_duration(eta)}")


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"
