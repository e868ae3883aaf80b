"""Object-centred crops: what the learned amodal stages see of one instance, and how results go back.

Inputs are geometry first (masks and depth, no colour) so that models trained on synthetic rooms
transfer to real RGB-D frames. Depth is made scale-free: ``log(z / z0)`` with ``z0`` the median
visible depth of the instance. The "front" depth is the surface directly in front of the instance:
the observed depth, except where instances in front of it are themselves completed (peeled), where
it is the deepest completed surface that still lies in front. All crops are square, ``size`` pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..core.types import Window, overlap

CROP_SIZE = 48
LOG_RANGE = 1.5        # log depth ratios are clipped to +-this (a factor of 4.5 around z0)
INPUT_CHANNELS = 5     # visible, occluder, front depth, front depth valid, border (outside the image)
FILL_CHANNEL = INPUT_CHANNELS       # the depth network's extra channel: the nearest-visible fill it corrects
DEPTH_CHANNELS = INPUT_CHANNELS + 1
MEDIAN_POINTS = 16384  # z0 of a larger part: the median of this many of its pixels


@dataclass
class CropBox:
    """A square window (may extend past the image) and the resize factor to the crop."""

    top: int
    left: int
    side: int
    size: int

    @classmethod
    def around(cls, mask: np.ndarray, grow: float, size: int = CROP_SIZE) -> CropBox:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return cls.around_window((int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1), grow, size)

    @classmethod
    def around_window(cls, window: tuple[int, int, int, int], grow: float, size: int = CROP_SIZE) -> CropBox:
        """Square, centred on ``window`` (row0, col0, row1, col1: a mask's bounding window), its longer side
        grown by ``grow`` on each side."""
        r0, c0, r1, c1 = window
        h, w = r1 - r0, c1 - c0
        side = int(np.ceil(max(h, w) * (1.0 + 2.0 * grow))) + 2
        centre_r, centre_c = (r0 + r1 - 1) / 2.0, (c0 + c1 - 1) / 2.0
        return cls(int(round(centre_r - side / 2.0)), int(round(centre_c - side / 2.0)), side, size)

    def shifted(self, rows: int, cols: int) -> CropBox:
        """The same square in the coordinates of an array whose (0, 0) is the image's (rows, cols): crops of
        a window of the image, with ``fill`` beyond the window."""
        return CropBox(self.top - rows, self.left - cols, self.side, self.size)

    def bounds(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The part of the window inside an image of ``shape``: (row0, col0, row1, col1) in the image."""
        return (max(self.top, 0), max(self.left, 0), min(self.top + self.side, shape[0]),
                min(self.left + self.side, shape[1]))

    def _samples(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Image rows and columns that the crop's pixels sample (nearest, as cv2.INTER_NEAREST resizing
        the window would), and which of them lie inside an image of ``shape``."""
        # cv2's own arithmetic (the inverse of the inverse scale), so crops equal those networks trained on.
        steps = np.minimum(
            np.floor(np.arange(self.size) * (1.0 / (self.size / self.side))).astype(np.int64), self.side - 1
        )
        rows, cols = self.top + steps, self.left + steps
        return rows, cols, (rows >= 0) & (rows < shape[0]), (cols >= 0) & (cols < shape[1])

    def take(self, image: np.ndarray, fill: float) -> np.ndarray:
        """The window of ``image`` (any numeric or bool dtype; ``fill`` outside it) sampled to size x size
        float32, nearest. Only the sampled pixels are read: cost independent of the window and image."""
        rows, cols, row_in, col_in = self._samples(image.shape)
        crop = np.full((self.size, self.size), fill, np.float32)
        crop[np.ix_(row_in, col_in)] = image[np.ix_(rows[row_in], cols[col_in])]
        return crop

    def take_outside(self, shape: tuple[int, int]) -> np.ndarray:
        """size x size float32: 1 where the crop shows pixels beyond the image border."""
        _, _, row_in, col_in = self._samples(shape)
        return (~(row_in[:, None] & col_in[None, :])).astype(np.float32)

    def put(self, crop: np.ndarray, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray]:
        """The crop resized back to the window, clipped to an image of ``shape``: (image slices, values)."""
        h, w = shape
        r0, c0 = self.top, self.left
        rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r0 + self.side, h), min(c0 + self.side, w)
        # cv2.resize's bilinear map (dst x -> src (x + 0.5) * scale - 0.5), evaluated on the part inside the
        # image only: a wall's window can be 1500 pixels a side, most of it beyond the frame.
        scale = self.size / self.side
        warp = np.array([[scale, 0.0, (cc0 - c0 + 0.5) * scale - 0.5],
                         [0.0, scale, (rr0 - r0 + 0.5) * scale - 0.5]])
        values = cv2.warpAffine(crop.astype(np.float32), warp, (cc1 - cc0, rr1 - rr0),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        return (slice(rr0, rr1), slice(cc0, cc1)), values


def peeled_front(depth: np.ndarray, window: Window, surfaces: list[tuple[Window, np.ndarray]]) -> np.ndarray:
    """The observed ``depth`` (of ``window``) with the completed surfaces in front peeled in: per pixel the
    deepest of them (they all lie in front of the instance), else the observed depth. ``surfaces``: each
    surface (NaN where it has none) with its window; only their overlap with ``window`` is touched."""
    deepest: np.ndarray | None = None
    for part_window, part in surfaces:
        where = overlap(window, part_window)
        if where is None:
            continue
        if deepest is None:
            deepest = np.full(depth.shape, np.nan, np.float32)
        here, there = where
        np.fmax(deepest[here], part[there], out=deepest[here])
    if deepest is None:
        return depth
    return np.where(np.isfinite(deepest), np.fmax(deepest, depth), depth).astype(np.float32)


def reference_depth(depth: np.ndarray, visible: np.ndarray) -> float | None:
    """z0: the median valid depth of the visible part (of an evenly spread subset of a large one); None
    if it has none. Works inside the part's bounding box: a wall's median costs no more than a cup's."""
    rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    if rows.size == 0:
        return None
    # A large box is read on a grid of about MEDIAN_POINTS pixels.
    step = max(1, int(np.sqrt(rows.size * cols.size / MEDIAN_POINTS)))
    box = (slice(rows[0], rows[-1] + 1, step), slice(cols[0], cols[-1] + 1, step))
    values = depth[box][visible[box]]
    values = values[np.isfinite(values) & (values > 0)]
    if values.size > MEDIAN_POINTS:
        values = values[::values.size // MEDIAN_POINTS]
    return float(np.median(values)) if values.size else None


def log_ratio(depth: np.ndarray, z0: float) -> tuple[np.ndarray, np.ndarray]:
    """(clipped log(depth / z0) with 0 where unknown, valid mask) as float32."""
    valid = np.isfinite(depth) & (depth > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(valid, np.log(np.where(valid, depth, 1.0) / z0), 0.0)
    return np.clip(value, -LOG_RANGE, LOG_RANGE).astype(np.float32), valid.astype(np.float32)


def object_inputs(box: CropBox, visible: np.ndarray, occluder: np.ndarray, front: np.ndarray,
                  z0: float, image_shape: tuple[int, int] | None = None,
                  origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(INPUT_CHANNELS, size, size) float32 network input of one instance. ``visible``, ``occluder`` and
    ``front`` are the image (``image_shape``, default theirs), or a window of it at ``origin`` that holds
    the part of ``box`` inside the image."""
    local = box.shifted(*origin)
    value, valid = log_ratio(local.take(front, np.nan), z0)   # nearest sampling commutes with the log
    return np.stack([local.take(visible, 0.0), local.take(occluder, 0.0), value, valid,
                     box.take_outside(image_shape or visible.shape)])


def with_nearest_fill(inputs: np.ndarray) -> np.ndarray:
    """(N, INPUT_CHANNELS, S, S) -> (N, DEPTH_CHANNELS, S, S): each crop's visible log depth extended to
    every pixel from its nearest valid visible pixel (0 = z0 where the crop has none). Computed on the
    crop itself, so training (from cached crops) and inference see the same baseline."""
    n, _, size, _ = inputs.shape
    fill = np.zeros((n, 1, size, size), np.float32)
    for k in range(n):   # one cv2 distance transform per crop: ~50 us at 48 x 48
        known = (inputs[k, 0] > 0.5) & (inputs[k, 3] > 0.5)
        if known.any():
            _, nearest = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                         labelType=cv2.DIST_LABEL_PIXEL)
            # Labels number the known pixels in raster order, from 1.
            fill[k, 0] = np.concatenate([[0.0], inputs[k, 2][known]])[nearest]
    return np.concatenate([inputs.astype(np.float32, copy=False), fill], axis=1)
