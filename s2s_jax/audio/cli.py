"""`s2s-mfccd A B [--n-mfcc 13] [--no-trim]`: prints the MFCCD between two sound files.

Each file is read as `s2s-match` reads its input: mono, resampled to 48 kHz, leading silence
trimmed, cropped or zero-padded to 4 s (the render length); so `s2s-mfccd INPUT NAME.wav` gives
the score s2s-match reports (see its summary.json for when and why they differ). See
`s2s_jax.audio.mfccd` for the exact definition.
"""

from __future__ import annotations

import argparse
import sys

from s2s_jax.audio import io
from s2s_jax.audio import mfccd
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.match import target
from s2s_jax.util.arguments import HelpFormatter

SPEC = FeatureSpec()  # the paper's clip and features, whatever clip a model was trained on


def main(argv: list[str] | None = None) -> int:
  spec = SPEC
  parser = argparse.ArgumentParser(
      prog="s2s-mfccd", formatter_class=HelpFormatter,
      description="Prints the MFCCD between two sound files.",
      epilog="Files are read as s2s-match reads its input: mono, resampled to 48 kHz, leading "
             "silence trimmed, cropped or padded to 4 s.")
  parser.add_argument("a", help="first sound file (wav, flac, ogg, mp3, aiff, ...)")
  parser.add_argument("b", help="second sound file")
  parser.add_argument("--n-mfcc", type=_coefficients(spec.n_mels), default=13, metavar="N",
                      help="MFCCs compared: 13 as the paper (default), 30 as the reference code")
  parser.add_argument("--no-trim", action="store_true",
                      help="keep leading silence (default: trimmed as s2s-match trims)")
  args = parser.parse_args(argv)
  try:
    if args.no_trim:
      a, b = (io.read_audio(path, spec.sample_rate, spec.clip.render_seconds).audio
              for path in (args.a, args.b))
    else:
      a, b = (target.read_fitted(path, spec.clip) for path in (args.a, args.b))
  except io.AudioReadError as error:
    print(f"s2s-mfccd: error: {error}", file=sys.stderr)
    return 2
  distance = mfccd.mfccd(a[None], b[None], n_mfcc=args.n_mfcc, spec=spec)
  print(f"{float(distance[0]):.4f}")
  return 0


def _coefficients(most: int):
  def parse(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= most:
      raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {most}")
    return int(text)
  return parse


if __name__ == "__main__":
  sys.exit(main())
