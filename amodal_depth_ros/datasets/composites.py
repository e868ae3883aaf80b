"""Real-image amodal composites (the Amodal NYU-V2 / ADIW recipe): an occluder pasted in front of a
region of a real RGB-D frame; the frame's own depth under the occluder is the truth of the hidden part.

Targets are compact regions that the training-free ``GeometricSegmenter`` finds on the frame's depth.
Occluders are either such a region cut out of another frame of the set ("cutout") or a generated,
textured smooth shape ("generated"). Each composite is a ``GroundTruthFrame`` with two objects,
1 "target" and 2 "occluder", and the occlusion pair (2, 1). A set on disk is frames/NNNNNN.npz
(``GroundTruthFrame.save``), previews/NNNNNN.png and index.json, written last: no index, no set.
"""
from __future__ import annotations

import colorsys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..core import config
from ..core.types import RGBDFrame
from ..groundtruth import GroundTruthFrame
from ..pipeline import STAGE_FACTORIES
from .rgbd_folder import RGBDSample

TARGET_AREA = (0.01, 0.20)    # fraction of the image
MIN_VALID_DEPTH = 0.9         # fraction of the target with a depth reading: its hidden part needs truth
MAX_BORDER_OUTLINE = 0.1      # fraction of the outline on the image border: cut-off regions are not objects
MIN_SOLIDITY = 0.6            # area / convex hull area
HIDDEN_RATIO = (0.2, 0.7)
OCCLUDER_AREA = (0.5, 1.3)  # occluder area / target area: small enough to leave some visible, large enough to hide 70 %
BASE_FACTOR = (0.55, 0.85)    # occluder base depth / nearest depth it covers
MIN_BASE_M = 0.3
RELIEF_FRACTION = 0.1  # |relief| <= this * nearest covered depth, so with BASE_FACTOR the occluder stays in front
PLACEMENT_TRIES = 8
ATTEMPTS = 3                  # (target, occluder) draws per composite before giving up on it


@dataclass
class Occluder:
    rgb: np.ndarray      # (h, w, 3) uint8, meaningful inside mask
    mask: np.ndarray     # (h, w) bool
    relief: np.ndarray   # (h, w) float32 metres relative to the occluder's base depth, 0 outside mask
    kind: str
    origin: str | None   # "<frame name>#<target index>" for a cutout


def find_targets(sample: RGBDSample) -> list[np.ndarray]:
    """(H, W) bool masks of the compact, mostly valid, object-sized segments of ``sample``, in label order."""
    settings = config.Settings.from_values()
    frame = RGBDFrame(sample.rgb, sample.intrinsics, sample.depth)
    depth = STAGE_FACTORIES["visible_depth"]["topic"](settings)(frame)   # same range limits as the node
    labels = STAGE_FACTORIES["segmentation"]["geometric"](settings)(frame, depth).labels
    h, w = labels.shape
    areas = np.bincount(labels.ravel())
    valid = np.bincount(labels.ravel(), weights=np.isfinite(sample.depth).ravel(), minlength=areas.size)
    sized = (areas >= TARGET_AREA[0] * h * w) & (areas <= TARGET_AREA[1] * h * w) & (valid >= MIN_VALID_DEPTH * areas)
    targets = []
    for label in np.flatnonzero(sized[1:]) + 1:
        mask = labels == label
        if _border_fraction(mask, np.isfinite(depth)) <= MAX_BORDER_OUTLINE and _solidity(mask) >= MIN_SOLIDITY:
            targets.append(mask)
    return targets


