"""Every speed benchmark in one run: render, featuriser, dataset build, training, matching.

Each runs as its own subcommand would (printing its table, writing `OUT/<name>.json`); then one
summary table puts their headline figures side by side, each with the ratio against the
baseline of its own table (one thread; librosa; rendering alone; PyTorch; the network).
`--quick` shrinks every benchmark to a smoke test (`OPTIONS`: the tiny network, one repeat,
few voices, a 512^3 product for the training benchmark's peak, two models to match).
`OUT/speed.json` holds all rows.
"""

from __future__ import annotations

import argparse
import importlib
import json
import operator
import pathlib

import jax

from s2s_jax.util import report

# name -> (module, the row's label, headline value key, ratio key, what the ratio compares)
BENCHMARKS = {
    "render": ("s2s_jax.bench.render", operator.itemgetter("renderer"), "voices_per_s",
               "speedup", "vs one dexed-py thread"),
    "features": ("s2s_jax.bench.features", operator.itemgetter("method"), "ms_per_clip",
                 "jax_speedup", "librosa time / ours"),
    "build": ("s2s_jax.bench.build", operator.itemgetter("stage"), "examples_per_s",
              "vs_render_only", "vs rendering alone"),
    "train": ("s2s_jax.bench.train",
              lambda row: f"{row['config']} {row['framework']} {row['setting']}",
              "samples_per_s", "vs_torch_tuned", "vs PyTorch, tuned"),
    "match": ("s2s_jax.bench.match", lambda row: f"{row['models']} model(s), {row['what'].strip()}",
              "seconds", "vs_networks", "vs the networks alone"),
}
# Options per benchmark: the full run, and --quick.
OPTIONS = {
    "render": (["--voices=128"], ["--voices=8", "--repeats=1"]),
    "features": (["--batch=32"], ["--batch=2", "--rounds=1"]),
    "build": (["--voices=64", "--modes=off,sampled"], ["--voices=32", "--modes=off",
                                                        "--repeats=1"]),
    "train": (["--configs", "configs/t6.py:cpu"], ["--configs", "configs/t6.py:tiny",
                                                    "--batch=1", "--repeats=1", "--settings",
                                                    "tuned", "--matmul-size=512"]),
    # Two models: the networks one after the other and stacked under vmap differ.
    "match": (["--models", "1", "32"], ["--config=configs/t6.py:tiny", "--models", "2",
                                        "--repeats=1", "--top-k=1", "--cold-repeats=0"]),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--out", default="bench_results/speed", type=pathlib.Path,
                      help="folder for each benchmark's JSON and speed.json")
  parser.add_argument("--vst3", default=None, help="also render with this Dexed VST3")
  parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke test")


def run(args: argparse.Namespace) -> None:
  args.out.mkdir(parents=True, exist_ok=True)
  results, summary = {}, []
  for name, (module_name, label, value, ratio, compared) in BENCHMARKS.items():
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    options = OPTIONS[name][1 if args.quick else 0]
    if name == "render" and args.vst3:
      options = [*options, f"--vst3={args.vst3}"]
    sub_args = parser.parse_args(options)
    sub_args.json = str(args.out / f"{name}.json")
    module.run(sub_args)
    results[name] = json.loads(pathlib.Path(sub_args.json).read_text())
    summary += [{"benchmark": name, "what": label(row), "figure": value,
                 "value": row[value], "ratio": row[ratio], "ratio means": compared}
                for row in results[name]["rows"]]
  report.publish("speed", summary, args.out / "speed.json", {
      "quick": args.quick, "backend": jax.default_backend(),
      "device_kind": jax.devices()[0].device_kind,
      "benchmarks": {name: {"settings": r["settings"], "rows": r["rows"]}
                     for name, r in results.items()}})
