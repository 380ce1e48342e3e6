"""The launch scripts: shellcheck-clean, complete dry runs, clear errors, a real Beam build."""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from s2s_jax.data import reader

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
SCRIPTS = ("tpu_vm.sh", "slurm_gpu.sbatch", "build_dataset_beam.sh")
TPU_ARGS = ("--name=s2s-pod", "--zone=us-west4-a", "--type=v5litepod-16",
            "--workdir=gs://bucket/runs/alg13", "--dataset_config=alg13")


def _env(**extra) -> dict[str, str]:
  """This environment without SLURM's variables, the venv's tools first on PATH."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
  env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
  env.update(extra)
  return env


def _launch(script: str, *args: str, **env) -> subprocess.CompletedProcess:
  return subprocess.run(["bash", str(LAUNCH / script), *args], capture_output=True, text=True,
                        env=_env(**env), cwd=ROOT, timeout=600)  # a hang guard


def _commands(result: subprocess.CompletedProcess) -> list[list[str]]:
  """A dry run's lines as argument lists (comments dropped); each must be valid shell."""
  assert result.returncode == 0, result.stderr
  commands = [shlex.split(line, comments=True) for line in result.stdout.splitlines()]
  return [command for command in commands if command]


def _find(commands: list[list[str]], *words: str) -> list[list[str]]:
  """The commands starting with `words`."""
  return [c for c in commands if c[:len(words)] == list(words)]


def _remote(command: list[str]) -> str:
  """The `--command=` of a `gcloud ... ssh` line, checked to be valid bash."""
  (remote,) = [a.removeprefix("--command=") for a in command if a.startswith("--command=")]
  check = subprocess.run(["bash", "-n", "-c", remote], capture_output=True, text=True)
  assert check.returncode == 0, (remote, check.stderr)
  return remote


def test_scripts_pass_shellcheck():
  shellcheck = shutil.which("shellcheck", path=_env()["PATH"])
  assert shellcheck, "shellcheck missing: pip install -e '.[test]'"
  files = [f"launch/{name}" for name in (*SCRIPTS, "lib.sh")]
  result = subprocess.run([shellcheck, "--external-sources", *files], capture_output=True,
                          text=True, cwd=ROOT)
  assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_the_flags(script):
  result = _launch(script, "--help")
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("Usage:")
  for flag in ("--dry_run", "--config", "--presets"):
    assert flag in result.stdout


def test_tpu_dry_run_prints_every_step(tmp_path):
  result = _launch("tpu_vm.sh", *TPU_ARGS, "--dataset=gs://bucket/tensorflow_datasets", "--spot",
                   "--dry_run", "--", "--config.num_epochs=10", "--config.seed=7",
                   TMPDIR=str(tmp_path))
  commands = _commands(result)
  (create,) = _find(commands, "gcloud", "compute", "tpus", "tpu-vm", "create")
  assert {"s2s-pod", "--zone=us-west4-a", "--accelerator-type=v5litepod-16",
          "--version=v2-alpha-tpuv5-lite", "--spot"} <= set(create)
  (scp,) = _find(commands, "gcloud", "compute", "tpus", "tpu-vm", "scp")
  assert "--worker=all" in scp and "s2s-pod:s2s_jax.tar.gz" in scp
  install, copy, train = _find(commands, "gcloud", "compute", "tpus", "tpu-vm", "ssh")
  assert all("--worker=all" in c and "--zone=us-west4-a" in c for c in (install, copy, train))
  assert "'jax[tpu]' './s2s_jax[cloud]'" in _remote(install)
  assert ("gcloud storage rsync -r gs://bucket/tensorflow_datasets/dexed_presets/alg13 "
          "$HOME/tensorflow_datasets/dexed_presets/alg13") in _remote(copy)
  remote = shlex.split(_remote(train))
  main = remote[remote.index("-m"):]
  assert main[:3] == ["-m", "s2s_jax.main", "--multihost"]
  assert {"--config=configs/t6.py:full", "--workdir=gs://bucket/runs/alg13",
          "--config.data_dir=$HOME/tensorflow_datasets", "--config.dataset_config=alg13"} <= set(main)
  assert main[-2:] == ["--config.num_epochs=10", "--config.seed=7"]
  assert "JAX_COMPILATION_CACHE_DIR=gs://bucket/runs/alg13/jax_cache" in remote


