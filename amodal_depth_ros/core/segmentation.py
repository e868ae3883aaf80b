"""Training-free, class-agnostic instance segmentation from depth and colour.

Segments are the connected regions left after cutting the image along
  * depth discontinuities (one surface in front of another),
  * concave creases (an object standing on a table, a wall meeting the floor): inverse depth is
    linear in the image over any plane, so its second difference is ~0 on planes and strongly
    positive where the surface folds away from the camera,
  * strong colour edges (two touching objects at the same depth).
Convex folds (the edges of a box) are not cut, so a box stays one segment.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import cv2
import numpy as np

from .config import SegmentationSettings
from .geometry import normalized_coords, plane_of
from .types import CameraIntrinsics, RGBDFrame, Segmentation, label_windows

PLANE_POINTS = 1000   # points of a large segment its plane is fitted to (evenly spread)
PLANE_SHARE = 0.7     # of a large segment's pixels on its plane for it to be one (the rest: things on it)


class GeometricSegmenter:
    """Uses depth_jump, concavity, crease_scale, color_edge and min_area of its settings, read at each frame."""

    def __init__(self, settings: SegmentationSettings) -> None:
        self.settings = settings

    def __call__(self, frame: RGBDFrame, depth: np.ndarray) -> Segmentation:
        valid = np.isfinite(depth)
        cut = ~valid | depth_edges(depth, self.settings.depth_jump) | self._concave_creases(depth, valid)
        if self.settings.color_edge > 0:
            cut |= self._color_edges(frame.rgb)
        labels = components(~cut, max(1, int(self.settings.min_area * depth.size)))
        segmentation = relabel(absorb_unlabelled(labels, depth, valid, self.settings.depth_jump))
        s = self.settings
        return split_support_planes(segmentation, depth, frame.intrinsics, s.structure_min_area,
                                    s.structure_tolerance, max(1, int(s.min_area * depth.size)))

    def _concave_creases(self, depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
        k = self.settings.crease_scale
        inv = np.where(valid, 1.0 / np.where(valid, depth, 1.0), np.nan).astype(np.float32)
        crease = np.zeros(depth.shape, bool)
        centre = inv[k:-k, k:-k]
        with np.errstate(invalid="ignore"):
            # Second differences along rows, columns and both diagonals catch creases at any angle.
            for dy, dx in ((0, k), (k, 0), (k, k), (k, -k)):
                before = inv[k - dy:inv.shape[0] - k - dy, k - dx:inv.shape[1] - k - dx]
                after = inv[k + dy:inv.shape[0] - k + dy, k + dx:inv.shape[1] - k + dx]
                curvature = (before + after - 2.0 * centre) / centre
                crease[k:-k, k:-k] |= curvature > self.settings.concavity
        return crease

    def _color_edges(self, rgb: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        # Scharr over a 3x3 window, scaled so that a clean step of d grey levels gives about d.
        gx = cv2.Scharr(gray, cv2.CV_32F, 1, 0) / 16.0
        gy = cv2.Scharr(gray, cv2.CV_32F, 0, 1) / 16.0
        return np.hypot(gx, gy) > self.settings.color_edge


def depth_edges(depth: np.ndarray, depth_jump: float) -> np.ndarray:
    """Pixels on either side of a relative depth step larger than ``depth_jump`` between 4-neighbours
    (missing depth steps nowhere)."""
    edges = np.zeros(depth.shape, bool)
    with np.errstate(invalid="ignore"):
        for axis in (0, 1):
            a = depth[:-1, :] if axis == 0 else depth[:, :-1]
            b = depth[1:, :] if axis == 0 else depth[:, 1:]
            step = np.abs(a - b) > depth_jump * np.fmin(a, b)
            if axis == 0:
                edges[:-1, :] |= step
                edges[1:, :] |= step
            else:
                edges[:, :-1] |= step
                edges[:, 1:] |= step
    return edges


def components(keep: np.ndarray, min_pixels: int) -> np.ndarray:
    """(H, W) int32 labels of the 4-connected regions of ``keep`` with at least ``min_pixels`` pixels; 0 elsewhere."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(keep.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    small = stats[:, cv2.CC_STAT_AREA] < min_pixels
    small[0] = True  # component 0 is the cut itself
    return np.where(small[labels], 0, labels).astype(np.int32)


