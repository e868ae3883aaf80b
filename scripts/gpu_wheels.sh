#!/usr/bin/env bash
# Fetch the wheels scripts/gpu_check.sh installs on a GPU machine that has no package index (pure-Python
# test and tool dependencies its own Python may lack), for that machine's Python version.
# Usage: scripts/gpu_wheels.sh [DIR (default build/gpu_wheels)] [PYTHON_VERSION (default 3.12)]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build/gpu_wheels}
VERSION=${2:-3.12}
mkdir -p "$DIR"
python3 -m pip download -q --only-binary=:all: --implementation cp --python-version "$VERSION" \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$DIR" \
  pyyaml tqdm pytest
ls "$DIR"
