"""Shared fixtures: the real Dexed renderer, the shared corpus when present, the tiny dataset
and model (made once per session, also under pytest-xdist); one JAX compilation cache, one
user cache folder and cheap XLA compiles for the session."""

import atexit
import contextlib
import fcntl
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

# Set before JAX is imported: this process and every run it starts (which inherit the variable)
# compile each program once per session, e.g. the tiny network's steps, shared by every run of
# the same config.
# The variables are set in pytest's first process, so xdist's workers share them.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="s2s_jax_test_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # small programs too
  # The tests compile far more than they compute: LLVM's cheapest level takes about a third
  # less CPU on a training run (the same losses and results to the digits printed).
  os.environ["XLA_FLAGS"] = " ".join(
      [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]).strip()
# What s2s_jax keeps in the user's cache folder (`util.caches`: CQT kernels, libraries'
# features) goes to one folder of the session, shared by every process, never the user's home.
if "S2S_CACHE_DIR" not in os.environ:
  os.environ["S2S_CACHE_DIR"] = tempfile.mkdtemp(prefix="s2s_jax_test_user_cache_")
  atexit.register(shutil.rmtree, os.environ["S2S_CACHE_DIR"], True)

import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

import main_job  # pylint: disable=wrong-import-position
from s2s_jax.synth import generate  # pylint: disable=wrong-import-position
from s2s_jax.synth import render  # pylint: disable=wrong-import-position
from s2s_jax.train import train  # pylint: disable=wrong-import-position

# `../shared/presets` beside the project root, when this checkout has it.
SHARED_PRESETS = pathlib.Path(os.environ.get(
    "S2S_SHARED_PRESETS", pathlib.Path(__file__).resolve().parents[2] / "shared" / "presets"))


@pytest.fixture(scope="session")
def unprivileged() -> list[str]:
  """A command prefix that takes root's power over file modes away (nothing if not root).

  The process stays uid 0, so it can still run this interpreter; folder modes bind it.
  """
  return (["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0
          else [])


@pytest.fixture(scope="session")
def renderer() -> render.DexedRenderer:
  return render.DexedRenderer()


@pytest.fixture(scope="session")
def random_voices() -> np.ndarray:
  """`[64, 155]` voices drawn from the prior, one per algorithm twice over."""
  rng = np.random.default_rng(1234)
  return np.stack([generate.sample_voice(rng, algorithm=i % 32 + 1) for i in range(64)])


@pytest.fixture(scope="session")
def shared_presets() -> pathlib.Path:
  if not SHARED_PRESETS.is_dir():
    pytest.skip(f"shared corpus not present at {SHARED_PRESETS}")
  return SHARED_PRESETS


@contextlib.contextmanager
def _once(tmp_path_factory, name: str):
  """Yields (folder, made): `made` is False only for the first user of this session's `name`.

  Under pytest-xdist the workers share the folder: the first makes it while the others wait.
  """
  root = tmp_path_factory.getbasetemp()
  if "PYTEST_XDIST_WORKER" in os.environ:
    root = root.parent  # the session's folder, above each worker's own
  folder, done = root / name, root / f"{name}.done"
  with open(root / f"{name}.lock", "w", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    made = done.exists()
    if not made:
      folder.mkdir(exist_ok=True)
    yield folder, made
    done.touch()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> pathlib.Path:
  """A data_dir holding the `tiny` dexed_presets config, built once per session."""
  with _once(tmp_path_factory, "tfds") as (data_dir, made):
    if not made:
      result = subprocess.run([sys.executable, "-m", "s2s_jax.data.build",
                               f"--data_dir={data_dir}", "--config=tiny"],
                              capture_output=True, text=True, timeout=600)
      assert result.returncode == 0, result.stderr[-2000:]
  return data_dir


@pytest.fixture(scope="session")
def tiny_dataset(tiny_data_dir) -> pathlib.Path:
  """The version folder of the built `tiny` config."""
  return tiny_data_dir / "dexed_presets" / "tiny" / "1.0.0"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_data_dir) -> pathlib.Path:
  """A workdir holding a `t6.py:tiny` model trained on the `tiny` dataset: a loadable model.

  Trained in this process by `train_and_evaluate` (`main_job.TINY`: 2 epochs of 12 steps, SWA
  over the second), as tests/test_train.py runs it through the entry point, killed and resumed.
  """
  with _once(tmp_path_factory, "tiny_model") as (folder, made):
    if not made:
      train.train_and_evaluate(main_job.tiny_config(tiny_data_dir), str(folder / "workdir"))
  return folder / "workdir"


# The longest files first, longest first (their seconds in the last full run): under
# pytest-xdist (`--dist loadfile --no-loadscope-reorder`, else xdist orders files by their number
# of tests) each worker takes the next file when it is free, so the short files fill the end
# and neither worker waits long for the other.
FIRST = ("test_cli.py", "test_model.py", "test_multiprocess.py", "test_train.py",
         "test_bench_quality.py", "test_bundled.py", "test_weights.py", "test_caches.py",
         "test_bench_device.py", "test_data.py", "test_train_loop.py")


def pytest_collection_modifyitems(items) -> None:
  rank = {name: i for i, name in enumerate(FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # a stable sort
