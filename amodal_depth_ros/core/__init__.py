"""The ROS-free pipeline stages, training-free, numpy only: visible depth, segmentation, occlusion order,
amodal masks, amodal depth and the completed cloud, with the typed data passed between them (``types``)
and the one parameter table (``config``)."""
from __future__ import annotations

from .amodal_depth import NearestVisibleFill, PlaneFitCompletion, TeleaInpaintFill
from .amodal_mask import ConvexHullCompletion
from .cloud import build_layered_cloud
from .geometry import backproject, fit_scale_shift
from .layers import amodal_depth_image, stack_hidden_surfaces
from .occlusion import BoundaryDepthOrder
from .segmentation import GeometricSegmenter
from .types import (
    POINT_DTYPE,
    AmodalInstance,
    CameraIntrinsics,
    LayeredCloud,
    OcclusionGraph,
    PipelineResult,
    RGBDFrame,
    Segmentation,
)
from .visible_depth import DepthFromTopic

__all__ = [
    "AmodalInstance", "BoundaryDepthOrder", "CameraIntrinsics", "ConvexHullCompletion", "DepthFromTopic",
    "GeometricSegmenter", "LayeredCloud", "NearestVisibleFill", "OcclusionGraph", "POINT_DTYPE", "PipelineResult",
    "PlaneFitCompletion", "RGBDFrame", "Segmentation", "TeleaInpaintFill", "amodal_depth_image", "backproject",
    "build_layered_cloud", "fit_scale_shift", "stack_hidden_surfaces",
]
