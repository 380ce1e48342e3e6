"""Where training reports go: TensorBoard event files, a JSON-lines log, a console line.

Only the primary host writes. `workdir/metrics.jsonl` holds one record per report, for tests and
scripts; TensorBoard reads `workdir/tensorboard/`. A workdir on Cloud Storage (gs://) needs the
`[cloud]` extra; there the log is rewritten whole at each report, as objects cannot be appended to.
"""

from __future__ import annotations

import json
import time

from etils import epath
import jax
import numpy as np
import tensorboardX


class MetricWriter:
  """Scalars and images to TensorBoard, scalars also to `metrics.jsonl`."""

  def __init__(self, workdir: epath.Path):
    self._active = jax.process_index() == 0
    if self._active:
      self._tensorboard = tensorboardX.SummaryWriter(str(workdir / "tensorboard"))
      self._log = _JsonLines(workdir / "metrics.jsonl")

  def scalars(self, step: int, prefix: str, values: dict[str, float]) -> None:
    if not self._active:
      return
    values = {f"{prefix}/{name}": float(value) for name, value in values.items()}
    for name, value in values.items():
      self._tensorboard.add_scalar(name, value, step)
    self._log.write(json.dumps({"step": step, **values}) + "\n")

  def images(self, step: int, images: dict[str, np.ndarray]) -> None:
    """images: name -> `[height, width]` float in [0, 1] (row 0 drawn at the top)."""
    if self._active:
      for name, image in images.items():
        self._tensorboard.add_image(name, image[None], step, dataformats="CHW")

  def close(self) -> None:
    if self._active:
      self._tensorboard.close()
      self._log.close()


class _JsonLines:
  """Appends lines to a file: a local one, or a Cloud Storage object (rewritten whole)."""

  def __init__(self, path: epath.Path):
    self._path = path
    if "://" in str(path):
      self._file = None
      self._lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    else:
      self._file = open(path, "a", encoding="utf-8")

  def write(self, line: str) -> None:
    if self._file is None:
      self._lines.append(line)
      self._path.write_text("".join(self._lines))
    else:
      self._file.write(line)
      self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()


class Progress:
  """The console line: step, epoch, loss, steps/s and the time left."""

  def __init__(self, total_steps: int, first_step: int):
    self._total = total_steps
    self._last_step, self._last_time = first_step, time.perf_counter()

  def line(self, step: int, epoch: float, loss: float) -> str:
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    eta = (self._total - step) / rate if rate > 0 else float("inf")
    return (f"step {step}/{self._total}  epoch {epoch:.2f}  loss {loss:.4f}  "
            f"{rate:.2f} steps/s  ETA {_duration(eta)}")


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"
