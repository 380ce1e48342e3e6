"""Shared fixtures: the real Dexed renderer and, when present, the shared corpus."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from s2s_jax.synth import generate
from s2s_jax.synth import render

# `../shared/presets` beside the project root, when this checkout has it.
SHARED_PRESETS = pathlib.Path(os.environ.get(
    "S2S_SHARED_PRESETS", pathlib.Path(__file__).resolve().parents[2] / "shared" / "presets"))


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
  """A workdir holding a `t6.py:tiny` model trained on the `tiny` dataset: a loadable model."""
  workdir = tmp_path_factory.mktemp("tiny_model") / "workdir"
  result = subprocess.run(
      [sys.executable, "-m", "s2s_jax.main", "--config=configs/t6.py:tiny", f"--workdir={workdir}",
       f"--config.data_dir={tiny_data_dir}", "--config.num_epochs=2"],
      capture_output=True, text=True, timeout=900, cwd=pathlib.Path(__file__).parents[1])
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir
