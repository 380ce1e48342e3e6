"""`s2s-serve --model WORKDIR...`: match sounds over HTTP (the Sound2Synth plug-in's server).

The models load and one warm-up match compiles everything once, before the socket listens; then one line says where the server is:
`s2s-serve: listening on http://127.0.0.1:1234 (1 model)`. `--port 0` picks a free port (the
line names it). It binds 127.0.0.1 unless told otherwise: the server has no authentication.
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

from s2s_jax.match import cli as match_cli
from s2s_jax.match import target as target_lib
from s2s_jax.serve import app as app_lib
from s2s_jax.synth import params
from s2s_jax.util import console
from s2s_jax.util.arguments import HelpFormatter, bounded


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="s2s-serve", formatter_class=HelpFormatter,
      description="Serves Dexed (DX7) presets that sound like uploaded "
      "sounds: the Sound2Synth plug-in's protocol, a JSON API and a web page.")
  parser.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only)")
  parser.add_argument("--port", type=bounded(int, 0, 65535), default=1234,
                      help="TCP port; 0 picks a free one (default 1234)")
  parser.add_argument("--max-upload-mb", type=bounded(float, 0.01), default=20.0,
                      metavar="MB", help="largest accepted upload in MiB (default 20)")
  parser.add_argument("--max-pending", type=bounded(int, 1), default=4, metavar="N",
                      help="requests matched or waiting at once; more get 503 (default 4)")
  parser.add_argument("--body-timeout", type=match_cli.bounded(float, 0.1), default=60.0,
                      metavar="S", help="seconds a request's body may take to arrive; slower "
                      "ones get 408 (default 60)")
  match_cli.add_match_arguments(parser)
  args = parser.parse_args(argv)

  sock = None
  try:
    sock = _bind(args.host, args.port)  # before the slow model loading: fail fast if taken
    console.quiet(args.verbose)
    matcher = match_cli.create_matcher(args)
    _warm_up(matcher)
  except (ValueError, OSError) as e:  # workdir.ModelError is a ValueError
    if sock is not None:  # closed here, not at exit: main may run again in this process
      sock.close()
    print(f"s2s-serve: error: {e}", file=sys.stderr)
    return 2
  app = app_lib.create_app(matcher, max_upload_bytes=int(args.max_upload_mb * 2**20),
                           max_pending=args.max_pending, body_seconds=args.body_timeout)
  sock.listen(128)
  count = len(matcher.predictor.models) if matcher.predictor else 0
  voices = len(matcher.library) if matcher.library else 0
  library = f", {voices} library voices" if voices else ""
  print(f"s2s-serve: listening on {_url(sock)} ({count} model{'s' * (count != 1)}{library})",
        flush=True)
  try:
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
  except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down
    pass
  return 0


def _warm_up(matcher) -> None:
  """One match of the INIT VOICE, so the first request does not wait for compilation."""
  audio = matcher.renderer.render(params.INIT_VOICE)
  matcher.match(target_lib.prepare_target(audio, matcher.renderer.settings, "warm-up",
                                          "warm-up"))


def _bind(host: str, port: int) -> socket.socket:
  """A TCP socket bound to (host, port), not yet listening; OSError saying why not."""
  sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind((host, port))
  except OSError as e:
    sock.close()
    raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
  return sock


def _url(sock: socket.socket) -> str:
  host, port = sock.getsockname()[:2]
  return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


if __name__ == "__main__":
  sys.exit(main())
