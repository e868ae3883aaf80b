"""Completed point cloud: every visible pixel with depth plus every hidden surface, no NaN points.

The points are written straight into their published record layout (``POINT_DTYPE``): one pass per
field over 1-D gathers, no intermediate (N, 3) arrays, no repacking in the ROS adapter.
"""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import normalized_coords
from .layers import HiddenSurfaces
from .types import POINT_DTYPE, LayeredCloud, RGBDFrame

MEAN_COLOR_STRIDE = 4   # hidden-surface colours are instance means: every 16th pixel is plenty


def build_layered_cloud(frame: RGBDFrame, visible_depth: np.ndarray, labels: np.ndarray,
                        hidden: HiddenSurfaces, stride: int = 1) -> LayeredCloud:
    intr = frame.intrinsics
    h, w = visible_depth.shape
    keep = np.isfinite(visible_depth)
    if stride > 1:
        sparse = np.zeros_like(keep)
        sparse[::stride, ::stride] = True
        keep &= sparse
    on_grid = (hidden.rows % stride == 0) & (hidden.cols % stride == 0) if stride > 1 else slice(None)
    h_rows, h_cols, h_ids = hidden.rows[on_grid], hidden.cols[on_grid], hidden.instance[on_grid]
    flat_keep = keep.ravel()
    n_visible = int(np.count_nonzero(flat_keep))
    records = np.zeros(n_visible + h_rows.size, POINT_DTYPE)   # zeros: layer 0 and a fixed padding byte
    seen, behind = records[:n_visible], records[n_visible:]
    x_n, y_n = normalized_coords(intr)
    z = visible_depth.ravel()[flat_keep]
    # Ray coordinates of the kept pixels: broadcast-and-gather beats divmod of flat indices 10x.
    np.multiply(np.broadcast_to(x_n, (h, w)).ravel()[flat_keep], z, out=seen["x"])
    np.multiply(np.broadcast_to(y_n[:, None], (h, w)).ravel()[flat_keep], z, out=seen["y"])
    seen["z"] = z
    seen["rgb"] = packed_rgb(frame.rgb).ravel()[flat_keep]
    seen["instance"] = labels.ravel()[flat_keep]
    h_depth = hidden.depth[on_grid]
    np.multiply(x_n[h_cols], h_depth, out=behind["x"])
    np.multiply(y_n[h_rows], h_depth, out=behind["y"])
    behind["z"] = h_depth
    # Hidden surfaces have no observed colour: give them their instance's mean visible colour.
    behind["rgb"] = packed_rgb(instance_mean_colors(frame.rgb, labels)[None])[0][h_ids]
    behind["instance"] = h_ids
    behind["layer"] = hidden.layer[on_grid]
    return LayeredCloud(records)


def packed_rgb(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint32 0x00RRGGBB. RGB2BGRA gives the little-endian bytes B, G, R, A
    in one cv2 pass (6x faster than numpy shifts); the mask clears alpha."""
    if rgb.size == 0:
        return np.zeros(rgb.shape[:2], np.uint32)
    bgra = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA)
    return bgra.view("<u4")[..., 0] & np.uint32(0x00FFFFFF)


def instance_mean_colors(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(max_id + 1, 3) uint8 mean colour of each label's pixels (row 0: unlabelled pixels), sampled on
    every MEAN_COLOR_STRIDE-th row and column; a label missing from the samples gets mid-grey."""
    n = int(labels.max()) + 1 if labels.size else 1
    sample = labels[::MEAN_COLOR_STRIDE, ::MEAN_COLOR_STRIDE].ravel()
    pixels = rgb[::MEAN_COLOR_STRIDE, ::MEAN_COLOR_STRIDE].reshape(-1, 3)
    counts = np.bincount(sample, minlength=n)
    sums = np.stack([np.bincount(sample, weights=pixels[:, c], minlength=n) for c in range(3)], axis=1)
    means = np.full((n, 3), 128.0)
    np.divide(sums, counts[:, None], out=means, where=counts[:, None] > 0)
    return means.round().astype(np.uint8)
