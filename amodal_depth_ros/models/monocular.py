"""Visible depth from a monocular network, made metric by the model itself or by the camera's depth image.

A relative model (Depth Anything V2 relative checkpoints) predicts inverse depth up to scale and shift:
``1 / depth ~ s * pred + t``. With a depth image, (s, t) are fitted on the pixels the sensor measured,
and the network fills what the sensor misses (holes, dark or shiny surfaces, beyond range).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..core.types import InputError, RGBDFrame

if TYPE_CHECKING:
    from .depth_anything_v2 import DepthAnythingV2, EncoderConfig

MIN_ALIGN_PIXELS = 64          # fewer valid depth readings than this cannot pin scale and shift down
MIN_INVERSE_DEPTH = 1e-3       # aligned inverse depth below this (beyond 1 km, or negative) is unknown
TRIM_FRACTION = 0.1            # share of the worst residuals dropped in the robust refit


class DepthBackend(Protocol):
    metric: bool               # True: infer returns metres; False: relative inverse depth

    def infer(self, rgb: np.ndarray) -> np.ndarray: ...


class TorchDepthAnything:
    """PyTorch Depth Anything V2 behind the backend interface (ONNX Runtime / TensorRT can replace it)."""

    def __init__(self, model: "DepthAnythingV2", input_size: int = 518):
        self.model, self.input_size = model.eval(), input_size
        self.metric = model.max_depth is not None

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        from .depth_anything_v2 import predict
        return predict(self.model, rgb, self.input_size)


def _line_fit(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    var = p.var()
    if not var > 0:
        raise InputError("depth_alignment_failed", "the prediction is constant over the valid depth pixels")
    s = float(((p - p.mean()) * (y - y.mean())).mean() / var)
    return s, float(y.mean() - s * p.mean())


def fit_scale_shift(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Least-squares (s, t) with ``s * pred + t ~ target``, refitted once without the worst 10 % residuals."""
    p, y = pred.astype(np.float64), target.astype(np.float64)
    s, t = _line_fit(p, y)
    residual = np.abs(s * p + t - y)
    keep = residual <= np.quantile(residual, 1.0 - TRIM_FRACTION)   # drops mismatched edges, sensor speckle
    return _line_fit(p[keep], y[keep])


class MonocularDepth:
    """Visible-depth stage: ``frame -> (H, W) float32 metres, NaN = unknown``.

    ``fill_only``: keep the sensor's reading wherever it is valid (within [min_depth, max_depth]) and use the
    network only where the sensor has none; otherwise return the network's (aligned) depth everywhere.
    """

    def __init__(self, backend: DepthBackend, fill_only: bool = True, min_depth: float = 0.0,
                 max_depth: float = math.inf):
        self.backend, self.fill_only = backend, fill_only
        self.min_depth, self.max_depth = min_depth, max_depth

    @classmethod
    def from_checkpoint(cls, path: str | Path, encoder: "str | EncoderConfig | None" = None,
                        metric_max_depth: float | None = None, device: str = "cpu", input_size: int = 518,
                        fill_only: bool = True, min_depth: float = 0.0,
                        max_depth: float = math.inf) -> "MonocularDepth":
        """Depth Anything V2 ``.pth``; ``metric_max_depth`` (20 indoor, 80 outdoor) marks a metric checkpoint."""
        from .depth_anything_v2 import load_depth_anything_v2   # torch only when a model is used
        model = load_depth_anything_v2(path, encoder, metric_max_depth, device)
        return cls(TorchDepthAnything(model, input_size), fill_only, min_depth, max_depth)

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
                usable = sensor_valid & np.isfinite(pred)
                if np.count_nonzero(usable) < MIN_ALIGN_PIXELS:
                    raise InputError("no_metric_scale", f"only {np.count_nonzero(usable)} valid depth pixels, "
                                     f"at least {MIN_ALIGN_PIXELS} are needed to scale the relative depth model")
                s, t = fit_scale_shift(pred[usable], 1.0 / frame.depth[usable])
                if not s > 0:
                    raise InputError("depth_alignment_failed", f"prediction anti-correlated with depth (scale {s:.3g})")
                inverse = s * pred.astype(np.float64) + t
                depth = np.where(inverse > MIN_INVERSE_DEPTH, 1.0 / inverse, np.nan).astype(np.float32)
        if self.fill_only and sensor_valid is not None:
            depth = np.where(sensor_valid, frame.depth, depth).astype(np.float32)
        return depth
