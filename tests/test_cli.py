"""The console commands and the main job, run as a user runs them."""

import json
import subprocess
import sys

import numpy as np
import pytest

from s2s_jax.data import reader
from s2s_jax.synth import sysex


def _run(*args, check=True):
  return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=300)


@pytest.fixture(scope="module")
def preset_folder(tmp_path_factory, random_voices):
  root = tmp_path_factory.mktemp("cli_presets")
  sysex.write(root / "A" / "one.syx", sysex.bank_message(random_voices[:32]))
  sysex.write(root / "B" / "two.syx", sysex.bank_message(random_voices[32:]))
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


def test_main_job_on_builtin_random_presets(tmp_path):
  _run(sys.executable, "-m", "s2s_jax.main", f"--workdir={tmp_path}", "--num_random_presets=40")
  summary = json.loads((tmp_path / "preset_summary.json").read_text())
  assert summary["files_read"] == 2 and summary["distinct_voices"] == 64
  voices = sysex.read(tmp_path / "random_presets" / "random_000.syx")
  assert len(np.unique(voices[:, :145], axis=0)) == 32
  built = tmp_path / "tensorflow_datasets" / "dexed_presets" / "tiny" / "1.0.0"
  assert len(reader.data_source(built, "train")) == 51


def test_main_job_on_a_user_folder(tmp_path, preset_folder):
  _run(sys.executable, "-m", "s2s_jax.main", f"--workdir={tmp_path}",
       f"--preset_dir={preset_folder}", "--dataset_config=all_light")
  assert json.loads((tmp_path / "preset_summary.json").read_text())["distinct_voices"] == 64
  built = tmp_path / "tensorflow_datasets" / "dexed_presets" / "all_light" / "1.0.0"
  sizes = {s: len(reader.data_source(built, s)) for s in ("train", "validation", "test")}
  assert sizes["train"] + sizes["validation"] + sizes["test"] > 64  # real voices and variants


def test_render_benchmark_prints_a_table_and_writes_json(tmp_path):
  out = _run("s2s-bench", "render", "--voices=4", "--repeats=1", f"--json={tmp_path}/r.json")
  assert "voices_per_s" in out.stdout
  rows = json.loads((tmp_path / "r.json").read_text())["rows"]
  assert rows[0]["speedup"] == 1.0 and all(r["voices_per_s"] > 0 for r in rows)


def test_build_benchmark_compares_builds_with_rendering(tmp_path):
  out = _run("s2s-bench", "build", "--voices=32", "--modes=off", "--repeats=1",
             f"--json={tmp_path}/b.json")
  assert "build, weights off" in out.stdout
  rows = json.loads((tmp_path / "b.json").read_text())["rows"]
  assert [r["examples"] for r in rows] == [32, 32] and 0 < rows[1]["vs_render_only"] < 1.5
