"""Compute the int8 activation ranges of the segmentation and amodal mask networks (inference.cpu_precision).

Renders procedural rooms and table tops of training seeds (10000 and up; the evaluation seeds are 0-9999),
runs the fp32 pipeline on them, and records what the two networks are given: the segmentation network's
input features and the amodal mask network's crops. Their activation ranges (min / max per tensor) go to
OUT/<network>-<weights digest>.json, which ``runtime.quantize`` reads (default OUT: the package's
weights/int8, where the shipped ranges live). The weights are the configured ones (--params).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

if TYPE_CHECKING:
    from ..runtime.backends import Runner

TABLE_TOP_OBJECTS = (5, 10, 20, 30, 40, 8)   # clutter from sparse to dense, cycled over the table tops


class RecordingRunner:
    """A runner that keeps a copy of the first array of every call (the crops) and serves ``runner``'s result."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.calls: list[np.ndarray] = []

    @property
    def status(self) -> str:
        return self.runner.status

    @property
    def error(self) -> str:
        return self.runner.error

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        self.calls.append(arrays[0].copy())
        return self.runner(*arrays)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the package's weights/int8)")
    parser.add_argument("--params", type=Path, default=None, help="pipeline parameter file naming the weights "
                        "(default: built-in defaults, the shipped weights)")
    parser.add_argument("--rooms", type=int, default=12, help="procedural rooms rendered (default: 12)")
    parser.add_argument("--tabletops", type=int, default=6, help="table tops rendered (default: 6)")
    parser.add_argument("--seed", type=int, default=10000, help="first seed of each (default: 10000, training seeds)")
    parser.add_argument("--size", default="640x480", metavar="WxH", help="rendered frames (default: 640x480)")


def run(args: argparse.Namespace) -> int:
    from ..core import config
    from ..learned.segmentation import cached_onnx as segmentation_graph
    from ..networks import WEIGHTS_DIR, AmodalMaskNet, SegmentationNet, load_weights
    from ..networks.segmentation_net import network_size, segmentation_inputs
    from ..pipeline import AmodalDepthPipeline
    from ..runtime.backends import cached_onnx as crop_graph
    from ..runtime.quantize import compute_ranges, ranges_path
    from ..synthetic.procedural import generate
    from ..synthetic.tabletop import generate_tabletop

    width, height = (int(v) for v in args.size.lower().split("x"))
    params = config.load_params_file(args.params) if args.params else config.defaults()
    params = {**params, "segmentation.method": "learned", "amodal_mask.method": "learned",
              "inference.device": "cpu", "inference.backend": "onnxruntime", "inference.cpu_precision": "fp32"}
    pipeline = AmodalDepthPipeline(params)
    if pipeline.fallbacks:
        print(f"amodal-depth calibrate: the learned stages do not load: {pipeline.fallbacks}")
        return 2
    s = pipeline.settings
    recording = RecordingRunner(pipeline.amodal_mask.run)   # type: ignore[attr-defined]
    pipeline.amodal_mask.run = recording   # type: ignore[attr-defined]
    scenes = [("room", seed) for seed in range(args.seed, args.seed + args.rooms)] + \
             [("table top", seed) for seed in range(args.seed, args.seed + args.tabletops)]
    size = network_size(width, height, s.segmentation.network_size)
    features = []
    for k, (kind, seed) in enumerate(tqdm(scenes, desc="rendering and running")):
        truth = generate(seed, width, height) if kind == "room" else \
            generate_tabletop(seed, width, height, object_count=TABLE_TOP_OBJECTS[k % len(TABLE_TOP_OBJECTS)])
        frame = truth.to_rgbd_frame()
        result = pipeline(frame)
        features.append(segmentation_inputs(frame.rgb, result.visible_depth, frame.intrinsics, size)[None])
    if not recording.calls:
        print("amodal-depth calibrate: no crop reached the amodal mask network; render more scenes")
        return 1
    crops = np.concatenate(recording.calls)
    segmentation_weights = Path(s.segmentation.weights or WEIGHTS_DIR / "segmentation.pt")
    mask_weights = Path(s.amodal_mask.weights or WEIGHTS_DIR / "amodal_mask.pt")
    segmentation_net = load_weights(SegmentationNet(), segmentation_weights, "segmentation")
    mask_net = load_weights(AmodalMaskNet(), mask_weights, "amodal mask")
    written = [
        compute_ranges(segmentation_graph(segmentation_net, segmentation_weights, size[1], size[0]),
                       ({"features": x} for x in features),
                       ranges_path("segmentation", segmentation_weights, args.out)),
        compute_ranges(crop_graph(mask_net, "amodal_mask", mask_weights, 1), ({"crops": c[None]} for c in crops),
                       ranges_path("amodal_mask", mask_weights, args.out)),
    ]
    print(f"{len(features)} frames ({size[0]}x{size[1]} network input) and {len(crops)} amodal mask crops")
    for path in written:
        print(f"wrote {path}")
    return 0
