"""Run amodal mask and amodal depth methods on ground-truth frames and score them side by side.

Stages are scored in isolation, as in the papers: depth methods get the true visible segmentation,
occlusion graph and amodal masks (the protocol gives the amodal mask); mask methods get the true
visible segmentation and occlusion graph. The configured pipeline is also scored end to end, from
its own segmentation: each target is matched to the predicted instance whose visible mask overlaps
it most (IoU >= 0.5); an unmatched target counts with coverage 0 and mask IoU 0.

One reference row is no method: ``oracle_plane`` fills each hidden part with the plane (in inverse
depth) fitted to that part's own true depth. No completion that extends a planar surface can beat it;
what it misses is the truth's curvature and sensor noise, so it shows how low a set's error can go.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import config
from ..core.amodal_mask import ConvexHullCompletion
from ..core.geometry import fit_inverse_depth_plane, normalized_coords
from ..core.types import AmodalInstance, AmodalMasks, OcclusionGraph, PipelineResult, RGBDFrame, Segmentation
from ..errors import ConfigError
from ..groundtruth import GroundTruthFrame
from ..pipeline import STAGE_FACTORIES, AmodalDepthPipeline, AmodalDepthStage, AmodalMaskStage, SegmentationStage
from .metrics import ResultTable, mask_iou, score_amodal_mask, score_object_depth
from .segmentation import score_segmentation

BASELINE_DEPTH_METHODS = ("nearest", "telea", "plane_fit")
BASELINE_SEGMENTATION_METHODS = ("geometric",)
END_TO_END = "pipeline"
ORACLE_PLANE = "oracle_plane"
MATCH_IOU = 0.5


def visible_only(segmentation: Segmentation, occlusion: OcclusionGraph,
                 depth: np.ndarray | None = None) -> Mapping[int, np.ndarray]:
    """The "no completion" mask baseline: the amodal mask is the visible mask."""
    return AmodalMasks.of({int(i): segmentation.labels == i for i in segmentation.ids}, segmentation.labels.shape)


@dataclass
class Methods:
    depth: dict[str, AmodalDepthStage]
    mask: dict[str, AmodalMaskStage]
    pipeline: AmodalDepthPipeline | None = None   # scored end to end as END_TO_END
    oracle: bool = True                            # score the ORACLE_PLANE reference row
    # Segmenters scored besides the pipeline's own, each followed by the pipeline's occlusion and amodal mask stages.
    segmentation: dict[str, SegmentationStage] = field(default_factory=dict)


def build_methods(params: dict[str, Any] | None = None, depth: Iterable[str] = BASELINE_DEPTH_METHODS,
                  end_to_end: bool = True, oracle: bool = True) -> Methods:
    """The baselines plus the stages the (validated) parameters configure."""
    p = config.validated(params or {})
    s = config.Settings.from_values(p)
    depth_names = list(dict.fromkeys([*depth, s.amodal_depth.method]))
    masks: dict[str, AmodalMaskStage] = {"visible_only": visible_only, "convex_hull": ConvexHullCompletion()}
    configured_mask = s.amodal_mask.method
    masks.setdefault(configured_mask, STAGE_FACTORIES["amodal_mask"][configured_mask](s))
    segmenters = {name: STAGE_FACTORIES["segmentation"][name](s) for name in BASELINE_SEGMENTATION_METHODS
                  if name != s.segmentation.method} if end_to_end else {}
    # Configured learned stages load here: a missing or corrupt weights file is an error, not a fallback.
    pipeline = AmodalDepthPipeline(p) if end_to_end else None
    if pipeline is not None and pipeline.fallbacks:
        raise ConfigError("the configured pipeline cannot be scored as configured: "
                         + "; ".join(pipeline.fallbacks.values()))
    return Methods(depth={name: STAGE_FACTORIES["amodal_depth"][name](s) for name in depth_names}, mask=masks,
                   pipeline=pipeline, oracle=oracle, segmentation=segmenters)


def oracle_plane_depth(truth: GroundTruthFrame, object_id: int) -> np.ndarray:
    """(H, W) depth of object ``object_id``: observed where visible, and on its hidden part the plane in
    inverse depth that best fits the hidden part's true depth (least squares); NaN elsewhere."""
    visible = truth.visible_mask(object_id)
    depth = np.where(visible, truth.depth, np.nan).astype(np.float32)
    gt = truth.object_depths[object_id - 1]
    rows, cols = np.nonzero(truth.hidden_mask(object_id) & np.isfinite(gt))
    x_n, y_n = normalized_coords(truth.intrinsics)
    coef = fit_inverse_depth_plane(x_n[cols], y_n[rows], gt[rows, cols], np.ones(rows.size), iterations=1)
    if coef is not None:
        inverse = coef[0] * x_n[cols] + coef[1] * y_n[rows] + coef[2]
        depth[rows, cols] = np.where(inverse > 1e-6, 1.0 / np.maximum(inverse, 1e-6), np.nan)
    return depth


def targets(truth: GroundTruthFrame, min_visible: int = 20, include_stuff: bool = False) -> list[int]:
    """Ids of the objects scored: visible somewhere, hidden somewhere, and not room structure
    unless ``include_stuff`` (training wants walls and floors too: the node completes them)."""
    visible_counts = np.bincount(truth.instance_ids.ravel(), minlength=len(truth.names) + 1)
    return [i for i in truth.object_ids if (include_stuff or not truth.stuff[i - 1])
            and visible_counts[i] >= min_visible and truth.hidden_mask(i).any()]


