"""The dexed_presets dataset: source plans, gradient weights, TF-free builds and reading."""

import fcntl
import importlib.util
import json
import os
import pathlib
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import numpy as np
import pytest

from s2s_jax.audio import storage
from s2s_jax.data import reader
from s2s_jax.data import recipes
from s2s_jax.data import sources
from s2s_jax.data import weights as W
from s2s_jax.synth import corpus as C
from s2s_jax.synth import params
from s2s_jax.synth.space import ParameterSpace

TINY_CLIP = recipes.recipe("tiny").clip

DUMMY_DATA = pathlib.Path(__file__).parents[1] / "datasets" / "dexed_presets" / "dummy_data"


def test_plan_keeps_groups_and_variants_in_one_split_and_test_real(renderer):
  corpus = C.read_corpus(DUMMY_DATA)
  mix = sources.SourceMix(augmentations_per_preset=2, random_presets=20, walk_length=4)
  plan = sources.plan(mix, renderer, corpus)
  group_split = {}
  for name, planned in plan.items():
    for g in planned.group:
      assert group_split.setdefault(int(g), name) == name  # no group spans two splits
  assert set(plan["test"].source) <= {0}  # test: held-out real presets only
  real = sum(int(np.sum(p.source == 0)) for p in plan.values())
  assert real == len(corpus.voices)
  for name in ("train", "validation"):
    assert np.sum(plan[name].source == 1) == 2 * np.sum(plan[name].source == 0)
  assert sum(int(np.sum(p.source == 2)) for p in plan.values()) == 20


def test_plan_for_one_algorithm_and_without_a_corpus(renderer):
  corpus = C.read_corpus(DUMMY_DATA)
  algorithm = int(np.bincount(corpus.algorithms).argmax())
  plan = sources.plan(sources.SourceMix(algorithm=algorithm), renderer, corpus)
  voices = np.concatenate([p.voices for p in plan.values()])
  assert (voices[:, params.ALGORITHM_BYTE] == algorithm - 1).all()
  assert len(voices) == np.sum(corpus.algorithms == algorithm)
  with pytest.raises(ValueError, match="manual directory"):
    sources.plan(sources.SourceMix(), renderer, None)


def test_neighbour_voices_move_one_parameter_by_one_class():
  space = ParameterSpace()
  voice = params.INIT_VOICE.copy()
  probed = np.arange(space.num_params)
  moved, change = W.neighbour_voices(space, voice, probed)
  assert ((moved != voice).sum(axis=1) == 1).all() and (change != 0).all()
  np.testing.assert_array_equal(np.abs(space.encode(moved) - space.encode(voice)).sum(1), 1)


def test_gradient_weights_follow_audibility(renderer):
  space = ParameterSpace()
  voice = params.INIT_VOICE.copy()  # algorithm 1, only OP1 sounds: OP2..OP6 are silent
  audio = renderer.render(voice)[None]
  weights = W.gradient_weights(space, voice[None], audio, renderer,
                               W.WeightSettings(mode="all"), seed=0)[0]
  by_name = dict(zip(space.names, weights))
  assert by_name["OP1 OUTPUT LEVEL"] > 0.5 and by_name["OP1 F COARSE"] > 0.5
  assert by_name["OP5 EG RATE 1"] == 0 and by_name["OP6 F FINE"] == 0  # their output level is 0
  assert abs(weights.mean() - 1) < 0.05 and weights.max() <= 10
  np.testing.assert_array_equal(
      W.gradient_weights(space, voice[None], audio, renderer, W.WeightSettings(mode="off"), 0),
      np.ones((1, space.num_params)))
  sampled = W.gradient_weights(space, voice[None], audio, renderer,
                               W.WeightSettings(mode="sampled", num_sampled=12), seed=0)[0]
  assert np.sum(sampled != 1) <= 12


def _build(tmp_path, *flags, **kwargs):
  return subprocess.run([sys.executable, "-m", "s2s_jax.data.build", f"--data_dir={tmp_path}",
                         *flags], capture_output=True, text=True, timeout=600, **kwargs)


