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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
  """Help that keeps the description's line breaks and ends each option's help with its
  default (or "(required)"), unless the help already names one or the option is a switch."""

  def _get_help_string(self, action: argparse.Action) -> str:
    text = action.help or ""
    default = action.default
    if action.required and action.option_strings:
      return text if "required" in text else f"{text} (required)"
    if ("default" in text or not action.option_strings or default is False
        or default is argparse.SUPPRESS or action.nargs == 0):
      return text
    if default is None or default == "":
      return f"{text} (default: not set)"
    if isinstance(default, (list, tuple)):  # as typed: words for nargs, else one a,b,c value
      default = (" " if action.nargs not in (None, "?") else ",").join(map(str, default))
    return f"{text} (default: {default})"
