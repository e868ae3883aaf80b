"""Occlusion order: which instance hides which, from depth across their shared boundary.

Along a boundary where A is clearly nearer than B (a depth step, not a contact crease), A hides
part of B. Votes are counted over all neighbouring pixel pairs (1 and 2 pixels apart, since
segment borders may leave a thin unlabelled seam) and the majority direction wins.
"""
from __future__ import annotations

import numpy as np

from .types import OcclusionGraph, Segmentation


class BoundaryDepthOrder:
    def __init__(self, depth_jump: float, min_boundary: int):
        self.depth_jump = depth_jump
        self.min_boundary = min_boundary

    def __call__(self, segmentation: Segmentation, depth: np.ndarray) -> OcclusionGraph:
        labels = segmentation.labels
        n = int(segmentation.ids.max()) + 1 if segmentation.ids.size else 1
        votes = np.zeros(n * n, np.int64)  # votes[a * n + b]: pairs where a is in front of b
        for gap in (1, 2):
            for la, lb, da, db in _neighbour_pairs(labels, depth, gap):
                with np.errstate(invalid="ignore"):
                    front_a = db - da > self.depth_jump * np.fmin(da, db)
                    front_b = da - db > self.depth_jump * np.fmin(da, db)
                votes += np.bincount(la[front_a] * n + lb[front_a], minlength=n * n)
                votes += np.bincount(lb[front_b] * n + la[front_b], minlength=n * n)
        votes = votes.reshape(n, n)
        # An edge needs enough support and a clear majority over the opposite direction.
        keep = (votes >= self.min_boundary) & (votes > 2 * votes.T)
        front, back = np.nonzero(keep)
        return OcclusionGraph(edges=np.stack([front, back], axis=1).astype(np.int32),
                              support=votes[front, back].astype(np.int32))


def _neighbour_pairs(labels: np.ndarray, depth: np.ndarray, gap: int):
    """Yield (label_a, label_b, depth_a, depth_b) for pixel pairs ``gap`` apart with different non-zero labels."""
    for a_sl, b_sl in (((slice(None), slice(None, -gap)), (slice(None), slice(gap, None))),
                       ((slice(None, -gap), slice(None)), (slice(gap, None), slice(None)))):
        la, lb = labels[a_sl], labels[b_sl]
        differ = (la != lb) & (la > 0) & (lb > 0)
        yield la[differ], lb[differ], depth[a_sl][differ], depth[b_sl][differ]
