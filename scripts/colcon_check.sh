#!/usr/bin/env bash
# The ROS workspace path, as a ROS user takes it: `colcon build` then `colcon test` of this package in a fresh
# workspace, colcon from the package index, the venv standing in for the ROS install (its AMENT_PREFIX_PATH).
# `colcon test` runs the pytest suite (CMakeLists.txt, BUILD_TESTING). Usage: scripts/colcon_check.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$(realpath -m "${1:-${VENV:-.venv}}")
WS=$ROOT/build/colcon_ws

"$VENV/bin/python" -m pip install -q -c constraints.txt "colcon-common-extensions==0.3.0" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
rm -rf "$WS" && mkdir -p "$WS/src" && ln -s "$ROOT" "$WS/src/amodal_depth_ros"
export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
cd "$WS"
colcon build --event-handlers console_cohesion- --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -Wno-dev
colcon test --event-handlers console_cohesion- --ctest-args --output-on-failure
colcon test-result --all --verbose
