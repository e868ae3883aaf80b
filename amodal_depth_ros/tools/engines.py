"""Prebuild the TensorRT engines of the networks, so the node starts on them at once.

Exports each network to ONNX (cached, as for inference.backend: onnxruntime) and builds its engine
for this GPU, TensorRT version, precision and batch (the amodal networks) or input size (the
segmentation network, for the camera resolutions given) into the cache the node reads
(~/.cache/amodal_depth_ros/tensorrt, or $AMODAL_DEPTH_CACHE/tensorrt); a cached engine that is
corrupt or was built for something else is rebuilt; a build that fails is reported in one line and the
others go on (exit code 1). --check only reports what is cached. Needs
tensorrt (10.x or 11.x) and a usable CUDA GPU: exit code 2 without them. Another process building the same
engine is waited for (one file lock per engine), not duplicated.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=8, help="crops per call, fixed in the engine (default: 8, "
                        "the batch the node uses)")
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="as inference.precision "
                        "(default: fp16)")
    parser.add_argument("--mask-weights", default="", help="amodal mask weights (default: shipped)")
    parser.add_argument("--depth-weights", default="", help="amodal depth weights (default: shipped)")
    parser.add_argument("--segmentation-weights", default="", help="segmentation weights (default: shipped)")
    parser.add_argument("--cameras", default="640x480", metavar="WxH[,WxH...]",
                        help="camera resolutions to build the segmentation engine for (default: 640x480)")
    parser.add_argument("--network-size", type=int, default=320,
                        help="as segmentation.network_size (default: 320)")
    parser.add_argument("--check", action="store_true", help="only report whether each engine is cached "
                        "(exit code 1 if one is not)")


def run(args: argparse.Namespace) -> int:
    from ..runtime import tensorrt_engine as te

    reason = te.tensorrt_unavailable()
    if reason:
        print(f"amodal-depth engines: TensorRT engines cannot be built here: {reason}", file=sys.stderr)
        return 2
    if args.batch < 1:
        print("amodal-depth engines: --batch must be >= 1", file=sys.stderr)
        return 2
    try:
        cameras = [tuple(int(v) for v in c.lower().split("x")) for c in args.cameras.split(",") if c]
        if not cameras or any(len(c) != 2 or min(c) < 1 for c in cameras):
            raise ValueError
    except ValueError:
        print("amodal-depth engines: --cameras must be WxH[,WxH...]", file=sys.stderr)
        return 2
    from ..errors import ModelLoadError
    from ..learned import segmentation as learned_segmentation
    from ..networks import WEIGHTS_DIR, AmodalMaskNet, SpadeAmodalDepthNet, load_weights
    from ..networks.segmentation_net import SegmentationNet, network_size
    from ..runtime.backends import cached_onnx, engine_cache, onnx_path

    cache = engine_cache()
    graphs: list[tuple[str, Path, Callable[[], Path]]] = []   # (name, cached ONNX path, export function)
    try:
        for kind, net, weights in (
                ("amodal_mask", AmodalMaskNet(), args.mask_weights or WEIGHTS_DIR / "amodal_mask.pt"),
                ("amodal_depth", SpadeAmodalDepthNet(), args.depth_weights or WEIGHTS_DIR / "amodal_depth.pt")):
            load_weights(net, weights, kind.replace("_", " "))   # loads into the net it is given
            graphs.append((kind, onnx_path(kind, weights, args.batch),
                           partial(cached_onnx, net, kind, weights, args.batch)))
        weights = Path(args.segmentation_weights or WEIGHTS_DIR / "segmentation.pt")
        segmentation = SegmentationNet()
        load_weights(segmentation, weights, "segmentation")   # loads into the net it is given
        for width, height in dict.fromkeys(network_size(w, h, args.network_size) for w, h in cameras):
            graphs.append((f"segmentation {width}x{height}", learned_segmentation.onnx_path(weights, height, width),
                           partial(learned_segmentation.cached_onnx, segmentation, weights, height, width)))
    except ModelLoadError as exc:
        print(f"amodal-depth engines: {exc}", file=sys.stderr)
        return 2
    missing = 0
    for name, path, export in graphs:
        try:
            if args.check:
                graph = te.build_graph_path(path, args.precision)
                if not graph.is_file():   # --check writes nothing: no export, no fp16 graph
                    missing += 1
                    print(f"{name}: no engine (no ONNX graph {graph} yet)")
                    continue
                key = te.current_key(path, args.precision)
                engine, why = cache.inspect(key)
                missing += engine is None
            else:
                path = export()
                _, why = te.ensure_engine(path, args.precision, cache)
                key = te.current_key(path, args.precision)
        except Exception as exc:   # an export, fp16 conversion, parse or build failure: one line, the others go on
            missing += 1
            print(f"{name}: the build failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(f"{name}: {cache.engine_path(key) or cache.record_path(key)}: {why} (from {path})")
    return 1 if missing else 0
