"""Random inputs shaped like the real ones: for speed measurements (speed does not depend on
the values) and for tests of shapes and sharding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from s2s_jax.audio.features import STATISTICS
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.synth.space import ParameterSpace


def random_features(batch: int, spec: FeatureSpec = FeatureSpec()) -> dict[str, jax.Array]:
  """Features shaped as `featurise` returns them, plus "audio": `[batch, time, ...]`."""
  rng = np.random.default_rng(0)
  shapes = {"stft": (spec.n_freqs,), "mel": (spec.n_mels,), "cqt": (spec.cqt_bins,),
            "mfcc": (spec.n_mfcc,), **{name: () for name in STATISTICS}}
  features = {name: rng.uniform(-1, 1, (batch, spec.num_frames) + shape)
              for name, shape in shapes.items()}
  features["audio"] = rng.normal(0, 0.1, (batch, spec.num_samples))
  return {name: jnp.asarray(x, jnp.float32) for name, x in features.items()}


def synthetic_batch(batch: int, space: ParameterSpace, spec: FeatureSpec = FeatureSpec()
                    ) -> dict[str, np.ndarray]:
  """Noisy tones with random valid labels: `{"audio", "labels", "weights"}` `[batch, ...]`."""
  rng = np.random.default_rng(0)
  t = np.arange(spec.num_samples) / spec.sample_rate
  audio = (0.5 * np.sin(2 * np.pi * rng.uniform(50, 2000, (batch, 1)) * t)
           + rng.normal(0, 0.01, (batch, spec.num_samples))).astype(np.float32)
  labels = (rng.random((batch, space.num_params)) * space.num_classes).astype(np.int32)
  return {"audio": audio, "labels": labels,
          "weights": np.ones((batch, space.num_params), np.float32)}
