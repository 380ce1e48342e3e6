"""Shared fixtures: the real Dexed renderer and, when present, the shared corpus."""

import os
import pathlib

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
  return np.stack([generate.sample_voice(rng, algorithm=i % 32) for i in range(64)])


@pytest.fixture(scope="session")
def shared_presets() -> pathlib.Path:
  if not SHARED_PRESETS.is_dir():
    pytest.skip(f"shared corpus not present at {SHARED_PRESETS}")
  return SHARED_PRESETS
