"""Build amodal ground truth from real RGB-D frames: occluders pasted in front of real objects.

Follows the Amodal NYU-V2 / ADIW recipe: a region of a real frame (found by the geometric
segmenter) is partly hidden by an occluder (a region cut out of another frame, or a generated
textured shape) placed in front of it; the frame's own depth under the occluder is the ground truth
of the hidden part. SRC is a folder of RGB-D frames with intrinsics (Metric3D test_annotations.json,
intrinsics.json + color.png/depth.png or rgb/ + depth/ folders, or any such folder with --intrinsics
and --depth-scale), or ``synthetic:SEEDS``: procedural rooms rendered with structured-light depth noise
(training material of the same kind as real composites; seeds >= 10000 keep clear of the evaluation
rooms 0-9999). OUT receives frames/NNNNNN.npz (GroundTruthFrame), previews/NNNNNN.png and index.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ..datasets import RGBDSample, SyntheticRGBD, build_composites, load_rgbd_folder, parse_seeds, write_composite_set
from ..errors import ConfigError


def _intrinsics(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected four numbers fx,fy,cx,cy, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="folder of RGB-D frames with intrinsics, or synthetic:SEEDS "
                        "(procedural rooms, e.g. synthetic:10000-10999)")
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder of the composite set")
    parser.add_argument("--per-frame", type=int, default=20, help="composites tried per source frame (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--intrinsics", type=_intrinsics, default=None, metavar="FX,FY,CX,CY",
                        help="camera intrinsics in pixels; override the folder's")
    parser.add_argument("--depth-scale", type=float, default=None, metavar="S",
                        help="integer depth units per metre (1000 = millimetres); overrides the folder's")
    parser.add_argument("--previews", type=int, default=12, help="preview PNGs written for the first N composites "
                                                                 "(default: 12)")


def run(args: argparse.Namespace) -> int:
    if args.per_frame < 1 or args.previews < 0:
        print("amodal-depth composites: --per-frame must be positive and --previews non-negative", file=sys.stderr)
        return 2
    samples: Sequence[RGBDSample]
    try:
        if args.src.startswith("synthetic:"):
            if args.intrinsics is not None or args.depth_scale is not None:
                raise ConfigError("--intrinsics and --depth-scale apply to folders, not to synthetic:SEEDS")
            samples = SyntheticRGBD(parse_seeds(args.src.split(":", 1)[1]))
        else:
            samples = load_rgbd_folder(Path(args.src), args.intrinsics, args.depth_scale)
    except ValueError as error:
        print(f"amodal-depth composites: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    # The bar counts composites made; placements that fail leave it short of its total.
    items = tqdm(build_composites(samples, args.per_frame, args.seed), total=len(samples) * args.per_frame,
                 desc="composites", unit="composite")
    index = write_composite_set(args.out, items, args.src, args.seed, args.previews)
    items.close()
    kinds = ", ".join(f"{kind} {n}" for kind, n in index["occluder_kinds"].items()) or "none"
    ratio = index["mean_visible_ratio"]
    print(f"{len(samples)} frames in, {index['count']} composites written to {args.out} in "
          f"{time.perf_counter() - start:.1f} s; mean visible ratio "
          f"{'n/a' if ratio is None else f'{ratio:.2f}'}; occluders: {kinds}")
    if not index["count"]:
        print("amodal-depth composites: no usable target region found (they need >= 90 % valid depth: "
              "sparse depth such as KITTI's gives none)", file=sys.stderr)
    return 0
