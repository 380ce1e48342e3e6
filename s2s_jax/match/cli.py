"""`s2s-match AUDIO... --model WORKDIR... --out DIR`: a Dexed preset for each sound.

For each input NAME this writes DIR/NAME.syx, NAME_bank.syx, NAME.json, NAME.wav and NAME.png
(see `match.export`), and adds to DIR/summary.json: per input the chosen algorithm and model,
MFCCD-13 and MFCCD-30 before and after refinement, the pitch handling, the alternatives in the
bank and the time spent. It prints one line per sound and one at the end.
Every input is read and checked, and the output folder too, before any model loads: a bad input
is reported (file and reason) and the others are matched, then the exit status is 1; a folder
that cannot take the outputs (or files already there, without --overwrite) stops the run (2).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time
from collections.abc import Callable

from s2s_jax.audio import io
from s2s_jax.audio.clip import ClipSpec
from s2s_jax.infer import bundled
from s2s_jax.infer import workdir as workdir_lib
from s2s_jax.match import export
from s2s_jax.match import library
from s2s_jax.match import matcher as matcher_lib
from s2s_jax.match import search
from s2s_jax.match import target as target_lib
from s2s_jax.synth import render as R
from s2s_jax.util import caches
from s2s_jax.util import console
from s2s_jax.util.arguments import HelpFormatter, bounded


def parse_algorithms(text: str) -> tuple[int, ...]:
  """"1,5,13-16" -> (1, 5, 13, 14, 15, 16); "all" -> 1..32."""
  if text == "all":
    return matcher_lib.ALL_ALGORITHMS
  algorithms = []
  for part in text.split(","):
    low, _, high = part.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
      raise argparse.ArgumentTypeError(f"{part!r} is not an algorithm number or range (e.g. 5 "
                                       "or 13-16)")
    span = range(int(low), int(high or low) + 1)
    if not span or not all(1 <= a <= 32 for a in span):
      raise argparse.ArgumentTypeError(f"{part!r}: DX7 algorithms are 1..32")
    algorithms.extend(span)
  return tuple(sorted(set(algorithms)))


def add_match_arguments(parser: argparse.ArgumentParser) -> None:
  """The model and search options `s2s-match` and `s2s-serve` share."""
  parser.add_argument("--model", action="append", default=[], metavar="WORKDIR",
                      help="a training workdir (repeat for one model per algorithm; default: "
                           "the model bundled with s2s_jax)")
  parser.add_argument("--no-model", action="store_true",
                      help="no network: candidates from --library only (default: off)")
  parser.add_argument("--library", action="append", default=[], metavar="DIR",
                      help="a folder tree of .syx presets whose nearest voices are candidates "
                           "(repeatable; rendered once, then cached; default none)")
  parser.add_argument("--library-cache", metavar="DIR", default=None,
                      help="where library features are cached (default $S2S_CACHE_DIR/library "
                           "or ~/.cache/s2s_jax/library)")
  parser.add_argument("--library-k", type=bounded(int, 1), default=32, metavar="N",
                      help="nearest library voices rendered as candidates (default 32)")
  parser.add_argument("--starts", type=bounded(int, 1), default=4, metavar="N",
                      help="best candidates the search starts from (default 4)")
  parser.add_argument("--algorithms", type=parse_algorithms, default=matcher_lib.ALL_ALGORITHMS,
                      metavar="LIST", help="DX7 algorithms to try, e.g. 1,5,13-16 (default all)")
  parser.add_argument("--top-k", type=bounded(int, 1), default=4, metavar="K",
                      help="candidates decoded per model and algorithm (default 4)")
  parser.add_argument("--refine-renders", type=bounded(int, 0), default=1000, metavar="N",
                      help="search budget in renders; 0 skips the search (default 1000)")
  parser.add_argument("--refine-seconds", type=bounded(float, 0.1), default=30.0, metavar="S",
                      help="search time limit per input, in seconds (default 30)")
  parser.add_argument("--velocity", type=int, default=127, choices=range(1, 128),
                      metavar="1..127", help="MIDI velocity of the rendered note (default 127)")
  parser.add_argument("--vst3", metavar="PATH",
                      help="render with this Dexed VST3 through DawDreamer (default: dexed-py)")
  parser.add_argument("--seed", type=int, default=0,
                      help="seed of the refinement's moves (default 0)")
  parser.add_argument("--no-compilation-cache", action="store_true",
                      help="compile every program anew instead of keeping them in the cache "
                           "folder (also S2S_COMPILATION_CACHE=0; default: kept in "
                           "$S2S_CACHE_DIR/jax or ~/.cache/s2s_jax/jax)")
  parser.add_argument("--verbose", action="store_true",
                      help="also show the libraries' log messages (absl, JAX, orbax; default "
                           "hidden)")


def create_matcher(args: argparse.Namespace, progress: Callable[[str], None] | None = None
                   ) -> matcher_lib.Matcher:
  """Loads the models and the engine the options name (ModelError / ValueError if unusable);
  `progress` gets the library's progress lines.

  Compiled programs are kept on disk (`util.caches`: `JAX_COMPILATION_CACHE_DIR`, default
  ~/.cache/s2s_jax/jax) unless `args.no_compilation_cache`, so later processes load them.
  """
  caches.use_compilation_cache(not args.no_compilation_cache)
  if args.no_model and (args.model or not args.library):
    raise ValueError("--no-model takes candidates from --library only: give a --library and "
                     "no --model")
  models = ([] if args.no_model else [workdir_lib.load_model(w) for w in args.model]
            or [bundled.load()])
  clip = dataclasses.replace(models[0].clip if models else ClipSpec(),  # the models' clip
                             velocity=args.velocity)
  renderer = R.DawDreamerRenderer(args.vst3, clip) if args.vst3 else R.DexedRenderer(clip)
  refine = (search.Budget(renders=args.refine_renders, seconds=args.refine_seconds)
            if args.refine_renders else None)
  presets = (library.build_library(args.library, renderer, args.library_cache, progress)
             if args.library else None)
  return matcher_lib.Matcher(
      models, matcher_lib.MatchSettings(algorithms=args.algorithms, top_k=args.top_k,
                                        refine=refine, seed=args.seed, library_k=args.library_k,
                                        starts=args.starts), renderer, presets)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="s2s-match", formatter_class=HelpFormatter,
      description="Finds a Dexed (DX7) preset that sounds like each input.",
      epilog="Prints one line per sound and a last line naming what was written; a status "
             "line shows progress on a terminal.")
  parser.add_argument("audio", nargs="+", help="sound files (wav, flac, ogg, mp3, aiff, ...)")
  parser.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR",
                      help="output folder (required): per input NAME.syx (the match), "
                           "NAME_bank.syx (32 alternatives, best first), NAME.json, NAME.wav, "
                           "NAME.png; and summary.json")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace outputs already in DIR (default: stop; inputs are never "
                           "replaced)")
  add_match_arguments(parser)
  args = parser.parse_args(argv)
  console.quiet(args.verbose)

  names = {}
  for path in args.audio:
    stem = pathlib.Path(path).stem
    if stem in names:
      parser.error(f"{names[stem]} and {path} would both write {stem}.*: rename one")
    names[stem] = path
  targets, failed = _load_targets(args.audio)  # checked before models load
  if not targets:
    return _finish(failed, len(args.audio))
  bar = console.status(len(targets), "loading", unit="sound")
  try:
    summary = export.check_out_dir(args.out, [t.name for t in targets.values()], args.audio,
                                   args.overwrite)
    matcher = create_matcher(args, progress=lambda line: bar.write(line, file=sys.stderr))
  except (export.OutputError, workdir_lib.ModelError, ValueError, OSError) as e:
    bar.close()
    print(f"s2s-match: error: {e}", file=sys.stderr)
    return 2
  clip = matcher.renderer.settings
  if not target_lib.fits(next(iter(targets.values())), clip):  # models of another clip
    targets, failed = _load_targets(list(targets), clip, failed)

  matched = 0
  for n, (path, target) in enumerate(targets.items()):
    bar.set_description(f"{target.name} ({n + 1}/{len(targets)})")
    started = time.perf_counter()
    match = matcher.match(target, progress=lambda done, n=n: _advance(bar, n + done))
    try:
      written = export.write_outputs(args.out, match, target, matcher.renderer, path,
                                     args.overwrite)
    except (OSError, io.AudioReadError) as e:
      failed += _failure(e)
      continue
    entry = export.summary_entry(match, target, path, written)
    entry["seconds"] = time.perf_counter() - started
    summary.append(entry)
    export.write_summary(args.out, summary)
    matched += 1
    bar.write(_line(entry), file=sys.stdout)
  bar.close()
  if matched:
    print(f"s2s-match: {matched} match(es) in {args.out}/ (NAME.syx, NAME_bank.syx, NAME.json, "
          f"NAME.wav, NAME.png; {export.SUMMARY})", flush=True)
  return _finish(failed, len(args.audio))


def _advance(bar, position: float) -> None:
  """Moves the status line to `position` sounds done."""
  bar.n = position
  bar.refresh()


def _load_targets(paths: list[str], clip: ClipSpec = ClipSpec(), failed: int = 0
                  ) -> tuple[dict[str, target_lib.Target], int]:
  """The inputs that can be matched, by path, and `failed` plus the count of those that
  cannot (each reported)."""
  targets = {}
  for path in paths:
    try:
      if pathlib.Path(path).stem == export.RESERVED_NAME:
        raise target_lib.TargetError(f"{path}: the name {export.RESERVED_NAME!r} is kept for "
                                     f"{export.SUMMARY}; rename the file")
      targets[path] = target_lib.load_target(path, clip)
    except target_lib.TargetError as e:
      failed += _failure(e)
  return targets, failed


def _failure(error: Exception) -> int:
  """Reports one input that could not be matched; 1 (the count of failures it adds)."""
  print(f"s2s-match: failed: {error}", file=sys.stderr, flush=True)
  return 1


def _finish(failed: int, inputs: int) -> int:
  """The exit status: 1 if any input failed (said once more at the end), else 0."""
  if failed:
    print(f"s2s-match: {failed} of {inputs} input(s) failed", file=sys.stderr)
  return int(bool(failed))


def _line(entry: dict) -> str:
  """One sound's result: its score, where the match came from, its pitch, the time taken."""
  refined = "" if entry["refined"] is None else (
      f" (selected {entry['network']['mfccd13']:.2f})")
  files = entry["mfccd_of_files"]
  files = "" if files is None else (f" (the written files: {files['mfccd13']:.2f}, "
                                     "why in summary.json)")
  return (f"{entry['name']}: MFCCD-13 {entry['mfccd']['mfccd13']:.2f}{refined}{files}, "
          f"algorithm {entry['algorithm']}, {entry['pitch']['note']}, {entry['seconds']:.1f} s")


if __name__ == "__main__":
  sys.exit(main())