def test_tpu_dry_run_ships_a_tarball_with_the_configs(tmp_path):
  """The printed packaging lines run as they are and make what the workers unpack."""
  result = _launch("tpu_vm.sh", *TPU_ARGS, "--presets=gs://bucket/presets", "--dry_run",
                   TMPDIR=str(tmp_path))
  commands = _commands(result)
  (mkdir,) = _find(commands, "mkdir")
  package = _find(commands, "git") or _find(commands, "tar")
  assert not any(tmp_path.iterdir()), "a dry run wrote files"
  for command in (mkdir, *package):
    subprocess.run(command, check=True, cwd=tmp_path)
  (tarball,) = tmp_path.glob("*/s2s_jax.tar.gz")
  with tarfile.open(tarball) as archive:
    names = set(archive.getnames())
  assert {"s2s_jax/pyproject.toml", "s2s_jax/configs/t6.py", "s2s_jax/s2s_jax/main.py"} <= names
  build = _remote(_find(commands, "gcloud", "compute", "tpus", "tpu-vm", "ssh")[1])
  assert "gcloud storage rsync -r gs://bucket/presets s2s_presets" in build
  assert "-m s2s_jax.data.build --config=alg13" in build and "--manual_dir=s2s_presets" in build


def test_tpu_detach_runs_training_in_the_background():
  result = _launch("tpu_vm.sh", *TPU_ARGS[:-1], "--dataset_config=tiny", "--detach", "--dry_run")
  remote = _remote(_find(_commands(result), "gcloud", "compute", "tpus", "tpu-vm", "ssh")[-1])
  assert "nohup env" in remote and remote.endswith("> ~/s2s_train.log 2>&1 < /dev/null &")


def test_slurm_dry_run_prints_the_build_and_the_srun_line(tmp_path):
  data_dir = tmp_path / "tfds"
  result = _launch("slurm_gpu.sbatch", "--dry_run", "--workdir=/shared/runs/alg13",
                   "--dataset_config=alg13", f"--data_dir={data_dir}",
                   f"--presets={ROOT / 'datasets' / 'dexed_presets' / 'dummy_data'}",
                   "--", "--config.num_epochs=10")
  commands = _commands(result)
  (build,) = _find(commands, "python", "-m", "s2s_jax.data.build")
  assert {"--config=alg13", f"--data_dir={data_dir}"} <= set(build)
  assert ["export", "JAX_COMPILATION_CACHE_DIR=/shared/runs/alg13/jax_cache"] in commands
  (srun,) = _find(commands, "srun")
  assert "--kill-on-bad-exit=1" in srun
  main = srun[srun.index("python"):]
  assert main[:4] == ["python", "-m", "s2s_jax.main", "--multihost"]
  assert {"--workdir=/shared/runs/alg13", f"--config.data_dir={data_dir}",
          "--config.dataset_config=alg13", "--config.num_epochs=10"} <= set(main)
  assert not data_dir.exists(), "a dry run built the dataset"


def test_slurm_skips_a_built_dataset(tmp_path):
  version = tmp_path / "dexed_presets" / "tiny" / "1.0.0"
  version.mkdir(parents=True)
  (version / "dataset_info.json").write_text("{}")
  result = _launch("slurm_gpu.sbatch", "--dry_run", "--workdir=/w", "--dataset_config=tiny",
                   f"--data_dir={tmp_path}")
  commands = _commands(result)
  assert not _find(commands, "python", "-m", "s2s_jax.data.build")
  assert _find(commands, "srun")


def test_beam_direct_dry_run_writes_nothing(tmp_path):
  output = tmp_path / "out"
  result = _launch("build_dataset_beam.sh", "--runner=direct", "--config=tiny",
                   f"--output={output}", "--max_workers=3", "--dry_run")
  (build,) = _find(_commands(result), "tfds", "build")
  assert build[2] == str(ROOT / "datasets" / "dexed_presets")
  assert {"--config=tiny", f"--data_dir={output}", "--file_format=array_record"} <= set(build)
  (options,) = [a for a in build if a.startswith("--beam_pipeline_options=")]
  assert {"direct_num_workers=3", "direct_running_mode=multi_processing"} <= set(
      options.split("=", 1)[1].split(","))
  assert not output.exists()


