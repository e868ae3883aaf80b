"""Prebuild the TensorRT engines of the amodal networks, so the node starts on them at once.

Exports each network to ONNX (cached, as for inference.backend: onnxruntime) and builds its engine
for this GPU, TensorRT version, precision and batch into the cache the node reads
(~/.cache/amodal_depth_ros/tensorrt, or $AMODAL_DEPTH_CACHE/tensorrt); a cached engine that is
corrupt or was built for something else is rebuilt. --check only reports what is cached. Needs
tensorrt (10.x) and a CUDA GPU: exit code 2 without them.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=8, help="crops per call, fixed in the engine (default: 8, "
                        "the batch the node uses)")
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="as inference.precision "
                        "(default: fp16)")
    parser.add_argument("--mask-weights", default="", help="amodal mask weights (default: shipped)")
    parser.add_argument("--depth-weights", default="", help="amodal depth weights (default: shipped)")
    parser.add_argument("--check", action="store_true", help="only report whether each engine is cached "
                        "(exit code 1 if one is not)")


def run(args: argparse.Namespace) -> int:
    from ..models import tensorrt_engine as te

    reason = te.tensorrt_unavailable()
    if reason:
        print(f"amodal-depth engines: TensorRT engines cannot be built here: {reason}", file=sys.stderr)
        return 2
    if args.batch < 1:
        print("amodal-depth engines: --batch must be >= 1", file=sys.stderr)
        return 2
    from ..models.amodal_nets import AmodalMaskNet, SpadeAmodalDepthNet
    from ..models.backends import cache_dir, cached_onnx, onnx_path
    from ..models.errors import ModelLoadError
    from ..models.stages import WEIGHTS_DIR, load_weights

    cache = te.EngineCache(cache_dir() / "tensorrt")
    missing = 0
    for kind, net, weights in (
            ("amodal_mask", AmodalMaskNet(), args.mask_weights or WEIGHTS_DIR / "amodal_mask.pt"),
            ("amodal_depth", SpadeAmodalDepthNet(), args.depth_weights or WEIGHTS_DIR / "amodal_depth.pt")):
        try:
            net = load_weights(net, weights, kind.replace("_", " "))
        except ModelLoadError as exc:
            print(f"amodal-depth engines: {exc}", file=sys.stderr)
            return 2
        path = onnx_path(kind, weights, args.batch)
        if args.check and not path.is_file():
            missing += 1
            print(f"{kind}: no engine (no ONNX export {path} yet)")
            continue
        if args.check:
            key = te.current_key(path, args.precision)
            engine, why = cache.inspect(key)
            missing += engine is None
        else:
            path = cached_onnx(net, kind, weights, args.batch)
            _, why = te.ensure_engine(path, args.precision, cache)
            key = te.current_key(path, args.precision)
        print(f"{kind}: {cache.paths(key)[0]}: {why} (from {path})")
    return 1 if missing else 0
