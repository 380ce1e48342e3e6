"""The console commands and the main job, run as a user runs them."""

import json
import math
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from s2s_jax import examples
from s2s_jax.bench import match as bench_match
from s2s_jax.data import reader
from s2s_jax.synth import sysex
from s2s_jax.util import files


def _run(*args, check=True):
  return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=900)


@pytest.fixture(scope="module")
def preset_folder(tmp_path_factory, random_voices):
  root = tmp_path_factory.mktemp("cli_presets")
  files.write_atomic(root / "A" / "one.syx", sysex.bank_message(random_voices[:32]))
  files.write_atomic(root / "B" / "two.syx", sysex.bank_message(random_voices[32:]))
  (root / "B" / "broken.syx").write_bytes(b"\xf0\x43\x00\x09\x20\x00\x01")
  return root


def test_s2s_presets_json(preset_folder):
  summary = json.loads(_run("s2s-presets", str(preset_folder), "--json").stdout)
  assert summary["files_read"] == 2 and summary["files_rejected"] == {"truncated": 1}
  assert summary["voice_slots"] == 64 and summary["distinct_voices"] == 64
  assert sum(summary["voices_per_algorithm"].values()) == 64
  assert sum(s["voices"] for s in summary["splits"].values()) == 64
  assert summary["rejected"][0]["path"] == "B/broken.syx"


def test_s2s_presets_text(preset_folder):
  text = _run("s2s-presets", str(preset_folder)).stdout
  assert "distinct voices      64" in text and "B/broken.syx: truncated" in text


def test_s2s_presets_reports_bad_arguments_without_a_traceback(tmp_path):
  missing = _run("s2s-presets", str(tmp_path / "nope"), check=False)
  assert missing.returncode == 2 and "preset folder not found" in missing.stderr
  assert "Traceback" not in missing.stderr
  bad = _run("s2s-presets", str(tmp_path), "--fractions", "0.5,0.6", check=False)
  assert bad.returncode == 2 and "fractions" in bad.stderr


def test_main_job_trains_on_a_user_preset_folder(tmp_path, preset_folder):
  result = _run(sys.executable, "-m", "s2s_jax.main", "--config=configs/t6.py:tiny",
                f"--workdir={tmp_path}", "--config.dataset_config=all_light",
                f"--config.manual_dir={preset_folder}", "--config.num_epochs=1")
  built = tmp_path / "tensorflow_datasets" / "dexed_presets" / "all_light" / "1.0.0"
  sizes = {s: len(reader.data_source(built, s)) for s in ("train", "validation", "test")}
  assert sum(sizes.values()) > 64  # the folder's 64 real voices and their variants
  results = json.loads((tmp_path / "results.json").read_text())
  assert [row["predictor"] for row in results["test_mfccd"]] == [
      "model", "random_train_voice", "mode_voice"]
  assert all(row["examples"] == sizes["test"] for row in results["test_mfccd"])
  assert "mfccd13" in result.stdout


def test_main_job_trains_online_on_freshly_rendered_voices(tmp_path, tiny_data_dir):
  _run(sys.executable, "-m", "s2s_jax.main", "--config=configs/t6.py:tiny",
       f"--workdir={tmp_path}", f"--config.data_dir={tiny_data_dir}", "--config.input=online",
       "--config.online.mode=augment", "--config.online.examples_per_epoch=16",
       "--config.num_epochs=1")
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_steps = [r["step"] for r in records if "train/loss" in r]
  assert train_steps == [2, 4] and all(np.isfinite(r["train/loss"]) for r in records
                                       if "train/loss" in r)
  assert json.loads((tmp_path / "results.json").read_text())["test_mfccd"][0]["examples"] == 6


@pytest.mark.parametrize("override, message", [
    ("--config.input=disk", "config.input must be 'dataset' or 'online'"),
    ("--config.per_step_batch_size=3", "batch_size 8 must be a multiple of per_step_batch_size 3"),
    ("--config.dataset_config=alg99", "unknown dataset config 'alg99'"),
    ("--config.model.branches=('mel','chroma')", "config.model.branches"),
    ("--config.dataset_config=alg05", "needs config.manual_dir"),
])
def test_main_job_rejects_bad_settings_without_a_traceback(tmp_path, override, message):
  result = _run(sys.executable, "-m", "s2s_jax.main", "--config=configs/t6.py:tiny",
                f"--workdir={tmp_path}", override, check=False)
  assert result.returncode != 0 and message in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "checkpoints").exists()


@pytest.fixture(scope="module")
def speed_run(tmp_path_factory):
  """`s2s-bench speed --quick`, run once: (its stdout, its --out folder). It runs the render,
  features, build, train and match benchmarks as their subcommands do (`speed.OPTIONS`), so
  the tests of those benchmarks read this run's tables and JSON."""
  out = tmp_path_factory.mktemp("speed")
  return _run("s2s-bench", "speed", "--quick", f"--out={out}").stdout, out


def _table(stdout, name):
  """The table `s2s-bench NAME` printed in `stdout`, up to its "wrote" line."""
  assert f"s2s-bench {name}\n" in stdout, stdout[-2000:]
  return stdout.split(f"s2s-bench {name}\n", 1)[1].split("\nwrote ", 1)[0]


def test_render_benchmark_prints_a_table_and_writes_json(speed_run):
  stdout, out = speed_run  # `s2s-bench render --voices=8 --repeats=1`
  assert "voices_per_s" in _table(stdout, "render")
  rows = json.loads((out / "render.json").read_text())["rows"]
  assert rows[0]["speedup"] == 1.0 and all(r["voices_per_s"] > 0 for r in rows)


