"""`s2s-bench SUBCOMMAND`: each subcommand prints a side-by-side table and writes JSON."""

from __future__ import annotations

import argparse
import importlib

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


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog="s2s-bench", description=__doc__,
                                   formatter_class=HelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND",
                                   help="one of: " + ", ".join(SUBCOMMANDS))
  modules = {}
  for name, module_name in SUBCOMMANDS.items():
    module = importlib.import_module(module_name)
    summary = " ".join(module.__doc__.split("\n\n")[0].split())  # the first paragraph
    sub = commands.add_parser(name, help=summary,
                              description=module.__doc__, formatter_class=HelpFormatter)
    sub.add_argument("--json", default=f"bench_results/{name}.json",
                     help="where to write the JSON results")
    module.add_arguments(sub)
    modules[name] = module
  args = parser.parse_args(argv)
  modules[args.command].run(args)


if __name__ == "__main__":
  main()
