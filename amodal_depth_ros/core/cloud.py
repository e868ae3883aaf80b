"""Completed point cloud: every visible pixel with depth plus every hidden surface, no NaN points."""
from __future__ import annotations

import numpy as np

from .geometry import backproject_pixels
from .layers import HiddenSurfaces
from .types import LayeredCloud, RGBDFrame


def build_layered_cloud(frame: RGBDFrame, visible_depth: np.ndarray, labels: np.ndarray,
                        hidden: HiddenSurfaces, stride: int = 1) -> LayeredCloud:
    intr = frame.intrinsics
    keep = np.isfinite(visible_depth)
    if stride > 1:
        sparse = np.zeros_like(keep)
        sparse[::stride, ::stride] = True
        keep &= sparse
    rows, cols = np.nonzero(keep)
    visible_points = backproject_pixels(rows, cols, visible_depth[rows, cols], intr)
    visible_ids = labels[rows, cols]

    on_grid = (hidden.rows % stride == 0) & (hidden.cols % stride == 0) if stride > 1 else slice(None)
    h_rows, h_cols, h_ids = hidden.rows[on_grid], hidden.cols[on_grid], hidden.instance[on_grid]
    hidden_points = backproject_pixels(h_rows, h_cols, hidden.depth[on_grid], intr)
    # Hidden surfaces have no observed colour: give them their instance's mean visible colour.
    hidden_colors = instance_mean_colors(frame.rgb, labels)[h_ids]

    return LayeredCloud(
        points=np.concatenate([visible_points, hidden_points]),
        colors=np.concatenate([frame.rgb[rows, cols], hidden_colors]),
        layer=np.concatenate([np.zeros(rows.size, np.uint8), hidden.layer[on_grid]]),
        instance=np.concatenate([visible_ids, h_ids]).astype(np.uint16),
    )


def instance_mean_colors(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(max_id + 1, 3) uint8 mean colour of each label's pixels (row 0: unlabelled pixels)."""
    flat = labels.ravel()
    n = int(flat.max()) + 1 if flat.size else 1
    counts = np.maximum(np.bincount(flat, minlength=n), 1)
    sums = np.stack([np.bincount(flat, weights=rgb[..., c].ravel(), minlength=n) for c in range(3)], axis=1)
    return (sums / counts[:, None]).round().astype(np.uint8)
