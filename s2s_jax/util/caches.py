"""The user's cache folder, and JAX's compiled programs kept in it.

Everything s2s_jax can compute again lives under one folder: `$S2S_CACHE_DIR`, else
`$XDG_CACHE_HOME/s2s_jax`, else `~/.cache/s2s_jax`. In it `library/` holds preset libraries'
features (`match.library`) and `jax/` the XLA programs matching compiles, so that a later
process loads them instead of compiling them again (most of a cold `s2s-match`'s time).
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import jax

OFF_SWITCH = "S2S_COMPILATION_CACHE"  # set to 0, off, false or no to compile every time
_OFF = ("0", "off", "false", "no")
# Every program is kept, however quick to compile: matching compiles a fixed few dozen, and
# the small ones together take about half a second on two cores.
MIN_COMPILE_SECONDS = 0.0


def cache_dir(name: str) -> pathlib.Path:
  """The folder `name` under the user's s2s_jax cache (see the module docstring)."""
  if os.environ.get("S2S_CACHE_DIR"):
    return pathlib.Path(os.environ["S2S_CACHE_DIR"]).expanduser() / name
  base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
  return pathlib.Path(base) / "s2s_jax" / name


def compilation_cache_dir(enabled: bool = True) -> pathlib.Path | None:
  """Where compiled programs are kept: `JAX_COMPILATION_CACHE_DIR` if set, else
  `cache_dir("jax")`; None if `enabled` is False, `S2S_COMPILATION_CACHE` is off or the folder
  cannot be created and written."""
  if not enabled or os.environ.get(OFF_SWITCH, "").strip().lower() in _OFF:
    return None
  folder = pathlib.Path(jax.config.jax_compilation_cache_dir or cache_dir("jax"))
  try:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
      pass
  except OSError:
    return None
  return folder


def use_compilation_cache(enabled: bool = True) -> pathlib.Path | None:
  """Turns JAX's persistent compilation cache on in `compilation_cache_dir(enabled)`, or off
  where that is None (quietly: matching then compiles every program). Call before the first
  compile. Returns the folder in use."""
  folder = compilation_cache_dir(enabled)
  jax.config.update("jax_enable_compilation_cache", folder is not None)
  if folder is not None:
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
      jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  return folder
