"""The shared development corpus, when this checkout has `../shared/presets`."""

import json
import subprocess

import numpy as np

from s2s_jax.synth import corpus as C
from s2s_jax.synth import splits


def test_shared_corpus_counts(shared_presets):
  out = subprocess.run(["s2s-presets", str(shared_presets), "--json"], capture_output=True,
                       text=True, check=True, timeout=600).stdout
  summary = json.loads(out)
  assert summary["files_read"] == 3391 and summary["files_rejected"] == {}
  assert summary["voice_slots"] == 104916 and summary["distinct_voices"] == 27830
  per_algorithm = summary["voices_per_algorithm"]
  rarest = sorted(per_algorithm, key=per_algorithm.get)[:5]
  assert set(rarest) == {"21", "27", "25", "30", "24"}  # as the corpus README measured


def test_shared_corpus_splits_do_not_leak(shared_presets):
  corpus = C.read_corpus(shared_presets)
  groups = splits.near_duplicate_groups(corpus.voices, 3)
  split = splits.assign_splits(corpus.voices, groups)
  spans = [len(np.unique(split[groups == g])) for g in np.unique(groups)[:2000]]
  assert max(spans) == 1
  shares = np.bincount(split) / len(split)
  assert 0.75 < shares[0] < 0.85 and 0.07 < shares[1] < 0.13 and 0.07 < shares[2] < 0.13
