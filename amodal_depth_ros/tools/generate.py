"""Render procedural rooms with amodal ground truth to disk, or time the generator (--bench).

Each frame is written as OUT/frames/SEED.npz (GroundTruthFrame: rgb, visible depth, visible instance
ids, amodal masks, every object's own depth, occlusion pairs, intrinsics) with a preview PNG for the
first --previews frames. --bench renders without writing, pinned to one CPU core, and reports the
frames per second of scene building plus rendering.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import visualize as vis
from ..datasets import parse_seeds
from ..groundtruth import GroundTruthFrame
from ..synthetic import generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, nargs="?", default=Path("out/synthetic"),
                        help="output folder (default: out/synthetic)")
    parser.add_argument("--seeds", default="0-99", help="seed range START-END or COUNT (default: 0-99)")
    parser.add_argument("--width", type=int, default=320, help="image width (default: 320)")
    parser.add_argument("--height", type=int, default=240, help="image height (default: 240)")
    parser.add_argument("--depth-noise", type=float, default=0.0, help="depth noise std in m (default: 0)")
    parser.add_argument("--previews", type=int, default=8, help="preview PNGs to write (default: 8)")
    parser.add_argument("--bench", action="store_true", help="only time the generator on one core; write nothing")


def preview(frame: GroundTruthFrame) -> np.ndarray:
    """RGB | visible depth | hidden surfaces (nearest hidden object depth where something is hidden)."""
    lo, hi = vis.depth_range(frame.depth)
    hidden = np.where(frame.object_depths > frame.depth + 1e-4, frame.object_depths, np.inf).min(axis=0)
    hidden = np.where(np.isfinite(hidden), hidden, np.nan).astype(np.float32)
    return np.concatenate([frame.rgb, vis.add_colorbar(vis.colorize_depth(frame.depth, lo, hi), lo, hi),
                           vis.hidden_overlay(frame.rgb, frame.depth, np.fmax(hidden, frame.depth), lo, hi)], axis=1)


def bench(seeds: range, width: int, height: int) -> dict:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    generate(seeds.start, width, height)   # warm-up: imports open3d, builds caches
    times, objects = [], []
    for seed in tqdm(seeds, desc="generating", unit="frame"):
        start = time.perf_counter()
        frame = generate(seed, width, height)
        times.append(time.perf_counter() - start)
        objects.append(int((~frame.stuff).sum()))
    ms = np.array(times) * 1e3
    return {"frames": len(seeds), "width": width, "height": height, "cores": 1, "fps": float(len(ms) / ms.sum() * 1e3),
            "ms_p50": float(np.percentile(ms, 50)), "ms_p95": float(np.percentile(ms, 95)),
            "objects_mean": float(np.mean(objects))}


def run(args: argparse.Namespace) -> int:
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        print(f"amodal-depth generate: {exc}", file=sys.stderr)
        return 2
    if args.bench:
        result = bench(seeds, args.width, args.height)
        print(f"{result['frames']} frames {args.width}x{args.height} on one core: {result['fps']:.1f} frames/s "
              f"(p50 {result['ms_p50']:.1f} ms, p95 {result['ms_p95']:.1f} ms), "
              f"{result['objects_mean']:.1f} objects per room besides walls and floor")
        print(json.dumps(result))
        return 0
    (args.out / "frames").mkdir(parents=True, exist_ok=True)
    (args.out / "previews").mkdir(exist_ok=True)
    for k, seed in enumerate(tqdm(seeds, desc="generating", unit="frame")):
        frame = generate(seed, args.width, args.height, args.depth_noise)
        frame.save(args.out / "frames" / f"{seed:06d}.npz")
        if k < args.previews:
            vis.write_png(args.out / "previews" / f"{seed:06d}.png", preview(frame))
    print(f"wrote {len(seeds)} frames to {args.out}/frames")
    return 0
