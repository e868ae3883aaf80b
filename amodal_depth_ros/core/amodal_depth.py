"""Amodal depth: the depth of each instance's hidden surface.

Geometric baseline: fit a plane to the instance's visible surface, weighting points near the
hidden part most (a box's face next to the occluder matters, its far side does not), and
extrapolate it behind the occluder. A hidden surface cannot be in front of what hides it, so
the result is kept at least ``min_gap`` behind the visible depth; pixels where the plane never
reaches (it would be behind the camera) are dropped from the amodal mask.
"""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import fit_inverse_depth_plane, normalized_coords
from .types import AmodalInstance, OcclusionGraph, RGBDFrame, Segmentation


class PlaneFitCompletion:
    def __init__(self, boundary_band: float, min_gap: float):
        self.boundary_band = boundary_band
        self.min_gap = min_gap

    def __call__(self, frame: RGBDFrame, depth: np.ndarray, segmentation: Segmentation,
                 occlusion: OcclusionGraph, amodal_masks: dict[int, np.ndarray]) -> list[AmodalInstance]:
        instances = []
        for index, instance_id in enumerate(segmentation.ids.tolist()):
            visible = segmentation.labels == instance_id
            amodal = amodal_masks[instance_id]
            own_depth = np.where(visible, depth, np.nan).astype(np.float32)
            hidden = amodal & ~visible
            if hidden.any():
                amodal = self._complete(frame, depth, visible, hidden, own_depth) | visible
            instances.append(AmodalInstance(
                id=instance_id, label=segmentation.class_name(index), score=float(segmentation.scores[index]),
                visible_mask=visible, amodal_mask=amodal,
                occluded_by=tuple(sorted(occlusion.occluders_of(instance_id).tolist())), depth=own_depth))
        return instances

    def _complete(self, frame: RGBDFrame, depth: np.ndarray, visible: np.ndarray, hidden: np.ndarray,
                  own_depth: np.ndarray) -> np.ndarray:
        """Write hidden-surface depth into ``own_depth``; return the hidden pixels that got a depth."""
        # Work inside the amodal bounding box only: instances are usually small against the image.
        rows = np.flatnonzero((visible | hidden).any(axis=1))
        cols = np.flatnonzero((visible | hidden).any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        vis, hid, dep = visible[box], hidden[box], depth[box]
        distance = cv2.distanceTransform((~hid).view(np.uint8), cv2.DIST_L2, 3)
        usable = vis & np.isfinite(dep)
        near = usable & (distance < 4.0 * self.boundary_band)
        fit_pixels = near if near.sum() >= 10 else usable
        r, c = np.nonzero(fit_pixels)
        x_n, y_n = normalized_coords(frame.intrinsics)
        xs, ys = x_n[box[1]], y_n[box[0]]
        hr, hc = np.nonzero(hid)
        coef = fit_inverse_depth_plane(xs[c], ys[r], dep[r, c], np.exp(-distance[r, c] / self.boundary_band))
        if coef is None:
            if r.size == 0:
                return np.zeros_like(hidden)
            # Too few points for a plane: a fronto-parallel surface at the median nearby depth.
            hidden_depth = np.full(hr.shape, np.median(dep[r, c]), np.float32)
        else:
            inverse = coef[0] * xs[hc] + coef[1] * ys[hr] + coef[2]
            with np.errstate(divide="ignore"):
                hidden_depth = np.where(inverse > 1e-6, 1.0 / inverse, np.nan).astype(np.float32)
        in_front = dep[hr, hc]
        hidden_depth = np.where(np.isfinite(in_front), np.fmax(hidden_depth, in_front + self.min_gap), hidden_depth)
        got = np.isfinite(hidden_depth)
        own_box = own_depth[box]
        own_box[hr[got], hc[got]] = hidden_depth[got]
        result = np.zeros_like(hidden)
        result[box][hr[got], hc[got]] = True
        return result
