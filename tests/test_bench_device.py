"""`s2s-bench device`: the accelerator benchmark's table, run on this machine's CPU."""

import json

import pytest

from s2s_jax.bench import cli
from s2s_jax.bench import device


@pytest.mark.parametrize("kind, flops", [
    ("NVIDIA H100 80GB HBM3", 989e12),  # NVIDIA's H100 SXM datasheet, dense bf16
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("TPU v5 lite", 197e12),  # Google's v5e page
    ("TPU v4", 275e12),
    ("cpu", None),
])
def test_datasheet_peak_by_device_kind(kind, flops):
  assert device.datasheet_peak(kind) == flops


def test_device_benchmark_on_cpu(tmp_path):
  out = tmp_path / "device.json"
  cli.main(["device", "--config", "configs/t6.py:tiny", "--batch", "2", "--repeats", "1",
            "--budget", "1", "--matmul-size", "256", "--json", str(out)])
  result = json.loads(out.read_text())
  rows = {row["measure"]: row for row in result["rows"]}
  assert result["settings"]["backend"] == "cpu" and result["settings"]["dtype"] == "bfloat16"
  assert rows["matmul peak"]["note"].startswith("256^3 ")
  step_s = rows["train step"]["value"]
  assert rows["samples/s"]["value"] == pytest.approx(2 / step_s)
  # MFU is achieved over the ceiling: here the measured product (no datasheet for a CPU).
  assert rows["MFU"]["value"] == pytest.approx(
      100 * rows["achieved"]["value"] / rows["matmul peak"]["value"])
  # The tiny network's step is at least its forward and backward matmuls: > 1 MFLOP a sample.
  assert rows["FLOPs per sample"]["value"] > 1e-3
  assert rows["largest batch"]["value"] == 2  # a 1 s budget leaves no time to search
  assert rows["host loader"]["value"] > 0
  assert rows["host cores per device"]["value"] == pytest.approx(
      rows["samples/s"]["value"] / rows["host loader"]["value"])
