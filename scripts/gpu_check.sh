#!/usr/bin/env bash
# GPU check, for the day a CUDA machine is at hand: the CUDA-only tests and the CUDA rows of
# `amodal-depth bench`, results in OUTDIR (tests.txt, bench.txt, bench/bench.json, env.txt), in about
# 8 minutes at most.
#
# Usage: scripts/gpu_check.sh OUTDIR [WHEELS]
#
# Runs on the machine's own Python with its CUDA torch (PYTHON=..., default python3), from this checkout,
# without a package index: what that Python lacks (pyyaml, tqdm, pytest) is installed from WHEELS
# (default build/gpu_wheels, filled beforehand on a machine with an index by scripts/gpu_wheels.sh) into
# a temporary folder. ROS, open3d and the msg/ interfaces are not needed: the tests and bench rows run
# here use the ROS-free package only (the bench's node-overhead and open3d columns are skipped when
# rclpy / open3d do not import).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/gpu_check.sh OUTDIR [WHEELS]}
WHEELS=${2:-build/gpu_wheels}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
DEPS=$(mktemp -d)
trap 'rm -rf "$DEPS"' EXIT
export PYTHONPATH="$PWD:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
export AMODAL_DEPTH_CACHE="$DEPS/cache"

{
  date -u
  "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
            "device", torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
# GPU_CHECK_DRY_RUN=1 runs the same steps on a machine without CUDA (the CUDA tests skip): a check of the script.
FRAMES=30
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
  FRAMES=2
else
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || { echo "gpu_check: torch sees no CUDA device" | tee -a "$OUT/env.txt"; exit 2; }
fi

missing=$("$PY" - <<'PY'
import importlib.util
need = {"yaml": "pyyaml", "tqdm": "tqdm", "pytest": "pytest"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PY
)
if [ -n "$missing" ]; then
  echo "installing from $WHEELS: $missing"
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" --target "$DEPS" $missing >>"$OUT/env.txt" 2>&1 \
    || { echo "gpu_check: cannot install $missing from $WHEELS (run scripts/gpu_wheels.sh there first)" | tee -a "$OUT/env.txt"; exit 2; }
fi

# CUDA-only tests (marked `cuda`): torch fp16 + CUDA graphs against fp32, the segmentation network on CUDA,
# TensorRT engines where tensorrt imports. 4 minutes at most.
timeout 240 "$PY" -m pytest -q -m cuda -p no:cacheprovider test/test_tensorrt.py test/test_learned_segmentation.py 2>&1 | tee "$OUT/tests.txt"
tests=${PIPESTATUS[0]}

# CUDA rows of the bench: torch fp16 (+ CUDA graphs for the amodal networks), onnxruntime (its CUDA provider
# where onnxruntime-gpu is installed), TensorRT where it imports. 3 minutes at most.
timeout 180 "$PY" -m amodal_depth_ros.tools.cli bench --out "$OUT/bench" --frames "$FRAMES" --resolutions 640x480,1280x720 \
  --pipelines learned,learned_onnxruntime,learned_tensorrt,geometric 2>&1 | tee "$OUT/bench.txt"
bench=${PIPESTATUS[0]}
echo "tests exit $tests, bench exit $bench" | tee -a "$OUT/env.txt"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
