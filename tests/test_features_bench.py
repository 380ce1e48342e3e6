"""`s2s-bench features` runs end to end on a tiny batch and writes both JSON files."""

import json

from s2s_jax.bench import cli


def test_features_benchmark_prints_tables_and_writes_json(tmp_path, capsys):
  cli.main(["features", "--batch", "2", "--rounds", "1", "--json", str(tmp_path / "f.json")])
  printed = capsys.readouterr().out
  assert "s2s-bench features" in printed and "s2s-bench features-storage" in printed
  speed = json.loads((tmp_path / "f.json").read_text())
  assert [row["method"] for row in speed["rows"]] == [
      "jax featurise (jit, batched)", "librosa, reference (9 chroma_cqt)", "librosa, one cqt"]
  assert all(row["median_batch_s"] > 0 for row in speed["rows"])
  stored = json.loads((tmp_path / "f-storage.json").read_text())
  chosen = next(row for row in stored["rows"] if "chosen" in row["format"])
  assert chosen["fits_400KB"] and chosen["mfcc_err_max"] < 1e-3