@dataclass
class FramePredictions:
    """What every method predicted for one frame's targets: for the pictures of the report."""

    truth: GroundTruthFrame
    targets: list[int]
    depth: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)   # method -> id -> (H, W) depth
    mask: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)    # method -> id -> (H, W) bool


def evaluate_frame(truth: GroundTruthFrame, methods: Methods, table: ResultTable,
                   min_pixels: int = 20) -> FramePredictions:
    ids = targets(truth)
    out = FramePredictions(truth, ids)
    frame = truth.to_rgbd_frame()
    result = methods.pipeline(frame) if methods.pipeline is not None else None
    if result is not None:
        _score_segmentation(truth, frame, result, methods, table)
    if not ids:
        return out
    segmentation, occlusion = truth.segmentation(), truth.occlusion()
    true_masks = truth.true_amodal_masks()
    for name, depth_stage in methods.depth.items():
        by_id = {inst.id: inst for inst in depth_stage(frame, truth.depth, segmentation, occlusion, true_masks)}
        out.depth[name] = {i: _own_depth(by_id[i]) for i in ids}
    if methods.oracle:
        out.depth[ORACLE_PLANE] = {i: oracle_plane_depth(truth, i) for i in ids}
    for name, mask_stage in methods.mask.items():
        predicted = mask_stage(segmentation, occlusion, truth.depth)
        out.mask[name] = {i: predicted[i] for i in ids}
    if result is not None:
        matched = match_instances(result.instances, truth, ids)
        empty_depth, empty_mask = np.full(truth.depth.shape, np.nan, np.float32), np.zeros(truth.depth.shape, bool)
        out.depth[END_TO_END] = {i: _own_depth(inst) if inst else empty_depth for i, inst in matched.items()}
        out.mask[END_TO_END] = {i: inst.amodal_mask if inst else empty_mask for i, inst in matched.items()}
    _score(out, table, min_pixels)
    return out


def _own_depth(instance: AmodalInstance) -> np.ndarray:
    """The depth an amodal depth stage gave ``instance``: every stage gives every instance its depth."""
    assert instance.depth is not None
    return instance.depth


def _score_segmentation(truth: GroundTruthFrame, frame: RGBDFrame, result: PipelineResult, methods: Methods,
                        table: ResultTable) -> None:
    """The pipeline's own segmentation, order and amodal masks, and each baseline segmenter followed by the
    pipeline's occlusion and amodal mask stages."""
    pipeline = methods.pipeline
    assert pipeline is not None
    own = {inst.id: inst.amodal_mask for inst in result.instances}
    score = score_segmentation(truth, result.segmentation.labels, result.occlusion, own,
                               result.segmentation.structure_ids())
    score.segmentation_ms, score.pipeline_ms = result.timings_ms["segmentation"], result.timings_ms["total"]
    table.add_segmentation(pipeline.settings.segmentation.method, score)
    depth = result.visible_depth
    for name, segmenter in methods.segmentation.items():
        start = time.perf_counter()
        segmentation = segmenter(frame, depth)
        took = (time.perf_counter() - start) * 1e3
        occlusion = pipeline.occlusion(segmentation, depth, frame.intrinsics)
        masks = pipeline.amodal_mask(segmentation, occlusion, depth)
        score = score_segmentation(truth, segmentation.labels, occlusion, masks, segmentation.structure_ids())
        score.segmentation_ms = took
        table.add_segmentation(name, score)


def match_instances(predicted: list[AmodalInstance], truth: GroundTruthFrame,
                    ids: list[int]) -> dict[int, AmodalInstance | None]:
    """Greedy one-to-one matching of targets to predicted instances by visible-mask IoU >= MATCH_IOU."""
    found = match_visible([inst.visible_mask for inst in predicted], truth, ids)
    return {i: None if k is None else predicted[k] for i, k in found.items()}


def match_visible(visible: list[np.ndarray], truth: GroundTruthFrame, ids: list[int]) -> dict[int, int | None]:
    """Target id -> index of its predicted visible mask in ``visible`` (greedy, one to one, IoU >= MATCH_IOU)."""
    pairs = sorted(((mask_iou(mask, truth.visible_mask(i)), i, k) for i in ids for k, mask in enumerate(visible)),
                   reverse=True)
    matched: dict[int, int | None] = dict.fromkeys(ids)
    used: set[int] = set()
    for iou, i, k in pairs:
        if iou < MATCH_IOU:
            break
        if matched[i] is None and k not in used:
            matched[i], used = k, used | {k}
    return matched


def _score(predictions: FramePredictions, table: ResultTable, min_pixels: int) -> None:
    truth = predictions.truth
    for i in predictions.targets:
        visible, amodal, gt = truth.visible_mask(i), truth.amodal_mask(i), truth.object_depths[i - 1]
        for name, by_id in predictions.depth.items():
            score = score_object_depth(by_id[i], gt, truth.depth, visible, amodal, min_pixels)
            if score is not None:
                table.add_depth(name, score)
        for name, by_id in predictions.mask.items():
            mask_score = score_amodal_mask(by_id[i], amodal, visible)
            if mask_score is not None:
                table.add_mask(name, mask_score)


def evaluate(frames: Iterable[GroundTruthFrame], methods: Methods, min_pixels: int = 20,
             keep: Callable[[int, FramePredictions], bool] = lambda index, predictions: False
             ) -> tuple[ResultTable, list[FramePredictions]]:
    """Score every frame; ``keep(index, predictions)`` picks the frames whose predictions are returned."""
    table, kept = ResultTable(), []
    for index, truth in enumerate(frames):
        predictions = evaluate_frame(truth, methods, table, min_pixels)
        if keep(index, predictions):
            kept.append(predictions)
    return table, kept
