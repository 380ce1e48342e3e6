"""`s2s-bench features` runs end to end on a tiny batch and writes both JSON files."""

import json

import pytest

from s2s_jax.bench import cli


def test_features_benchmark_prints_tables_and_writes_json(tmp_path, capsys):
  cli.main(["features", "--batch", "2", "--rounds", "1", "--json", str(tmp_path / "f.json")])
  printed = capsys.readouterr().out
  assert "s2s-bench features" in printed and "s2s-bench features-storage" in printed
  speed = json.loads((tmp_path / "f.json").read_text())
  assert [row["method"] for row in speed["rows"]] == [
      "jax featurise (jit, batched)", "librosa, reference (9 chroma_cqt)", "librosa, one cqt"]
  for row in speed["rows"]:
    assert row["batch"] == 2
    assert row["ms_per_clip"] == pytest.approx(1000 * row["median_batch_s"] / 2)
    assert row["jax_speedup"] == pytest.approx(
        row["median_batch_s"] / speed["rows"][0]["median_batch_s"])
  stored = json.loads((tmp_path / "f-storage.json").read_text())
  chosen = next(row for row in stored["rows"] if "chosen" in row["format"])
  assert chosen["fits_400KB"] and chosen["mfcc_err_max"] < 1e-3
  # 192,000 samples (4 s at 48 kHz): 4 or 2 bytes each, plus a float32 scale per clip or per
  # 512-sample block (375 blocks).
  assert {row["format"]: row["bytes_per_example"] for row in stored["rows"][:4]} == {
      "float32 audio": 768_000, "float16 audio": 384_000, "int16, one scale per clip": 384_004,
      "int16, scale per 512 (chosen)": 385_500}
  float32 = stored["rows"][0]  # the reference itself: no error
  assert float32["stft_err_max"] == float32["mfcc_err_max"] == float32["mfccd13_vs_float32"] == 0
