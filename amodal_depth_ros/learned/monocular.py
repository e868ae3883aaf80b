"""Visible depth from a monocular network, made metric by the model itself or by the camera's depth image.

A relative model (Depth Anything V2 relative checkpoints) predicts inverse depth up to scale and shift:
``1 / depth ~ s * pred + t``. With a depth image, (s, t) are fitted on the pixels the sensor measured,
and the network fills what the sensor misses (holes, dark or shiny surfaces, beyond range).

The network runs on inference.backend like the learned amodal ones: torch, or a static-shape ONNX graph
per image shape on onnxruntime or TensorRT, prepared in the background while torch serves.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..core.config import VisibleDepthSettings
from ..core.geometry import fit_scale_shift
from ..core.types import RGBDFrame
from ..errors import InputError
from ..networks.depth_anything_v2 import (
    ENCODERS,
    DepthAnythingV2,
    EncoderConfig,
    load_depth_anything_v2,
    predict,
    preprocess,
    to_image_size,
)
from ..runtime.backends import FunctionRunner, image_network_runner
from ..runtime.cache import weights_digest
from ..runtime.export import cached_export, cached_graph_path, export_onnx

MIN_ALIGN_PIXELS = 64          # fewer valid depth readings than this cannot pin scale and shift down
MIN_INVERSE_DEPTH = 1e-3       # aligned inverse depth below this (beyond 1 km, or negative) is unknown
TRIM_FRACTION = 0.1            # share of the worst residuals dropped in the robust refit


class DepthBackend(Protocol):
    @property
    def metric(self) -> bool: ...    # True: infer returns metres; False: relative inverse depth

    @property
    def status(self) -> str: ...     # what runs the network now, for logs and diagnostics

    @property
    def error(self) -> str: ...      # why the configured backend is not the one serving, for good ('' otherwise)

    def infer(self, rgb: np.ndarray) -> np.ndarray: ...


class TorchDepthAnything:
    """PyTorch Depth Anything V2 behind the backend interface. fp16 on CUDA only when asked: torch keeps the
    LayerNorm statistics and the attention softmax in fp32 internally; the CPU always runs fp32."""

    def __init__(self, model: DepthAnythingV2, input_size: int = 518, precision: str = "fp32"):
        device = next(model.parameters()).device
        half = precision == "fp16" and device.type == "cuda"
        self.model, self.input_size = (model.half() if half else model).eval(), input_size
        self.metric = model.max_depth is not None
        self.status, self.error = f"torch on {device.type} ({'fp16' if half else 'fp32'})", ""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network alone: preprocessed (1, 3, h, w) -> (1, h, w) float32."""
        param = next(self.model.parameters())
        with torch.no_grad():
            return self.model(torch.from_numpy(x).to(param.device, param.dtype)).float().cpu().numpy()

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        return predict(self.model, rgb, self.input_size)


class GraphDepthAnything:
    """Depth Anything V2 on onnxruntime or TensorRT. Their graphs have static shapes, and the network's input
    shape follows the camera's resolution and ``input_size``: it is known at the first frame only, so each
    new shape is served by torch while its graph is exported (and for TensorRT its engine built) in the
    background (``backends.ShapeRunners``). Without TensorRT or CUDA, the 'tensorrt' backend serves torch
    for good and ``error`` says why."""

    def __init__(self, model: DepthAnythingV2, weights: str | Path, backend: str, device: str = "cpu",
                 precision: str = "fp32", input_size: int = 518):
        self.torch = TorchDepthAnything(model, input_size, precision)
        self.metric, self.input_size = self.torch.metric, input_size
        self.weights, self.config, self.max_depth = Path(weights), model.config, model.max_depth
        self.digest = weights_digest(self.weights)   # once: a checkpoint is up to 1.3 GB
        serving = FunctionRunner(self.torch.forward, self.torch.status)
        self.run = image_network_runner(serving, self._export, backend, torch.device(device), precision)

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def error(self) -> str:
        return self.run.error

    def wait_ready(self, timeout: float | None = None) -> bool:
        """For benchmarks and tests (frames never wait): True once the graph of the last frame's shape serves
        or has failed to (``error`` says why), or when the backend cannot run here; False before the first
        frame or on timeout."""
        wait = getattr(self.run, "wait_ready", None)
        return True if wait is None else wait(timeout)

    def onnx_path(self, shape: tuple[int, int]) -> Path:
        """The cached graph of this checkpoint (hash), encoder, head (max depth scales the output) and shape."""
        encoder = next((name for name, config in ENCODERS.items() if config == self.config), "custom")
        head = "relative" if self.max_depth is None else f"metric{self.max_depth:g}"
        return cached_graph_path(f"depth_anything_v2-{encoder}-{head}", self.digest, f"{shape[0]}x{shape[1]}")

    def _export(self, shape: tuple[int, ...]) -> Path:
        """Runs in the background. The export traces a model loaded anew from the checkpoint: tracing hooks
        every module it runs, so it must not trace the model serving frames meanwhile, which may moreover be
        fp16 on the GPU while the cached graph is named after the fp32 weights file."""
        def write(path: Path) -> None:
            model = load_depth_anything_v2(self.weights, self.config, self.max_depth)
            export_onnx(model, (torch.zeros(shape),), path, ["image"], ["depth"])
        return cached_export(self.onnx_path((shape[2], shape[3])), write)

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        x = preprocess(rgb, self.input_size).numpy()
        return to_image_size(torch.from_numpy(self.run(x)), rgb.shape[:2])


