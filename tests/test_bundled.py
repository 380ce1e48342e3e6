"""The shipped model: its config trains from a preset folder and resumes, its weights load and
predict, a non-editable install carries them, and `s2s-demo` matches the example sounds."""

import pathlib
import shutil
import subprocess
import sys
import zipfile

import flax.serialization
import jax
import numpy as np
import pytest

from s2s_jax import config_file
from s2s_jax import examples
from s2s_jax.infer import bundled
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.infer.predictor import Predictor
from s2s_jax.match import candidates
from s2s_jax.synth import params
from s2s_jax.synth import sysex
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import train
from s2s_jax.util import files

ROOT = pathlib.Path(__file__).parents[1]


def test_a_space_that_predicts_the_algorithm_round_trips_it(random_voices):
  space = ParameterSpace(100, predict_algorithm=True)
  assert space.num_params == ParameterSpace(100).num_params + 1
  classes = space.encode(random_voices)
  assert np.array_equal(classes[:, space.names.index("ALGORITHM")] + 1,
                        params.algorithm_of(random_voices))
  sound = slice(0, params.NUM_SOUND_BYTES)  # 100 classes: every value comes back
  assert np.array_equal(space.decode(classes)[:, sound],
                        params.clamp_voice(random_voices)[:, sound])
  with pytest.raises(ValueError, match="does not predict it"):
    ParameterSpace(100).decode(ParameterSpace(100).encode(random_voices))


def test_the_most_probable_algorithms_and_their_voices():
  space = ParameterSpace(100, predict_algorithm=True)
  blocks = [np.full(n, 1.0 / n) for n in space.num_classes]
  algorithm = space.names.index("ALGORITHM")
  blocks[algorithm] = np.arange(1, 33, dtype=float) / np.sum(np.arange(1, 33))  # 32 is likeliest
  level = space.names.index("OP1 OUTPUT LEVEL")
  blocks[level] = np.eye(100)[70] * 0.9 + 0.001
  probabilities = np.concatenate(blocks)
  assert candidates.top_algorithms(probabilities, space, range(1, 33), 3) == [32, 31, 30]
  assert candidates.top_algorithms(probabilities, space, (2, 7, 5), 2) == [7, 5]
  found = candidates.top_k_given_algorithm(probabilities, space, 4, 3)
  assert found.shape == (3, space.num_params)
  assert np.all(found[:, algorithm] == 3) and np.all(found[:, level] == 70)


def _bundled_config(presets: pathlib.Path, epochs: int):
  config = config_file.load(str(ROOT / "configs/t6.py:bundled"))
  config.manual_dir = str(presets)
  config.update_from_flattened_dict({
      "online.examples_per_epoch": 8, "online.eval_examples": 3, "online.workers": 1,
      "per_step_batch_size": 4, "batch_size": 4, "num_epochs": epochs, "eval_mfccd_examples": 2,
      "image_summaries": 1, "log_every_steps": 1, "checkpoint_every_steps": 2})
  return config


def test_the_bundled_config_trains_from_a_preset_folder_and_resumes(random_voices, tmp_path,
                                                                     capsys):
  presets = tmp_path / "presets"
  for i in range(2):
    files.write_atomic(presets / f"bank{i}.syx", sysex.bank_message(random_voices[32 * i:][:32]))
  workdir = tmp_path / "run"
  first = train.train_and_evaluate(_bundled_config(presets, 1), str(workdir))
  assert first["step"] == 2
  assert not (workdir / "tensorflow_datasets").exists()  # nothing built
  capsys.readouterr()
  second = train.train_and_evaluate(_bundled_config(presets, 2), str(workdir))
  assert second["step"] == 4
  assert "resumed from step 2" in capsys.readouterr().err
  rows = {r["predictor"]: r for r in second["test_mfccd"]}
  assert set(rows) == {"model", "random_train_voice", "mode_voice"}
  model = workdir_lib.load_model(workdir)
  assert model.algorithm is None and workdir_lib.parameter_space(model.config).predict_algorithm

  out = bundled.export(workdir, tmp_path / "bundle")
  with pytest.raises(FileExistsError, match="--overwrite"):
    bundled.export(workdir, tmp_path / "bundle")
  loaded = bundled.load(tmp_path / "bundle")
  assert out.stat().st_size < 25e6
  for a, b in zip(*(sorted(jax_leaves(m.variables)) for m in (model, loaded))):
    np.testing.assert_allclose(a[1], b[1], rtol=1e-2, atol=1e-2)  # bfloat16


