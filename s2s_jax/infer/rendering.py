"""Predicted classes -> voices -> audio, rendered by the real engine."""

from __future__ import annotations

import numpy as np

from s2s_jax.synth import render as R
from s2s_jax.synth.space import ParameterSpace


def render_classes(space: ParameterSpace, classes: np.ndarray, algorithm: np.ndarray | int,
                   renderer: R.Renderer) -> np.ndarray:
  """Class vectors `[n, num_params]` played with their 1-based algorithms `[n]` (or one for
  all) -> audio `[n, samples]`."""
  voices = space.decode(classes, algorithm)
  return R.render_batch(renderer, voices)