def absorb_unlabelled(labels: np.ndarray, depth: np.ndarray, valid: np.ndarray, depth_jump: float) -> np.ndarray:
    """Give unlabelled pixels (cuts, small fragments) the label of the nearest segment if depths agree
    (within ``depth_jump`` relative); pixels without valid depth stay unlabelled."""
    unlabeled = labels == 0
    if not unlabeled.any() or unlabeled.all():
        return labels
    _, nearest = cv2.distanceTransformWithLabels(unlabeled.view(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    # DIST_LABEL_PIXEL numbers the zero (labelled) pixels in row-major order, starting at 1.
    seeds = np.flatnonzero(~unlabeled.ravel())
    source = seeds[nearest.ravel() - 1].reshape(labels.shape)
    source_depth = depth.ravel()[source]
    with np.errstate(invalid="ignore"):
        agrees = np.abs(depth - source_depth) <= depth_jump * np.fmin(depth, source_depth)
    take = unlabeled & valid & agrees
    out = labels.copy()
    out[take] = labels.ravel()[source[take]]
    return out


def merge_fragments(labels: np.ndarray, depth: np.ndarray, min_pixels: int, depth_jump: float) -> np.ndarray:
    """``labels`` with each segment of fewer than ``min_pixels`` pixels merged into the neighbour it continues
    (depth within ``depth_jump`` relative across at least half its border, the most of it with that one):
    real clutter's fragments, a surface cut up by spurious outlines, cost a frame time and help nobody. A
    small segment standing apart in depth is a small object and stays, whole. A fragment merges only into
    a larger neighbour (of two alike, the lower id), so chains end and two fragments never swap."""
    # Dense ids (the vote tables are n x n) by a lookup table: np.unique would sort every pixel.
    seen = np.bincount(labels.ravel()) > 0
    seen[0] = True   # keep 0 as "no instance"
    present = np.flatnonzero(seen)
    table = np.zeros(seen.size, np.int32)
    table[present] = np.arange(present.size, dtype=np.int32)
    labels = table[labels]
    counts = np.bincount(labels.ravel(), minlength=present.size)
    small = counts < min_pixels
    small[0] = False
    if not small.any():
        return present[labels].astype(np.int32)
    n = counts.size
    border, agreeing = np.zeros(n), np.zeros(n * n)
    for la, lb, da, db, _, _ in neighbour_pairs(labels, depth, None, 1):
        with np.errstate(invalid="ignore"):
            agree = (np.abs(da - db) <= depth_jump * np.fmin(da, db)).astype(np.float64)
        for mine, other in ((la, lb), (lb, la)):
            keep = small[mine]
            border += np.bincount(mine[keep], minlength=n)
            agreeing += np.bincount(mine[keep] * n + other[keep], weights=agree[keep], minlength=n * n)
    votes = agreeing.reshape(n, n)
    ids = np.arange(n)
    bigger, alike = counts[None, :] > counts[:, None], counts[None, :] == counts[:, None]
    larger = bigger | (alike & (ids[None, :] < ids[:, None]))   # [mine, other]: other may take mine
    votes = np.where(larger, votes, -1.0)
    best = votes.argmax(axis=1)
    merge = small & (votes[ids, best] >= 0.5 * np.maximum(border, 1)) & (border > 0)
    target = np.where(merge, best, ids)
    for _ in range(n):   # a fragment merged into a (larger) fragment goes where that one goes
        following = target[target]
        if np.array_equal(following, target):
            break
        target = following
    return present[target[labels]].astype(np.int32)


# label_a, label_b, depth_a, depth_b, occluder_a, occluder_b
Pairs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def neighbour_pairs(labels: np.ndarray, depth: np.ndarray, occluder: np.ndarray | None, gap: int) -> Iterator[Pairs]:
    """Yield (label_a, label_b, depth_a, depth_b, occluder_a, occluder_b) for pixel pairs ``gap`` apart with
    different non-zero labels (the occluder values None without a learned map)."""
    for a_sl, b_sl in (((slice(None), slice(None, -gap)), (slice(None), slice(gap, None))),
                       ((slice(None, -gap), slice(None)), (slice(gap, None), slice(None)))):
        la, lb = labels[a_sl], labels[b_sl]
        differ = (la != lb) & (la > 0) & (lb > 0)
        oa: np.ndarray | None = None
        ob: np.ndarray | None = None
        if occluder is not None:
            oa, ob = occluder[a_sl][differ], occluder[b_sl][differ]
        yield la[differ], lb[differ], depth[a_sl][differ], depth[b_sl][differ], oa, ob


def split_support_planes(segmentation: Segmentation, depth: np.ndarray, intrinsics: CameraIntrinsics,
                         min_area: float, tolerance: float, min_pixels: int) -> Segmentation:
    """Large planes spanning the view become structure, and what stands on them becomes objects of its own.

    A segment of at least ``min_area`` of the image and half its width whose pixels mostly (PLANE_SHARE)
    lie within ``tolerance`` relative distance of one plane is a table top, a floor or a wall: kind
    structure (a network trained to call floors and walls structure leaves tables as objects; a geometric
    segmenter names nothing). Its pixels standing out in front of that plane by more than twice
    ``tolerance`` are things on it that the segmentation did not cut off (a box whose contact with the table
    shows no outline): each 4-connected group of at least ``min_pixels`` becomes an instance of kind object.
    ``min_area`` 0 disables."""
    labels, ids = segmentation.labels, segmentation.ids
    if min_area <= 0 or ids.size == 0:
        return segmentation
    counts = np.bincount(labels.ravel(), minlength=int(ids.max()) + 1)
    structure = np.zeros(ids.size, bool) if segmentation.structure is None else segmentation.structure.copy()
    width = labels.shape[1]
    x_n, y_n = normalized_coords(intrinsics)
    windows = label_windows(labels)
    out, next_id, added = labels, int(ids.max()) + 1, 0
    for k in np.flatnonzero(counts[ids] >= min_area * labels.size).tolist():
        r0, c0, r1, c1 = windows.get(int(ids[k]), (0, 0, 0, 0))
        if c1 - c0 < width / 2:
            continue
        window = (slice(r0, r1), slice(c0, c1))
        z = depth[window]
        rows, cols = np.nonzero((labels[window] == ids[k]) & np.isfinite(z))
        plane = plane_of(x_n[window[1]][cols], y_n[window[0]][rows], z[rows, cols], PLANE_POINTS, tolerance,
                         PLANE_SHARE)
        if plane is None:
            continue
        relative = plane[1]   # > 0: in front of the plane
        structure[k] = True
        standing = np.zeros(z.shape, bool)
        ahead = relative > 2.0 * tolerance
        standing[rows[ahead], cols[ahead]] = True
        parts = components(standing, min_pixels)
        if parts.any():
            if out is labels:
                out = labels.copy()
            found = np.unique(parts[parts > 0])
            table = np.zeros(int(found.max()) + 1, np.int32)
            table[found] = np.arange(next_id, next_id + found.size)
            view = out[window]
            view[parts > 0] = table[parts[parts > 0]]
            next_id, added = next_id + found.size, added + found.size
    if not added:
        return dataclasses.replace(segmentation, structure=structure)
    # New instances: objects (score 1: geometry, not the network, found them).
    new_ids = np.arange(int(ids.max()) + 1, next_id, dtype=np.int32)
    present = np.bincount(out.ravel(), minlength=next_id)[ids] > 0   # a plane may have lost every pixel
    return Segmentation(out, np.concatenate([ids[present], new_ids]),
                        np.concatenate([segmentation.scores[present], np.ones(added, np.float32)]),
                        tuple(n for n, kept in zip(segmentation.class_names, present, strict=True) if kept)
                        + ("object",) * added if segmentation.class_names else (),
                        segmentation.occluder, np.concatenate([structure[present], np.zeros(added, bool)]))


def present_only(segmentation: Segmentation) -> Segmentation:
    """``segmentation`` without the ids its labels no longer show (a border refinement can take every pixel
    of a speck): ids, scores, class names and kinds stay aligned."""
    ids = segmentation.ids
    if ids.size == 0:
        return segmentation
    present = segmentation.pixel_counts[ids] > 0
    if present.all():
        return segmentation
    names = segmentation.class_names and tuple(n for n, kept in zip(segmentation.class_names, present, strict=True)
                                               if kept)
    return dataclasses.replace(segmentation, ids=ids[present], scores=segmentation.scores[present], class_names=names,
                               structure=None if segmentation.structure is None else segmentation.structure[present])


def relabel(labels: np.ndarray) -> Segmentation:
    """Consecutive ids 1..N so that ids stay small (they travel as uint16 in the cloud); 0 stays 0.
    A lookup table, not np.unique: sorting every pixel cost ~25 ms at 640x480."""
    present = np.bincount(labels.ravel()) > 0
    present[0] = False
    count = int(present.sum())
    table = np.zeros(present.size, np.int32)
    table[present] = np.arange(1, count + 1, dtype=np.int32)
    dense = table[labels]
    new_ids = np.arange(1, count + 1, dtype=np.int32)
    return Segmentation(labels=dense, ids=new_ids, scores=np.ones(count, np.float32))
