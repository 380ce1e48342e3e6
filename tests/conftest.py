"""Shared fixtures: the real Dexed renderer, the shared corpus when present, the tiny dataset
and model; one JAX compilation cache for the session."""

import atexit
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

# Set before JAX is imported: this process and every run it starts (which inherit the variable)
# compile each program once per session, e.g. the tiny network's steps, shared by every run of
# the same config.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="s2s_jax_test_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)

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


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> pathlib.Path:
  """A data_dir holding the `tiny` dexed_presets config, built once per session."""
  data_dir = tmp_path_factory.mktemp("tfds")
  result = subprocess.run([sys.executable, "-m", "s2s_jax.data.build", f"--data_dir={data_dir}",
                           "--config=tiny"], capture_output=True, text=True, timeout=600)
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
  workdir = tmp_path_factory.mktemp("tiny_model") / "workdir"
  train.train_and_evaluate(main_job.tiny_config(tiny_data_dir), str(workdir))
  return workdir
