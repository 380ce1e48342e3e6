"""Matching with a trained model: selection, refinement, s2s-match outputs and errors."""

import dataclasses
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import soundfile

from s2s_jax.audio import mfccd
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.data import recipes
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.match import candidates
from s2s_jax.match import cli as match_cli
from s2s_jax.match import export
from s2s_jax.match import matcher as matcher_lib
from s2s_jax.match import search
from s2s_jax.match import target as target_lib
from s2s_jax.synth import generate
from s2s_jax.synth import host
from s2s_jax.synth import params
from s2s_jax.synth import render
from s2s_jax.synth import sysex
import in_process

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def model(tiny_model) -> workdir_lib.TrainedModel:
  return workdir_lib.load_model(tiny_model)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory, renderer) -> dict[str, pathlib.Path]:
  """A voice the project renders (algorithm 5, as the tiny model) and sounds it did not."""
  folder = tmp_path_factory.mktemp("sounds")
  rng = np.random.default_rng(7)
  while True:
    audio = renderer.render(generate.sample_voice(rng, algorithm=5))
    if generate.is_audible(audio, 0.1):
      break
  sounds = {"dexed": folder / "dexed.wav"}
  soundfile.write(sounds["dexed"], audio, 48_000, subtype="FLOAT")
  made = {  # name: (file, command)
      "pluck": (folder / "pluck.flac", ["sox", "-n", "-r", "44100", "-c", "2",
                                        folder / "pluck.flac", "synth", "2.5", "pluck", "A3"]),
      "speech": (folder / "speech.wav", ["espeak-ng", "-w", folder / "speech.wav",
                                         "ah, a sound to match"]),
  }
  for name, (path, command) in made.items():
    if shutil.which(command[0]) is None:
      if os.environ.get("CI"):
        pytest.fail(f"{command[0]} is missing: .ci/run installs it")
      continue
    subprocess.run(list(map(str, command)), check=True, capture_output=True)
    sounds[name] = path
  return sounds


def test_a_model_loads_with_its_algorithm_and_best_step(model, tiny_model):
  assert model.algorithm == 5  # the `tiny` dataset's voices are all algorithm 5
  assert model.workdir == tiny_model and model.step > 0
  assert set(model.variables) == {"params", "batch_stats"}


def test_the_closest_candidate_of_every_model_and_algorithm_is_kept(model, renderer):
  renderer = renderer.with_settings(model.clip)
  noise = np.random.default_rng(3).normal(0, 0.2, model.clip.num_samples).astype(np.float32)
  target = target_lib.prepare_target(noise, renderer.settings, "noise", "noise")
  assert target.pitch.hz is None  # so TRANSPOSE stays as decoded
  any_algorithm = dataclasses.replace(model, algorithm=None)  # tried with each allowed one
  matcher = matcher_lib.Matcher([model, any_algorithm],
                                matcher_lib.MatchSettings(algorithms=(2, 5), top_k=3), renderer)
  match = matcher.match(target)
  assert match.candidates == 3 * 3  # model: 5; any_algorithm: 2 and 5
  probabilities = matcher.predictor.probabilities(target.audio[None])[:, 0]
  best = {}
  grid = matcher.predictor.space  # the network's classes, rendered as the same voices
  for index, algorithm in ((0, 5), (1, 2), (1, 5)):
    objective = search.Objective(target.audio, grid, algorithm, renderer)
    top = candidates.top_k_classes(probabilities[index], grid, 3)
    best[algorithm, index] = objective(top).min()
  assert match.network["mfccd13"] == pytest.approx(min(best.values()), rel=1e-5)
  assert match.retuning is None and match.refined is None


def test_refinement_never_makes_the_match_worse(model, renderer, sounds):
  target = target_lib.load_target(sounds["dexed"], model.clip)
  settings = matcher_lib.MatchSettings(top_k=2, refine=search.Budget(renders=48))
  match = matcher_lib.Matcher([model], settings, renderer.with_settings(model.clip)).match(target)
  assert match.refine_renders == 48
  assert match.refined["mfccd13"] <= match.network["mfccd13"] + 1e-6
  assert match.mfccd is match.refined


def test_no_model_for_the_allowed_algorithms_is_an_error(model, renderer):
  with pytest.raises(workdir_lib.ModelError, match="no model for the allowed algorithms"):
    matcher_lib.Matcher([model], matcher_lib.MatchSettings(algorithms=(7,)), renderer)


def _s2s_match(*args) -> in_process.Result:
  """`s2s-match ARGS` in this process (its outputs, messages and exit status as a process
  has them; tests/test_console.py and test_caches.py run the command as a process)."""
  return in_process.run(match_cli.main, *args)


@pytest.fixture(scope="module")
def matched(tmp_path_factory, tiny_model, sounds):
  out = tmp_path_factory.mktemp("matched") / "out"
  result = _s2s_match(*sounds.values(), "--model", tiny_model, "--out", out, "--top-k", "2",
                      "--refine-renders", "32")
  assert result.returncode == 0, result.stderr[-3000:]
  return out, result


