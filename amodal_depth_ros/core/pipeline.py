"""The amodal depth pipeline: stages chosen by configuration, run in one direction, timed.

    frame -> visible depth -> segmentation -> occlusion order -> amodal masks -> amodal depth
          -> hidden layers -> amodal depth image + completed cloud
"""
from __future__ import annotations

import time
from typing import Any, Callable, Protocol

import numpy as np

from . import config
from .amodal_depth import NearestVisibleFill, PlaneFitCompletion, TeleaInpaintFill
from .amodal_mask import ConvexHullCompletion
from .cloud import build_layered_cloud
from .layers import amodal_depth_image, stack_hidden_surfaces
from .occlusion import BoundaryDepthOrder
from .segmentation import GeometricSegmenter
from .types import AmodalInstance, OcclusionGraph, PipelineResult, RGBDFrame, Segmentation
from .visible_depth import DepthFromTopic


class VisibleDepthStage(Protocol):
    def __call__(self, frame: RGBDFrame) -> np.ndarray: ...


class SegmentationStage(Protocol):
    def __call__(self, frame: RGBDFrame, depth: np.ndarray) -> Segmentation: ...


class OcclusionStage(Protocol):
    def __call__(self, segmentation: Segmentation, depth: np.ndarray) -> OcclusionGraph: ...


class AmodalMaskStage(Protocol):
    def __call__(self, segmentation: Segmentation, occlusion: OcclusionGraph) -> dict[int, np.ndarray]: ...


class AmodalDepthStage(Protocol):
    def __call__(self, frame: RGBDFrame, depth: np.ndarray, segmentation: Segmentation,
                 occlusion: OcclusionGraph, amodal_masks: dict[int, np.ndarray]) -> list[AmodalInstance]: ...


# Stage name -> method name -> factory taking the validated parameter dict. New models register here.
STAGE_FACTORIES: dict[str, dict[str, Callable[[dict[str, Any]], Any]]] = {
    "visible_depth": {
        "topic": lambda p: DepthFromTopic(p["visible_depth.min_depth"], p["visible_depth.max_depth"]),
    },
    "segmentation": {
        "geometric": lambda p: GeometricSegmenter(p["segmentation.depth_jump"], p["segmentation.concavity"],
                                                  p["segmentation.crease_scale"], p["segmentation.color_edge"],
                                                  p["segmentation.min_area"]),
    },
    "amodal_mask": {"convex_hull": lambda p: ConvexHullCompletion()},
    "amodal_depth": {
        "plane_fit": lambda p: PlaneFitCompletion(p["amodal_depth.boundary_band"], p["amodal_depth.min_gap"]),
        "nearest": lambda p: NearestVisibleFill(p["amodal_depth.min_gap"]),
        "telea": lambda p: TeleaInpaintFill(p["amodal_depth.inpaint_radius"], p["amodal_depth.min_gap"]),
    },
}

STAGE_NAMES = ("visible_depth", "segmentation", "occlusion", "amodal_mask", "amodal_depth", "cloud")


class AmodalDepthPipeline:
    def __init__(self, params: dict[str, Any] | None = None):
        self.params = config.validated(params or {})
        p = self.params
        self.visible_depth: VisibleDepthStage = STAGE_FACTORIES["visible_depth"][p["visible_depth.source"]](p)
        self.segmentation: SegmentationStage = STAGE_FACTORIES["segmentation"][p["segmentation.method"]](p)
        self.occlusion: OcclusionStage = BoundaryDepthOrder(p["segmentation.depth_jump"], p["occlusion.min_boundary"])
        self.amodal_mask: AmodalMaskStage = STAGE_FACTORIES["amodal_mask"][p["amodal_mask.method"]](p)
        self.amodal_depth: AmodalDepthStage = STAGE_FACTORIES["amodal_depth"][p["amodal_depth.method"]](p)
        self.cloud_stride = int(p["output.cloud_stride"])

    def __call__(self, frame: RGBDFrame) -> PipelineResult:
        timings: dict[str, float] = {}
        clock = time.perf_counter

        t = clock()
        depth = self.visible_depth(frame)
        timings["visible_depth"], t = (clock() - t) * 1e3, clock()
        segmentation = self.segmentation(frame, depth)
        timings["segmentation"], t = (clock() - t) * 1e3, clock()
        occlusion = self.occlusion(segmentation, depth)
        timings["occlusion"], t = (clock() - t) * 1e3, clock()
        masks = self.amodal_mask(segmentation, occlusion)
        timings["amodal_mask"], t = (clock() - t) * 1e3, clock()
        instances = self.amodal_depth(frame, depth, segmentation, occlusion, masks)
        timings["amodal_depth"], t = (clock() - t) * 1e3, clock()
        hidden = stack_hidden_surfaces(instances, frame.shape)
        amodal = amodal_depth_image(depth, hidden)
        cloud = build_layered_cloud(frame, depth, segmentation.labels, hidden, self.cloud_stride)
        timings["cloud"] = (clock() - t) * 1e3
        timings["total"] = sum(timings.values())
        return PipelineResult(frame=frame, visible_depth=depth, segmentation=segmentation, occlusion=occlusion,
                              instances=instances, amodal_depth=amodal, cloud=cloud, timings_ms=timings)
