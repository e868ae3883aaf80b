"""Frames of the real occluder benchmark: an occluder pasted in front of a real RGB-D frame wherever it
covers valid depth, the truth being the frame's own depth under it: every hidden pixel, whatever surface
it belongs to. Neither the placement nor the truth involves a segmenter (``composites`` picks its targets
with the geometric one), so segmenters are compared on equal terms.

Occluders are ``composites.generated`` shapes (smooth polygons and ellipses, textured, a few cm of relief)
of 4-16 % of the image, placed in front of the nearest surface they cover.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.types import RGBDFrame
from .composites import BASE_FACTOR, MIN_BASE_M, RELIEF_FRACTION, generated
from .rgbd_folder import RGBDSample

OCCLUDER_AREA = (0.04, 0.16)   # fraction of the image
MIN_VALID = 0.8                # of the covered pixels with a depth reading: the truth of the hidden part
PLACEMENT_TRIES = 20


@dataclass
class OccludedFrame:
    source: str              # where the frame came from (a folder's name)
    name: str                # "<source frame>#<k>"
    frame: RGBDFrame         # the composite: the occluder's colour and depth pasted in
    occluder: np.ndarray     # (H, W) bool
    truth: np.ndarray        # (H, W) float32: the source frame's depth under the occluder, NaN elsewhere or unknown

    @property
    def hidden(self) -> np.ndarray:
        """The pixels scored: under the occluder, with a true depth."""
        return self.occluder & np.isfinite(self.truth)


def occluded_frames(samples: Sequence[RGBDSample], per_frame: int, seed: int,
                    source: str = "") -> Iterator[OccludedFrame]:
    """Up to ``per_frame`` composites of each sample (fewer where no placement works). Deterministic:
    composite k of frame i draws from ``np.random.default_rng([seed, i, k])``."""
    for i, sample in enumerate(samples):
        for k in range(per_frame):
            made = _one(np.random.default_rng([seed, i, k]), sample)
            if made is not None:
                yield OccludedFrame(source, f"{sample.name}#{k}", *made)


def _one(rng: np.random.Generator, sample: RGBDSample) -> tuple[RGBDFrame, np.ndarray, np.ndarray] | None:
    height, width = sample.depth.shape
    valid = np.isfinite(sample.depth)
    for _ in range(PLACEMENT_TRIES):
        side = np.sqrt(rng.uniform(*OCCLUDER_AREA) * height * width / (np.pi / 4))
        aspect = float(np.exp(rng.uniform(-0.5, 0.5)))
        h, w = int(side / np.sqrt(aspect)), int(side * np.sqrt(aspect))
        if not (8 <= h < height and 8 <= w < width):
            continue
        occ = generated(rng, h, w)
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        window = (slice(top, top + h), slice(left, left + w))
        covered = occ.mask & valid[window]
        if covered.sum() < MIN_VALID * occ.mask.sum():
            continue
        nearest = float(sample.depth[window][covered].min())
        peak = float(np.abs(occ.relief).max())
        relief = occ.relief * min(1.0, RELIEF_FRACTION * nearest / peak) if peak > 0 else occ.relief
        occ_depth = np.where(occ.mask, max(rng.uniform(*BASE_FACTOR) * nearest, MIN_BASE_M) + relief, np.nan)
        if not float(np.nanmax(occ_depth)) < nearest:
            continue
        mask = np.zeros((height, width), bool)
        mask[window] = occ.mask
        depth = sample.depth.copy()
        depth[window][occ.mask] = occ_depth[occ.mask]
        rgb = sample.rgb.copy()
        rgb[window][occ.mask] = occ.rgb[occ.mask]
        truth = np.where(mask, sample.depth, np.float32(np.nan)).astype(np.float32)
        return RGBDFrame(rgb, sample.intrinsics, depth.astype(np.float32)), mask, truth
    return None
