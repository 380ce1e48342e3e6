#!/usr/bin/env bash
# Wheels for a lent accelerator machine with no package registry (Python 3.12, its own jax,
# flax, optax, orbax, numpy, scipy): the packages s2s_jax needs that its image lacks, into
# .device/wheels (git-ignored; name it in the device tool's `carry`). There:
#   python3 -m pip install -q --no-index --no-deps .device/wheels/*.whl
#   PYTHONPATH=. python3 -m s2s_jax.bench.cli device --json "$OUT/device.json"
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device/wheels
mkdir -p "$out"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform any --dest "$out" \
  "dexed-py<0.4" "grain<0.3" array-record "librosa>=0.10.2,<0.12" audioread soundfile soxr pooch decorator \
  ml-collections portpicker tensorboardX "tensorflow-datasets>=4.9.7,<4.10" \
  tensorflow-metadata toml immutabledict dm-tree googleapis-common-protos simple-parsing \
  docstring-parser zstandard lazy-loader cffi pycparser platformdirs termcolor
# promise (a tensorflow-datasets dependency) ships only as source: pure Python, built here.
python3 -m pip wheel -q --no-deps --wheel-dir "$out" promise
du -sh "$out"
