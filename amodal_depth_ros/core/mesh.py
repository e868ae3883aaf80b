"""The completed scene as a surface: the visible depth and each hidden layer triangulated as a grid mesh.

As in a layered depth image, every layer (0: the visible surface; k >= 1: the k-th hidden surface behind
it, ``layers.HiddenSurfaces``) is a depth map of its own. Its pixels on a grid ``stride`` apart are the
vertices and each grid square gives two triangles, dropped where the depth jumps between their corners
(an occlusion edge, not a surface) and, in a hidden layer, where they join two instances' surfaces.
Triangles face the camera (counter-clockwise seen from it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cloud import instance_mean_colors
from .geometry import normalized_coords
from .layers import layer_grids
from .types import HiddenSurfaces, RGBDFrame


@dataclass
class LayeredMesh:
    vertices: np.ndarray    # (N, 3) float32 metres, optical frame of the camera
    colors: np.ndarray      # (N, 3) uint8 RGB: observed for the visible layer, the instance's mean for hidden ones
    instance: np.ndarray    # (N,) int32 instance id (0: none)
    layer: np.ndarray       # (N,) uint8: 0 visible, k >= 1 the k-th hidden surface
    triangles: np.ndarray   # (M, 3) int32 vertex indices, counter-clockwise seen from the camera

    @property
    def triangle_layer(self) -> np.ndarray:
        """(M,) uint8 layer of each triangle (its corners share it)."""
        return self.layer[self.triangles[:, 0]]


def grid_triangles(depth: np.ndarray, ids: np.ndarray | None, max_jump: float) -> tuple[np.ndarray, np.ndarray]:
    """(vertex index of each grid point, -1 where it has no depth; (M, 3) triangles) of a grid depth map:
    two triangles per grid square, kept where their three corners have depth, the farthest at most
    ``1 + max_jump`` times the nearest, and (``ids`` given) one id."""
    valid = np.isfinite(depth) & (depth > 0)
    index = np.full(depth.shape, -1, np.int32)
    index[valid] = np.arange(int(np.count_nonzero(valid)), dtype=np.int32)
    z = np.where(valid, depth, np.float32(np.nan))
    corners = {name: (index[rows, cols], z[rows, cols], None if ids is None else ids[rows, cols])
               for name, rows, cols in (("a", slice(None, -1), slice(None, -1)), ("b", slice(None, -1), slice(1, None)),
                                        ("c", slice(1, None), slice(None, -1)), ("d", slice(1, None), slice(1, None)))}
    triangles = []
    for names in (("a", "c", "b"), ("b", "c", "d")):   # (c - a) x (b - a) points at the camera (-z)
        (ia, za, la), (ib, zb, lb), (ic, zc, lc) = (corners[n] for n in names)
        with np.errstate(invalid="ignore"):
            near, far = np.fmin(np.fmin(za, zb), zc), np.fmax(np.fmax(za, zb), zc)
            keep = (ia >= 0) & (ib >= 0) & (ic >= 0) & (far <= near * np.float32(1.0 + max_jump))
        if la is not None and lb is not None and lc is not None:
            keep &= (la == lb) & (la == lc)
        triangles.append(np.stack([ia[keep], ib[keep], ic[keep]], axis=1))
    return index, np.concatenate(triangles)


def build_layered_mesh(frame: RGBDFrame, visible_depth: np.ndarray, labels: np.ndarray, hidden: HiddenSurfaces,
                       stride: int = 4, max_jump: float = 0.05) -> LayeredMesh:
    """The visible surface and the hidden layers (up to MAX_HIDDEN_LAYERS) of one frame as one mesh."""
    height, width = visible_depth.shape
    x_n, y_n = normalized_coords(frame.intrinsics)
    grid_rows, grid_cols = np.arange(0, height, stride), np.arange(0, width, stride)
    means = instance_mean_colors(frame.rgb, labels)
    parts: list[tuple[np.ndarray, ...]] = []
    offset = 0
    grids = [(visible_depth[::stride, ::stride], labels[::stride, ::stride])] + \
        layer_grids(hidden, visible_depth.shape, stride)
    for layer, (depth, ids) in enumerate(grids):
        # Hidden layers are also cut between instances: two hidden surfaces side by side are not one.
        index, triangles = grid_triangles(depth, ids if layer else None, max_jump)
        gr, gc = np.nonzero(index >= 0)   # row-major: the order of the vertex indices
        z = depth[gr, gc].astype(np.float32)
        rows, cols = grid_rows[gr], grid_cols[gc]
        vertex_ids = ids[gr, gc].astype(np.int32)
        colors = frame.rgb[rows, cols] if layer == 0 else means[vertex_ids]
        vertices = np.stack([x_n[cols] * z, y_n[rows] * z, z], axis=1)
        parts.append((vertices, colors, vertex_ids, np.full(z.size, layer, np.uint8), triangles + offset))
        offset += z.size
    vertices, colors, instance, layers, triangles = (np.concatenate(p) for p in zip(*parts, strict=True))
    return LayeredMesh(vertices.astype(np.float32, copy=False), colors.astype(np.uint8, copy=False),
                       instance, layers, triangles.astype(np.int32, copy=False))


PLY_TYPES = {"<f4": "float", "|u1": "uchar", "<u2": "ushort", "<i4": "int"}   # numpy dtype -> PLY property type


def write_ply_records(path: str | Path, vertex: np.ndarray, triangles: np.ndarray | None = None,
                      comment: str = "") -> None:
    """Binary little-endian PLY: the structured array ``vertex`` (one property per field) and, given, the
    (M, 3) int ``triangles`` as vertex index lists."""
    properties = "".join(f"property {PLY_TYPES[vertex.dtype[name].str]} {name}\n" for name in vertex.dtype.names or ())
    header = "ply\nformat binary_little_endian 1.0\n" + (f"comment {comment}\n" if comment else "") + \
        f"element vertex {len(vertex)}\n{properties}"
    if triangles is not None:
        face = np.empty(len(triangles), [("n", "u1"), ("v", "<i4", (3,))])
        face["n"], face["v"] = 3, triangles
        header += f"element face {len(face)}\nproperty list uchar int vertex_indices\n"
    with open(path, "wb") as out:
        out.write((header + "end_header\n").encode("ascii"))
        out.write(vertex.tobytes())
        if triangles is not None:
            out.write(face.tobytes())


def write_ply(mesh: LayeredMesh, path: str | Path) -> None:
    """Binary little-endian PLY: vertices with colour, instance and layer; faces as vertex index lists."""
    vertex = np.empty(len(mesh.vertices), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"),
                                           ("blue", "u1"), ("instance", "<i4"), ("layer", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = mesh.vertices.T
    vertex["red"], vertex["green"], vertex["blue"] = mesh.colors.T
    vertex["instance"], vertex["layer"] = mesh.instance, mesh.layer
    write_ply_records(path, vertex, mesh.triangles, "amodal_depth_ros completed mesh (optical frame)")
