"""Occlusion order: which instance hides which, from depth across their shared boundary.

Along a boundary where A is clearly nearer than B (a depth step, not a contact crease), A hides
part of B. Votes are counted over all neighbouring pixel pairs (1 and 2 pixels apart, since
segment borders may leave a thin unlabelled seam) and the majority direction wins.

Learned segmenters also say, per outline pixel, how likely its surface hides the one across the outline
(``Segmentation.occluder``). Each neighbouring pixel pair then adds the difference of the two sides'
values as a vote: this decides touching neighbours that depth cannot (an object standing on a table,
a box against a wall), and outvotes noisy depth steps.

Room structure (a floor, a wall: ``Segmentation.structure``) runs on as a plane behind what stands in the
room. An object whose pixels lie in front of a structure instance's plane hides part of that surface even
where the two share no outline: a vase on a desk hides the floor behind the desk, and the wall beyond.
Such an edge is added only where the boundary votes do not already put the surface in front of the object.
"""
from __future__ import annotations

import numpy as np

from .config import OcclusionSettings
from .geometry import normalized_coords, plane_of
from .segmentation import neighbour_pairs
from .types import CameraIntrinsics, OcclusionGraph, Segmentation

PLANE_POINTS = 300       # pixels a structure instance's plane is fitted to
PLANE_TOLERANCE = 0.02   # relative distance from the plane within which a pixel lies on it
PLANE_SHARE = 0.8        # share of a structure instance's pixels on its plane for it to count as one
PLANE_STRIDE = 2         # object pixels are tested on this grid (votes count its pixels); planes fitted on twice it
PLANE_MIN_PIXELS = 50    # pixels of the plane grid a structure instance needs for its plane to count


class BoundaryDepthOrder:
    def __init__(self, settings: OcclusionSettings) -> None:
        self.settings = settings

    def __call__(self, segmentation: Segmentation, depth: np.ndarray, intrinsics: CameraIntrinsics) -> OcclusionGraph:
        labels = segmentation.labels
        n = int(segmentation.ids.max()) + 1 if segmentation.ids.size else 1
        votes = np.zeros(n * n)  # votes[a * n + b]: evidence that a is in front of b
        learned = segmentation.occluder
        for gap in (1, 2):
            for la, lb, da, db, oa, ob in neighbour_pairs(labels, depth, learned, gap):
                with np.errstate(invalid="ignore"):
                    front_a = db - da > self.settings.depth_jump * np.fmin(da, db)
                    front_b = da - db > self.settings.depth_jump * np.fmin(da, db)
                votes += np.bincount(la[front_a] * n + lb[front_a], minlength=n * n)
                votes += np.bincount(lb[front_b] * n + la[front_b], minlength=n * n)
                if oa is not None:
                    difference = oa - ob
                    votes += np.bincount(la * n + lb, weights=np.maximum(difference, 0.0), minlength=n * n)
                    votes += np.bincount(lb * n + la, weights=np.maximum(-difference, 0.0), minlength=n * n)
        order = votes.reshape(n, n)
        # An edge needs enough support and a clear majority over the opposite direction.
        keep = (order >= self.settings.min_boundary) & (order > 2 * order.T)
        front, back = np.nonzero(keep)
        graph = OcclusionGraph(edges=np.stack([front, back], axis=1).astype(np.int32),
                               support=np.rint(order[front, back]).astype(np.int32))
        return self._in_front_of_structure(graph, order, segmentation, depth, intrinsics)

    def _in_front_of_structure(self, graph: OcclusionGraph, order: np.ndarray, segmentation: Segmentation,
                               depth: np.ndarray, intrinsics: CameraIntrinsics) -> OcclusionGraph:
        """``graph`` plus "object hides structure" edges where the object lies in front of the structure's plane
        on at least ``min_boundary`` grid pixels, unless a boundary vote or a chain of edges puts the structure in
        front of the object. Votes come from every PLANE_STRIDE-th pixel, planes from every second one of those."""
        if segmentation.structure is None or not segmentation.structure.any():
            return graph
        x_n, y_n = normalized_coords(intrinsics)
        # A few hundred points pin a wall's plane.
        fit = 2 * PLANE_STRIDE
        planes = structure_planes(segmentation.labels[::fit, ::fit], depth[::fit, ::fit], x_n[::fit], y_n[::fit],
                                  segmentation.ids[segmentation.structure])
        labels, z = segmentation.labels[::PLANE_STRIDE, ::PLANE_STRIDE], depth[::PLANE_STRIDE, ::PLANE_STRIDE]
        x_n, y_n = x_n[::PLANE_STRIDE], y_n[::PLANE_STRIDE]
        if not planes:
            return graph
        surfaces = np.array(list(planes), np.int32)
        coef = np.array(list(planes.values()))                                  # (S, 3)
        is_object = np.zeros(order.shape[0], bool)
        is_object[segmentation.ids[~segmentation.structure]] = True
        rows, cols = np.nonzero(is_object[labels] & np.isfinite(z))
        if rows.size == 0:
            return graph
        # The plane lies behind the pixel when its depth along the ray exceeds the pixel's by depth_jump:
        # 1 / inverse > z (1 + jump), i.e. z * inverse < 1 / (1 + jump) with the inverse depth positive.
        inverse = coef[:, 0:1] * x_n[cols] + coef[:, 1:2] * y_n[rows] + coef[:, 2:3]
        behind = (inverse > 0) & (z[rows, cols] * inverse < 1.0 / (1.0 + self.settings.depth_jump))
        owners = labels[rows, cols]
        counts = np.stack([np.bincount(owners[b], minlength=order.shape[0]) for b in behind], axis=1)
        found, which = np.nonzero(counts >= self.settings.min_boundary)
        if found.size == 0:
            return graph
        fronts = graph.ancestor_map()
        existing = {(a, b) for a, b in graph.edges.tolist()}
        added = [(int(a), int(surfaces[s]), int(counts[a, s])) for a, s in zip(found, which, strict=True)
                 if order[surfaces[s], a] == 0 and (int(a), int(surfaces[s])) not in existing
                 and int(surfaces[s]) not in fronts.get(int(a), set())]
        if not added:
            return graph
        extra = np.array(added, np.int32)
        return OcclusionGraph(edges=np.concatenate([graph.edges, extra[:, :2]]),
                              support=np.concatenate([graph.support, extra[:, 2]]))


def structure_planes(labels: np.ndarray, depth: np.ndarray, x_n: np.ndarray, y_n: np.ndarray,
                     structure: np.ndarray) -> dict[int, np.ndarray]:
    """Structure instance id -> (a, b, c) of its plane 1/z = a x_n + b y_n + c (``x_n``, ``y_n``: the normalised
    coordinates of ``labels``' columns and rows), for the ``structure`` ids of at least PLANE_MIN_PIXELS pixels
    that are planes (PLANE_SHARE of their pixels within PLANE_TOLERANCE of it)."""
    present = structure[np.bincount(labels.ravel(), minlength=int(structure.max()) + 1)[structure] >= PLANE_MIN_PIXELS]
    planes = {}
    for instance_id in present.tolist():
        rows, cols = np.nonzero((labels == instance_id) & np.isfinite(depth))
        plane = plane_of(x_n[cols], y_n[rows], depth[rows, cols], PLANE_POINTS, PLANE_TOLERANCE, PLANE_SHARE, 2)
        if plane is not None:
            planes[int(instance_id)] = plane[0]
    return planes