def robust_scale_shift(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """``fit_scale_shift``, refitted once without the worst 10 % residuals; InputError for a constant prediction
    (it has no scale to fit)."""
    p, y = pred.astype(np.float64), target.astype(np.float64)
    if not p.var() > 0:
        raise InputError("depth_alignment_failed", "the prediction is constant over the valid depth pixels")
    s, t = fit_scale_shift(p, y)
    residual = np.abs(s * p + t - y)
    keep = residual <= np.quantile(residual, 1.0 - TRIM_FRACTION)   # drops mismatched edges, sensor speckle
    return fit_scale_shift(p[keep], y[keep])


class MonocularDepth:
    """Visible-depth stage: ``frame -> (H, W) float32 metres, NaN = unknown``.

    ``fill_only``: keep the sensor's reading wherever it is valid (within [min_depth, max_depth]) and use the
    network only where the sensor has none; otherwise return the network's (aligned) depth everywhere.
    """

    def __init__(self, backend: DepthBackend, fill_only: bool = True, min_depth: float = 0.0,
                 max_depth: float = math.inf, device_fallback: str = ""):
        self.backend, self.fill_only, self.device_fallback = backend, fill_only, device_fallback
        self.min_depth, self.max_depth = min_depth, max_depth

    @property
    def settings(self) -> VisibleDepthSettings:
        """visible_depth.min_depth / max_depth, which apply live (the pipeline assigns new settings)."""
        return VisibleDepthSettings("monocular", self.min_depth, self.max_depth)

    @settings.setter
    def settings(self, settings: VisibleDepthSettings) -> None:
        self.min_depth, self.max_depth = settings.min_depth, settings.max_depth

    @classmethod
    def from_checkpoint(cls, path: str | Path, encoder: str | EncoderConfig | None = None,
                        metric_max_depth: float | None = None, device: str = "cpu", input_size: int = 518,
                        fill_only: bool = True, min_depth: float = 0.0, max_depth: float = math.inf,
                        backend: str = "torch", precision: str = "fp32", device_fallback: str = "") -> MonocularDepth:
        """Depth Anything V2 ``.pth``; ``metric_max_depth`` (20 indoor, 80 outdoor) marks a metric checkpoint.
        ``backend``: torch, onnxruntime or tensorrt (inference.backend); ``precision`` fp16 applies on CUDA only.
        ``device_fallback``: why ``device`` is not the configured one (reported as a fallback)."""
        model = load_depth_anything_v2(path, encoder, metric_max_depth, device)
        runner = (TorchDepthAnything(model, input_size, precision) if backend == "torch"
                  else GraphDepthAnything(model, path, backend, device, precision, input_size))
        return cls(runner, fill_only, min_depth, max_depth, device_fallback)

    @property
    def backend_status(self) -> str:
        """What runs the network now, reported by the pipeline as for the learned stages."""
        return "; ".join(s for s in (self.backend.status, self.device_fallback) if s)

    @property
    def backend_error(self) -> str:
        """Why inference.device or .backend is not the one serving, for good ('' while it serves or is being
        prepared)."""
        return "; ".join(s for s in (self.device_fallback, self.backend.error) if s)

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        return self.backend.infer(rgb)

    def __call__(self, frame: RGBDFrame) -> np.ndarray:
        if not self.backend.metric and frame.depth is None:
            raise InputError("no_metric_scale", "the depth model is relative (no metric scale): use a metric "
                             "checkpoint (set its max depth) or subscribe to a depth topic to align it")
        pred = np.asarray(self.infer(frame.rgb), np.float32)
        if pred.shape != frame.shape:
            raise InputError("size_mismatch", f"depth model returned {pred.shape}, expected {frame.shape}")
        sensor_valid = None
        if frame.depth is not None:
            with np.errstate(invalid="ignore"):
                sensor_valid = (frame.depth > self.min_depth) & (frame.depth <= self.max_depth)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.backend.metric:
                depth = np.where(pred > 0, pred, np.nan).astype(np.float32)
            else:
                assert frame.depth is not None and sensor_valid is not None   # a relative model needs depth: above
                usable = sensor_valid & np.isfinite(pred)
                if np.count_nonzero(usable) < MIN_ALIGN_PIXELS:
                    raise InputError("no_metric_scale", f"only {np.count_nonzero(usable)} valid depth pixels, "
                                     f"at least {MIN_ALIGN_PIXELS} are needed to scale the relative depth model")
                s, t = robust_scale_shift(pred[usable], 1.0 / frame.depth[usable])
                if not s > 0:
                    raise InputError("depth_alignment_failed", f"prediction anti-correlated with depth (scale {s:.3g})")
                inverse = s * pred.astype(np.float64) + t
                depth = np.where(inverse > MIN_INVERSE_DEPTH, 1.0 / inverse, np.nan).astype(np.float32)
        if self.fill_only and frame.depth is not None and sensor_valid is not None:
            depth = np.where(sensor_valid, frame.depth, depth).astype(np.float32)
        return depth