def _border_fraction(mask: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of the outline next to the image border or to unmeasured depth connected to it (NYU's
    blank margin, say): along such a rim the region may go on out of view, so it is no whole object."""
    padded = np.pad(~valid, 1, constant_values=True).view(np.uint8)
    _, labels = cv2.connectedComponents(padded, connectivity=4)
    outside = cv2.dilate((labels == labels[0, 0]).view(np.uint8), np.ones((3, 3), np.uint8))[1:-1, 1:-1] > 0
    # Eroded with a blank margin, so that pixels on the image border belong to the outline.
    inner = cv2.erode(np.pad(mask, 1).view(np.uint8), np.ones((3, 3), np.uint8))[1:-1, 1:-1]
    outline = mask & (inner == 0)
    return float((outline & outside).sum()) / max(int(outline.sum()), 1)


def _solidity(mask: np.ndarray) -> float:
    hull = cv2.convexHull(cv2.findNonZero(mask.view(np.uint8)))
    filled = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(filled, hull, 1)   # pixel counts on both sides: contourArea would miss half the rim
    return float(mask.sum()) / max(int(filled.sum()), 1)


def cutout(sample: RGBDSample, mask: np.ndarray, origin: str | None = None) -> Occluder:
    """The region ``mask`` of ``sample`` as an occluder: its pixels and its depth relief about its median."""
    # One pixel in from the segment's rim: rim pixels mix colours and carry flying depths.
    eroded = cv2.erode(mask.view(np.uint8), np.ones((3, 3), np.uint8))
    count, parts, stats, _ = cv2.connectedComponentsWithStats(eroded, connectivity=4)
    if count > 1:   # the erosion may leave crumbs: keep one piece (or, for a sliver it wiped out, the original)
        mask = parts == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    mask, depth = mask[crop], sample.depth[crop]
    inside = mask & np.isfinite(depth)
    relief = np.zeros(mask.shape, np.float32)   # holes in the reading: at the median
    if inside.any():
        offsets = depth[inside] - np.median(depth[inside])
        relief[inside] = np.clip(offsets, *np.percentile(offsets, (2, 98)))   # robust to the odd outlier reading
    return Occluder(sample.rgb[crop].copy(), mask, relief, "cutout", origin)


def generated(rng: np.random.Generator, height: int, width: int) -> Occluder:
    """A smooth random polygon (5-12 vertices) or ellipse with a random colour, stripes or noise, and a
    tilted-plane or dome relief of a few cm."""
    h, w = max(height, 8), max(width, 8)
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (u - (w - 1) / 2) / (w / 2), (v - (h - 1) / 2) / (h / 2)   # [-1, 1] across the box
    if rng.random() < 0.5:
        mask = u * u + v * v <= 1.0
    else:
        n = int(rng.integers(5, 13))
        angles = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n + rng.uniform(0, 2 * np.pi)
        radii = rng.uniform(0.55, 1.0, n)
        points = np.stack([(1 + radii * np.cos(angles)) * (w - 1) / 2, (1 + radii * np.sin(angles)) * (h - 1) / 2], 1)
        poly = cv2.fillPoly(np.zeros((h, w), np.float32), [np.rint(points).astype(np.int32)], 1.0)
        mask = cv2.GaussianBlur(poly, (0, 0), 0.06 * min(h, w)) > 0.5   # rounds the corners off
    if rng.random() < 0.5:
        theta, period = rng.uniform(0, np.pi), rng.uniform(4, 16)
        pattern = np.sin(2 * np.pi * ((u * w / 2) * np.cos(theta) + (v * h / 2) * np.sin(theta)) / period)
    else:
        pattern = cv2.resize(
            rng.uniform(-1, 1, (int(rng.integers(3, 11)), int(rng.integers(3, 11)))).astype(np.float32),
            (w, h),
            interpolation=cv2.INTER_CUBIC,
        ).clip(-1, 1)
    colour = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.35, 0.9)), np.float32)
    shade = 1.0 + rng.uniform(0.15, 0.4) * pattern
    rgb = np.clip(255.0 * colour * shade[..., None] + 0.5, 0, 255).astype(np.uint8)
    amplitude = rng.uniform(0.01, 0.05)
    if rng.random() < 0.5:
        tilt = rng.normal(size=2)
        relief = amplitude * (u * tilt[0] + v * tilt[1]) / np.linalg.norm(tilt)
    else:
        relief = -amplitude * (1.0 - np.minimum(u * u + v * v, 1.0))   # bulging towards the camera
    relief = np.where(mask, relief - np.median(relief[mask]), 0.0).astype(np.float32)
    return Occluder(rgb, mask, relief, "generated", None)


def _resized(occ: Occluder, scale: float) -> Occluder:
    size = (max(int(round(occ.mask.shape[1] * scale)), 1), max(int(round(occ.mask.shape[0] * scale)), 1))
    mask = cv2.resize(occ.mask.view(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    # Relief is metres of the object, not pixels: resampled, not rescaled.
    relief = np.where(mask, cv2.resize(occ.relief, size, interpolation=cv2.INTER_LINEAR), 0.0).astype(np.float32)
    return Occluder(cv2.resize(occ.rgb, size, interpolation=cv2.INTER_LINEAR), mask, relief, occ.kind, occ.origin)


def _place(rng: np.random.Generator, target: np.ndarray, occ: Occluder,
           depth: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """(window, occluder depth) hiding HIDDEN_RATIO of ``target`` and in front of all it covers, or None."""
    (h, w), (H, W) = occ.mask.shape, target.shape
    if h >= H or w >= W or not occ.mask.any():
        return None
    area = int(target.sum())
    # Target pixels covered at every offset at once; the float correlation is exact to well below a pixel.
    covered = cv2.matchTemplate(target.astype(np.float32), occ.mask.astype(np.float32), cv2.TM_CCORR) / area
    covered = covered.ravel()
    candidates = np.flatnonzero((covered >= HIDDEN_RATIO[0] - 0.01) & (covered <= HIDDEN_RATIO[1] + 0.01))
    if candidates.size == 0:
        return None
    # Offsets that hide little are the most numerous (the occluder grazing the rim): aim at a uniformly
    # drawn hidden ratio, or as close to it as this occluder gets, so heavy occlusion is as common as light.
    miss = np.abs(covered[candidates] - rng.uniform(*HIDDEN_RATIO))
    candidates = candidates[miss <= miss.min() + 0.05]
    for flat in rng.choice(candidates, size=min(PLACEMENT_TRIES, candidates.size), replace=False):
        y, x = divmod(int(flat), W - w + 1)
        window = (slice(y, y + h), slice(x, x + w))
        hidden = float((target[window] & occ.mask).sum()) / area
        under = depth[window][occ.mask]
        under = under[np.isfinite(under)]
        if not HIDDEN_RATIO[0] <= hidden <= HIDDEN_RATIO[1] or under.size == 0:
            continue
        nearest = float(under.min())   # everything covered, not only the target: the occluder hides it all
        peak = float(np.abs(occ.relief).max())
        relief = occ.relief * min(1.0, RELIEF_FRACTION * nearest / peak) if peak > 0 else occ.relief
        base = max(rng.uniform(*BASE_FACTOR) * nearest, MIN_BASE_M)
        occ_depth = np.where(occ.mask, base + relief, np.nan).astype(np.float32)
        if float(np.nanmax(occ_depth)) < nearest:
            return window, occ_depth
    return None


def compose(sample: RGBDSample, target: np.ndarray, occ: Occluder, window: tuple[slice, slice],
            occ_depth: np.ndarray) -> GroundTruthFrame:
    """The composite frame: ``occ`` with depth ``occ_depth`` (its box's shape) pasted at ``window``."""
    h, w = target.shape
    occ_mask = np.zeros((h, w), bool)
    occ_mask[window] = occ.mask
    occ_full = np.full((h, w), np.nan, np.float32)
    occ_full[window] = np.where(occ.mask, occ_depth, np.nan)
    # Feather inside the mask only (zero padding = outside): pixels outside the occluder keep the source.
    padded = np.pad(occ.mask.astype(np.float32), 1)
    alpha = np.where(occ.mask, cv2.blur(padded, (3, 3))[1:-1, 1:-1], 0.0)[..., None]
    rgb = sample.rgb.copy()
    rgb[window] = np.clip(alpha * occ.rgb + (1.0 - alpha) * rgb[window] + 0.5, 0, 255).astype(np.uint8)
    ids = np.where(occ_mask, 2, np.where(target, 1, 0)).astype(np.int32)
    target_depth = np.where(target, sample.depth, np.nan).astype(np.float32)
    return GroundTruthFrame(rgb, np.where(occ_mask, occ_full, sample.depth).astype(np.float32), ids,
                            np.stack([target, occ_mask]), np.stack([target_depth, occ_full]), ("target", "occluder"),
                            sample.intrinsics, np.array([[2, 1]], np.int32), np.zeros(2, bool))


def build_composites(samples: Sequence[RGBDSample], per_frame: int,
                     seed: int) -> Iterator[tuple[GroundTruthFrame, dict]]:
    """Up to ``per_frame`` composites per frame (fewer where no placement works), with provenance dicts.
    Deterministic: composite k of frame i draws from ``np.random.default_rng([seed, i, k])``."""
    cutouts: dict[int, list[Occluder]] = {}   # crops only: full-size masks of every frame would not scale

    def cutouts_of(j: int, targets: list[np.ndarray] | None = None) -> list[Occluder]:
        if j not in cutouts:
            masks = find_targets(samples[j]) if targets is None else targets
            cutouts[j] = [cutout(samples[j], m, f"{samples[j].name}#{t}") for t, m in enumerate(masks)]
        return cutouts[j]

    for i, sample in enumerate(samples):
        targets = find_targets(sample)
        cutouts_of(i, targets)
        for k in range(per_frame if targets else 0):
            made = _one(np.random.default_rng([seed, i, k]), samples, i, targets, cutouts_of)
            if made is not None:
                frame, provenance = made
                yield frame, {"source": sample.name, "frame_index": i, "k": k, **provenance}


def _one(rng: np.random.Generator, samples: Sequence[RGBDSample], i: int, targets: list[np.ndarray],
         cutouts_of: Callable[[int], list[Occluder]]) -> tuple[GroundTruthFrame, dict] | None:
    sample = samples[i]
    for _ in range(ATTEMPTS):
        t = int(rng.integers(len(targets)))
        target, area = targets[t], int(targets[t].sum())
        occ = None
        if rng.random() < 0.5:
            # Another frame when there is one; a single-frame set cuts another region of the same frame.
            others = [j for j in range(len(samples)) if j != i] or [i]
            j = others[int(rng.integers(len(others)))]
            pool = [c for n, c in enumerate(cutouts_of(j)) if (j, n) != (i, t)]
            if pool:
                occ = pool[int(rng.integers(len(pool)))]
                occ = _resized(occ, float(np.sqrt(rng.uniform(*OCCLUDER_AREA) * area / max(int(occ.mask.sum()), 1))))
        if occ is None:
            side = np.sqrt(rng.uniform(*OCCLUDER_AREA) * area / (np.pi / 4))   # ellipse of that area in a side^2 box
            aspect = float(np.exp(rng.uniform(-0.5, 0.5)))
            occ = generated(rng, int(side / np.sqrt(aspect)), int(side * np.sqrt(aspect)))
        placed = _place(rng, target, occ, sample.depth)
        if placed is None:
            continue
        frame = compose(sample, target, occ, *placed)
        visible = float(frame.visible_mask(1).sum()) / area
        return frame, {"target_index": t, "occluder": occ.kind, "occluder_source": occ.origin, "target_area": area,
                       "visible_ratio": round(visible, 4),
                       "occluder_depth_m": round(float(np.median(frame.depth[frame.amodal_mask(2)])), 4)}
    return None
