"""Dataset build speed: examples per second against the render-only rate, in one run.

Real-preset builds of `--voices` random-walk voices, or with `--presets DIR` distinct voices
drawn from that folder (written as banks into a temporary folder first, untimed), so no
generation renders are counted: render-only (all cores), then full `dexed_presets` builds
(render, encode, label, write) with gradient weights off, sampled and all. Each build row gives
its rate against rendering alone and, beside weights off, what the weights cost per example.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from s2s_jax.data import builder
from s2s_jax.data import sources
from s2s_jax.data import weights as W
from s2s_jax.synth import corpus
from s2s_jax.synth import generate
from s2s_jax.synth import render
from s2s_jax.synth import sysex
from s2s_jax.util import files
from s2s_jax.util import report


def add_arguments(parser) -> None:
  parser.add_argument("--voices", type=int, default=64, help="voices per build (banks of 32)")
  parser.add_argument("--repeats", type=int, default=3, help="render-only timings (median)")
  parser.add_argument("--modes", default="off,sampled,all", help="gradient weight modes to build")
  parser.add_argument("--presets", default=None,
                      help="draw the voices from this folder of .syx files (not random walks)")


def run(args) -> None:
  renderer = render.DexedRenderer()
  voices = _voices(args, renderer)
  with tempfile.TemporaryDirectory() as tmp:
    for bank in range(len(voices) // 32):
      files.write_atomic(f"{tmp}/presets/bank{bank}.syx",
                         sysex.bank_message(voices[32 * bank:][:32]))
    render_s = report.median_seconds(lambda: render.render_batch(renderer, voices), args.repeats)
    rows = [{"stage": f"render only ({os.cpu_count()} threads)", "examples": len(voices),
             "seconds": render_s, "examples_per_s": len(voices) / render_s}]
    build_s = {}
    for mode in args.modes.split(","):
      weights = W.WeightSettings(mode=mode)
      config = builder.DexedPresetsConfig(name=f"bench_{mode}", mix=sources.SourceMix(),
                                          weights=weights)
      build_s[mode] = report.median_seconds(lambda: _build(config, tmp), 1)
      probed = {"all": " (144 probed)", "sampled": f" ({weights.num_sampled} probed)"}
      rows.append({"stage": f"build, weights {mode}{probed.get(mode, '')}",
                   "examples": len(voices), "seconds": build_s[mode],
                   "examples_per_s": len(voices) / build_s[mode]})
  for row, mode in zip(rows, [None, *build_s]):
    row["vs_render_only"] = row["examples_per_s"] / rows[0]["examples_per_s"]
    row["weights_ms_per_example"] = ("" if "off" not in build_s or mode in (None, "off") else
                                     1e3 * (build_s[mode] - build_s["off"]) / len(voices))
  report.publish("build", rows, args.json, {
      "voices": len(voices), "modes": args.modes, "presets": args.presets,
      "render_seconds": renderer.settings.render_seconds,
      "weights_seconds_per_example": {mode: (s - build_s["off"]) / len(voices)
                                      for mode, s in build_s.items() if "off" in build_s}})


def _voices(args, renderer: render.DexedRenderer):
  """`[32 * banks, 155]` voices: random walks, or audible distinct voices of `--presets`."""
  count = 32 * -(-args.voices // 32)
  if args.presets is None:
    return generate.random_walk(renderer, count, seed=0)
  pool = corpus.read_corpus(args.presets).voices
  pool = pool[np.random.default_rng(0).permutation(len(pool))[:2 * count]]
  pool = pool[generate.is_audible(render.render_batch(renderer, pool))]
  if len(pool) < count:
    raise SystemExit(f"{args.presets}: {len(pool)} audible voices, --voices needs {count}")
  return pool[:count]


def _build(config: builder.DexedPresetsConfig, tmp: str) -> None:
  data_dir = tempfile.mkdtemp(dir=tmp)
  dataset = builder.DexedPresetsBuilder(config=config, data_dir=data_dir)
  dataset.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=f"{tmp}/presets"))
