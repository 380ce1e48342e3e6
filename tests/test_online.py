"""Online training source: dataset-format batches of fresh real renders, reproducible."""

import itertools
import threading

import numpy as np
import pytest

from s2s_jax.audio import storage
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import online


def _source(renderer, pool=None, process_index=0, **settings):
  settings = {"batch_size": 4, "workers": 2, "prefetch": 2, "include_voice": True, **settings}
  return online.OnlineSource(online.OnlineSettings(**settings), pool, renderer=renderer,
                             process_index=process_index, process_count=2)


def _batches(renderer, n, **kwargs):
  with _source(renderer, **kwargs) as source:
    return list(itertools.islice(source, n))


def _assert_same(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])


def _differences(a, b):
  return (params.clamp_voice(a)[..., :145] != params.clamp_voice(b)[..., :145]).sum(-1)


def _online_threads():
  return [t for t in threading.enumerate() if t.name.startswith(online.THREAD_NAME_PREFIX)]


def test_batches_have_the_dataset_format_and_match_their_voices(renderer):
  batch, = _batches(renderer, 1, seed=1)
  assert batch.keys() == {"audio", "labels", "weights", "algorithm", "voice"}
  assert batch["audio"].shape == (4, 192_000) and batch["audio"].dtype == np.float32
  assert batch["labels"].shape == (4, 144) and batch["labels"].dtype == np.int32
  assert batch["weights"].dtype == np.float32 and (batch["weights"] == 1).all()
  assert batch["weights"].shape == (4, 144)
  assert batch["algorithm"].shape == (4,) and batch["algorithm"].dtype == np.int32
  assert batch["voice"].shape == (4, 155) and batch["voice"].dtype == np.uint8
  voices = batch["voice"]
  np.testing.assert_array_equal(batch["labels"], ParameterSpace().encode(voices))
  np.testing.assert_array_equal(batch["algorithm"], voices[:, params.ALGORITHM_BYTE] + 1)
  assert generate.is_audible(batch["audio"]).all()
  for voice, audio in zip(voices, batch["audio"]):
    np.testing.assert_array_equal(audio, np.asarray(storage.as_stored(renderer.render(voice))))
  raw, = _batches(renderer, 1, seed=1, store_like_dataset=False, include_voice=False)
  assert raw.keys() == {"audio", "labels", "weights", "algorithm"}
  np.testing.assert_array_equal(raw["labels"], batch["labels"])
  for voice, audio in zip(voices, raw["audio"]):
    np.testing.assert_array_equal(audio, renderer.render(voice))


def test_batches_depend_on_seed_process_and_index_not_on_workers(renderer):
  serial = _batches(renderer, 3, seed=5, workers=1, prefetch=0)
  threaded = _batches(renderer, 3, seed=5, workers=2, prefetch=3)
  for a, b in zip(serial, threaded):
    _assert_same(a, b)
  assert not np.array_equal(serial[0]["voice"], serial[1]["voice"])
  other_seed, = _batches(renderer, 1, seed=6)
  other_host, = _batches(renderer, 1, seed=5, process_index=1)
  for other in (other_seed, other_host):
    assert (_differences(other["voice"], serial[0]["voice"]) > 0).all()


def test_a_restored_source_continues_with_the_batches_of_an_uninterrupted_run(renderer):
  uninterrupted = _batches(renderer, 4, seed=2)
  with _source(renderer, seed=2) as source:
    for expected in uninterrupted[:3]:
      _assert_same(next(source), expected)
    state = source.get_state()
  assert state == {"next_batch": 3}
  with _source(renderer, seed=2) as restored:
    restored.set_state(state)
    _assert_same(next(restored), uninterrupted[3])
    restored.set_state({"next_batch": 1})  # rewinding drops the renders ahead
    _assert_same(next(restored), uninterrupted[1])
    assert restored.get_state() == {"next_batch": 2}


def test_a_fixed_algorithm_is_respected_and_inaudible_candidates_are_redrawn(renderer):
  # Under seed 0, two of these four examples are drawn several times before one peaks above 1.
  batch, = _batches(renderer, 1, seed=0, algorithm=7, min_peak=1.0)
  assert (batch["voice"][:, params.ALGORITHM_BYTE] == 6).all() and (batch["algorithm"] == 7).all()
  assert generate.is_audible(batch["audio"], 1.0).all()
  with pytest.raises(RuntimeError, match="no audible voice"):
    _batches(renderer, 1, min_peak=100.0, max_tries=2)


def test_augment_mode_changes_at_most_max_changes_parameters_of_pool_voices(
    renderer, random_voices):
  for max_changes in (1, 3):
    batch, = _batches(renderer, 1, pool=random_voices, mode="augment", algorithm=4,
                      max_changes=max_changes, batch_size=6)
    nearest = _differences(batch["voice"][:, None], random_voices[None]).min(1)
    assert ((nearest >= 1) & (nearest <= max_changes)).all()
    assert (batch["voice"][:, params.ALGORITHM_BYTE] == 3).all()
    assert generate.is_audible(batch["audio"]).all()
  with pytest.raises(ValueError, match="needs a pool"):
    _source(renderer, mode="augment")
  with pytest.raises(ValueError, match="no voice of algorithm"):
    _source(renderer, pool=random_voices[:1], mode="augment",
            algorithm=int(params.algorithm_of(random_voices[0])) % 32 + 1)
  with pytest.raises(ValueError, match="only used in 'augment' mode"):
    _source(renderer, pool=random_voices)


def test_close_joins_the_render_threads(renderer):
  source = online.OnlineSource(online.OnlineSettings(batch_size=4, workers=2, prefetch=3),
                               renderer=renderer)
  assert source.process_index == 0
  next(source)
  assert _online_threads()
  source.close()
  assert not _online_threads()
