"""The learnable parameter space: DX7 voices <-> per-parameter class indices.

Every DX7 sound parameter except ALGORITHM (fixed per model, or, with
`predict_algorithm`, one more discrete parameter of 32 classes) is learnt as a
class. Continuous 0..99 parameters are quantised into `num_bins` ordinal bins
whose reconstruction points are evenly spaced from 0 to 99 inclusive: bin b
decodes to round(b * 99 / (K - 1)), and a value encodes to its nearest
reconstruction point, so decoding returns the centre of the bin's value range
and 0 and 99 stay exact (the reference decoded with b / 64 and could never
reach 99). Discrete parameters get one class per DX7 value.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from s2s_jax.synth import params


def _round_half_up(x: np.ndarray) -> np.ndarray:
  return np.floor(x + 0.5).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class ParameterSpace:
  """The learnable parameters of a DX7 voice, in Dexed's parameter order.

  Attributes:
    num_bins: K, the number of classes of each continuous (0..99) parameter.
    predict_algorithm: ALGORITHM is learnt too (class = algorithm - 1), for one network of
      every algorithm; else it is fixed per model and given to `decode`.
  """

  num_bins: int = 64
  predict_algorithm: bool = False

  def __post_init__(self):
    if not 2 <= self.num_bins <= 100:
      raise ValueError(f"num_bins must be in [2, 100] (a 0..99 value has 100 levels), "
                       f"got {self.num_bins}")

  @functools.cached_property
  def params(self) -> tuple[params.DexedParam, ...]:
    """The learnable parameters (144: 84 continuous, 60 discrete; 145 with ALGORITHM)."""
    learnable = (params.Kind.CONTINUOUS, params.Kind.DISCRETE) + (
        (params.Kind.ALGORITHM,) if self.predict_algorithm else ())
    return tuple(p for p in params.DEXED_PARAMS if p.kind in learnable)

  @functools.cached_property
  def names(self) -> tuple[str, ...]:
    return tuple(p.name for p in self.params)

  @functools.cached_property
  def voice_bytes(self) -> np.ndarray:
    """`[num_params]` voice byte of each learnable parameter."""
    return np.array([p.voice_byte for p in self.params])

  @functools.cached_property
  def is_continuous(self) -> np.ndarray:
    """`[num_params]` bool, True for the binned 0..99 parameters."""
    return np.array([p.kind is params.Kind.CONTINUOUS for p in self.params])

  @functools.cached_property
  def num_classes(self) -> np.ndarray:
    """`[num_params]` classes per parameter: K if continuous, else DX7 values."""
    return np.where(self.is_continuous, self.num_bins, [p.num_values for p in self.params])

  @functools.cached_property
  def class_offsets(self) -> np.ndarray:
    """`[num_params + 1]` start of each parameter's block in a flat logit vector."""
    return np.concatenate([[0], np.cumsum(self.num_classes)])

  @property
  def num_params(self) -> int:
    return len(self.params)

  @property
  def total_classes(self) -> int:
    return int(self.class_offsets[-1])

  def blocks(self, flat: np.ndarray) -> list[np.ndarray]:
    """Flat `[..., total_classes]` (logits or probabilities) -> each parameter's block
    `[..., num_classes[k]]`, as views in parameter order."""
    flat = np.asarray(flat)
    if flat.shape[-1] != self.total_classes:
      raise ValueError(f"expected {self.total_classes} classes on the last axis, "
                       f"got shape {flat.shape}")
    return np.split(flat, self.class_offsets[1:-1], axis=-1)

  def flat_index(self, classes: np.ndarray) -> np.ndarray:
    """Class indices `[..., num_params]` -> their positions in the flat layout, same shape."""
    return self.class_offsets[:-1] + np.asarray(classes)

  def encode(self, voices: np.ndarray) -> np.ndarray:
    """Voices `[..., 155]` uint8 -> class indices `[..., num_params]` int32.

    Voices are first made what Dexed plays (`params.clamp_voice`).
    """
    values = params.clamp_voice(voices)[..., self.voice_bytes].astype(np.int64)
    bins = _round_half_up(values * (self.num_bins - 1) / 99.0)
    return np.where(self.is_continuous, bins, values).astype(np.int32)

  def decode(self, classes: np.ndarray, algorithm: int | np.ndarray | None = None,
             name: str = "S2S MATCH") -> np.ndarray:
    """Class indices `[..., num_params]` -> voices `[..., 155]` uint8.

    Args:
      classes: one class index per learnable parameter.
      algorithm: 1-based DX7 algorithm (1..32), a scalar or `[...]`; None takes the predicted
        one (`predict_algorithm` only).
      name: the voice name written into every voice.
    """
    classes = np.asarray(classes)
    if classes.shape[-1] != self.num_params:
      raise ValueError(f"expected {self.num_params} class indices per voice, "
                       f"got shape {classes.shape}")
    if np.any(classes < 0) or np.any(classes >= self.num_classes):
      bad = int(np.argmax(np.any((classes < 0) | (classes >= self.num_classes),
                                 axis=tuple(range(classes.ndim - 1)))))
      raise ValueError(f"class index out of range for {self.names[bad]} "
                       f"(has {self.num_classes[bad]} classes)")
    values = self.class_values(classes)
    voices = np.broadcast_to(params.with_name(params.INIT_VOICE, name),
                             classes.shape[:-1] + (params.VOICE_BYTES,)).copy()
    voices[..., self.voice_bytes] = values
    if algorithm is not None:
      params.set_algorithm(voices, algorithm)
    elif not self.predict_algorithm:
      raise ValueError("decode needs the algorithm: this space does not predict it")
    return voices

  def class_values(self, classes: np.ndarray) -> np.ndarray:
    """Class indices `[..., num_params]` -> the DX7 values they stand for."""
    return np.where(self.is_continuous,
                    _round_half_up(np.asarray(classes) * 99.0 / (self.num_bins - 1)), classes)
