"""Training of the package's networks on procedural scenes (and composites of real frames): samples cut exactly
as the learned stages cut them at run time, with progress bars, checkpoints and exact resume."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .samples import frame_samples, segmented_samples
    from .segmentation_trainer import SegmentationTrainConfig
    from .trainer import TrainConfig

__all__ = [
    "SegmentationTrainConfig", "TrainConfig", "frame_samples", "segmented_samples",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "trainer": ("TrainConfig",),
    "segmentation_trainer": ("SegmentationTrainConfig",),
    "samples": ("frame_samples", "segmented_samples"),
})
