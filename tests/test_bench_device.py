"""`s2s-bench device`: the accelerator benchmark's table, run on this machine's CPU."""

import gzip
import json

import pytest

import jax
import jax.numpy as jnp

from s2s_jax.bench import cli
from s2s_jax.bench import device
from s2s_jax.bench import profile
from s2s_jax.bench import train as train_bench


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


def conv_then_matmul(x, w, m):
  return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID") @ m


# [2, 3, 16, 20] * [5, 3, 3, 3] -> [2, 5, 14, 18], 3 * 3 * 3 multiply-adds each, then @ [18, 4].
CONV_THEN_MATMUL_FLOPS = 2 * (2 * 5 * 14 * 18) * 27 + 2 * (2 * 5 * 14 * 4) * 18
SHAPES = (2, 3, 16, 20), (5, 3, 3, 3), (18, 4)


def model_flops(fn, *arguments) -> float:
  return train_bench.model_flops(jax.jit(fn).trace(*arguments))


def test_model_flops_count_convolutions_and_matmuls():
  x, w, m = (jnp.ones(shape) for shape in SHAPES)
  assert model_flops(conv_then_matmul, x, w, m) == CONV_THEN_MATMUL_FLOPS
  # XLA's own count on this CPU agrees (it adds nothing here but the two ops).
  compiled = jax.jit(conv_then_matmul).lower(x, w, m).compile().cost_analysis()
  assert compiled["flops"] == CONV_THEN_MATMUL_FLOPS


def test_model_flops_inside_scans_grouped_convolutions_and_gradients():
  x, w, m = (jnp.ones(shape) for shape in SHAPES)

  def seven_steps(x, w, m):
    return jax.lax.scan(lambda carry, _: (carry, conv_then_matmul(x, w, m)), 0.0, None,
                        length=7)[1]
  assert model_flops(seven_steps, x, w, m) == 7 * CONV_THEN_MATMUL_FLOPS
  # Three groups of one channel in: a third of the multiply-adds; the out features, 6, split
  # into the three groups too.
  grouped = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                                      feature_group_count=3)
  assert model_flops(grouped, x, jnp.ones((6, 1, 3, 3))) == 2 * (2 * 6 * 14 * 18) * 9
  # The gradient: the forward pass, the matmul's two transposes (each the matmul's size), the
  # kernel's gradient (the convolution's size) and the input's: a convolution padded by 2
  # around each of the [2, 3, 16, 20] inputs, reading 5 * 3 * 3 values each.
  loss = lambda x, w, m: conv_then_matmul(x, w, m).sum()
  matmul, conv = 2 * (2 * 5 * 14 * 4) * 18, 2 * (2 * 5 * 14 * 18) * 27
  expected = CONV_THEN_MATMUL_FLOPS + 2 * matmul + conv + 2 * (2 * 3 * 16 * 20) * 45
  assert model_flops(jax.grad(loss, argnums=(0, 1, 2)), x, w, m) == expected


def test_self_times_subtract_nested_events_on_the_same_thread():
  event = lambda tid, ts, dur: {"pid": 1, "tid": tid, "ts": ts, "dur": dur}
  events = [event(7, 0, 10), event(7, 2, 3), event(7, 6, 2), event(8, 1, 5), event(7, 12, 4),
            event(7, 3, 1),  # inside the second, itself inside the first
            event(7, 14, 5)]  # overlaps the one before without being inside it
  assert profile.self_times(events) == [10 - 3 - 2, 3 - 1, 2, 5, 4, 1, 5]


def test_op_kind_drops_the_hlo_number():
  assert profile.op_kind("loop_multiply_fusion.12") == "loop_multiply_fusion"
  assert profile.op_kind("cudnn-conv-bw-filter.3") == "cudnn-conv-bw-filter"
  assert profile.op_kind("dot") == "dot"
  # In a CUDA graph every kernel names the graph's op: the kernel's own name is the kind.
  assert profile.op_kind("command_buffer_186", "input_reduce_fusion_113") == "input_reduce_fusion"
  assert profile.op_kind("cudnn-conv.2", "sm90_xmma_fprop_implicit_gemm") == "cudnn-conv"


def test_op_times_keep_a_gpus_kernels_and_name_those_in_cuda_graphs(tmp_path):
  meta = lambda pid, name: {"ph": "M", "pid": pid, "name": "process_name", "args": {"name": name}}
  kernel = lambda pid, ts, dur, name, hlo_op: {"ph": "X", "pid": pid, "tid": 1, "ts": ts,
                                               "dur": dur, "name": name,
                                               "args": {"hlo_op": hlo_op}}
  events = [meta(1, "/device:GPU:0"), meta(2, "/host:CPU"),
            kernel(1, 0, 30, "loop_add_fusion_12", "command_buffer_3"),
            kernel(1, 40, 10, "loop_add_fusion_7", "command_buffer_3"),
            kernel(1, 60, 25, "sm90_xmma_dgrad", "cudnn-conv-bw-input.4"),
            kernel(2, 0, 500, "ThunkExecutor", "command_buffer_3")]  # the host's launch
  trace = tmp_path / "perfetto_trace.json.gz"
  with gzip.open(trace, "wt") as f:
    json.dump({"traceEvents": events}, f)
  ops = profile.op_times(trace)
  assert [(op.kind, op.count) for op in ops] == [("loop_add_fusion", 2), ("cudnn-conv-bw-input", 1)]
  assert [op.seconds for op in ops] == pytest.approx([40e-6, 25e-6])


def test_op_times_of_a_traced_function(tmp_path):
  x = jax.random.normal(jax.random.key(0), (256, 256))
  four_products = jax.jit(lambda x: jax.lax.fori_loop(0, 4, lambda _, y: jnp.tanh(y @ x), x))
  run = lambda: jax.block_until_ready(four_products(x))
  run()
  ops = profile.op_times(profile.trace(run, 3, tmp_path))
  assert (tmp_path / "plugins" / "profile").is_dir()
  assert ops and [op.seconds for op in ops] == sorted((op.seconds for op in ops), reverse=True)
  # Each kind ran the same number of times in each of the 3 runs.
  assert all(op.count % 3 == 0 and op.seconds > 0 for op in ops)


def test_device_benchmark_on_cpu(tmp_path):
  out = tmp_path / "device.json"
  cli.main(["device", "--config", "configs/t6.py:tiny", "--batch", "2", "--repeats", "1",
            "--budget", "1", "--matmul-size", "256", "--json", str(out),
            "--profile", str(tmp_path / "profile")])
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
  # The profile's table: the kinds of operation of one traced step, and their sum.
  ops = json.loads((tmp_path / "profile" / "ops.json").read_text())["rows"]
  assert ops[-1]["operation"] == "all XLA operations"
  assert ops[-1]["ms per step"] == pytest.approx(sum(row["ms per step"] for row in ops[:-1]))
  assert ops[-1]["% of step"] == pytest.approx(ops[-1]["ms per step"] / 10 / step_s)