def test_s2s_match_writes_every_output_for_every_input(matched, sounds):
  out, result = matched
  summary = json.loads((out / "summary.json").read_text())
  assert [entry["name"] for entry in summary] == list(sounds)
  for entry in summary:
    name = entry["name"]
    assert set(entry["outputs"].values()) == {f"{name}{s}" for s in export.OUTPUTS.values()}
    assert entry["algorithm"] == 5 and 0 < entry["seconds"]
    assert entry["refined"]["mfccd13"] <= entry["network"]["mfccd13"] + 1e-6
    assert set(entry["network"]) == {"mfccd13", "mfccd30"}
    assert f"{name}: MFCCD-13 {entry['mfccd']['mfccd13']:.2f}" in result.stdout
    image = PIL.Image.open(out / f"{name}.png")
    assert image.format == "PNG" and image.size[0] > image.size[1] > 100
  assert sorted(p.name for p in out.iterdir()) == sorted(
      ["summary.json"] + [f"{n}{s}" for n in sounds for s in export.OUTPUTS.values()])


def test_the_syx_reloads_and_rerenders_to_the_reported_mfccd(matched, sounds, model):
  out, _ = matched
  for entry in json.loads((out / "summary.json").read_text()):
    voice = sysex.read(out / f"{entry['name']}.syx")[0]
    assert voice[params.ALGORITHM_BYTE] + 1 == entry["algorithm"]
    assert params.voice_name(voice) == entry["name"][:10]
    from_json = host.from_dexed_json(
        json.loads((out / f"{entry['name']}.json").read_text())["host"])
    np.testing.assert_array_equal(params.with_name(from_json, entry["name"]), voice)
    target = target_lib.load_target(sounds[entry["name"]], model.clip)  # the clips it compares
    rendering = render.DexedRenderer(model.clip).render(voice)
    for n_mfcc in (13, 30):
      distance = float(mfccd.mfccd(rendering[None], target.audio[None], n_mfcc=n_mfcc,
                                   spec=FeatureSpec(clip=model.clip))[0])
      assert distance == pytest.approx(entry["refined"][f"mfccd{n_mfcc}"], rel=1e-4)


def test_the_wav_lasts_as_long_as_the_input(matched, sounds):
  out, _ = matched
  for name, path in sounds.items():
    target = target_lib.load_target(path)
    info, rate = soundfile.info(out / f"{name}.wav"), soundfile.info(path).samplerate
    assert info.samplerate == rate and abs(info.frames - target.seconds * rate) <= 1


def test_a_pitched_input_is_matched_at_its_pitch(matched, sounds):
  if "pluck" not in sounds:
    pytest.skip("sox is not installed")
  out, _ = matched
  entry = {e["name"]: e for e in json.loads((out / "summary.json").read_text())}["pluck"]
  assert entry["pitch"]["input_note"] == "A3"
  if entry["pitch"]["transpose"] is None:  # the match itself came out unpitched
    assert "match unpitched" in entry["pitch"]["note"]
  else:
    assert "A3" in entry["pitch"]["note"]


def test_a_batch_matches_every_good_input_and_reports_each_bad_one(tmp_path, tiny_model, sounds):
  bad = {"missing.wav": "missing.wav: no such file",
         "silent.wav": "silent.wav: the sound is silent",
         "slow.wav": "slow.wav: sample rate 1 Hz is outside 8000..384000 Hz",
         "summary.wav": "summary.wav: the name 'summary' is kept for summary.json"}
  soundfile.write(tmp_path / "silent.wav", np.zeros(4800), 48_000)
  soundfile.write(tmp_path / "slow.wav", np.random.default_rng(0).normal(0, 0.3, 3000), 1)
  shutil.copy(sounds["dexed"], tmp_path / "summary.wav")
  out = tmp_path / "out"
  result = _s2s_match(tmp_path / "missing.wav", sounds["dexed"], tmp_path / "silent.wav",
                      tmp_path / "slow.wav", tmp_path / "summary.wav", "--model", tiny_model,
                      "--out", out, "--top-k", "1", "--refine-renders", "0")
  assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
  failures = [line for line in result.stderr.splitlines() if line.startswith("s2s-match: failed:")]
  assert len(failures) == 4 and all(m in result.stderr for m in bad.values()), result.stderr
  assert "4 of 5 input(s) failed" in result.stderr
  assert sorted(p.name for p in out.iterdir()) == [
      "dexed.json", "dexed.png", "dexed.syx", "dexed.wav", "dexed_bank.syx", "summary.json"]
  assert [e["name"] for e in json.loads((out / "summary.json").read_text())] == ["dexed"]


