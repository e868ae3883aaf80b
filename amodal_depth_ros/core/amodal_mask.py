"""Amodal mask completion: the full extent of each instance, hidden part included.

Geometric baseline: an occluded instance continues behind the instances in front of it (directly
or through a chain of occluders), but only within the convex hull of what is visible of it. This
is exact for convex objects and for walls and floors with straight borders.
"""
from __future__ import annotations

import cv2
import numpy as np

from .types import AmodalMasks, OcclusionGraph, Segmentation, Window, label_windows


class ConvexHullCompletion:
    def __call__(self, segmentation: Segmentation, occlusion: OcclusionGraph,
                 depth: np.ndarray | None = None) -> AmodalMasks:
        labels = segmentation.labels
        masks = AmodalMasks(labels.shape)
        fronts = occlusion.ancestor_map()
        for instance_id, window in label_windows(labels).items():
            masks.set(instance_id, window, hull_completion(labels, window, instance_id, fronts.get(instance_id)))
        return masks


def hull_completion(labels: np.ndarray, window: Window, instance_id: int, in_front: set[int] | None) -> np.ndarray:
    """The instance's amodal mask in ``window`` (its visible bounding window: the hull lies inside what is seen
    of it): its visible mask, plus its convex hull where ``in_front`` (the instances in front of it) are seen."""
    r0, c0, r1, c1 = window
    crop = labels[r0:r1, c0:c1]
    visible = crop == instance_id
    if not in_front:
        return visible
    return visible | (convex_hull_mask(visible) & np.isin(crop, np.fromiter(in_front, np.int32)))


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """Filled convex hull of a boolean mask (computed on its outer contours only, for speed)."""
    contours, _ = cv2.findContours(mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull_mask = np.zeros(mask.shape, np.uint8)
    if contours:
        hull = cv2.convexHull(np.concatenate(contours))
        cv2.fillConvexPoly(hull_mask, hull, 1)
    return hull_mask.view(bool)
