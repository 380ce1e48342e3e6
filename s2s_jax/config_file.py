"""Loads `path/to/config.py[:arg]` (the `--config` syntax of ml_collections) outside absl."""

from __future__ import annotations

import importlib.util
import pathlib

import ml_collections


def load(spec: str) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the file before the colon, `get_config()` when there is no arg."""
  path, _, arg = spec.partition(":")
  if not pathlib.Path(path).is_file():
    raise FileNotFoundError(f"config file not found: {path}")
  module_spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()
