"""`s2s-bench SUBCOMMAND`: each subcommand prints a side-by-side table and writes JSON."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import pathlib
import sys

from s2s_jax.util.arguments import HelpFormatter

# Subcommand name -> module exposing `add_arguments(parser)` and `run(args)`.
SUBCOMMANDS = {
    "render": "s2s_jax.bench.render",
    "features": "s2s_jax.bench.features",
    "build": "s2s_jax.bench.build",
    "model": "s2s_jax.bench.model",
    "train": "s2s_jax.bench.train",
    "match": "s2s_jax.bench.match",
    "quality": "s2s_jax.bench.quality",
    "speed": "s2s_jax.bench.speed",
    "device": "s2s_jax.bench.device",
}


def module_docstring(module_name: str) -> str:
  """A subcommand module's docstring, read from its source without importing it."""
  source = pathlib.Path(importlib.util.find_spec(module_name).origin).read_text()
  return ast.get_docstring(ast.parse(source))


def main(argv: list[str] | None = None) -> None:
  """Parses the arguments and runs the subcommand, importing its module alone (the others'
  imports cost about 2 s together)."""
  argv = sys.argv[1:] if argv is None else argv
  chosen = next((arg for arg in argv if not arg.startswith("-")), None)
  parser = argparse.ArgumentParser(prog="s2s-bench", description=__doc__,
                                   formatter_class=HelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND",
                                   help="one of: " + ", ".join(SUBCOMMANDS))
  module = None
  for name, module_name in SUBCOMMANDS.items():
    docstring = module_docstring(module_name)
    summary = " ".join(docstring.split("\n\n")[0].split())  # the first paragraph
    sub = commands.add_parser(name, help=summary,
                              description=docstring, formatter_class=HelpFormatter)
    sub.add_argument("--json", default=f"bench_results/{name}.json",
                     help="where to write the JSON results")
    if name == chosen:
      module = importlib.import_module(module_name)
      module.add_arguments(sub)
  args = parser.parse_args(argv)
  module.run(args)


if __name__ == "__main__":
  main()
