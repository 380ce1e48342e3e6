"""argparse types shared by the command lines."""

from __future__ import annotations

import argparse


def bounded(kind, low, high=None):
  """argparse type: a `kind` in [low, high] (no upper bound if `high` is None)."""
  def parse(text: str):
    try:
      value = kind(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
    if value < low or (high is not None and value > high):
      raise argparse.ArgumentTypeError(
          f"must be >= {low}, got {text}" if high is None else
          f"must be in [{low}, {high}], got {text}")
    return value
  return parse
