"""Completed point cloud: every visible pixel with depth plus every hidden surface, no NaN points.

The points are written straight into their published record layout (``POINT_DTYPE``): one pass per
field over 1-D gathers, no intermediate (N, 3) arrays, no repacking in the ROS adapter.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .geometry import normalized_coords
from .types import POINT_DTYPE, HiddenSurfaces, LayeredCloud, RGBDFrame, pack_rgb

BANDS = min(4, os.cpu_count() or 1)   # threads filling the visible points
MIN_PARALLEL = 64 * 64                # smaller images are not worth a thread hand-off
MEAN_COLOR_STRIDE = 4   # hidden-surface colours are instance means: every 16th pixel is plenty


def build_layered_cloud(frame: RGBDFrame, visible_depth: np.ndarray, labels: np.ndarray,
                        hidden: HiddenSurfaces, stride: int = 1) -> LayeredCloud:
    intr = frame.intrinsics
    keep = np.isfinite(visible_depth)
    if stride > 1:
        sparse = np.zeros_like(keep)
        sparse[::stride, ::stride] = True
        keep &= sparse
    hidden = hidden.on_grid(visible_depth.shape, stride)
    h_rows, h_cols, h_ids = hidden.rows, hidden.cols, hidden.instance
    # Row bands of the visible part, filled in parallel (numpy releases the GIL in gathers and ufuncs).
    bands = np.array_split(np.arange(visible_depth.shape[0]), BANDS) if visible_depth.size >= MIN_PARALLEL else \
        [np.arange(visible_depth.shape[0])]
    counts = [int(np.count_nonzero(keep[b[0]:b[-1] + 1])) if b.size else 0 for b in bands]
    starts = np.concatenate([[0], np.cumsum(counts)])
    n_visible = int(starts[-1])
    records = np.zeros(n_visible + h_rows.size, POINT_DTYPE)   # zeros: layer 0 and a fixed padding byte
    x_n, y_n = normalized_coords(intr)
    rgb = pack_rgb(frame.rgb)

    def fill_band(k: int) -> None:
        if not bands[k].size:
            return
        rows = slice(bands[k][0], bands[k][-1] + 1)
        seen = records[starts[k]:starts[k + 1]]
        flat_keep = keep[rows].ravel()
        z = visible_depth[rows].ravel()[flat_keep]
        shape = keep[rows].shape
        # Ray coordinates of the kept pixels: broadcast-and-gather beats divmod of flat indices 10x.
        np.multiply(np.broadcast_to(x_n, shape).ravel()[flat_keep], z, out=seen["x"])
        np.multiply(np.broadcast_to(y_n[rows, None], shape).ravel()[flat_keep], z, out=seen["y"])
        seen["z"] = z
        seen["rgb"] = rgb[rows].ravel()[flat_keep]
        seen["instance"] = labels[rows].ravel()[flat_keep]

    list(_pool().map(fill_band, range(len(bands))))
    behind = records[n_visible:]
    h_depth = hidden.depth
    np.multiply(x_n[h_cols], h_depth, out=behind["x"])
    np.multiply(y_n[h_rows], h_depth, out=behind["y"])
    behind["z"] = h_depth
    # Hidden surfaces have no observed colour: give them their instance's mean visible colour.
    behind["rgb"] = pack_rgb(instance_mean_colors(frame.rgb, labels))[h_ids]
    behind["instance"] = h_ids
    behind["layer"] = hidden.layer
    return LayeredCloud(records)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(BANDS, thread_name_prefix="cloud")


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