def test_an_unusable_output_folder_stops_the_run_before_the_models_load(tmp_path, sounds,
                                                                      unprivileged):
  (tmp_path / "file").write_bytes(b"mine")
  (tmp_path / "locked").mkdir(mode=0o555)
  (tmp_path / "taken" / "dexed.png").mkdir(parents=True)
  cases = [(tmp_path / "file", "file: --out is a file, not a folder"),
           (tmp_path / "locked", "locked: the output folder is not writable (Permission denied)"),
           (tmp_path / "locked" / "sub", "sub: the output folder is not writable"),
           (tmp_path / "taken", "dexed.png: a folder is where an output goes")]
  args = lambda out: [sounds["dexed"], "--out", out, "--model", tmp_path / "no model"]
  # The model does not exist: its error would come after. Root writes into any folder, so the
  # runs go to a process without that power when this one has it (one process for them all).
  if unprivileged:
    script = ("import json, sys; sys.path.insert(0, sys.argv[1]); import in_process; "
              "from s2s_jax.match import cli; "
              "print(json.dumps([vars(in_process.run(cli.main, *json.loads(a))) "
              "for a in sys.argv[2:]]))")
    process = subprocess.run(
        [*unprivileged, sys.executable, "-c", script, pathlib.Path(__file__).parent,
         *(json.dumps(list(map(str, args(out)))) for out, _ in cases)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    results = [in_process.Result(**r) for r in json.loads(process.stdout.splitlines()[-1])]
  else:
    results = [_s2s_match(*args(out)) for out, _ in cases]
  for (out, message), result in zip(cases, results, strict=True):
    assert result.returncode == 2 and message in result.stderr, (out, result.stderr)
    assert "no model" not in result.stderr and "Traceback" not in result.stderr
  assert (tmp_path / "file").read_bytes() == b"mine"


def test_s2s_match_never_replaces_an_input_or_earlier_files_and_merges_summary(
    tmp_path, tiny_model, sounds):
  fast = ("--model", tiny_model, "--top-k", "1", "--refine-renders", "0")
  first, second = tmp_path / "first.wav", tmp_path / "second.wav"
  shutil.copy(sounds["dexed"], first)
  shutil.copy(sounds["dexed"], second)
  out = tmp_path / "out"
  assert _s2s_match(first, "--out", out, *fast).returncode == 0
  before = {p.name: p.read_bytes() for p in out.iterdir()}

  again = _s2s_match(first, "--out", out, *fast)
  assert again.returncode == 2 and "first.syx: already exists (and 4 more" in again.stderr
  assert "--overwrite" in again.stderr
  assert {p.name: p.read_bytes() for p in out.iterdir()} == before
  into_inputs = _s2s_match(first, "--out", tmp_path, "--overwrite", *fast)
  assert into_inputs.returncode == 2 and "would replace this input" in into_inputs.stderr
  assert first.read_bytes() == pathlib.Path(sounds["dexed"]).read_bytes()

  assert _s2s_match(second, "--out", out, *fast).returncode == 0
  assert _s2s_match(first, "--out", out, "--overwrite", *fast).returncode == 0
  summary = json.loads((out / "summary.json").read_text())
  assert [e["name"] for e in summary] == ["first", "second"]
  assert {p.name for p in out.iterdir()} == {"summary.json"} | {
      f"{n}{s}" for n in ("first", "second") for s in export.OUTPUTS.values()}
  assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in out.iterdir())


def test_s2s_match_rejects_bad_models_and_options(tmp_path, tiny_model, sounds):
  cases = [
      (["--model", tmp_path], "no config.json"),
      (["--model", tmp_path / "nowhere"], "no such folder"),
      (["--model", tiny_model, "--algorithms", "7"], "no model for the allowed algorithms"),
      (["--model", tiny_model, "--algorithms", "0-3"], "DX7 algorithms are 1..32"),
      (["--model", tiny_model, "--top-k", "0"], "must be >= 1"),
  ]
  for options, message in cases:
    result = _s2s_match(sounds["dexed"], "--out", tmp_path / "out", *options)
    assert result.returncode == 2 and message in result.stderr, (options, result.stderr)
    assert "Traceback" not in result.stderr
  result = _s2s_match(sounds["dexed"], sounds["dexed"], "--model", tiny_model,
                      "--out", tmp_path / "out")
  assert result.returncode == 2 and "would both write dexed.*" in result.stderr


def test_training_records_the_clip_in_the_workdir(model):
  # The tiny dataset's, written into config.json by training.
  assert model.clip == recipes.recipe("tiny").clip != ClipSpec()
  assert json.loads((model.workdir / "config.json").read_text())["clip"]["note"] == 60


def test_a_workdir_written_before_clips_were_recorded_has_the_papers(model, tmp_path):
  old = tmp_path / "old"
  shutil.copytree(model.workdir, old)
  settings = json.loads((old / "config.json").read_text())
  del settings["clip"]
  (old / "config.json").write_text(json.dumps(settings))
  assert workdir_lib.read_config(old / "config.json")[1] == ClipSpec()
