"""`s2s-bench quality`: every method of the paper's Table 1 scored on the tiny model's targets."""

import json
import math
import pathlib
import subprocess
import sys

import pytest
from PIL import Image

from s2s_jax.bench import cli

ROOT = pathlib.Path(__file__).parents[1]
ROW_KEYS = {"method", "targets", "mfccd13_mean", "mfccd13_median", "mfccd13_std",
            "mfccd30_mean", "mfccd30_median", "renders_per_target",
            "seconds_per_target_median"}


def _quality(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "s2s_jax.bench.cli", "quality",
                         *map(str, args)], capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def quality(tmp_path_factory, tiny_model):
  out = tmp_path_factory.mktemp("quality")
  result = _quality("--model", tiny_model, "--n-targets", 2, "--budgets", 16,
                    "--refine-renders", 8, "--top-k", 2, "--out", out)
  assert result.returncode == 0, result.stderr[-3000:]
  return result, out


def test_every_method_is_scored_with_its_renders(quality):
  result, out = quality
  payload = json.loads((out / "quality.json").read_text())
  rows = {row["method"]: row for row in payload["rows"]}
  library = payload["settings"]["library_size"]
  assert library > 0
  assert {name: row["renders_per_target"] for name, row in rows.items()} == {
      "random training voice": 1,
      "per-parameter mode voice": 1,
      "nearest neighbour (training library)": library,
      "hill climbing, 16 renders": 16,
      "genetic algorithm, 16 renders": 16,
      "network (argmax)": 1,
      "network + top-k selection (2 renders)": 2,
      "network + refinement (2 + 8 renders)": 10,
  }
  for row in rows.values():
    assert set(row) == ROW_KEYS
    assert row["targets"] == 2
    assert all(math.isfinite(row[key]) and row[key] >= 0 for key in ROW_KEYS
               if key.startswith("mfccd"))
  # Selection renders the argmax voice among its candidates; refinement starts from the winner.
  network = [rows[name]["mfccd13_mean"] for name in ("network (argmax)",
             "network + top-k selection (2 renders)", "network + refinement (2 + 8 renders)")]
  assert network[0] >= network[1] - 1e-6 >= network[2] - 2e-6
  assert set(payload["accuracy"]) == {"overall", "continuous", "discrete"}
  assert all(0.0 <= v <= 1.0 for v in payload["accuracy"].values())
  assert payload["benchmark"] == "quality" and "commit" in payload["settings"]


def test_the_table_is_printed_and_the_chart_is_an_image(quality):
  result, out = quality
  assert "| method | MFCCD-13 mean | median | std | MFCCD-30 mean |" in result.stdout
  assert "| hill climbing, 16 renders |" in result.stdout
  assert "accuracy" in result.stdout
  with Image.open(out / "quality.png") as image:
    assert image.size[0] > 100 and image.size[1] > 100


def _quality_error(capsys, *args) -> str:
  """`s2s-bench quality ARGS` in this process, which must exit with status 2 (a usage error,
  not an exception, which would print a traceback): what it wrote to stderr."""
  with pytest.raises(SystemExit) as exited:
    cli.main(["quality", *map(str, args)])
  assert exited.value.code == 2
  stderr = capsys.readouterr().err
  assert "Traceback" not in stderr
  return stderr


def test_an_algorithm_the_model_does_not_predict_for_is_an_error(tmp_path, tiny_model, capsys):
  stderr = _quality_error(capsys, "--model", tiny_model, "--algorithm", 7, "--out", tmp_path)
  assert "s2s-bench quality: error: --algorithm 7" in stderr
  assert not (tmp_path / "quality.json").exists()


def test_a_missing_model_is_an_error(tmp_path, capsys):
  stderr = _quality_error(capsys, "--model", tmp_path / "nothing", "--out", tmp_path)
  assert "s2s-bench quality: error: model" in stderr and "no such folder" in stderr
