"""Running a command's `main(argv)` inside the test process, as its console script would.

A new process costs about two seconds of imports (JAX, Flax, librosa...) and traces and loads
every program again; in the test's own process the modules and JAX's in-memory caches are
already there. Use it where what a test checks is the command's behaviour (its outputs, exit
status and messages), not the process boundary (a cold start, the persistent compilation
cache, signals, peak memory, what a fresh process imports): those keep real processes.

`run` restores what a command's main changes for the rest of its process, so one call does not
leak into the next test: the environment, the working folder, the libraries' loggers and
warnings filters (`util.console.quiet`), absl's verbosity and JAX's compilation cache settings
(`util.caches.use_compilation_cache`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator

import jax
from absl import flags
from absl import logging as absl_logging  # pylint: disable=unused-import  # its flags

# What `absl.logging.set_verbosity` and `set_stderrthreshold` set.
_ABSL_FLAGS = ("verbosity", "stderrthreshold")
# What `caches.use_compilation_cache` sets.
_JAX_SETTINGS = ("jax_enable_compilation_cache", "jax_compilation_cache_dir",
                 "jax_persistent_cache_min_compile_time_secs")


@dataclasses.dataclass(frozen=True)
class Result:
  """As `subprocess.CompletedProcess` has it: the exit status and what was printed."""
  returncode: int
  stdout: str
  stderr: str


@contextlib.contextmanager
def restored() -> Iterator[None]:
  """Puts back, on leaving, the process-wide state a command's main may change."""
  environment, folder = dict(os.environ), os.getcwd()
  levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)}
  root_level, filters = logging.root.level, list(warnings.filters)
  absl_flags = {name: (flags.FLAGS[name].value, flags.FLAGS[name].using_default_value)
                for name in _ABSL_FLAGS}
  settings = {name: getattr(jax.config, name) for name in _JAX_SETTINGS}
  try:
    yield
  finally:
    for name, value in settings.items():
      jax.config.update(name, value)
    for name, (value, default) in absl_flags.items():
      flags.FLAGS[name].value = value  # the verbosity flag sets absl's logger level too
      flags.FLAGS[name].using_default_value = default
    warnings.filters[:] = filters
    logging.root.setLevel(root_level)
    for name, logger in list(logging.root.manager.loggerDict.items()):
      if isinstance(logger, logging.Logger):
        logger.setLevel(levels.get(name, logging.NOTSET))
    os.chdir(folder)
    os.environ.clear()
    os.environ.update(environment)


def run(main: Callable[[list[str]], int | None], *args) -> Result:
  """`main([*args])` (each argument as a string) with its stdout and stderr captured (neither
  is a terminal, as in a pipe); the exit status is main's return value or its SystemExit's code
  as the interpreter makes it (argparse's usage errors exit 2; `sys.exit("message")` prints
  the message and exits 1). Any other exception propagates: a traceback fails the test.
  """
  stdout, stderr = io.StringIO(), io.StringIO()
  with restored(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    try:
      code = main([str(a) for a in args])
    except SystemExit as e:
      code = e.code
    if not isinstance(code, int) and code is not None:  # sys.exit("message")
      print(code, file=stderr)  # as the interpreter does: the message on stderr, status 1
      code = 1
  return Result(code or 0, stdout.getvalue(), stderr.getvalue())
