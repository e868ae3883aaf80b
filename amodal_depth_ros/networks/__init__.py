"""The networks, as torch modules: the SPADE amodal depth net and the amodal mask net (``amodal_nets``), with
their object-centred crop inputs (``crops``); the RGB-D segmentation net; Depth Anything V2 (``depth_anything_v2``,
``dinov2``, ``dpt``); and the one checkpoint loader (``checkpoints``). Where they run is ``runtime``'s business."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .amodal_nets import AmodalMaskNet, SpadeAmodalDepthNet
    from .checkpoints import WEIGHTS_DIR, load_weights, read_state_dict
    from .crops import CROP_SIZE, CropBox
    from .depth_anything_v2 import ENCODERS, DepthAnythingV2, EncoderConfig, load_depth_anything_v2
    from .segmentation_net import SegmentationNet, segmentation_inputs

__all__ = [
    "AmodalMaskNet", "CROP_SIZE", "CropBox", "DepthAnythingV2", "ENCODERS", "EncoderConfig", "SegmentationNet",
    "SpadeAmodalDepthNet", "WEIGHTS_DIR", "load_depth_anything_v2", "load_weights", "read_state_dict",
    "segmentation_inputs",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "amodal_nets": ("AmodalMaskNet", "SpadeAmodalDepthNet"),
    "segmentation_net": ("SegmentationNet", "segmentation_inputs"),
    "depth_anything_v2": ("DepthAnythingV2", "ENCODERS", "EncoderConfig", "load_depth_anything_v2"),
    "checkpoints": ("WEIGHTS_DIR", "load_weights", "read_state_dict"),
    "crops": ("CROP_SIZE", "CropBox"),
})
