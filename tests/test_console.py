"""What a musician sees: s2s-match's console and files, one MFCCD, and every command's help."""

import io
import json
import pathlib
import re
import subprocess
import sys
import types

import dexed
import librosa
import numpy as np
import pytest
import soundfile

from s2s_jax import examples
from s2s_jax.audio import cli as mfccd_cli
from s2s_jax.bench import cli as bench_cli
from s2s_jax.match import cli as match_cli
from s2s_jax.match import matcher as matcher_lib
from s2s_jax.match import pitch
from s2s_jax.match import target as target_lib
from s2s_jax.match.value_search import VALUE_SPACE
from s2s_jax.serve import cli as serve_cli
from s2s_jax.synth import cli as presets_cli
from s2s_jax.synth import host
from s2s_jax.synth import params
from s2s_jax.synth import sysex
from s2s_jax.train import writers
from test_serve import rendered_sound

ROOT = pathlib.Path(__file__).parents[1]
RATES = {"dexed22k": 22_050, "tone": 48_000}


@pytest.fixture(scope="module")
def sounds(tmp_path_factory, renderer, random_voices) -> dict:
  """A Dexed rendering written at 22.05 kHz in 16-bit, and a harmonic A3 tone at 48 kHz."""
  folder = tmp_path_factory.mktemp("console_sounds")
  audio, rate = soundfile.read(io.BytesIO(rendered_sound(renderer, random_voices)))
  audio = librosa.resample(audio[:2 * rate], orig_sr=rate, target_sr=RATES["dexed22k"])
  soundfile.write(folder / "dexed22k.wav", 0.5 * audio / np.abs(audio).max(), RATES["dexed22k"],
                  subtype="PCM_16")
  t = np.arange(int(1.5 * RATES["tone"])) / RATES["tone"]
  tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 6)) * np.exp(-2 * t)
  soundfile.write(folder / "tone.wav", 0.4 * tone / np.abs(tone).max(), RATES["tone"],
                  subtype="PCM_16")
  return {name: folder / f"{name}.wav" for name in RATES}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model, sounds):
  """One s2s-match process on both sounds (stdout and stderr are not a terminal)."""
  out = tmp_path_factory.mktemp("console") / "out"
  result = subprocess.run(
      [sys.executable, "-m", "s2s_jax.match.cli", *map(str, sounds.values()), "--model",
       str(tiny_model), "--out", str(out), "--top-k", "2", "--refine-renders", "48"],
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = {e["name"]: e for e in json.loads((out / "summary.json").read_text())}
  return out, result, summary


def test_s2s_match_prints_one_line_per_sound_and_one_at_the_end(run):
  _, result, summary = run
  lines = result.stdout.splitlines()
  assert len(lines) == len(RATES) + 1, result.stdout
  for line, name in zip(lines, RATES):
    assert line.startswith(f"{name}: MFCCD-13 {summary[name]['mfccd']['mfccd13']:.2f}")
  assert lines[-1].startswith(f"s2s-match: {len(RATES)} match(es) in ")
  assert result.stderr == ""  # no orbax, absl or JAX messages, no status line off a terminal


def test_the_bank_loads_in_dexed_with_32_voices_best_first(run):
  out, _, summary = run
  for name, entry in summary.items():
    patches = dexed.Patch.load_bank(str(out / f"{name}_bank.syx"))
    assert len(patches) == 32
    bank, single = sysex.read(out / f"{name}_bank.syx"), sysex.read(out / f"{name}.syx")[0]
    named = params.NAME_BYTES.start
    np.testing.assert_array_equal(bank[0][:named], single[:named])  # slot 1 is the match
    alternatives = entry["alternatives"]
    assert len(alternatives) == 32  # 2 candidates and 48 search renders: enough distinct voices
    assert alternatives[0]["mfccd13"] == entry["mfccd"]["mfccd13"]
    scores = [a["mfccd13"] for a in alternatives[1:]]
    assert scores == sorted(scores)
    assert [params.voice_name(v) for v in bank[:len(alternatives)]] == [
        a["name"] for a in alternatives]
    assert [a["algorithm"] for a in alternatives] == list(bank[:len(alternatives),
                                                              params.ALGORITHM_BYTE] + 1)
    assert len({bytes(v[:named]) for v in bank[:len(alternatives)]}) == len(alternatives)


def test_the_json_holds_host_and_dx7_values_by_name(run):
  out, _, summary = run
  for name, entry in summary.items():
    voice = sysex.read(out / f"{name}.syx")[0]
    written = json.loads((out / f"{name}.json").read_text())
    assert written["host"] == host.to_dexed_json(voice)
    assert written["dx7"]["ALGORITHM"] == entry["algorithm"]
    for p in params.VOICE_PARAMS:
      assert written["dx7"][p.name] == voice[p.voice_byte] + (p.name == "ALGORITHM"), p.name
    assert 0 <= written["dx7"]["OP1 OUTPUT LEVEL"] <= 99


def test_the_wav_is_24_bit_at_the_inputs_rate(run):
  out, _, summary = run
  for name, rate in RATES.items():
    info = soundfile.info(out / f"{name}.wav")
    assert (info.samplerate, info.subtype) == (rate, "PCM_24")
    assert summary[name]["wav"]["sample_rate"] == rate


def test_s2s_mfccd_on_the_written_files_gives_the_reported_score_or_it_says_why(
    run, sounds, capsys):
  out, _, summary = run
  for name, entry in summary.items():
    assert mfccd_cli.main([str(sounds[name]), str(out / f"{name}.wav")]) == 0
    measured = float(capsys.readouterr().out)
    files = entry["mfccd_of_files"]
    if files is None:
      assert measured == pytest.approx(entry["mfccd"]["mfccd13"], abs=0.01)
    else:
      assert measured == pytest.approx(files["mfccd13"], abs=1e-3)
      assert files["why"]
  files = summary["dexed22k"]["mfccd_of_files"]
  assert files is None or "22050 Hz" in files["why"]  # scored at 48 kHz, written at 22.05


def test_the_pitch_report_is_what_the_written_match_plays(run):
  out, _, summary = run
  for name, entry in summary.items():
    played = pitch.estimate_pitch(target_lib.read_fitted(out / f"{name}.wav"), 48_000)
    assert entry["pitch"]["match_note"] == played.note
    assert (played.note or "no clear pitch") in entry["pitch"]["note"]
  assert summary["tone"]["pitch"]["input_note"] == "A3"


def _help(main, argv, capsys) -> str:
  with pytest.raises(SystemExit):
    main(argv)
  return capsys.readouterr().out


def _options(text: str) -> list[str]:
  """Each option's entry (flags, metavar and help, lines joined) in an argparse help text."""
  section = text.split("options:", 1)[1]
  return [" ".join(entry.split()) for entry in re.split(r"\n  (?=-)", section) if entry.strip()]


@pytest.mark.parametrize("command", ["s2s-match", "s2s-serve", "s2s-mfccd", "s2s-presets",
                                     "s2s-demo",
                                     *(f"s2s-bench {s}" for s in bench_cli.SUBCOMMANDS)])
def test_every_option_that_takes_a_value_states_its_default(command, capsys):
  mains = {"s2s-match": match_cli.main, "s2s-serve": serve_cli.main, "s2s-mfccd": mfccd_cli.main,
           "s2s-presets": presets_cli.main, "s2s-demo": examples.main,
           "s2s-bench": bench_cli.main}
  program, *sub = command.split()
  text = _help(mains[program], [*sub, "--help"], capsys)
  if sub:
    assert bench_cli.SUBCOMMANDS[sub[0]]  # described by its module's docstring
    assert text.split("options:")[0].count("\n") > 3
  for entry in _options(text):
    takes_value = re.match(r"(-\S+, )?--\S+ [A-Z0-9]", entry)
    if takes_value:
      assert "default" in entry or "(required)" in entry, f"{command}: {entry}"


def test_every_flag_of_the_dataset_build_states_its_default():
  result = subprocess.run([sys.executable, "-m", "s2s_jax.data.build", "--helpshort"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
  flags = result.stdout.split("s2s_jax/data/build.py:\n", 1)[1].split("\n\n")[0]
  entries = re.split(r"\n  (?=--)", flags.strip())
  assert {re.match(r"--(?:\[no\])?(\w+)", e)[1] for e in entries} == {
      "beam", "beam_pipeline_options", "config", "data_dir", "manual_dir", "verbose"}
  for entry in entries:
    assert "default" in entry.lower(), entry


def test_main_helpfull_lists_the_config_fields():
  result = subprocess.run([sys.executable, "-m", "s2s_jax.main", "--helpfull"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert result.returncode == 1, result.stderr[-2000:]  # absl's exit status after help
  assert "Configuration fields of configs/t6.py:tiny" in result.stdout
  for field in ("--config.num_bins: 64", "--config.model.dtype: 'float32'", "--config.seed: "):
    assert field in result.stdout
  assert "--[no]verbose" in result.stdout


class _Scores:
  """An objective of `VALUE_SPACE` that renders nothing (`ranked` reads recorded scores)."""
  space = VALUE_SPACE
  algorithm = 5
  renders = 0


def test_the_bank_prefers_voices_far_from_better_ones_and_keeps_score_order():
  rng = np.random.default_rng(0)
  base = VALUE_SPACE.encode(params.INIT_VOICE[None])[0]
  rows = np.tile(base, (60, 1))
  for i, row in enumerate(rows[1:], 1):  # 49 near copies of the match, then 10 far voices
    row[rng.choice(len(row), 3 if i < 50 else 40, replace=False)] += 1
  rows %= VALUE_SPACE.num_classes
  recorder = matcher_lib._Recorder(_Scores(), None, 1)  # pylint: disable=protected-access
  recorder.record(rows, np.full(60, 5), np.arange(60.0))
  ranked = recorder.ranked(rows[0], 5, 0.0, "lib.syx:1", rows[:2], ["lib.syx:1", "lib.syx:2"],
                           "sound")
  scores = [r.mfccd13 for r in ranked]
  assert len(ranked) == 32 and scores == sorted(scores) and scores[0] == 0.0
  assert set(range(50, 60)) <= set(scores)  # every far voice, though the near ones score better
  assert ranked[0].source == "lib.syx:1" and ranked[1].source == "lib.syx:2"
  assert ranked[2].source.startswith("search from lib.syx:")
  assert [params.voice_name(r.voice) for r in ranked[:2]] == ["sound 01", "sound 02"]


def test_training_time_left_leaves_out_the_compilation(monkeypatch):
  times = iter([0.0, 100.0, 110.0, 130.0])  # made; then three lines, 10 steps apart
  monkeypatch.setattr(writers, "time", types.SimpleNamespace(perf_counter=lambda: next(times)))
  progress = writers.Progress(total_steps=40, first_step=0)
  lines = [progress.line(step, step / 10, 0.5) for step in (10, 20, 30)]
  assert lines[0] == "step 10/40  epoch 1.00  loss 0.5000  0.10 steps/s  ETA ?"  # compiling
  assert lines[1].endswith("1.00 steps/s  ETA 0:00:20")  # 20 steps to go at 1 a second
  assert lines[2].endswith("0.50 steps/s  ETA 0:00:15")  # a validation: 20 steps in 30 s