def test_build_benchmark_compares_builds_with_rendering(speed_run):
  stdout, out = speed_run  # `s2s-bench build --voices=32 --modes=off --repeats=1`
  assert "build, weights off" in _table(stdout, "build")
  rows = json.loads((out / "build.json").read_text())["rows"]
  assert [r["examples"] for r in rows] == [32, 32] and rows[1]["vs_render_only"] > 0


def test_build_benchmark_on_a_preset_folder_prices_the_weights(tmp_path):
  presets = pathlib.Path(__file__).parents[1] / "datasets" / "dexed_presets" / "dummy_data"
  _run("s2s-bench", "build", "--voices=32", "--modes=off,sampled", "--repeats=1",
       f"--presets={presets}", f"--json={tmp_path}/b.json")
  payload = json.loads((tmp_path / "b.json").read_text())
  rows = payload["rows"]
  assert payload["settings"]["presets"] == str(presets)
  assert [r["stage"] for r in rows][1:] == ["build, weights off",
                                            "build, weights sampled (16 probed)"]
  assert rows[1]["weights_ms_per_example"] == "" and rows[2]["weights_ms_per_example"] > 0
  assert rows[2]["vs_render_only"] < rows[1]["vs_render_only"]


def test_match_benchmark_times_two_models(speed_run):
  # `s2s-bench match --config=configs/t6.py:tiny --models 2 --repeats=1 --top-k=1
  # --cold-repeats=0`
  stdout, out = speed_run
  assert "networks, stacked under vmap (alternative)" in _table(stdout, "match")
  rows = json.loads((out / "match.json").read_text())["rows"]
  assert {r["models"] for r in rows} == {2} and len(rows) == 8
  assert all(r["seconds"] > 0 for r in rows)


def test_match_benchmark_times_a_new_process_to_its_first_result(tmp_path):
  sounds = [str(p) for p in examples.write_examples(tmp_path / "sounds")[:2]]
  (tmp_path / "home").mkdir()
  started = time.perf_counter()
  result = bench_match.first_results(
      [sys.executable, "-m", "s2s_jax.match.cli", *sounds, "--out", str(tmp_path / "out"),
       "--refine-renders", "0"],
      bench_match.cold_env(pathlib.Path(__file__).parents[1], tmp_path / "home"))
  took = time.perf_counter() - started
  assert 0 < result["first"] < result["first"] + result["next"][0] <= result["wall"] <= took
  assert 0 < result["first_cpu"] < result["first_cpu"] + result["next_cpu"][0] <= result["cpu"]
  assert len(json.loads((tmp_path / "out" / "summary.json").read_text())) == 2
  # A user with an empty HOME: the compilation cache starts empty, in HOME's cache folder.
  assert any((tmp_path / "home" / ".cache" / "s2s_jax" / "jax").iterdir())


def test_speed_benchmark_runs_every_benchmark_side_by_side(speed_run):
  stdout, tmp_path = speed_run
  assert "s2s-bench speed" in stdout
  payload = json.loads((tmp_path / "speed.json").read_text())
  rows = payload["rows"]
  assert {r["benchmark"] for r in rows} == {"render", "features", "build", "train", "match"}
  assert all(math.isfinite(r["value"]) and r["value"] > 0 for r in rows)
  assert set(payload["settings"]["benchmarks"]) == {r["benchmark"] for r in rows}
  for name in ("render", "features", "build", "train", "match"):
    assert (tmp_path / f"{name}.json").exists()


def _presets(folder, *options, prefix=()):
  """`s2s-presets` under a strict UTF-8 stdout, its command after `prefix`."""
  return subprocess.run([*prefix, sys.executable, "-m", "s2s_jax.synth.cli", str(folder), *options],
                        capture_output=True, text=True, timeout=300,
                        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"})


def test_s2s_presets_prints_names_that_are_not_utf8(tmp_path):
  (tmp_path / os.fsdecode(b"\xff.syx")).write_bytes(b"not sysex")
  text, as_json = _presets(tmp_path), _presets(tmp_path, "--json")
  assert text.returncode == as_json.returncode == 0, text.stderr + as_json.stderr
  assert f"rejected: {tmp_path}/\\xff.syx: not sysex" in text.stdout
  assert json.loads(as_json.stdout)["rejected"][0]["path"] == os.fsdecode(b"\xff.syx")


def test_s2s_presets_rejects_unreadable_folders(tmp_path, random_voices, unprivileged):
  files.write_atomic(tmp_path / "A" / "one.syx", sysex.bank_message(random_voices[:32]))
  files.write_atomic(tmp_path / "locked" / "two.syx", sysex.bank_message(random_voices[32:]))
  (tmp_path / "locked").chmod(0)
  try:
    result = _presets(tmp_path, "--json", prefix=unprivileged)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["files_read"] == 1 and summary["files_rejected"] == {"unreadable": 1}
    assert summary["rejected"][0]["path"] == "locked"
    assert "locked: unreadable folder: Permission denied" in summary["rejected"][0]["message"]
    tmp_path.chmod(0)
    result = _presets(tmp_path, prefix=unprivileged)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"rejected: {tmp_path}: unreadable folder: Permission denied" in result.stdout
  finally:
    tmp_path.chmod(0o755)
    (tmp_path / "locked").chmod(0o755)