def _without(*packages: str) -> str:
  """Python lines that make `packages` unimportable, as if they were not installed."""
  return f"""
import importlib.machinery, sys
class Missing(importlib.machinery.PathFinder):
  @classmethod
  def find_spec(cls, name, path=None, target=None):
    return None if name.split(".")[0] in {packages!r} else super().find_spec(name, path, target)
sys.meta_path = [Missing if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""


def _in_a_terminal(command: list[str]) -> tuple[int, str, str]:
  """Runs `command` with stderr on a pseudo-terminal of 120 columns: (exit status, stdout,
  what stderr drew)."""
  terminal, secondary = pty.openpty()
  fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=secondary, text=True)
  os.close(secondary)
  drawn = []
  def read():
    while True:
      try:
        chunk = os.read(terminal, 65536)
      except OSError:  # EIO: every writer has closed the terminal
        return
      if not chunk:
        return
      drawn.append(chunk)
  reader_thread = threading.Thread(target=read)
  reader_thread.start()
  stdout, _ = process.communicate(timeout=600)
  reader_thread.join(timeout=60)
  os.close(terminal)
  return process.returncode, stdout, b"".join(drawn).decode(errors="replace")


def test_tiny_build_reads_back(tiny_dataset, renderer):
  source = reader.data_source(tiny_dataset, "train")
  assert len(source) == 51
  example = source[0]
  voice = np.asarray(example["voice"])
  audio = np.asarray(storage.decode_audio(example["audio_pcm"], example["audio_scales"]))
  expected = renderer.with_settings(TINY_CLIP).render(voice)
  assert np.max(np.abs(audio - expected)) <= np.max(np.abs(expected)) / 30000
  np.testing.assert_array_equal(example["labels"], ParameterSpace().encode(voice))
  assert example["algorithm"] == 5 and example["source"] == 2


def test_reading_needs_no_tensorflow(tiny_dataset):
  """A fresh process reads and batches without ever importing TensorFlow."""
  script = f"""
import sys
from s2s_jax.data import reader
source = reader.data_source({str(tiny_dataset)!r}, "validation")
batch = next(iter(reader.loader(source, 3)))
assert "tensorflow" not in sys.modules
print(len(source), batch["audio_pcm"].shape)
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split()[0] == "3" and f"(3, {TINY_CLIP.num_samples})" in result.stdout


def _rows(batch: dict) -> list[bytes]:
  """One identifying byte string per example of a batch."""
  return [pcm[:64].tobytes() + labels.tobytes()
          for pcm, labels in zip(batch["audio_pcm"], batch["labels"])]


def test_hosts_read_disjoint_slices_covering_an_epoch(tiny_dataset):
  source = reader.data_source(tiny_dataset, "train")
  seen = []
  for host in range(3):
    for batch in reader.loader(source, 3, shuffle=False, process_index=host, process_count=3):
      assert set(batch) == set(reader.TRAINING_KEYS)
      assert batch["audio_pcm"].shape == (1, TINY_CLIP.num_samples)
      seen.extend(_rows(batch))
  assert len(seen) == len(set(seen)) == 51


def test_global_batches_do_not_depend_on_the_number_of_hosts(tiny_dataset):
  """Two hosts' slices, side by side, are one host's batches, row for row, over 3 epochs."""
  source = reader.data_source(tiny_dataset, "train")
  one = [_rows(b) for b in reader.loader(source, 4, seed=7, num_epochs=3, process_index=0,
                                         process_count=1)]
  halves = [[_rows(b) for b in reader.loader(source, 4, seed=7, num_epochs=3, process_index=i,
                                             process_count=2)] for i in range(2)]
  assert len(one) == 51 * 3 // 4
  assert [first + second for first, second in zip(*halves)] == one
  rows = [row for batch in one for row in batch]
  first, second = rows[:51], rows[51:102]
  assert set(first) == set(second) and first != second  # every example once, reshuffled


