"""Render speed: voices per second through dexed-py, one thread against all cores (and a
Dexed VST3 through DawDreamer with `--vst3`).

Voices come from `--preset-dir` (first `--voices` distinct voices) or, by
default, from the random-walk generator; every voice is rendered with the
default settings (4 s at 48 kHz).
"""

from __future__ import annotations

import os

from s2s_jax.synth import corpus
from s2s_jax.synth import generate
from s2s_jax.synth import render
from s2s_jax.util import report


def add_arguments(parser) -> None:
  parser.add_argument("--voices", type=int, default=128, help="voices rendered per timing")
  parser.add_argument("--repeats", type=int, default=5, help="timings per row (median kept)")
  parser.add_argument("--preset-dir", default=None, help="take voices from this .syx folder")
  parser.add_argument("--vst3", default=None,
                      help="also time this Dexed VST3 through DawDreamer (one thread)")


def run(args) -> None:
  renderer = render.DexedRenderer()
  if args.preset_dir:
    voices = corpus.read_corpus(args.preset_dir).voices[:args.voices]
  else:
    voices = generate.random_walk(renderer, args.voices, seed=0)
  cores = os.cpu_count() or 1
  rows = []
  timed = [("dexed-py, 1 thread", renderer, 1), (f"dexed-py, {cores} threads", renderer, cores)]
  if args.vst3:
    timed.append(("DawDreamer VST3, 1 thread", render.DawDreamerRenderer(args.vst3), 1))
  for label, engine, workers in timed:
    seconds = report.median_seconds(
        lambda: render.render_batch(engine, voices, workers),  # pylint: disable=cell-var-from-loop
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
