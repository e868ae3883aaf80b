"""Amodal mask completion: the full extent of each instance, hidden part included.

Geometric baseline: an occluded instance continues behind the instances in front of it (directly
or through a chain of occluders), but only within the convex hull of what is visible of it. This
is exact for convex objects and for walls and floors with straight borders.
"""
from __future__ import annotations

import cv2
import numpy as np

from .types import OcclusionGraph, Segmentation


class ConvexHullCompletion:
    def __call__(self, segmentation: Segmentation, occlusion: OcclusionGraph,
                 depth: np.ndarray | None = None) -> dict[int, np.ndarray]:
        labels = segmentation.labels
        masks: dict[int, np.ndarray] = {}
        for instance_id in segmentation.ids.tolist():
            visible = labels == instance_id
            in_front = occlusion.ancestors_of(instance_id)
            if not in_front:
                masks[instance_id] = visible
                continue
            hidden_candidates = np.isin(labels, np.fromiter(in_front, np.int32))
            masks[instance_id] = visible | (convex_hull_mask(visible) & hidden_candidates)
        return masks


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """Filled convex hull of a boolean mask (computed on its outer contours only, for speed)."""
    contours, _ = cv2.findContours(mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull_mask = np.zeros(mask.shape, np.uint8)
    if contours:
        hull = cv2.convexHull(np.concatenate(contours))
        cv2.fillConvexPoly(hull_mask, hull, 1)
    return hull_mask.view(bool)
