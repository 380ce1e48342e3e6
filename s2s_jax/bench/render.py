"""Render speed: voices per second through dexed-py, one thread against all cores.

Voices come from `--preset-dir` (first `--voices` distinct voices) or, by
default, from the random-walk generator; every voice is rendered with the
default settings (4 s at 48 kHz).
"""

from __future__ import annotations

import os

from s2s_jax.bench import report
from s2s_jax.synth import corpus
from s2s_jax.synth import generate
from s2s_jax.synth import render


def add_arguments(parser) -> None:
  parser.add_argument("--voices", type=int, default=128, help="voices rendered per timing")
  parser.add_argument("--repeats", type=int, default=5, help="timings per row (median kept)")
  parser.add_argument("--preset-dir", default=None, help="take voices from this .syx folder")


def run(args) -> None:
  renderer = render.DexedRenderer()
  if args.preset_dir:
    voices = corpus.read_corpus(args.preset_dir).voices[:args.voices]
  else:
    voices = generate.random_walk(renderer, args.voices, seed=0)
  cores = os.cpu_count() or 1
  rows = []
  for label, workers in (("dexed-py, 1 thread", 1), (f"dexed-py, {cores} threads", cores)):
    seconds = report.median_seconds(lambda: render.render_batch(renderer, voices, workers),
                                    args.repeats)
    rows.append({"renderer": label, "voices": len(voices), "median_s": seconds,
                 "voices_per_s": len(voices) / seconds,
                 "audio_x_realtime": len(voices) * renderer.settings.render_seconds / seconds})
  for row in rows:
    row["speedup"] = rows[0]["median_s"] / row["median_s"]
  report.publish("render", rows, args.json, {
      "voices": len(voices), "repeats": args.repeats, "source": args.preset_dir or "random walk",
      "render_seconds": renderer.settings.render_seconds,
      "sample_rate": renderer.settings.sample_rate})
