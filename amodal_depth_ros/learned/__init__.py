"""Pipeline stages backed by networks, each a drop-in for the training-free stage of ``core`` it replaces:
learned segmentation, learned amodal masks, SPADE amodal depth with iterative peeling, and monocular
visible depth (Depth Anything V2)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .amodal import LearnedAmodalMask, SpadeAmodalDepth, peeling_levels
    from .monocular import MonocularDepth
    from .segmentation import LearnedSegmenter

__all__ = [
    "LearnedAmodalMask", "LearnedSegmenter", "MonocularDepth", "SpadeAmodalDepth", "peeling_levels",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "segmentation": ("LearnedSegmenter",),
    "amodal": ("LearnedAmodalMask", "SpadeAmodalDepth", "peeling_levels"),
    "monocular": ("MonocularDepth",),
})
