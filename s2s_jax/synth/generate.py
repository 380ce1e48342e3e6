"""The paper's two preset generators: augmentation of real voices, and random walks.

Both draw new parameter values from `sample_value`, a prior shaped like real
DX7 programming (carriers loud, envelopes that start and end, mostly integer
frequency ratios, pitch envelopes near centre) so most random voices are
audible, and both keep only voices that are audible when rendered (peak above
`min_peak`, 0.01 as in the reference, on the renderer's raw scale).
"""

from __future__ import annotations

import dexed
import numpy as np

from s2s_jax.synth import params
from s2s_jax.synth import render as R

# Per parameter (its name without the "OPk " prefix): a mixture of uniform
# integer ranges, as (weight, low, high) with both ends included.
_PRIOR: dict[str, tuple[tuple[float, int, int], ...]] = {
    "EG RATE 1": ((1, 30, 99),),
    "EG RATE 2": ((1, 10, 99),),
    "EG RATE 3": ((1, 10, 99),),
    "EG RATE 4": ((1, 25, 99),),  # releases that end within the render
    "EG LEVEL 1": ((1, 80, 99),),
    "EG LEVEL 2": ((1, 50, 99),),
    "EG LEVEL 3": ((1, 0, 99),),
    "EG LEVEL 4": ((0.9, 0, 0), (0.1, 0, 40)),
    "OUTPUT LEVEL (carrier)": ((1, 80, 99),),
    "OUTPUT LEVEL (modulator)": ((1, 0, 99),),
    "MODE": ((0.95, 0, 0), (0.05, 1, 1)),
    "F COARSE": ((0.85, 0, 8), (0.15, 0, 31)),
    "F FINE": ((0.7, 0, 0), (0.3, 0, 99)),
    "OSC DETUNE": ((0.5, 7, 7), (0.5, 0, 14)),
    "BREAK POINT": ((0.5, 39, 39), (0.5, 0, 99)),
    "L SCALE DEPTH": ((0.6, 0, 0), (0.4, 0, 99)),
    "R SCALE DEPTH": ((0.6, 0, 0), (0.4, 0, 99)),
    "L KEY SCALE": ((1, 0, 3),),
    "R KEY SCALE": ((1, 0, 3),),
    "RATE SCALING": ((1, 0, 7),),
    "A MOD SENS.": ((0.7, 0, 0), (0.3, 0, 3)),
    "KEY VELOCITY": ((1, 0, 7),),
    "ALGORITHM": ((1, 0, 31),),
    "FEEDBACK": ((1, 0, 7),),
    "OSC KEY SYNC": ((1, 0, 1),),
    "LFO SPEED": ((1, 0, 99),),
    "LFO DELAY": ((0.5, 0, 0), (0.5, 0, 99)),
    "LFO PM DEPTH": ((0.6, 0, 0), (0.4, 0, 99)),
    "LFO AM DEPTH": ((0.7, 0, 0), (0.3, 0, 99)),
    "LFO KEY SYNC": ((1, 0, 1),),
    "LFO WAVE": ((1, 0, 5),),
    "TRANSPOSE": ((0.8, 24, 24), (0.2, 12, 36)),
    "P MODE SENS.": ((1, 0, 7),),
    **{f"PITCH EG RATE {i}": ((1, 0, 99),) for i in range(1, 5)},
    **{f"PITCH EG LEVEL {i}": ((0.8, 50, 50), (0.2, 35, 65)) for i in range(1, 5)},
}

# The parameters a generator may change: every DX7 sound parameter but ALGORITHM.
MUTABLE_PARAMS = tuple(p for p in params.VOICE_PARAMS if p.kind is not params.Kind.ALGORITHM)


def _prior_key(param: params.DexedParam, algorithm: int) -> str:
  op = params.operator_of(param)
  if op is None:
    return param.name
  short = param.name.split(" ", 1)[1]
  if short == "OUTPUT LEVEL":  # dexed-py numbers algorithms and operators from 0
    role = "carrier" if op - 1 in dexed.get_carriers(algorithm - 1) else "modulator"
    return f"{short} ({role})"
  return short


def sample_value(rng: np.random.Generator, param: params.DexedParam, algorithm: int) -> int:
  """Draws a DX7 value of `param` from the prior (carriers depend on the 1-based `algorithm`)."""
  mixture = _PRIOR[_prior_key(param, algorithm)]
  weights = np.array([w for w, _, _ in mixture])
  _, low, high = mixture[rng.choice(len(mixture), p=weights / weights.sum())]
  return int(rng.integers(low, high + 1))


