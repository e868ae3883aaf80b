"""Hidden surfaces ordered per pixel: layer 1 is the first surface behind the visible one, and so on."""
from __future__ import annotations

import numpy as np

from .types import AmodalInstance, HiddenSurfaces

MAX_HIDDEN_LAYERS = 3   # the hidden layers the mesh and the map take: deeper surfaces (rare) are left out


def stack_hidden_surfaces(instances: list[AmodalInstance], shape: tuple[int, int]) -> HiddenSurfaces:
    """Every instance's hidden surface, ranked per pixel: a surface's layer is 1 + the number of other hidden
    surfaces nearer at that pixel (ties: the lower id is nearer). Pixels hiding one surface (most) or two are
    ranked by per-pixel sums, without sorting; only pixels hiding three or more are sorted (a table hiding a
    wall and a floor is ~400k hidden pixels, two at each)."""
    rows, cols, depth, instance = [], [], [], []
    for inst in instances:
        if inst.surface is None:
            continue
        r, c = np.nonzero(inst.hidden & np.isfinite(inst.surface))   # no depth: no surface, no cloud point
        if r.size:
            rows.append(r + inst.window[0])
            cols.append(c + inst.window[1])
            depth.append(inst.surface[r, c])
            instance.append(np.full(r.size, inst.id, np.int32))
    if not rows:
        empty = np.zeros(0, np.int64)
        return HiddenSurfaces(empty, empty, np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(0, np.uint8))
    row, col = np.concatenate(rows), np.concatenate(cols)
    z, ids = np.concatenate(depth).astype(np.float32), np.concatenate(instance)
    pixel = row.astype(np.int64) * shape[1] + col
    size = shape[0] * shape[1]
    count = np.bincount(pixel, minlength=size)[pixel]
    layer = np.ones(pixel.size, np.uint8)
    pair = np.flatnonzero(count == 2)
    if pair.size:
        # The other surface at the pixel: the pixel's sums less this one's (exact in float64 for two float32s).
        at = pixel[pair]
        other_z = np.bincount(at, weights=z[pair].astype(np.float64), minlength=size)[at] - z[pair]
        other_id = np.bincount(at, weights=ids[pair], minlength=size)[at] - ids[pair]
        layer[pair] += (other_z < z[pair]) | ((other_z == z[pair]) & (other_id < ids[pair]))
    many = np.flatnonzero(count > 2)
    if many.size:
        order = many[np.lexsort((ids[many], z[many], pixel[many]))]
        run = pixel[order]
        starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
        run_start = np.repeat(starts, np.diff(np.r_[starts, run.size]))
        layer[order] = (np.arange(run.size) - run_start + 1).clip(1, 255)
    return HiddenSurfaces(row, col, z, ids, layer)


def amodal_depth_image(visible_depth: np.ndarray, hidden: HiddenSurfaces) -> np.ndarray:
    """Visible depth with occluders peeled away where they hide an instance (layer-1 surfaces)."""
    image = visible_depth.copy()
    first = hidden.layer == 1
    image[hidden.rows[first], hidden.cols[first]] = hidden.depth[first]
    return image


def layer_grids(hidden: HiddenSurfaces, shape: tuple[int, int], stride: int = 1, fill: float = float("nan"),
                max_layers: int = MAX_HIDDEN_LAYERS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hidden layer, nearest first (at most ``max_layers``, none past the first empty one): (float32 depth,
    int32 instance) of the pixels on every ``stride``-th row and column of an image of ``shape``; ``fill``
    and 0 where the layer has no surface."""
    grid = hidden.on_grid(shape, stride)
    rows, cols = grid.rows // stride, grid.cols // stride
    depth, instance, layer = grid.depth, grid.instance, grid.layer
    small = (-(-shape[0] // stride), -(-shape[1] // stride))
    grids = []
    for k in range(1, max_layers + 1):
        at = layer == k
        if not at.any():
            break
        z, ids = np.full(small, fill, np.float32), np.zeros(small, np.int32)
        z[rows[at], cols[at]], ids[rows[at], cols[at]] = depth[at], instance[at]
        grids.append((z, ids))
    return grids
