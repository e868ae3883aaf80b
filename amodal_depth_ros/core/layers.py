"""Hidden surfaces ordered per pixel: layer 1 is the first surface behind the visible one, and so on."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import AmodalInstance


@dataclass
class HiddenSurfaces:
    """One entry per (pixel, instance) whose surface is hidden at that pixel."""

    rows: np.ndarray        # (M,) int
    cols: np.ndarray        # (M,) int
    depth: np.ndarray       # (M,) float32 metres
    instance: np.ndarray    # (M,) int32
    layer: np.ndarray       # (M,) uint8, >= 1


def stack_hidden_surfaces(instances: list[AmodalInstance], shape: tuple[int, int]) -> HiddenSurfaces:
    parts = []
    for inst in instances:
        if inst.surface is None:
            continue
        rows, cols = np.nonzero(inst.hidden)   # inside the instance's window only
        if rows.size == 0:
            continue
        depth = inst.surface[rows, cols]
        known = np.isfinite(depth)   # a hidden pixel without depth is no surface (and no cloud point)
        flat = (rows[known] + inst.window[0]) * shape[1] + (cols[known] + inst.window[1])
        parts.append((flat, depth[known], np.full(flat.size, inst.id, np.int32)))
    if not parts:
        empty = np.zeros(0, np.int64)
        return HiddenSurfaces(empty, empty, np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(0, np.uint8))
    pixel = np.concatenate([p[0] for p in parts])
    depth = np.concatenate([p[1] for p in parts]).astype(np.float32)
    instance = np.concatenate([p[2] for p in parts])
    order = np.lexsort((depth, pixel))  # by pixel, then near to far
    pixel, depth, instance = pixel[order], depth[order], instance[order]
    # Rank within each run of equal pixels = how many hidden surfaces lie in front at that pixel.
    starts = np.flatnonzero(np.r_[True, pixel[1:] != pixel[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, pixel.size]))
    layer = (np.arange(pixel.size) - run_start + 1).clip(1, 255).astype(np.uint8)
    rows, cols = np.divmod(pixel, shape[1])
    return HiddenSurfaces(rows, cols, depth, instance, layer)


def amodal_depth_image(visible_depth: np.ndarray, hidden: HiddenSurfaces) -> np.ndarray:
    """Visible depth with occluders peeled away where they hide an instance (layer-1 surfaces)."""
    image = visible_depth.copy()
    first = hidden.layer == 1
    image[hidden.rows[first], hidden.cols[first]] = hidden.depth[first]
    return image