def sample_voice(rng: np.random.Generator, algorithm: int | None = None,
                 name: str = "RANDOM") -> np.ndarray:
  """A voice `[155]` with every parameter drawn from the prior, of the 1-based `algorithm`
  (drawn too when None)."""
  voice = params.with_name(params.INIT_VOICE, name)
  if algorithm is None:
    algorithm = sample_value(rng, params.PARAM_BY_NAME["ALGORITHM"], 1) + 1  # the byte's value + 1
  params.set_algorithm(voice, algorithm)
  for param in MUTABLE_PARAMS:
    voice[param.voice_byte] = sample_value(rng, param, algorithm)
  return voice


def mutate(voice: np.ndarray, rng: np.random.Generator, num_changes: int) -> np.ndarray:
  """A copy of `voice` [155] with `num_changes` distinct parameters redrawn to new values."""
  voice = params.clamp_voice(voice)
  algorithm = int(params.algorithm_of(voice))
  for i in rng.choice(len(MUTABLE_PARAMS), size=num_changes, replace=False):
    param = MUTABLE_PARAMS[i]
    old = voice[param.voice_byte]
    while voice[param.voice_byte] == old:  # the prior always has more than one value
      voice[param.voice_byte] = sample_value(rng, param, algorithm)
  return voice


def is_audible(audio: np.ndarray, min_peak: float = 0.01) -> np.ndarray:
  """`[...]` bool: does audio `[..., samples]` peak above `min_peak`?"""
  return R.peak(audio) > min_peak


def augment(voices: np.ndarray, renderer: R.Renderer, seed: int, copies: int = 4,
            max_changes: int = 3, min_peak: float = 0.01,
            max_tries: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """Audible variants of real voices: each keeps all but 1..max_changes parameters.

  Args:
    voices: `[n, 155]` real voices.
    renderer: renders candidates for the audibility check.
    seed: the variants depend only on the seed and the voices.
    copies: variants per voice.
    max_changes: at most this many parameters are redrawn per variant.
    min_peak: audibility threshold.
    max_tries: candidates drawn per variant before giving that variant up.
  Returns:
    (`[m, 155]` variants, `[m]` index of each variant's source voice), m <= n * copies.
    A variant belongs to its source's split.
  """
  def variants(job: tuple[int, np.random.SeedSequence]) -> list[np.ndarray]:
    index, seed_sequence = job
    rng = np.random.default_rng(seed_sequence)
    kept = []
    for _ in range(copies):
      for _ in range(max_tries):
        candidate = mutate(voices[index], rng, int(rng.integers(1, max_changes + 1)))
        if is_audible(renderer.render(candidate), min_peak):
          kept.append(candidate)
          break
    return kept

  jobs = list(enumerate(np.random.SeedSequence(seed).spawn(len(voices))))
  results = list(R.map_with(renderer, variants, jobs))
  sources = np.repeat(np.arange(len(voices)), [len(r) for r in results])
  return _stack(sum(results, [])), sources


def random_walk(renderer: R.Renderer, num_presets: int, seed: int,
                algorithm: int | None = None, walk_length: int = 10, max_changes: int = 2,
                min_peak: float = 0.01, max_tries: int = 100) -> np.ndarray:
  """Audible random presets from the whole space, as independent random walks.

  Each walk starts from a voice drawn from the prior and takes `walk_length`
  steps, each redrawing 1..max_changes parameters; a step is kept only if its
  rendering is audible, otherwise it is redrawn from the same state.

  Args:
    renderer: renders candidates for the audibility check.
    num_presets: how many presets to return.
    seed: the presets depend only on the seed and the arguments.
    algorithm: 1-based DX7 algorithm of every preset, or None for any.
    walk_length: presets per walk before restarting from the prior.
    max_changes: at most this many parameters change per step.
    min_peak: audibility threshold.
    max_tries: candidates drawn per kept preset before failing.
  Returns:
    `[num_presets, 155]` uint8 voices.
  Raises:
    RuntimeError: a walk found no audible step within `max_tries` candidates.
  """
  def walk(job: tuple[int, np.random.SeedSequence]) -> list[np.ndarray]:
    length, seed_sequence = job
    rng = np.random.default_rng(seed_sequence)
    kept, current = [], None
    while len(kept) < length:
      for _ in range(max_tries):
        if current is None:
          candidate = sample_voice(rng, algorithm, name="RANDOM")
        else:
          candidate = mutate(current, rng, int(rng.integers(1, max_changes + 1)))
        if is_audible(renderer.render(candidate), min_peak):
          break
      else:
        raise RuntimeError(f"no audible preset in {max_tries} random candidates "
                           f"(min_peak={min_peak}); lower min_peak or check the renderer")
      kept.append(candidate)
      current = candidate
    return kept

  lengths = [min(walk_length, num_presets - start) for start in range(0, num_presets, walk_length)]
  jobs = list(zip(lengths, np.random.SeedSequence(seed).spawn(len(lengths))))
  return _stack(sum(R.map_with(renderer, walk, jobs), []))


def _stack(voices: list[np.ndarray]) -> np.ndarray:
  return np.stack(voices) if voices else np.zeros((0, params.VOICE_BYTES), np.uint8)
