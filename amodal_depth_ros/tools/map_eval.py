"""Score fused maps on synthetic camera paths: visible-only fusion against fusion with the hidden layers.

SCENES takes the seed syntax of `amodal-depth eval`: synthetic:0-9 (procedural rooms) or tabletop:0-9. Each
scene is seen along a camera path of --frames poses (`synthetic.paths`: a sideways sweep around the
scene's target), run through the pipeline (--params) and fused twice (`mapping.FusedMap`): from the visible
depth alone and with the hidden layers. After the first frame and after the last, both maps are scored
against the true surfaces seen so far (every object's surface facing the camera, hidden or not):
completeness and accuracy (fractions within 2 cm) and the Chamfer distance in metres. Writes
OUT/results.json (`map.<visible_only|with_hidden>.<frames_1|frames_N>.<completeness|accuracy|chamfer_m>`),
OUT/table.txt and OUT/maps.png (the last scene's two maps side by side, predicted points magenta).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenes", metavar="SCENES", help="synthetic:START-END (procedural rooms) or tabletop:START-END")
    parser.add_argument("--frames", type=int, default=30, help="poses along each camera path (default: 30)")
    parser.add_argument("--out", type=Path, default=Path("out/map_eval"), help="output folder (default: out/map_eval)")
    parser.add_argument("--params", type=Path, default=None,
                        help="pipeline parameter file (default: built-in defaults)")
    parser.add_argument("--width", type=int, default=320, help="rendered width (default: 320)")
    parser.add_argument("--height", type=int, default=240, help="rendered height (default: 240)")
    parser.add_argument("--voxel", type=float, default=0.02, help="map voxel size in metres (default: 0.02)")


def run(args: argparse.Namespace) -> int:
    from ..core import config
    from ..datasets import parse_seeds
    from ..errors import ConfigError
    from ..evaluation.maps import evaluate_paths, format_maps, maps_side_by_side
    from ..visualize import write_png

    kind, _, seeds = args.scenes.partition(":")
    try:
        if kind not in ("synthetic", "tabletop"):
            raise ConfigError(f"SCENES must be synthetic:SEEDS or tabletop:SEEDS, got {args.scenes!r}")
        if args.frames < 1:
            raise ConfigError(f"--frames must be at least 1, got {args.frames}")
        scenes = [(kind, seed) for seed in parse_seeds(seeds)]
        params = config.load_params_file(args.params) if args.params else config.defaults()
    except ValueError as exc:
        print(f"amodal-depth map-eval: {exc}", file=sys.stderr)
        return 2
    results, clouds, integrate_ms = evaluate_paths(scenes, args.frames, params, args.width, args.height,
                                                   {"voxel_size": args.voxel})
    table = format_maps(results)
    print(table)
    print(f"integration ms per frame, median: {', '.join(f'{k} {v:.1f}' for k, v in integrate_ms.items())}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.txt").write_text(table + "\n")
    report = {**results, "integrate_ms": integrate_ms, "scenes": args.scenes, "frames": args.frames,
              "size": f"{args.width}x{args.height}", "voxel": args.voxel, "params": params,
              "machine": platform.platform()}
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    write_png(args.out / "maps.png", maps_side_by_side(clouds))
    print(f"wrote {args.out}/results.json, table.txt, maps.png")
    return 0