def jax_leaves(tree) -> list[tuple[str, np.ndarray]]:
  return [(jax.tree_util.keystr(path), np.asarray(leaf))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def test_the_shipped_weights_load_and_predict_a_valid_voice(renderer, random_voices):
  weights = bundled.BUNDLED_DIR / bundled.WEIGHTS_FILE
  assert weights.stat().st_size <= 25e6
  assert (bundled.BUNDLED_DIR / "MODEL_CARD.md").is_file()
  model = bundled.load()
  predictor = Predictor([model])
  assert predictor.space.predict_algorithm and predictor.space.num_bins == 100
  probabilities = predictor.probabilities(renderer.render(random_voices[0])[None])[0, 0]
  space = predictor.space
  for block in space.blocks(probabilities):
    assert block.sum() == pytest.approx(1.0, abs=1e-4)
  allowed = (3, 9, 27)
  best = candidates.top_algorithms(probabilities, space, allowed, 2)
  assert len(best) == 2 and set(best) <= set(allowed)
  voices = space.decode(candidates.top_k_given_algorithm(probabilities, space, best[0], 2))
  assert np.all(params.algorithm_of(voices) == best[0])
  assert np.array_equal(voices, params.clamp_voice(voices))  # within every DX7 range


def test_weights_that_do_not_fit_the_network_are_a_model_error(tmp_path):
  shutil.copy(bundled.BUNDLED_DIR / workdir_lib.CONFIG_FILE, tmp_path)
  state = flax.serialization.msgpack_restore(
      (bundled.BUNDLED_DIR / bundled.WEIGHTS_FILE).read_bytes())
  state["params"]["fusion"]["kernel"] = state["params"]["fusion"]["kernel"][1:]  # a row short
  (tmp_path / bundled.WEIGHTS_FILE).write_bytes(flax.serialization.msgpack_serialize(state))
  with pytest.raises(workdir_lib.ModelError, match=f"model {tmp_path}: its variables do not fit"):
    Predictor([bundled.load(tmp_path)])


def test_a_wheel_carries_the_bundled_model(tmp_path):
  source = tmp_path / "src"
  shutil.copytree(ROOT / "s2s_jax", source / "s2s_jax",
                  ignore=shutil.ignore_patterns("__pycache__"))
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(ROOT / name, source / name)
  result = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
       str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  wheel, = (tmp_path / "dist").glob("*.whl")
  names = set(zipfile.ZipFile(wheel).namelist())
  for name in (bundled.WEIGHTS_FILE, workdir_lib.CONFIG_FILE, "MODEL_CARD.md"):
    assert f"s2s_jax/bundled/{name}" in names


def test_s2s_demo_matches_the_examples_and_never_overwrites(tmp_path):
  folder = tmp_path / "demo"
  result = subprocess.run([sys.executable, "-m", "s2s_jax.examples", str(folder),
                           "--refine-renders", "8"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
  assert result.returncode == 0, result.stderr[-2000:]
  for name in examples.SOUNDS:
    assert f"{folder / 'sounds' / name}.wav" in result.stdout
    assert sysex.read(folder / "matches" / f"{name}.syx").shape == (1, params.VOICE_BYTES)
  before = (folder / "sounds" / "bell.wav").read_bytes()
  again = subprocess.run([sys.executable, "-m", "s2s_jax.examples", str(folder)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert again.returncode == 2 and "already exists" in again.stderr
  assert "Traceback" not in again.stderr
  assert (folder / "sounds" / "bell.wav").read_bytes() == before
  assert "MFCCD-13" in result.stdout.splitlines()[0]  # the table's header
