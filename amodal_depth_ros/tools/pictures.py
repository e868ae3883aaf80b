"""Pictures of what the node computes, for the README: the demo's scene through the node's pipeline.

Writes into OUT (default: docs/): input.png, visible_depth.png, amodal_depth.png (both colourised on
one scale), hidden.png (where hidden surfaces were completed, coloured by their depth) and
cloud_view.png (the completed cloud seen from beside the camera, hidden points highlighted by layer).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .. import visualize as vis
from ..core import config
from ..core.pipeline import AmodalDepthPipeline
from ..synthetic.stream import SyntheticCamera


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs"), help="output folder (default: docs)")
    parser.add_argument("--seed", type=int, default=0, help="demo scene seed (default: 0, the demo's)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--params", type=Path, default=None, help="node parameter file (default: built-in defaults)")


def run(args: argparse.Namespace) -> int:
    params = config.load_params_file(args.params) if args.params else config.defaults()
    pipeline = AmodalDepthPipeline(params)
    for message in pipeline.fallbacks.values():
        print(f"warning: {message}")
    frame = SyntheticCamera(args.seed, args.width, args.height).frame(0)
    result = pipeline(frame.to_rgbd_frame())
    args.out.mkdir(parents=True, exist_ok=True)
    lo, hi = vis.depth_range(result.visible_depth, result.amodal_depth)
    pictures = {
        "input.png": frame.rgb,
        "visible_depth.png": vis.add_colorbar(vis.colorize_depth(result.visible_depth, lo, hi), lo, hi),
        "amodal_depth.png": vis.add_colorbar(vis.colorize_depth(result.amodal_depth, lo, hi), lo, hi),
        "hidden.png": vis.hidden_overlay(frame.rgb, result.visible_depth, result.amodal_depth, lo, hi),
        "cloud_view.png": vis.cloud_view(result.cloud, frame.intrinsics),
    }
    for name, image in pictures.items():
        vis.write_png(args.out / name, image)
    layers = np.bincount(result.cloud.layer, minlength=2)
    print(f"wrote {', '.join(pictures)} to {args.out}: {len(result.instances)} instances, "
          f"cloud layers {layers.tolist()}")
    return 0
