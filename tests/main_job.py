"""Helpers of the tests that run the training entry point (`python -m s2s_jax.main`) for real.

Runs are subprocesses: fake CPU devices and `jax.distributed` must be set up before JAX
starts, and some tests kill a run.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 600  # seconds a run may take before the test gives up on it (a hang guard)


def env(cache: pathlib.Path | None, devices: int = 1, **extra: str) -> dict[str, str]:
  """The environment of a run on `devices` fake CPU devices, with a compilation cache."""
  result = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
  if cache is not None:
    result["JAX_COMPILATION_CACHE_DIR"] = str(cache)
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
