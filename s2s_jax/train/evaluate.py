"""Evaluation: parameter metrics over a split, the baselines, and image summaries.

MFCCD compares the real engine's rendering of a predicted voice (`infer.rendering`) with the
example's own stored audio (never with a re-quantised label), by `infer.scoring`. Baselines are
scored the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import jax
import numpy as np

from s2s_jax.audio import features
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.synth.space import ParameterSpace


def split_metrics(eval_step: Callable, batches: Iterable[dict], keep: int
                  ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Runs `eval_step(batch) -> (metric sums, predicted classes)` over a split.

  Returns the example-weighted means of the metrics and, for the first `keep` examples in
  split order, "classes" [keep, num_params], "algorithm" [keep] (1-based) and "audio"
  [keep, samples].
  """
  sums, count, kept = {}, 0.0, {"classes": [], "algorithm": [], "audio": []}
  for batch in batches:
    metric_sums, classes = eval_step(batch)
    for name, value in jax.device_get(metric_sums).items():
      sums[name] = sums.get(name, 0.0) + np.asarray(value, np.float64)
    real = batch["mask"] > 0
    count += float(real.sum())
    have = sum(len(c) for c in kept["classes"])
    take = np.flatnonzero(real)[:max(keep - have, 0)]
    if len(take):
      kept["classes"].append(np.asarray(jax.device_get(classes))[take])
      kept["algorithm"].append(batch["algorithm"][take])
      kept["audio"].append(batch["audio"][take])
  means = {name: value / max(count, 1.0) for name, value in sums.items()}
  return means, {key: np.concatenate(value) if value else np.zeros((0,))
                 for key, value in kept.items()}


def mode_classes(labels: np.ndarray, num_classes: np.ndarray) -> np.ndarray:
  """The most common class of each parameter over training labels `[n, num_params]`."""
  return np.array([np.bincount(labels[:, k], minlength=n).argmax()
                   for k, n in enumerate(num_classes)], np.int32)


def baseline_classes(train_labels: np.ndarray, space: ParameterSpace, count: int,
                     seed: int) -> dict[str, np.ndarray]:
  """The baselines' class predictions for `count` examples, `[count, num_params]` each.

  random_train_voice: a training voice drawn at random (seeded) per example.
  mode_voice: every parameter at its most common training class, for every example.
  """
  rng = np.random.default_rng(seed)
  return {
      "random_train_voice": train_labels[rng.integers(len(train_labels), size=count)],
      "mode_voice": np.broadcast_to(mode_classes(train_labels, space.num_classes),
                                    (count, space.num_params)).copy(),
  }


def spectrogram_pairs(target: np.ndarray, predicted: np.ndarray, clip: ClipSpec
                      ) -> dict[str, np.ndarray]:
  """Image summaries: the target's mel spectrogram above the prediction's, per example.

  target, predicted: `[n, clip.num_samples]` -> name -> `[2 * n_mels, time]` in [0, 1], low
  frequencies at the bottom of each half.
  """
  mel = np.asarray(features.log_mel(np.concatenate([target, predicted]),
                                     FeatureSpec(clip=clip)))
  mel = (mel + 1.0) / 2.0  # log spectra are clipped to [-1, 1]
  n = len(target)
  return {f"match_{i}/target_above_prediction":
          np.concatenate([mel[i].T[::-1], mel[n + i].T[::-1]], axis=0) for i in range(n)}
