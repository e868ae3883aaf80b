"""Export the networks to ONNX (static shapes, opset 17) and check them for TensorRT.

Writes OUT/amodal_mask.b{BATCH}.onnx, OUT/amodal_depth.b{BATCH}.onnx and OUT/segmentation.{H}x{W}.onnx
from the shipped weights (or --mask-weights / --depth-weights / --segmentation-weights), runs onnx's
full checker, lists operators outside the common TensorRT set, and prints the largest difference
between torch and onnxruntime on the same inputs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, nargs="?", default=Path("out/onnx"), help="output folder (default: out/onnx)")
    parser.add_argument("--batch", type=int, default=8, help="crops per call, fixed in the graph (default: 8)")
    parser.add_argument("--mask-weights", default="", help="amodal mask weights (default: shipped)")
    parser.add_argument("--depth-weights", default="", help="amodal depth weights (default: shipped)")
    parser.add_argument("--segmentation-weights", default="", help="segmentation weights (default: shipped)")
    parser.add_argument("--segmentation-size", default="320x240", metavar="WxH",
                        help="segmentation network input, multiples of 16 (default: 320x240, what a 640x480 camera "
                             "gets with segmentation.network_size 320)")


def run(args: argparse.Namespace) -> int:
    from ..errors import ModelLoadError
    from ..networks import WEIGHTS_DIR, AmodalMaskNet, SpadeAmodalDepthNet, load_weights
    from ..networks.segmentation_net import MULTIPLE, SegmentationNet
    from ..runtime import export_amodal_nets, export_segmentation_net

    try:
        width, height = (int(v) for v in args.segmentation_size.lower().split("x"))
    except ValueError:
        width = height = 0
    if args.batch < 1 or width < MULTIPLE or height < MULTIPLE or width % MULTIPLE or height % MULTIPLE:
        print(f"amodal-depth export: --batch must be >= 1 and --segmentation-size WxH multiples of {MULTIPLE}",
              file=sys.stderr)
        return 2
    mask, depth, segmentation = AmodalMaskNet(), SpadeAmodalDepthNet(), SegmentationNet()
    try:   # load_weights loads into the net it is given
        load_weights(mask, args.mask_weights or WEIGHTS_DIR / "amodal_mask.pt", "amodal mask")
        load_weights(depth, args.depth_weights or WEIGHTS_DIR / "amodal_depth.pt", "amodal depth")
        load_weights(segmentation, args.segmentation_weights or WEIGHTS_DIR / "segmentation.pt", "segmentation")
    except ModelLoadError as exc:
        print(f"amodal-depth export: {exc}", file=sys.stderr)
        return 2
    report = export_amodal_nets(mask, depth, args.out, args.batch)
    report["segmentation"] = export_segmentation_net(segmentation, args.out, height, width)
    for r in report.values():
        print(f"{r['file']}: opset {r['opset']}, static shapes {r['static']}, ops {', '.join(r['ops'])}; "
              f"uncommon ops {r['uncommon_ops'] or 'none'}; torch vs onnxruntime max |diff| {r['max_abs_diff']:.2e}")
    (args.out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r["static"] and not r["uncommon_ops"] for r in report.values()) else 1
