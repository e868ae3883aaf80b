"""Where a network runs: torch (CPU, CUDA, fp16), onnxruntime (CPU, CUDA and TensorRT providers) and native
TensorRT engines (10.x and 11.x), behind one ``Runner`` call; ONNX export (fp32, and fp16 for strongly typed
TensorRT builds: ``fp16``); the cache that processes share (``cache``, ``engine_cache``); serving one backend
while another is being built (``switching``); and the one device choice (``devices``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .backends import (
        FunctionRunner,
        Runner,
        image_network_runner,
        make_runner,
        onnxruntime_runner,
        torch_image_runner,
        torch_runner,
    )
    from .cache import cache_dir
    from .devices import inference_device, select_device
    from .export import export_amodal_nets, export_onnx, export_segmentation_net
    from .switching import SwitchingRunner
    from .tensorrt_engine import tensorrt_unavailable

__all__ = [
    "FunctionRunner", "Runner", "SwitchingRunner", "cache_dir", "export_amodal_nets", "export_onnx",
    "export_segmentation_net", "image_network_runner", "inference_device", "make_runner", "onnxruntime_runner",
    "select_device",
    "tensorrt_unavailable", "torch_image_runner", "torch_runner",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "backends": ("FunctionRunner", "Runner", "image_network_runner", "make_runner", "onnxruntime_runner",
                 "torch_image_runner", "torch_runner"),
    "cache": ("cache_dir",),
    "devices": ("inference_device", "select_device"),
    "export": ("export_amodal_nets", "export_onnx", "export_segmentation_net"),
    "switching": ("SwitchingRunner",),
    "tensorrt_engine": ("tensorrt_unavailable",),
})
