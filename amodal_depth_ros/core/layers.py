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
    """Every instance's hidden surface, ranked per pixel: a surface's layer is 1 + the number of other hidden
    surfaces nearer at that pixel (ties: the lower id is nearer). Ranked pairwise where the windows of two
    instances overlap, so a frame costs its hidden pixels and overlaps, with no sort of them all (a table
    hiding a wall and a floor is ~400k hidden pixels)."""
    hidden = []   # (instance, hidden pixels with a depth: a crop of its window)
    for inst in instances:
        if inst.surface is not None:
            # A hidden pixel without depth is no surface (and no cloud point).
            known = inst.hidden & np.isfinite(inst.surface)
            if known.any():
                hidden.append((inst, known))
    ranks = [np.ones(known.shape, np.uint8) for _, known in hidden]
    for a in range(len(hidden)):
        for b in range(a + 1, len(hidden)):
            (first, known_a), (second, known_b) = hidden[a], hidden[b]
            (r0, c0, r1, c1), (s0, d0, s1, d1) = first.window, second.window
            top, left, bottom, right = max(r0, s0), max(c0, d0), min(r1, s1), min(c1, d1)
            if top >= bottom or left >= right:
                continue
            in_a = (slice(top - r0, bottom - r0), slice(left - c0, right - c0))
            in_b = (slice(top - s0, bottom - s0), slice(left - d0, right - d0))
            both = known_a[in_a] & known_b[in_b]
            if not both.any():
                continue
            depth_a, depth_b = first.surface[in_a], second.surface[in_b]   # type: ignore[index]
            b_nearer = (depth_b < depth_a) | ((depth_b == depth_a) & (second.id < first.id))
            ranks[a][in_a] += both & b_nearer
            ranks[b][in_b] += both & ~b_nearer
    if not hidden:
        empty = np.zeros(0, np.int64)
        return HiddenSurfaces(empty, empty, np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(0, np.uint8))
    rows, cols, depth, instance, layer = [], [], [], [], []
    for (inst, known), rank in zip(hidden, ranks, strict=True):
        r, c = np.nonzero(known)
        rows.append(r + inst.window[0])
        cols.append(c + inst.window[1])
        depth.append(inst.surface[r, c])   # type: ignore[index]
        instance.append(np.full(r.size, inst.id, np.int32))
        layer.append(rank[r, c])
    return HiddenSurfaces(np.concatenate(rows), np.concatenate(cols), np.concatenate(depth).astype(np.float32),
                          np.concatenate(instance), np.concatenate(layer))


def amodal_depth_image(visible_depth: np.ndarray, hidden: HiddenSurfaces) -> np.ndarray:
    """Visible depth with occluders peeled away where they hide an instance (layer-1 surfaces)."""
    image = visible_depth.copy()
    first = hidden.layer == 1
    image[hidden.rows[first], hidden.cols[first]] = hidden.depth[first]
    return image