def test_beam_build_gives_the_same_examples(tiny_dataset, tmp_path):
  if importlib.util.find_spec("apache_beam") is None:  # not imported here: see test_host.py
    pytest.skip("apache-beam is not installed")
  result = _build(tmp_path, "--config=tiny", "--beam")
  assert result.returncode == 0, result.stderr[-2000:]
  beam = reader.data_source(tmp_path / "dexed_presets" / "tiny" / "1.0.0", "test")
  plain = reader.data_source(tiny_dataset, "test")
  key = lambda e: np.asarray(e["voice"]).tobytes()
  assert sorted(map(key, beam)) == sorted(map(key, plain))


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> tuple[pathlib.Path, dict, tuple[int, str, str]]:
  """A `tiny` build killed once it has started writing, then built again with stderr on a
  terminal: (its data_dir, what was there after the kill, the rerun's `_in_a_terminal`).

  `tiny` (60 one-second clips, no presets) takes seconds to render: killed meanwhile.
  """
  data_dir = tmp_path_factory.mktemp("interrupted")
  process = subprocess.Popen([sys.executable, "-m", "s2s_jax.data.build", "--config=tiny",
                              f"--data_dir={data_dir}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while not list(data_dir.glob("dexed_presets/tiny/incomplete*")) and time.time() < deadline:
    time.sleep(0.05)
  os.kill(process.pid, signal.SIGKILL)
  process.wait()
  killed = {"incomplete": bool(list(data_dir.glob("dexed_presets/tiny/incomplete*"))),
            "complete": (data_dir / "dexed_presets" / "tiny" / "1.0.0").exists()}
  return data_dir, killed, _in_a_terminal([sys.executable, "-m", "s2s_jax.data.build",
                                           "--config=tiny", f"--data_dir={data_dir}"])


def test_an_interrupted_build_never_looks_complete(interrupted):
  data_dir, killed, (code, _, drawn) = interrupted
  assert killed["incomplete"], "the build never started writing"
  assert not killed["complete"]
  assert code == 0, drawn[-2000:]  # a rerun completes
  built = data_dir / "dexed_presets" / "tiny" / "1.0.0"
  assert sum(len(reader.data_source(built, s)) for s in ("train", "validation", "test")) == 60


def test_a_build_on_a_terminal_shows_one_status_line(interrupted):
  """`tiny` holds 60 voices: 51 train, 3 validation, 6 test (see the TFDS test's SPLITS). The
  build is the rerun of `interrupted`: it starts over, as a first build does."""
  data_dir, _, (code, stdout, drawn) = interrupted
  assert code == 0, drawn[-2000:]
  lines = stdout.splitlines()
  assert lines[0] == (f"building dataset dexed_presets/tiny/1.0.0 in {data_dir}/dexed_presets/"
                      "tiny/1.0.0 (rendering every voice)")
  assert re.fullmatch(r"built dataset dexed_presets/tiny/1\.0\.0 in \d+ s", lines[1])
  assert [line.split() for line in lines[2:]] == [
      ["train", "51", "examples"], ["validation", "3", "examples"], ["test", "6", "examples"]]
  status = re.compile(r"^tiny(?: (train|validation|test))? (\d+)/60 voices, +(?:\?|[\d.]+) "
                      r"voices/s, +(\d+)% \|.{20}\| \S+ elapsed, \S+ left *$")
  drawn_lines = [line for line in re.split(r"[\r\n]", drawn) if line.strip()]
  matches = [status.search(line) for line in drawn_lines]
  assert all(matches), [line for line, m in zip(drawn_lines, matches) if not m][:3]
  done = [int(m[2]) for m in matches]
  assert done == sorted(done) and done[-1] >= 54  # after train and validation, at least
  assert {m[1] for m in matches} >= {"train", "validation", "test"}
  assert all(int(m[3]) == round(100 * int(m[2]) / 60) for m in matches)


def test_beam_without_apache_beam_says_what_to_install(tmp_path):
  script = _without("apache_beam", "tensorflow") + f"""
from absl import app
from s2s_jax.data import build
sys.argv = ["build", "--config=tiny", "--beam", "--data_dir={tmp_path}"]
app.run(build.main)
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      "s2s_jax.data.build: error: --beam needs Apache Beam, in the [build] extra: pip install "
      "-e '.[build]' in the s2s_jax folder (or build without --beam)"]
  assert result.stdout == "" and not any(tmp_path.iterdir())


_PRESET_FOLDERS = (None, "missing", "empty", "no_syx")


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> tuple[pathlib.Path, dict]:
  """(folder, {manual_dir: result}): `--config=alg05` built with each of `_PRESET_FOLDERS` as
  its --manual_dir (none, missing, empty, no .syx file), each into its own data_dir.

  One fresh process runs `build.main` for them all, as `python -m s2s_jax.data.build` would,
  each case's stdout, stderr and exit status apart (tests/in_process.py); nothing else may
  reach the process's own stdout and stderr (a log line, a warning, TensorFlow's messages).
  """
  folder = tmp_path_factory.mktemp("refused")
  (folder / "empty").mkdir()
  (folder / "no_syx").mkdir()
  (folder / "no_syx" / "notes.txt").write_text("no presets here")
  cases = {str(name): ["--config=alg05", f"--data_dir={folder / f'data_{name}'}"]
           + ([] if name is None else [f"--manual_dir={folder / name}"])
           for name in _PRESET_FOLDERS}
  script = """
import json, sys
from absl import flags
from s2s_jax.data import build
sys.path.insert(0, sys.argv[1])
import in_process

def main(argv):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["build", *argv])
  return build.main(["build"])