def test_beam_dataflow_dry_run_builds_converts_and_uploads():
  result = _launch("build_dataset_beam.sh", "--runner=dataflow", "--config=alg13",
                   "--presets=gs://bucket/presets", "--output=gs://bucket/tensorflow_datasets",
                   "--project=proj", "--region=us-central1", "--max_workers=8", "--dry_run")
  commands = _commands(result)
  (stage,) = _find(commands, "gcloud", "storage", "rsync", "-r", "gs://bucket/presets")
  (wheel,) = _find(commands, "python", "-m", "pip", "wheel")
  (build,) = _find(commands, "tfds", "build")
  assert {"--config=alg13", "--file_format=tfrecord", f"--manual_dir={stage[-1]}",
          "--data_dir=gs://bucket/tensorflow_datasets/tmp/tfds_tfrecord"} <= set(build)
  (options,) = [a for a in build if a.startswith("--beam_pipeline_options=")]
  options = dict(o.split("=", 1) for o in options.split("=", 1)[1].split(","))
  assert options["runner"] == "DataflowRunner" and options["project"] == "proj"
  assert options["region"] == "us-central1" and options["max_num_workers"] == "8"
  assert options["temp_location"] == "gs://bucket/tensorflow_datasets/tmp"
  assert options["extra_package"].startswith(wheel[wheel.index("-w") + 1])
  assert options["extra_package"].endswith(".whl")
  (convert,) = _find(commands, "tfds", "convert_format")
  assert "--out_file_format=array_record" in convert
  upload = _find(commands, "gcloud", "storage", "rsync")[-1]
  assert upload[-1] == "gs://bucket/tensorflow_datasets/dexed_presets/alg13/1.0.0"
  assert [a for a in convert if a.startswith("--dataset_version_dir=")] == [
      f"--dataset_version_dir={upload[-2]}"]


@pytest.mark.parametrize("script, args, flag", [
    ("tpu_vm.sh", ("--bogus",), "--bogus"),
    ("tpu_vm.sh", ("--name=x", "--zone=z", "--workdir=/local/run", "--presets=gs://p"),
     "--workdir"),
    ("tpu_vm.sh", ("--name=x", "--zone=z", "--workdir=gs://b/r"), "--presets"),
    ("tpu_vm.sh", ("--name=x", "--zone=z", "--workdir=gs://b/r", "--presets=gs://p",
                   "--dataset=gs://d"), "--dataset"),
    ("tpu_vm.sh", ("--name=x", "--zone=z", "--workdir=gs://b/r", "--dataset=/local/tfds"),
     "--dataset"),
    ("tpu_vm.sh", ("--zone=z", "--workdir=gs://b/r", "--presets=gs://p"), "--name"),
    ("tpu_vm.sh", ("--name", "x"), "--name"),
    ("slurm_gpu.sbatch", ("--bogus",), "--bogus"),
    ("slurm_gpu.sbatch", ("--config=configs/t6.py",), "--workdir"),
    ("slurm_gpu.sbatch", ("--workdir=/w", "--data_dir=gs://b/tfds"), "--data_dir"),
    ("build_dataset_beam.sh", ("--bogus",), "--bogus"),
    ("build_dataset_beam.sh", ("--config=tiny", "--output=gs://b/o"), "--output"),
    ("build_dataset_beam.sh", ("--config=alg13", "--output=/tmp/o"), "--presets"),
    ("build_dataset_beam.sh", ("--runner=flink", "--config=tiny", "--output=/o"), "--runner"),
    ("build_dataset_beam.sh", ("--runner=dataflow", "--config=tiny", "--output=gs://b/o",
                               "--region=r"), "--project"),
    ("build_dataset_beam.sh", ("--config=tiny", "--output=/o", "--max_workers=0"),
     "--max_workers"),
])
def test_bad_input_exits_2_naming_the_flag(script, args, flag):
  result = _launch(script, *args, "--dry_run")
  assert result.returncode == 2, result.stdout + result.stderr
  assert flag in result.stderr
  assert not result.stdout


def test_slurm_refuses_to_run_outside_slurm():
  result = _launch("slurm_gpu.sbatch", "--workdir=/w")
  assert result.returncode == 2 and "sbatch" in result.stderr


def test_beam_direct_build_matches_the_plain_build(tmp_path, tiny_dataset):
  """The DirectRunner variant really runs and writes what `s2s_jax.data.build` writes."""
  result = _launch("build_dataset_beam.sh", "--runner=direct", "--config=tiny",
                   f"--output={tmp_path}")
  assert result.returncode == 0, result.stderr[-3000:]
  built = tmp_path / "dexed_presets" / "tiny" / "1.0.0"
  for split in ("train", "validation", "test"):
    beam, plain = reader.data_source(built, split), reader.data_source(tiny_dataset, split)
    assert len(beam) == len(plain) > 0
    for i in range(len(plain)):
      a, b = beam[i], plain[i]
      assert a.keys() == b.keys()
      for key in ("voice", "labels", "audio_pcm", "audio_scales", "algorithm", "group"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split}[{i}] {key}")
      np.testing.assert_allclose(a["gradient_weights"], b["gradient_weights"], rtol=1e-6)
