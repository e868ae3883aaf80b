"""Pictures of what the node computes, for the README: the demo's scene and real RGB-D frames through the
node's pipeline.

Writes into OUT (default: docs/): input.png, visible_depth.png, amodal_depth.png (both colourised on
one scale), segmentation.png (instances, room structure grey), hidden.png (where hidden surfaces were
completed, coloured by their depth) and cloud_view.png (the completed cloud seen from beside the camera,
hidden points highlighted by layer). Each --real SRC adds real_<frame>.png per frame of that RGB-D folder
(any layout `amodal-depth composites` reads; SRC:fx,fy,cx,cy:scale gives intrinsics and depth scale to a
folder without them): input | segmentation | completed hidden surfaces, side by side.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from .. import visualize as vis
from ..core import RGBDFrame, config
from ..core.types import KIND_STRUCTURE
from ..datasets import load_rgbd_folder
from ..pipeline import AmodalDepthPipeline, PipelineResult
from ..synthetic import SyntheticCamera

PANEL_WIDTH = 400   # pixels of each panel of a real frame's picture


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs"), help="output folder (default: docs)")
    parser.add_argument("--seed", type=int, default=0, help="demo scene seed (default: 0, the demo's)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--params", type=Path, default=None, help="node parameter file (default: built-in defaults)")
    parser.add_argument("--real", action="append", default=[], metavar="SRC[:fx,fy,cx,cy:scale]",
                        help="an RGB-D folder whose frames are drawn too (repeatable)")
    parser.add_argument("--no-demo", action="store_true", help="only the --real frames")


def segmentation_picture(result: PipelineResult) -> np.ndarray:
    segmentation = result.segmentation
    structure = np.array([segmentation.kind(k) == KIND_STRUCTURE for k in range(segmentation.ids.size)], bool)
    return vis.segmentation_overlay(result.frame.rgb, segmentation.labels, structure)


def _source(spec: str) -> tuple[Path, tuple[float, float, float, float] | None, float | None]:
    match = re.fullmatch(r"(.+?):([-\d.e]+(?:,[-\d.e]+){3}):([\d.e]+)", spec)
    if not match:
        return Path(spec), None, None
    cam = tuple(float(v) for v in match.group(2).split(","))
    return Path(match.group(1)), cam, float(match.group(3))   # type: ignore[return-value]


def real_picture(result: PipelineResult) -> np.ndarray:
    """input | segmentation | hidden surfaces, each PANEL_WIDTH wide."""
    rgb = result.frame.rgb
    hidden = vis.hidden_mask(result.visible_depth, result.amodal_depth)
    lo, hi = vis.depth_range(result.visible_depth)
    panels = [rgb, segmentation_picture(result),
              vis.hidden_overlay(rgb, result.visible_depth, result.amodal_depth, lo, hi) if hidden.any() else rgb // 3]
    height = round(rgb.shape[0] * PANEL_WIDTH / rgb.shape[1])
    return np.concatenate([cv2.resize(p, (PANEL_WIDTH, height), interpolation=cv2.INTER_AREA) for p in panels], axis=1)


def run(args: argparse.Namespace) -> int:
    params = config.load_params_file(args.params) if args.params else config.defaults()
    try:
        sources = [(spec, *_source(spec)) for spec in args.real]
        real = [(sample, path) for spec, path, cam, scale in sources
                for sample in load_rgbd_folder(path, cam, scale)]
    except ValueError as exc:
        print(f"amodal-depth pictures: {exc}", file=sys.stderr)
        return 2
    pipeline = AmodalDepthPipeline(params)
    for message in pipeline.fallbacks.values():
        print(f"warning: {message}")
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    if not args.no_demo:
        frame = SyntheticCamera(args.seed, args.width, args.height).frame(0)
        result = pipeline(frame.to_rgbd_frame())
        lo, hi = vis.depth_range(result.visible_depth, result.amodal_depth)
        pictures = {
            "input.png": frame.rgb,
            "visible_depth.png": vis.add_colorbar(vis.colorize_depth(result.visible_depth, lo, hi), lo, hi),
            "amodal_depth.png": vis.add_colorbar(vis.colorize_depth(result.amodal_depth, lo, hi), lo, hi),
            "segmentation.png": segmentation_picture(result),
            "hidden.png": vis.hidden_overlay(frame.rgb, result.visible_depth, result.amodal_depth, lo, hi),
            "cloud_view.png": vis.cloud_view(result.cloud, frame.intrinsics),
        }
        for name, image in pictures.items():
            vis.write_png(args.out / name, image)
        layers = np.bincount(result.cloud.layer, minlength=2)
        written.append(f"{', '.join(pictures)}: {len(result.instances)} instances, cloud layers {layers.tolist()}")
    for sample, path in real:
        result = pipeline(RGBDFrame(sample.rgb, sample.intrinsics, sample.depth))
        stem = path.name if sample.name == path.name else f"{path.name}_{sample.name}"
        name = f"real_{re.sub(r'[^A-Za-z0-9_-]+', '_', stem)}.png"
        vis.write_png(args.out / name, real_picture(result))
        occluded = sum(1 for inst in result.instances if inst.hidden.any())
        written.append(f"{name}: {len(result.instances)} instances, {occluded} with completed hidden parts")
    print(f"wrote to {args.out}:\n  " + "\n  ".join(written))
    return 0
