"""Amodal depth: the depth of each instance's hidden surface.

Every method here fills the hidden part of each instance (amodal mask minus visible mask) from the
instance's own visible depth, inside the instance's bounding box. They differ only in how:

- ``plane_fit`` (the node's geometric default): fit a plane to the visible surface, weighting points
  near the hidden part most (a box's face next to the occluder matters, its far side does not), and
  extrapolate it behind the occluder;
- ``nearest``: copy the depth of the nearest visible pixel (evaluation baseline);
- ``telea``: OpenCV's Telea inpainting of the visible depth (evaluation baseline).

A hidden surface cannot be in front of what hides it, so every result is kept at least ``min_gap``
behind the visible depth; hidden pixels that get no finite depth (a plane that would lie behind the
camera) are dropped from the amodal mask.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from .config import AmodalDepthSettings
from .geometry import fit_inverse_depth_plane, normalized_coords, relative_to_plane
from .types import (
    AmodalInstance,
    AmodalMasks,
    OcclusionGraph,
    RGBDFrame,
    Segmentation,
    mask_window,
    window_union,
)

FIT_POINTS = 2000   # most points a plane fit uses (evenly spread, they pin a wall's plane)
HALF_RES_PIXELS = 40_000   # windows this large measure distances on a half-resolution grid


@dataclass
class HiddenPart:
    """One instance's hidden part, cropped to its amodal bounding box."""

    box: tuple[slice, slice]
    visible: np.ndarray        # (h, w) bool: visible pixels with a valid depth
    hidden: np.ndarray         # (h, w) bool
    depth: np.ndarray          # (h, w) float32 visible depth of the whole crop (other instances too)
    xs: np.ndarray             # (w,) normalised ray x of the crop's columns
    ys: np.ndarray             # (h,) normalised ray y of the crop's rows


