"""The console: quiet libraries unless asked, and one live status line per long task.

Commands print their results and errors as lines; while a long task runs, a status line on
stderr says what runs, how far it is and the time left (redrawn in place on a terminal, absent
when stderr is a file or a pipe, so logs and tests see the result lines only).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

import tqdm

# Loggers of the libraries below us: their INFO and WARNING lines are for developers.
_CHATTY = ("absl", "jax", "jax._src", "orbax", "orbax.checkpoint", "tensorflow",
           "tensorflow_datasets", "tfds", "grain", "etils", "matplotlib", "numba", "h5py")


def quiet(verbose: bool = False) -> None:
  """Hides absl, JAX, orbax, TFDS and TensorFlow chatter (errors still show) unless `verbose`.

  Call before those libraries are imported for TensorFlow's C++ log level to take effect.
  """
  if verbose:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ INFO and WARNING
  os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
  for name in _CHATTY:
    logging.getLogger(name).setLevel(logging.ERROR)
  warnings.filterwarnings("ignore", module="(orbax|jax|flax|tensorflow_datasets|absl|grain)")
  try:
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    absl_logging.set_verbosity(absl_logging.ERROR)
    absl_logging.set_stderrthreshold(absl_logging.ERROR)
  except ImportError:
    pass


def status(total: float, description: str = "", unit: str = "",
           counted: bool = False) -> tqdm.tqdm:
  """A status line on stderr for a task of `total` steps: percentage, elapsed and time left
  (and with `counted`, steps done of `total` and their rate in `unit`s a second).

  Drawn only when stderr is a terminal. Update with `.update(n)` or by setting `.n` and
  calling `.refresh()`; `.set_description()` names the current item; `.write()` prints a
  result line above it.
  """
  counts = "{n_fmt}/{total_fmt}{unit}, {rate_noinv_fmt}, " if counted else ""
  return tqdm.tqdm(total=total, desc=description, unit=f" {unit}" if counted else unit,
                   file=sys.stderr, disable=None, leave=False, dynamic_ncols=True,
                   mininterval=0.5,
                   bar_format="{desc} " + counts + "{percentage:3.0f}% |{bar:20}| {elapsed} "
                              "elapsed, {remaining} left")


@contextlib.contextmanager
def without_tfds_bars():
  """TFDS's own progress bars off inside (a status line of ours stands for them)."""
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top
  shown = tqdm_utils._active  # pylint: disable=protected-access
  tqdm_utils.display_progress_bar(False)
  try:
    yield
  finally:
    tqdm_utils.display_progress_bar(shown)
