"""tests/in_process.py: a command's main run in the test process leaves the process as it was."""

import logging
import os
import sys
import warnings

import jax
from absl import flags
import pytest

from s2s_jax.util import caches
from s2s_jax.util import console
import in_process


def _state() -> dict:
  return {"environment": dict(os.environ), "folder": os.getcwd(),
          "jax": logging.getLogger("jax").level, "filters": list(warnings.filters),
          "absl": (flags.FLAGS["verbosity"].value, flags.FLAGS["stderrthreshold"].value),
          "cache": (jax.config.jax_enable_compilation_cache,
                    jax.config.jax_compilation_cache_dir)}


def test_a_main_that_changes_the_process_leaves_it_as_it_was(tmp_path):
  before = _state()

  def main(argv):
    console.quiet(verbose=False)  # loggers, warnings, absl, environment
    caches.use_compilation_cache(False)
    os.environ["S2S_TEST_VARIABLE"] = argv[0]
    os.chdir(tmp_path)
    print("a result")
    print("an error", file=sys.stderr)
    return 3

  assert _state() == before  # nothing ran yet: the comparison itself holds
  result = in_process.run(main, 7)
  assert result == in_process.Result(3, "a result\n", "an error\n")
  assert _state() == before


@pytest.mark.parametrize("exit_with, code, stderr", [
    (None, 0, ""), (2, 2, ""), ("s2s: error: a message", 1, "s2s: error: a message\n")])
def test_exit_statuses_are_the_interpreters(exit_with, code, stderr):
  def main(argv):
    del argv
    sys.exit(exit_with)
  assert in_process.run(main) == in_process.Result(code, "", stderr)


def test_an_exception_is_not_an_exit_status():
  def main(argv):
    raise RuntimeError(argv)
  with pytest.raises(RuntimeError):
    in_process.run(main)
