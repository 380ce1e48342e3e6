"""The shared helpers: atomic writes and argparse bounds."""

import argparse

import pytest

from s2s_jax.util import arguments
from s2s_jax.util import files


def test_write_replaces_a_file_whole(tmp_path):
  target = tmp_path / "bank.syx"
  target.write_bytes(b"old")
  files.write_atomic(target, b"\xf0new\xf7")
  assert target.read_bytes() == b"\xf0new\xf7"
  assert [p.name for p in tmp_path.iterdir()] == ["bank.syx"]  # no temporary left behind


def test_bounded_accepts_the_bounds_and_names_what_it_rejects():
  port = arguments.bounded(int, 0, 65535)
  assert (port("0"), port("65535")) == (0, 65535)
  for text, message in (("65536", "must be in [0, 65535], got 65536"),
                        ("x", "'x' is not a int")):
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("[", r"\[")):
      port(text)
  with pytest.raises(argparse.ArgumentTypeError, match="must be >= 0.1, got 0.05"):
    arguments.bounded(float, 0.1)("0.05")
