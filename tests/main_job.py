"""Helpers of the tests that train: the tests' config, and the training entry point
(`python -m s2s_jax.main`) run for real.

Entry-point runs are subprocesses: fake CPU devices and `jax.distributed` must be set up before
JAX starts, and some tests kill a run. They share the session's compilation cache (conftest).
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import ml_collections

from s2s_jax import config_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 600  # seconds a run may take before the test gives up on it (a hang guard)
# The tests' training run: the tiny config for 2 epochs of 12 steps, SWA over the second, logs
# every step, a checkpoint every 2 (the session's `tiny_model` and test_train.py's runs).
TINY = {"num_epochs": 2, "swa_start_epoch": 1, "log_every_steps": 1, "checkpoint_every_steps": 2}
TINY_FLAGS = ("--config=configs/t6.py:tiny", *(f"--config.{k}={v}" for k, v in TINY.items()))


def tiny_config(data_dir: pathlib.Path, **overrides) -> ml_collections.ConfigDict:
  """The config `TINY_FLAGS` give the entry point, reading the dataset from `data_dir`."""
  config = config_file.load(str(ROOT / "configs" / "t6.py") + ":tiny")
  config.update(data_dir=str(data_dir), **TINY, **overrides)
  return config


def env(devices: int = 1, **extra: str) -> dict[str, str]:
  """The environment of a run on `devices` fake CPU devices."""
  result = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
  flags = os.environ.get("XLA_FLAGS", "")
  if devices > 1:
    flags += f" --xla_force_host_platform_device_count={devices}"
  result["XLA_FLAGS"] = flags.strip()
  return result


def command(workdir: pathlib.Path, data_dir: pathlib.Path, *flags: str) -> list[str]:
  """The entry point with `flags` (`--config=...` first), then the workdir and data_dir."""
  return [sys.executable, "-m", "s2s_jax.main", *flags, f"--workdir={workdir}",
          f"--config.data_dir={data_dir}"]


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def records(workdir: pathlib.Path) -> list[dict]:
  """The run's `metrics.jsonl`, one dict per report."""
  lines = (workdir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
  return [json.loads(line) for line in lines]


def last_per_step(runs: list[dict], key: str) -> dict[int, float]:
  """step -> the value of `key` logged at that step."""
  return {r["step"]: r[key] for r in runs if key in r}


def kinds(runs: list[dict]) -> list[tuple[int, str]]:
  """(step, kind) of each row: its kind is the prefix of its names (`train/loss` -> train)."""
  return [(r["step"], next(k for k in r if k != "step").split("/")[0]) for r in runs]


def finished_checkpoints(workdir: pathlib.Path) -> list[int]:
  """Steps of the finalised checkpoints (orbax writes to a temporary folder, then renames)."""
  folder = workdir / "checkpoints"
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir()
                if p.name.isdigit() and (p / "_CHECKPOINT_METADATA").exists())


def start(args: list[str], run_env: dict[str, str], log: pathlib.Path) -> subprocess.Popen:
  """A run in the background, its output (stdout and stderr) to `log`."""
  with open(log, "w", encoding="utf-8") as out:
    return subprocess.Popen(args, env=run_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
