"""The seams between packages: inference imports nothing from training, training nothing from
the benchmarks, and the matching and serving commands load no training library."""

import ast
import json
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).parents[1] / "s2s_jax"
TRAINING_LIBRARIES = ("optax", "grain", "tensorflow_datasets")


def imported_modules(path: pathlib.Path) -> set[str]:
  """Every module a source file imports, by its full dotted name."""
  modules = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      modules |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      modules |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
  return modules


def test_imported_modules_sees_both_import_forms(tmp_path):
  source = tmp_path / "example.py"
  source.write_text("import s2s_jax.train.losses\nfrom s2s_jax import bench\n"
                    "def f():\n  from s2s_jax.train import train\n")
  assert {"s2s_jax.train.losses", "s2s_jax.bench", "s2s_jax.train.train"} <= imported_modules(
      source)


@pytest.mark.parametrize("package, forbidden", [
    ("infer", "s2s_jax.train"), ("match", "s2s_jax.train"), ("serve", "s2s_jax.train"),
    ("train", "s2s_jax.bench")])
def test_package_does_not_import(package, forbidden):
  files = sorted((PACKAGE / package).rglob("*.py"))
  assert files
  offending = {str(f.relative_to(PACKAGE)): sorted(m for m in imported_modules(f)
                                                   if m == forbidden or
                                                   m.startswith(forbidden + "."))
               for f in files}
  assert {f: m for f, m in offending.items() if m} == {}


def test_match_and_serve_commands_load_no_training_library():
  code = ("import json, sys\nimport s2s_jax.match.cli, s2s_jax.serve.cli\n"
          f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
          f"{TRAINING_LIBRARIES!r})))")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
  assert json.loads(result.stdout.splitlines()[-1]) == []
