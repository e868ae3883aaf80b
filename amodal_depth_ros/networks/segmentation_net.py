"""Class-agnostic RGB-D instance segmentation in one pass: static shapes, common operators.

``segmentation_inputs`` turns a frame into per-pixel features at the network's resolution, depth first so
that rendered training scenes transfer to real sensors: the log depth ratio to the frame's median depth,
its validity, the surface normal (camera frame, from the back-projected depth) and, second, the colour.

``SegmentationNet`` (a small encoder-decoder, context from a 1/16 stage with dilated convolutions, a
full-resolution skip for sharp outlines) predicts three logits per pixel:

* ``boundary``: the pixel lies on the outline of its visible instance. Instances are the regions the
  outlines enclose (``learned.segmentation``), so objects touching a table are cut from it where the depth
  alone is continuous, and the parts of one object seen at different depths stay one instance.
* ``structure``: room structure (floor, walls) rather than an object (tables are objects).
* ``occluder``: on an outline, this side's surface hides the other side's (the occlusion order of
  touching neighbours, also where depth cannot tell, as at contacts).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.geometry import backproject
from ..core.types import CameraIntrinsics

INPUT_CHANNELS = 8              # log depth ratio, valid, normal (3), rgb (3)
OUTPUTS = ("boundary", "structure", "occluder")
LOG_RANGE = 2.0                 # log depth ratios are clipped to +-this
MULTIPLE = 16                   # network input sides are multiples of the coarsest stride
RGB_MEAN, RGB_STD = 0.45, 0.25


def network_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) of the network input for a ``width`` x ``height`` image: the long side scaled to at
    most ``long_side`` (never enlarged), both sides rounded to multiples of ``MULTIPLE``."""
    scale = min(1.0, long_side / max(width, height))
    return (max(MULTIPLE, int(round(width * scale / MULTIPLE)) * MULTIPLE),
            max(MULTIPLE, int(round(height * scale / MULTIPLE)) * MULTIPLE))


def surface_normals(depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """(3, H, W) float32 unit normals (camera frame, facing the camera) from central differences of the
    back-projected depth; 0 where a neighbour has no depth."""
    points = backproject(depth, intrinsics)
    du = np.zeros_like(points)
    dv = np.zeros_like(points)
    du[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dv[1:-1] = points[2:] - points[:-2]
    # The cross product written out, channels first: twice as fast as np.cross, and the same numbers.
    normal = np.empty((3,) + depth.shape, points.dtype)
    normal[0] = du[..., 1] * dv[..., 2] - du[..., 2] * dv[..., 1]
    normal[1] = du[..., 2] * dv[..., 0] - du[..., 0] * dv[..., 2]
    normal[2] = du[..., 0] * dv[..., 1] - du[..., 1] * dv[..., 0]
    norm = np.sqrt(normal[0] * normal[0] + normal[1] * normal[1] + normal[2] * normal[2])
    with np.errstate(invalid="ignore", divide="ignore"):
        normal = np.where(norm > 0, normal / norm, 0.0)
    normal = np.nan_to_num(normal, nan=0.0)
    normal *= np.where(normal[2] > 0, -1.0, 1.0)   # towards the camera (z < 0)
    return normal.astype(np.float32, copy=False)


def segmentation_inputs(rgb: np.ndarray, depth: np.ndarray, intrinsics: CameraIntrinsics,
                        size: tuple[int, int]) -> np.ndarray:
    """(INPUT_CHANNELS, h, w) float32 network input of one frame at ``size`` = (w, h). Depth is resized by
    nearest neighbour (no mixed depths across edges), colour by area averaging."""
    w, h = size
    small = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST) if depth.shape != (h, w) else depth
    valid = np.isfinite(small) & (small > 0)
    z0 = float(np.median(small[valid])) if valid.any() else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.where(valid, np.log(np.where(valid, small, 1.0) / z0), 0.0)
    colour = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) if rgb.shape[:2] != (h, w) else rgb
    out = np.empty((INPUT_CHANNELS, h, w), np.float32)
    out[0] = np.clip(log_ratio, -LOG_RANGE, LOG_RANGE)
    out[1] = valid
    out[2:5] = surface_normals(np.where(valid, small, np.nan).astype(np.float32), intrinsics.scaled(w, h))
    out[5:8] = (colour.transpose(2, 0, 1) / np.float32(255.0) - RGB_MEAN) / RGB_STD
    return out


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SegmentationNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (16, 24, 48, 64, 96)):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.stem = _conv(INPUT_CHANNELS, w0)                                    # 1
        self.down = nn.ModuleList([nn.Sequential(_conv(a, b, 2), _conv(b, b))     # 1/2, 1/4, 1/8
                                   for a, b in ((w0, w1), (w1, w2), (w2, w3))])
        self.context = nn.Sequential(_conv(w3, w4, 2), _conv(w4, w4, dilation=2), _conv(w4, w4, dilation=4))  # 1/16
        # Top-down: at each finer stage, add the skip (1x1 to the current width), then a 3x3 to the next width.
        self.lateral = nn.ModuleList([nn.Conv2d(c, w, 1) for c, w in ((w3, w4), (w2, w3), (w1, w2), (w0, w1))])
        self.up = nn.ModuleList([_conv(a, b) for a, b in ((w4, w3), (w3, w2), (w2, w1), (w1, w0))])
        self.head = nn.Conv2d(w0, len(OUTPUTS), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, INPUT_CHANNELS, H, W), H and W multiples of 16 -> (B, 3, H, W) logits (``OUTPUTS``)."""
        skips = [self.stem(x)]
        for stage in self.down:
            skips.append(stage(skips[-1]))
        y = self.context(skips[-1])
        for lateral, up, skip in zip(self.lateral, self.up, skips[::-1], strict=True):
            y = up(F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False) + lateral(skip))
        return self.head(y)
