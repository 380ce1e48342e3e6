"""Reading preset folders: banks, single voices, bad files, dedupe, groups and splits."""

import itertools

import numpy as np
import pytest

from s2s_jax.synth import corpus as C
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth import splits
from s2s_jax.synth import sysex
from s2s_jax.util import files


@pytest.fixture(scope="module")
def folder(tmp_path_factory, random_voices):
  """A corpus with two themes, a repeated voice, the 10 00 quirk and every bad file."""
  root = tmp_path_factory.mktemp("presets")
  (root / "Brass").mkdir()
  (root / "Keys" / "Old").mkdir(parents=True)
  bank_a = random_voices[:32]
  bank_b = np.concatenate([random_voices[32:63], random_voices[:1]])  # voice 0 again
  files.write_atomic(root / "Brass" / "A.syx", sysex.bank_message(bank_a))
  quirk = bytearray(sysex.bank_message(bank_b))
  quirk[4] = 0x10
  (root / "Keys" / "Old" / "B.SYX").write_bytes(bytes(quirk))
  files.write_atomic(root / "Keys" / "single.syx", sysex.voice_message(random_voices[63]))
  files.write_atomic(root / "Keys" / "dup.syx",
                     sysex.voice_message(params.with_name(random_voices[5], "COPY")))
  good = sysex.bank_message(bank_a)
  bad = {"empty.syx": b"", "text.syx": b"hello", "roland.syx": bytes([0xF0, 0x41] + [0] * 10),
         "short.syx": good[:3000], "long.syx": good + b"\xf7", "sum.syx": good[:-2] + bytes(
             [(good[-2] + 1) & 0x7F, 0xF7])}
  for name, data in bad.items():
    (root / "Bad" / name).parent.mkdir(exist_ok=True)
    (root / "Bad" / name).write_bytes(data)
  (root / "Keys" / "notes.txt").write_text("not a preset")
  return root


def test_reads_valid_files_and_counts_rejections(folder):
  corpus = C.read_corpus(folder)
  assert corpus.files == ("Brass/A.syx", "Keys/Old/B.SYX", "Keys/dup.syx", "Keys/single.syx")
  assert corpus.rejected_by_reason == {"bad checksum": 1, "not a DX7 voice dump": 1,
                                       "not sysex": 2, "truncated": 1, "wrong size": 1}
  assert len(corpus.slots) == 66
  assert len(corpus.voices) == 64  # voice 0 in two banks, voice 5 under another name
  assert all(r.message.startswith(str(folder / r.path)) for r in corpus.rejected)


def test_distinct_voices_keep_their_sources_and_theme(folder, random_voices):
  corpus = C.read_corpus(folder)
  np.testing.assert_array_equal(corpus.voices[:, :145], random_voices[:, :145])
  assert corpus.themes[0] == "Brass" and corpus.themes[40] == "Keys/Old"
  assert corpus.themes[63] == "Keys"
  assert params.voice_name(corpus.voices[5]) == params.voice_name(random_voices[5])


def test_algorithms_are_1_based(folder, random_voices):
  corpus = C.read_corpus(folder)  # random_voices: algorithms 1..32, twice over
  np.testing.assert_array_equal(corpus.algorithms, np.tile(np.arange(1, 33), 2))


def test_missing_folder_is_a_clear_error(tmp_path):
  with pytest.raises(NotADirectoryError, match="preset folder not found"):
    C.read_corpus(tmp_path / "nowhere")


def test_empty_folder_reads_as_empty(tmp_path):
  corpus = C.read_corpus(tmp_path)
  assert corpus.voices.shape == (0, 155) and corpus.files == ()


def _brute_force_groups(voices, d):
  sounds = params.clamp_voice(voices)[:, :145]
  sets = splits._DisjointSets(len(voices))  # pylint: disable=protected-access
  for i, j in itertools.combinations(range(len(voices)), 2):
    if (sounds[i] != sounds[j]).sum() <= d:
      sets.union(i, j)
  roots = [sets.find(i) for i in range(len(voices))]
  return [sorted(i for i in range(len(voices)) if roots[i] == r) for r in set(roots)]


@pytest.mark.parametrize("max_differences", [0, 1, 3, 6])
def test_near_duplicate_groups_match_brute_force(random_voices, max_differences):
  rng = np.random.default_rng(max_differences)
  voices = [random_voices[i] for i in range(12)]
  for _ in range(60):  # near-copies, and copies of copies that chain
    voices.append(generate.mutate(voices[rng.integers(len(voices))], rng, int(rng.integers(1, 5))))
  voices = np.stack(voices)
  groups = splits.near_duplicate_groups(voices, max_differences, chunk=7)
  ours = sorted(sorted(np.nonzero(groups == g)[0].tolist()) for g in np.unique(groups))
  assert ours == sorted(_brute_force_groups(voices, max_differences))
  assert groups[0] == 0 and np.all(np.diff(np.unique(groups, return_index=True)[1]) > 0)


def test_splits_are_leak_free_deterministic_and_seeded(random_voices):
  rng = np.random.default_rng(0)
  voices = np.stack([generate.mutate(v, rng, 2) for v in random_voices for _ in range(4)])
  groups = splits.near_duplicate_groups(voices, 3)
  split = splits.assign_splits(voices, groups, seed=1)
  for g in np.unique(groups):
    assert len(np.unique(split[groups == g])) == 1
  np.testing.assert_array_equal(split, splits.assign_splits(voices, groups, seed=1))
  assert not np.array_equal(split, splits.assign_splits(voices, groups, seed=2))
  # A group's split depends only on the group: shuffling the corpus changes nothing.
  order = rng.permutation(len(voices))
  np.testing.assert_array_equal(splits.assign_splits(voices[order], groups[order], seed=1),
                                split[order])
  assert set(np.unique(split)) == {0, 1, 2}


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.9, 0.2, -0.1), (0.5, 0.2, 0.2)])
def test_bad_split_fractions_are_refused(random_voices, fractions):
  with pytest.raises(ValueError, match="fractions"):
    splits.assign_splits(random_voices, np.arange(64), fractions=fractions)
