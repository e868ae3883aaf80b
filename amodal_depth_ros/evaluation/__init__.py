"""Scoring on ground truth: amodal depth and mask metrics (Amodal Depth Anything protocol), segmentation and
occlusion-order metrics (UOIS / UOAIS protocol), the harness that runs methods side by side, and pictures."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .harness import build_methods, evaluate
    from .metrics import ResultTable, depth_errors, format_table, mask_iou
    from .occluders import evaluate_occluders, format_occluders
    from .pictures import bar_chart, comparison, occluder_comparison
    from .segmentation import SegmentationTable, format_segmentation, score_segmentation

__all__ = [
    "ResultTable", "SegmentationTable", "bar_chart", "build_methods", "comparison", "depth_errors", "evaluate",
    "evaluate_occluders", "format_occluders", "format_segmentation", "format_table", "mask_iou",
    "occluder_comparison", "score_segmentation",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "harness": ("build_methods", "evaluate"),
    "metrics": ("ResultTable", "depth_errors", "format_table", "mask_iou"),
    "segmentation": ("SegmentationTable", "format_segmentation", "score_segmentation"),
    "occluders": ("evaluate_occluders", "format_occluders"),
    "pictures": ("bar_chart", "comparison", "occluder_comparison"),
})
