"""Score amodal masks and amodal depth on ground truth: baselines and the configured pipeline side by side.

DATASET is 'synthetic:0-499' (procedural rooms by seed), 'tabletop:0-199' (table-top clutter by seed), a
composite set from `amodal-depth composites`, or a rosbag with ground-truth topics (see datasets/bag.py).
Depth methods get the true amodal masks (the protocol of Amodal Depth Anything): nearest = nearest visible
pixel, telea = OpenCV inpainting, plane_fit = the node's geometric stage, plus the configured one; mask
methods get the true visible segmentation (visible_only, convex_hull, configured); 'pipeline' runs the
configured pipeline end to end from its own segmentation. Only occluded pixels are scored, raw and after
scale+shift alignment on the visible part. Segmentation (the UOIS/UOAIS protocol, evaluation/segmentation.py):
the configured segmenter and the geometric one, each followed by the pipeline's occlusion and amodal mask
stages: overlap and boundary P/R/F and F@.75 of visible masks (all instances) and of the objects' amodal
masks and occluded parts, and pairwise occlusion-order accuracy. Writes OUT/NAME/{results.json, table.txt,
abs_rel.png, examples/*.png} per dataset. A folder of real frames with object labels (NAME_{color,depth,
labels}.png + intrinsics.json) is scored for instance segmentation of its objects (the UOIS protocol).

'occluders:FOLDER[,FOLDER...]' is the real occluder benchmark (evaluation/occluders.py) on the RGB-D frames
of the folders (any layout ``load_rgbd_folder`` reads; figures per folder and over all): --per-frame
occluders pasted on each frame, every pixel under them scored against the frame's own depth, for the
configured pipeline, the pipeline with each baseline segmenter, and Telea / nearest / plane-fit fills of
the occluder's region. Writes OUT/occluders_NAMES/{results.json, table.txt, examples/*.png}.
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from .. import visualize as vis
from ..core import config
from ..datasets import load_rgbd_folder, open_dataset
from ..datasets.occluded_frames import occluded_frames
from ..datasets.rgbd_folder import RGBDSample
from ..evaluation import (
    bar_chart,
    comparison,
    evaluate_occluders,
    format_occluders,
    format_segmentation,
    format_table,
    occluder_comparison,
)
from ..evaluation.harness import (
    BASELINE_DEPTH_METHODS,
    END_TO_END,
    ORACLE_PLANE,
    FramePredictions,
    Methods,
    build_methods,
    evaluate,
)
from ..pipeline import AmodalDepthPipeline

OCCLUDERS = "occluders:"
ORACLE_NOTE = (f"\n{ORACLE_PLANE}: a reference, not a method: each hidden part filled with the plane fitted to its own "
               "true depth, the floor of any planar completion\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("datasets", nargs="+", metavar="DATASET", help="synthetic:START-END, tabletop:START-END, a "
                        "composite set, a bag, a folder of labelled real frames, or occluders:FOLDER")
    parser.add_argument("--out", type=Path, default=Path("out/eval"), help="output folder (default: out/eval)")
    parser.add_argument("--params", type=Path, default=None, help="pipeline parameter file (default: built-in "
                                                                  "defaults)")
    parser.add_argument("--depth-methods", default=",".join(BASELINE_DEPTH_METHODS),
                        help=f"comma-separated baselines (default: {','.join(BASELINE_DEPTH_METHODS)})")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the end-to-end pipeline row")
    parser.add_argument("--no-oracle", action="store_true",
                        help="skip the oracle_plane reference row (a plane fitted to the hidden truth itself)")
    parser.add_argument("--width", type=int, default=320, help="synthetic frame width (default: 320)")
    parser.add_argument("--height", type=int, default=240, help="synthetic frame height (default: 240)")
    parser.add_argument("--depth-noise", type=float, default=0.0, help="synthetic depth noise std in m (default: 0)")
    parser.add_argument("--min-pixels", type=int, default=20, help="occluded pixels an object needs to be scored")
    parser.add_argument("--examples", type=int, default=6, help="comparison pictures per dataset (default: 6)")
    parser.add_argument("--per-frame", type=int, default=3,
                        help="occluders:FOLDER: composites per real frame (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="occluders:FOLDER: placement seed (default: 0)")


def _every_nth(every: int) -> Callable[[int, FramePredictions], bool]:
    """``keep`` of ``evaluate``: the frames with targets whose index is a multiple of ``every``."""
    return lambda index, predictions: bool(predictions.targets) and index % every == 0


def run(args: argparse.Namespace) -> int:
    occluder_specs = [spec for spec in args.datasets if spec.startswith(OCCLUDERS)]
    try:
        params = config.load_params_file(args.params) if args.params else config.defaults()
        methods = build_methods(params, [m for m in args.depth_methods.split(",") if m],
                                end_to_end=not args.no_pipeline, oracle=not args.no_oracle)
        datasets = [open_dataset(spec, args.width, args.height, args.depth_noise) for spec in args.datasets
                    if spec not in occluder_specs]
        occluder_sets = [[(Path(f), load_rgbd_folder(Path(f))) for f in spec[len(OCCLUDERS):].split(",") if f]
                         for spec in occluder_specs]
    except (ValueError, KeyError, OSError) as exc:
        print(f"amodal-depth eval: {exc}", file=sys.stderr)
        return 2
    for folders in occluder_sets:
        _occluder_benchmark(args, params, methods, folders)
    for dataset in datasets:
        out = args.out / dataset.name
        (out / "examples").mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        frames = tqdm(dataset, total=dataset.count, desc=dataset.name, unit="frame")
        every = max(dataset.count // max(args.examples, 1), 1)   # frames between two example pictures
        table, examples = evaluate(frames, methods, args.min_pixels, keep=_every_nth(every))
        seconds = time.perf_counter() - start
        summary = table.summary()
        text = format_table(summary) + "\n" + format_segmentation(summary["segmentation"])
        if methods.oracle:
            text += ORACLE_NOTE
        print(f"\n{dataset.description}: {dataset.count} frames in {seconds:.1f} s\n{text}")
        for k, predictions in enumerate(examples[:args.examples]):
            vis.write_png(out / "examples" / f"{k:03d}.png", comparison(predictions))
        vis.write_png(
            out / "abs_rel.png", bar_chart(summary, title=f"{dataset.name}: aligned AbsRel on occluded pixels")
        )
        (out / "table.txt").write_text(text + "\n")
        report = {"dataset": dataset.description, "frames": dataset.count, "seconds": round(seconds, 2),
                  "min_pixels": args.min_pixels, "params": params, "machine": platform.platform(), **summary}
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}/results.json, table.txt, abs_rel.png, examples/")
    return 0


def _occluder_benchmark(args: argparse.Namespace, params: dict, methods: Methods,
                        folders: list[tuple[Path, list[RGBDSample]]]) -> None:
    """The real occluder benchmark on the frames of ``folders`` (see the module docstring)."""
    pipelines = {} if methods.pipeline is None else {END_TO_END: methods.pipeline}
    if methods.pipeline is not None:
        for name in methods.segmentation:
            pipelines[f"{END_TO_END}_{name}"] = AmodalDepthPipeline({**params, "segmentation.method": name})
    name = "+".join(folder.name for folder, _ in folders)
    out = args.out / f"occluders_{name}"
    (out / "examples").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    frames = sum(len(samples) for _, samples in folders)
    items = tqdm(itertools.chain.from_iterable(occluded_frames(samples, args.per_frame, args.seed, folder.name)
                                               for folder, samples in folders),
                 total=frames * args.per_frame, desc=f"occluders {name}", unit="composite")
    settings = config.Settings.from_values(params).amodal_depth
    table, kept = evaluate_occluders(items, pipelines, settings, keep=args.examples)
    seconds = time.perf_counter() - start
    summary = table.summary()
    text = format_occluders(summary)
    print(f"\nreal occluder benchmark on {', '.join(str(f) for f, _ in folders)} ({frames} frames, {args.per_frame} "
          f"occluders each, seed {args.seed}) in {seconds:.1f} s\n{text}")
    for k, predictions in enumerate(kept):
        vis.write_png(out / "examples" / f"{k:03d}.png", occluder_comparison(predictions, ["telea", *pipelines]))
    (out / "table.txt").write_text(text)
    report = {"dataset": f"real occluder benchmark on {', '.join(str(f) for f, _ in folders)}", "frames": frames,
              "per_frame": args.per_frame, "seed": args.seed, "seconds": round(seconds, 2), "params": params,
              "machine": platform.platform(), "occluders": summary}
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}/results.json, table.txt, examples/")
