"""The learned segmentation stage: ``SegmentationNet`` on the frame, its outlines turned into instances.

The network runs at a reduced resolution (the long side at most ``long_side`` pixels). Instance cores are
the 4-connected regions its outlines (probability above ``outline_threshold``) enclose there (at least
``min_core`` pixels; cut also where the network's room-structure map changes and where the depth steps
by more than ``depth_jump``: a faint outline must not let two surfaces leak into one), brought to the
frame's resolution; the outline pixels in between go to the neighbouring core whose depth agrees best
(outlines sit on depth edges), which puts the instance borders on the full-resolution depth edges.
Each instance is of kind structure (floor, wall) or object by the network's mean vote over it, and the
network's occluder map travels with the segmentation to the occlusion stage.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from ..core.config import InferenceSettings, SegmentationSettings
from ..core.segmentation import (
    absorb_unlabelled,
    components,
    depth_edges,
    merge_fragments,
    present_only,
    relabel,
    split_support_planes,
)
from ..core.types import CameraIntrinsics, RGBDFrame, Segmentation
from ..networks.checkpoints import WEIGHTS_DIR, load_weights
from ..networks.segmentation_net import INPUT_CHANNELS, OUTPUTS, SegmentationNet, network_size, segmentation_inputs
from ..runtime.backends import image_network_runner, reported, torch_image_runner
from ..runtime.cache import weights_digest
from ..runtime.devices import inference_device
from ..runtime.export import INPUT_NAMES, OUTPUT_NAMES, cached_export, cached_graph_path, export_onnx
from ..runtime.quantize import cpu_graph
from .amodal import LearnedStage

BOUNDARY, STRUCTURE, OCCLUDER = (OUTPUTS.index(name) for name in ("boundary", "structure", "occluder"))
SNAP_RADIUS = 3          # pixels searched for a core next to an outline pixel
SNAP_REACH = 1.5         # ... in pixels of the network's resolution
MIN_DEPTH_SHARE = 0.1    # of an instance's pixels with a depth


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def snap_outlines(labels: np.ndarray, depth: np.ndarray, outline: np.ndarray, radius: int = SNAP_RADIUS) -> np.ndarray:
    """Give each ``outline`` pixel the label of the core pixel within ``radius`` whose depth is closest
    (relative difference, then distance; without depth the nearest core pixel). Vectorised over the
    outline pixels, one pass per offset, on flat indices into an edge-padded copy."""
    rows, cols = np.nonzero(outline)
    if rows.size == 0:
        return labels
    r = radius
    core = np.pad(np.where(outline, 0, labels), r)            # zero padding: no core beyond the image
    padded_depth = np.pad(depth, r, constant_values=np.nan)
    width = core.shape[1]
    centre = (rows + r) * width + (cols + r)
    core_flat, depth_flat = core.ravel(), padded_depth.ravel()
    own = depth_flat[centre]
    best_label = np.zeros(rows.size, np.int32)
    best_cost = np.full(rows.size, np.inf, np.float32)
    offsets = sorted(((dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if 0 < dy * dy + dx * dx <= r * r),
                     key=lambda o: o[0] ** 2 + o[1] ** 2)
    with np.errstate(invalid="ignore"):
        for dy, dx in offsets:
            index = centre + (dy * width + dx)
            candidate = core_flat[index]
            other = depth_flat[index]
            cost = np.abs(other - own) / np.fmin(other, own)
            cost = np.where(np.isfinite(cost), cost, np.float32(1.0)) + np.float32(0.002 * np.hypot(dy, dx))
            better = (candidate > 0) & (cost < best_cost)
            best_label[better], best_cost[better] = candidate[better], cost[better]
    out = labels.copy()
    out[rows, cols] = best_label
    return out


def _structure_changes(structure: np.ndarray) -> np.ndarray:
    """Pixels on either side of a change between room structure and object, between 4-neighbours."""
    change = np.zeros(structure.shape, bool)
    rows, cols = structure[1:] != structure[:-1], structure[:, 1:] != structure[:, :-1]
    change[:-1] |= rows
    change[1:] |= rows
    change[:, :-1] |= cols
    change[:, 1:] |= cols
    return change


def decode_small(logits: np.ndarray, small_depth: np.ndarray, min_core: int, depth_jump: float,
                 outline_threshold: float = 0.3, min_pixels: int = 0) -> Segmentation:
    """(3, h, w) network logits + the visible depth at the network's resolution -> Segmentation there.
    ``min_pixels``: smallest instance, in pixels of that resolution."""
    # Cores: off the outlines, and never across a change between room structure and object (a table top
    # running into the floor through a gap in the outline, where depth is missing, say) or a depth step
    # (real sensors' outlines are fainter than rendered ones: one gap would merge two surfaces).
    outline_logit = float(np.log(outline_threshold / (1.0 - outline_threshold)))
    cut = _structure_changes(logits[STRUCTURE] > 0.0) | depth_edges(small_depth, depth_jump)
    cores = components((logits[BOUNDARY] < outline_logit) & ~cut, min_core)
    labels = snap_outlines(cores, small_depth, (logits[BOUNDARY] >= outline_logit) | (cores == 0),
                           int(np.ceil(SNAP_REACH)))
    # Outline pixels no core reached, then fragments, join the neighbour on their surface.
    labels = absorb_unlabelled(labels, small_depth, np.isfinite(small_depth), depth_jump)
    labels = merge_fragments(labels, small_depth, min_pixels, depth_jump)
    # A segment without depth (a hole of the sensor, what lies beyond its range) has no place in 3D: no instance.
    valid = np.isfinite(small_depth)
    depthless = np.bincount(labels.ravel(), weights=valid.ravel()) < MIN_DEPTH_SHARE * np.bincount(labels.ravel())
    depthless[0] = False
    segmentation = relabel(np.where(depthless[labels], 0, labels).astype(np.int32) if depthless.any() else labels)
    # Per-instance kind and confidence: the network's mean vote over the instance.
    n = segmentation.ids.size + 1
    flat = segmentation.labels.ravel()
    count = np.maximum(np.bincount(flat, minlength=n), 1)
    votes = np.bincount(flat, weights=_sigmoid(logits[STRUCTURE]).ravel(), minlength=n) / count
    inside = np.bincount(flat, weights=_sigmoid(-logits[BOUNDARY]).ravel(), minlength=n) / count
    return Segmentation(segmentation.labels, segmentation.ids, inside[1:].astype(np.float32),
                        occluder=_sigmoid(logits[OCCLUDER]).astype(np.float32), structure=votes[1:] > 0.5)


def to_full_resolution(small: Segmentation, logits: np.ndarray, depth: np.ndarray,
                       outline_threshold: float = 0.3) -> Segmentation:
    """The segmentation at the frame's resolution: labels brought up, then the pixels near a border given to
    the neighbouring instance whose depth agrees best on the frame's own depth (borders land on its depth
    edges, not on the network's grid); the occluder map interpolated."""
    (h, w), (height, width) = small.labels.shape, depth.shape
    if (h, w) == (height, width):
        return small
    labels = cv2.resize(small.labels, (width, height), interpolation=cv2.INTER_NEAREST)
    reach = int(np.ceil(SNAP_REACH * max(height / h, width / w)))
    change = np.zeros(labels.shape, bool)
    change[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    change[1:] |= labels[1:] != labels[:-1]
    near = cv2.dilate(change.view(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).view(bool)
    # The network's outline, interpolated, where it runs along a border: finer than its grid.
    outline_logit = float(np.log(outline_threshold / (1.0 - outline_threshold)))
    outline = cv2.resize(logits[BOUNDARY], (width, height), interpolation=cv2.INTER_LINEAR) >= outline_logit
    snapped = snap_outlines(labels, depth, near & (outline | change), reach)
    # A pixel no instance reached within ``reach`` (a wide outline) keeps its label: no seams of "no instance".
    labels = np.where((snapped == 0) & (labels > 0), labels, snapped)
    occluder = _sigmoid(cv2.resize(logits[OCCLUDER], (width, height), interpolation=cv2.INTER_LINEAR))
    return present_only(dataclasses.replace(small, labels=labels, occluder=occluder.astype(np.float32)))


def decode(logits: np.ndarray, depth: np.ndarray, min_core: int, depth_jump: float,
           outline_threshold: float = 0.3, min_area: float = 0.0, intrinsics: CameraIntrinsics | None = None,
           structure_min_area: float = 0.0, structure_tolerance: float = 0.01) -> Segmentation:
    """(3, h, w) network logits + the frame's (H, W) visible depth -> Segmentation at (H, W). Decoded at the
    network's resolution (a quarter of a VGA frame's pixels; ``min_area`` a fraction of it), large planes
    split there when ``intrinsics`` are given (``split_support_planes``), borders refined at the frame's."""
    h, w = logits.shape[1:]
    small_depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST) if depth.shape != (h, w) else depth
    min_pixels = max(1, int(min_area * h * w))
    small = decode_small(logits, small_depth, min_core, depth_jump, outline_threshold, min_pixels)
    if intrinsics is not None:
        small = split_support_planes(small, small_depth, intrinsics.scaled(w, h), structure_min_area,
                                     structure_tolerance, min_pixels)
    return to_full_resolution(small, logits, depth, outline_threshold)


def onnx_path(weights: Path, height: int, width: int) -> Path:
    """Where the export of ``weights`` for a ``height`` x ``width`` network input is cached."""
    return cached_graph_path("segmentation", weights_digest(weights), f"{height}x{width}")


def cached_onnx(net: SegmentationNet, weights: Path, height: int, width: int) -> Path:
    """The cached static-shape ONNX export of ``net`` (loaded from ``weights``), exported on first use."""
    return cached_export(onnx_path(weights, height, width), lambda path: export_onnx(
        net, (torch.zeros(1, INPUT_CHANNELS, height, width),), path, INPUT_NAMES["segmentation"],
        OUTPUT_NAMES["segmentation"]))


class LearnedSegmenter(LearnedStage):
    """Segmentation stage (``segmentation.method: learned``): ``(frame, visible depth) -> Segmentation``."""

    """network_size, min_core, depth_jump and outline_threshold of ``settings`` are read at each frame (a new
    network_size is a new input shape: the backend prepares it as it does a new camera resolution)."""

    def __init__(self, settings: SegmentationSettings, inference: InferenceSettings) -> None:
        path = Path(settings.weights or WEIGHTS_DIR / "segmentation.pt")
        net = load_weights(SegmentationNet(), path, "segmentation")
        self.settings = settings
        exported = copy.deepcopy(net)   # traced for export in the background: never the copy serving frames
        run_device, why = inference_device(inference.device)
        self.run = reported(image_network_runner(torch_image_runner(net, run_device, inference.precision),
                                                 lambda shape: cached_onnx(exported, path, shape[2], shape[3]),
                                                 inference.backend, run_device, inference.precision,
                                                 lambda graph: cpu_graph(graph, "segmentation", path,
                                                                         inference.cpu_precision)), why)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """For benchmarks and tests (frames never wait): True once the graph or engine of the last frame's
        shape serves or has failed to, or when the backend needs none."""
        wait = getattr(self.run, "wait_ready", None)
        return True if wait is None else wait(timeout)

    def __call__(self, frame: RGBDFrame, depth: np.ndarray) -> Segmentation:
        s = self.settings
        size = network_size(frame.intrinsics.width, frame.intrinsics.height, s.network_size)
        x = segmentation_inputs(frame.rgb, depth, frame.intrinsics, size)
        return decode(self.run(x[None])[0], depth, s.min_core, s.depth_jump, s.outline_threshold, s.min_area,
                      frame.intrinsics, s.structure_min_area, s.structure_tolerance)
