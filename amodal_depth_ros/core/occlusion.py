"""Occlusion order: which instance hides which, from depth across their shared boundary.

Along a boundary where A is clearly nearer than B (a depth step, not a contact crease), A hides
part of B. Votes are counted over all neighbouring pixel pairs (1 and 2 pixels apart, since
segment borders may leave a thin unlabelled seam) and the majority direction wins.

Learned segmenters also say, per outline pixel, how likely its surface hides the one across the outline
(``Segmentation.occluder``). Each neighbouring pixel pair then adds the difference of the two sides'
values as a vote: this decides touching neighbours that depth cannot (an object standing on a table,
a box against a wall), and outvotes noisy depth steps.
"""
from __future__ import annotations

import numpy as np

from .config import OcclusionSettings
from .segmentation import neighbour_pairs
from .types import OcclusionGraph, Segmentation


class BoundaryDepthOrder:
    def __init__(self, settings: OcclusionSettings) -> None:
        self.settings = settings

    def __call__(self, segmentation: Segmentation, depth: np.ndarray) -> OcclusionGraph:
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
        return OcclusionGraph(edges=np.stack([front, back], axis=1).astype(np.int32),
                              support=np.rint(order[front, back]).astype(np.int32))
