"""`s2s-presets DIR [--json]`: summarise a folder of DX7 `.syx` files."""

from __future__ import annotations

import argparse
import json
import sys

from s2s_jax.synth import corpus as C
from s2s_jax.synth import summary as summary_lib
from s2s_jax.util.arguments import HelpFormatter


def _fractions(text: str) -> tuple[float, float, float]:
  try:
    values = tuple(float(x) for x in text.split(","))
  except ValueError:
    values = ()
  if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
    raise argparse.ArgumentTypeError(
        f"expected three non-negative fractions summing to 1, like 0.8,0.1,0.1; got {text!r}")
  return values


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog="s2s-presets", description=__doc__,
                                   formatter_class=HelpFormatter)
  parser.add_argument("folder", help="a folder tree of .syx files (banks and single voices)")
  parser.add_argument("--json", action="store_true", help="print the summary as JSON")
  parser.add_argument("--max-differences", type=int, default=3,
                      help="voices differing in at most this many parameters share a group")
  parser.add_argument("--seed", type=int, default=20001101, help="seed of the split")
  parser.add_argument("--fractions", type=_fractions, default=(0.8, 0.1, 0.1),
                      help="train,validation,test shares of the groups")
  args = parser.parse_args(argv)
  sys.stdout.reconfigure(errors="backslashreplace")  # whatever the terminal's encoding
  if args.max_differences < 0:
    parser.error(f"--max-differences must be >= 0, got {args.max_differences}")
  try:
    corpus = C.read_corpus(args.folder)
  except NotADirectoryError as e:
    print(f"s2s-presets: {e}", file=sys.stderr)
    sys.exit(2)
  summary = summary_lib.summarize(corpus, args.max_differences, args.seed, args.fractions)
  print(printable(json.dumps(summary, indent=2) if args.json
                  else summary_lib.format_summary(summary)))
  if any(r.path == "." for r in corpus.rejected):  # the root itself could not be listed
    sys.exit(1)


def printable(text: str) -> str:
  """`text` with the bytes of non-UTF-8 file names (surrogate escapes) spelled as \\xNN."""
  return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


if __name__ == "__main__":
  main()