print(json.dumps({case: vars(in_process.run(main, *argv))
                  for case, argv in json.loads(sys.argv[2]).items()}))
"""
  result = subprocess.run([sys.executable, "-c", script, str(pathlib.Path(__file__).parent),
                           json.dumps(cases)], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
  (line,) = result.stdout.splitlines()
  return folder, {name: json.loads(line)[str(name)] for name in _PRESET_FOLDERS}


@pytest.mark.parametrize("folder", _PRESET_FOLDERS)
def test_a_missing_preset_folder_is_one_line(refused, folder):
  presets, results = refused
  result = results[folder]
  assert result["returncode"] == 1 and result["stdout"] == ""
  assert result["stderr"].splitlines() == [
      "s2s_jax.data.build: error: --config=alg05 reads your presets: --manual_dir must name a "
      "folder holding .syx files" + ("" if folder is None else f" ({presets / folder} does not)")]
  assert not (presets / f"data_{folder}").exists()


@pytest.mark.parametrize("seed", range(5))
def test_weight_normalisation_has_mean_one_and_a_cap(seed):
  rng = np.random.default_rng(seed)
  ratio = rng.pareto(0.5, 144) * (rng.random(144) < 0.3)  # heavy-tailed, mostly zero
  weights = W._normalise(ratio, 10.0)  # pylint: disable=protected-access
  assert weights.max() <= 10 + 1e-9 and abs(weights.mean() - 1) < 1e-9
  assert ((weights > 0) == (ratio > 0)).all()
  order = np.argsort(ratio)
  assert (np.diff(weights[order]) >= -1e-12).all()  # monotone in the ratio


def test_tfds_command_line_builds_what_the_tf_free_reader_loads(tmp_path):
  if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("tensorflow is not installed")
  tfds_cli = pathlib.Path(sys.executable).parent / "tfds"
  result = subprocess.run([str(tfds_cli), "build", "--config=tiny", f"--data_dir={tmp_path}"],
                          cwd=DUMMY_DATA.parent, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  built = tmp_path / "dexed_presets" / "tiny" / "1.0.0"
  assert len(reader.data_source(built, "train")) == 51


def test_a_build_spilling_to_disk_needs_no_tensorflow(tmp_path, tiny_dataset):
  """TFDS spills its shuffle buffer to disk above MAX_MEM_BUFFER_SIZE (1 GB): shrunk here."""
  script = _without("tensorflow") + f"""
from absl import app
from tensorflow_datasets.core import shuffle
from s2s_jax.data import build
shuffle.MAX_MEM_BUFFER_SIZE = 100_000  # a few examples
sys.argv = ["build", "--config=tiny", "--data_dir={tmp_path}"]
app.run(build.main)
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  for split in ("train", "test"):
    spilled = reader.data_source(tmp_path / "dexed_presets" / "tiny" / "1.0.0", split)
    in_memory = reader.data_source(tiny_dataset, split)
    assert len(spilled) == len(in_memory)
    for i in range(len(spilled)):
      for key in ("audio_pcm", "labels", "voice"):
        np.testing.assert_array_equal(spilled[i][key], in_memory[i][key])