class HiddenSurfaceCompletion:
    """Base of the fill strategies: per-instance bookkeeping, the crop and the ``min_gap`` rule."""

    def __init__(self, settings: AmodalDepthSettings) -> None:
        self.settings = settings   # min_gap; boundary_band (plane fit) and inpaint_radius (Telea), read at each frame

    def fill(self, part: HiddenPart) -> np.ndarray:
        """Depth (N,) of the hidden pixels in ``np.nonzero(part.hidden)`` order; NaN = no estimate."""
        raise NotImplementedError

    def __call__(self, frame: RGBDFrame, depth: np.ndarray, segmentation: Segmentation,
                 occlusion: OcclusionGraph, amodal_masks: Mapping[int, np.ndarray]) -> list[AmodalInstance]:
        x_n, y_n = normalized_coords(frame.intrinsics)
        masks = AmodalMasks.of(amodal_masks, frame.shape)
        seen = segmentation.windows
        instances = []
        for index, instance_id in enumerate(segmentation.ids.tolist()):
            r0, c0, r1, c1 = window = window_union(seen[instance_id], masks.bounds(instance_id))
            visible = segmentation.labels[r0:r1, c0:c1] == instance_id
            amodal = masks.within(instance_id, window) | visible
            crop = depth[r0:r1, c0:c1]
            own_depth = np.where(visible, crop, np.float32(np.nan)).astype(np.float32)
            hidden = amodal & ~visible
            if hidden.any():
                amodal = self.complete(visible, hidden, crop, own_depth, x_n[c0:c1], y_n[r0:r1]) | visible
            instances.append(AmodalInstance(
                instance_id, segmentation.class_name(index), float(segmentation.scores[index]), window, visible, amodal,
                tuple(sorted(occlusion.occluders_of(instance_id).tolist())), frame.shape, own_depth,
                segmentation.kind(index)))
        return instances

    def complete(self, visible: np.ndarray, hidden: np.ndarray, depth: np.ndarray, own_depth: np.ndarray,
                 xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Write hidden-surface depth into ``own_depth``; return the hidden pixels that got a depth. All
        arrays are one window of the frame (the whole frame, or a crop): ``xs`` and ``ys`` are the
        normalised ray coordinates of its columns and rows."""
        part = hidden_part(visible, hidden, depth, xs, ys)
        if part is None:
            return np.zeros_like(hidden)
        return self._write(part, self.fill(part), own_depth, hidden.shape)

    def _write(self, part: HiddenPart, hidden_depth: np.ndarray, own_depth: np.ndarray,
               shape: tuple[int, ...]) -> np.ndarray:
        """``hidden_depth`` (of ``part``'s hidden pixels in ``np.nonzero`` order) kept ``min_gap`` behind what
        hides it, written into ``own_depth``; the hidden pixels that got a depth."""
        # Dense over the part's box (a boolean scatter keeps np.nonzero's order): a table top hidden by
        # dozens of objects is ~100k pixels, which row-and-column indexing moves several times slower.
        values = np.full(part.hidden.shape, np.nan, np.float32)
        values[part.hidden] = hidden_depth
        behind = part.hidden & np.isfinite(part.depth)
        values[behind] = np.fmax(values[behind], part.depth[behind] + np.float32(self.settings.min_gap))
        with np.errstate(invalid="ignore"):
            got = part.hidden & np.isfinite(values) & (values > 0)
        own_depth[part.box][got] = values[got]
        result = np.zeros(shape, bool)
        result[part.box] = got
        return result


def hidden_part(visible: np.ndarray, hidden: np.ndarray, depth: np.ndarray, xs: np.ndarray,
                ys: np.ndarray) -> HiddenPart | None:
    """The part inside the amodal bounding box (instances are usually small against the window); None when
    nothing visible has a depth."""
    r0, c0, r1, c1 = mask_window(visible | hidden)
    box = (slice(r0, r1), slice(c0, c1))
    dep = depth[box]
    part = HiddenPart(box, visible[box] & np.isfinite(dep), hidden[box], dep, xs[box[1]], ys[box[0]])
    return part if part.visible.any() else None


def distance_to(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(pixels) distance to ``mask`` (L2, 3x3 approximation) of every ``grid``-th pixel along rows and columns,
    and ``grid``: 1, or 2 for large windows (a wall's), which the plane fit's weights do not notice."""
    if mask.size < HALF_RES_PIXELS:
        return cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L2, 3), 1
    h, w = mask.shape
    # A 2x2 block is in the mask when any of its pixels is: a hidden strip one pixel wide stays. (Strided ORs:
    # 30x faster than any() over a reshaped axis.)
    even = np.pad(mask, ((0, h % 2), (0, w % 2))) if h % 2 or w % 2 else mask
    blocks = even[0::2, 0::2] | even[1::2, 0::2] | even[0::2, 1::2] | even[1::2, 1::2]
    return cv2.distanceTransform(np.asarray(~blocks, np.uint8), cv2.DIST_L2, 3) * 2.0, 2


class PlaneFitCompletion(HiddenSurfaceCompletion):
    def plane(self, part: HiddenPart) -> tuple[np.ndarray | None, float]:
        """(the plane in inverse depth fitted to the visible surface, points near the hidden part weighing
        most; how far from it those near points lie: the 90th percentile of their relative distance), or
        (None, the median depth of those points) when they determine no plane."""
        # On a large window, the pixels of every second row and column (its distances' grid) only: a few
        # thousand evenly spread points pin a plane as well as the whole of a wall's band does.
        distance, grid = distance_to(part.hidden)
        near = part.visible[::grid, ::grid] & (distance < 4.0 * self.settings.boundary_band)
        r, c = np.nonzero(near)
        r, c = (r * grid, c * grid) if r.size >= 10 else np.nonzero(part.visible)
        step = max(1, r.size // FIT_POINTS)
        r, c = r[::step], c[::step]
        weights = np.exp(-distance[r // grid, c // grid] / self.settings.boundary_band)
        xs, ys, zs = part.xs[c], part.ys[r], part.depth[r, c]
        coef = fit_inverse_depth_plane(xs, ys, zs, weights)
        if coef is None:
            return None, float(np.median(zs)) if zs.size else float("nan")
        residual = float(np.percentile(np.abs(relative_to_plane(coef, xs, ys, zs)), 90))
        return coef, residual

    def fill(self, part: HiddenPart) -> np.ndarray:
        hr, hc = np.nonzero(part.hidden)
        coef, residual = self.plane(part)
        if coef is None:
            # Too few points for a plane: a fronto-parallel surface at the median nearby depth (``plane``'s).
            return np.full(hr.shape, residual, np.float32)
        return self._plane_depth(coef, part, hr, hc)

    @staticmethod
    def _plane_depth(coef: np.ndarray, part: HiddenPart, hr: np.ndarray, hc: np.ndarray) -> np.ndarray:
        inverse = coef[0] * part.xs[hc] + coef[1] * part.ys[hr] + coef[2]
        with np.errstate(divide="ignore"):
            return np.where(inverse > 1e-6, 1.0 / inverse, np.nan).astype(np.float32)

    def complete_if_planar(self, visible: np.ndarray, hidden: np.ndarray, depth: np.ndarray,
                           own_depth: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                           tolerance: float) -> np.ndarray | None:
        """``complete`` when the visible surface around the hidden part is a plane (``plane``'s distance below
        ``tolerance``), else None and nothing written: one fit decides and extends (a wall, a floor)."""
        part = hidden_part(visible, hidden, depth, xs, ys)
        if part is None:
            return None
        coef, residual = self.plane(part)
        if coef is None or not residual < tolerance:
            return None
        hr, hc = np.nonzero(part.hidden)
        got = self._write(part, self._plane_depth(coef, part, hr, hc), own_depth, hidden.shape)
        return got if got.any() else None   # (a plane behind the camera there: not this instance's way)


class NearestVisibleFill(HiddenSurfaceCompletion):
    def fill(self, part: HiddenPart) -> np.ndarray:
        # Labels of DIST_LABEL_PIXEL number the zero (= visible) pixels in row-major order.
        _, labels = cv2.distanceTransformWithLabels((~part.visible).view(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        source = part.depth[part.visible]
        return source[labels[part.hidden] - 1]


class TeleaInpaintFill(HiddenSurfaceCompletion):
    def fill(self, part: HiddenPart) -> np.ndarray:
        # cv2.inpaint on float32 input returns garbage (OpenCV 4.x and 5.x), so the depth is quantised
        # to the full uint16 range between the crop's nearest and farthest visible depth.
        values = part.depth[part.visible]
        low, step = float(values.min()), max(float(values.max() - values.min()), 1e-6) / 65535.0
        # Everything but the instance's own visible depth is unknown, so nothing of the occluder leaks in.
        known = np.zeros(part.depth.shape, np.uint16)
        known[part.visible] = np.rint((values - low) / step).astype(np.uint16)
        filled = cv2.inpaint(known, (~part.visible).view(np.uint8), self.settings.inpaint_radius, cv2.INPAINT_TELEA)
        return (filled[part.hidden] * step + low).astype(np.float32)
