"""Training material of the segmentation network: label maps cut from ground-truth frames, a cache of
them on disk, and the augmentations that turn a cached frame into a sensor-like training crop.

Per frame (``frame_labels``): the visible instance ids (0 = not labelled: the unlabelled part of a
real-image composite), the structure map (room structure or object, 255 = unknown) and the occluder
map: near an instance outline, 1 where the pixel's surface hides the neighbouring instance (whose
amodal mask covers it), 0 where it does not, 255 away from outlines. Outlines between two room
surfaces are no occlusions (the generator's walls and floor run on behind one another; real rooms'
do not). The outline map itself is computed after augmentation, from the ids.

A training crop (``training_crop``) is a random window, rescaled (apparent focal lengths vary), maybe
mirrored, with RealSense/Kinect-like depth (``synthetic.sensor``) on rendered frames, colour jitter, and
the network's features computed exactly as at run time (``networks.segmentation_net``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.types import CameraIntrinsics
from ..errors import DataError
from ..groundtruth import GroundTruthFrame
from ..networks.segmentation_net import segmentation_inputs
from ..synthetic.sensor import rgbd_camera_depth, structured_light_noise

UNKNOWN = 255
OCCLUDER_REACH = 2          # pixels from an outline that get an occluder label
FIELDS = ("rgb", "depth", "ids", "structure", "occluder", "intrinsics", "rendered")


def frame_labels(truth: GroundTruthFrame, partial: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids uint8, structure uint8, occluder uint8) of ``truth`` (see the module docstring). ``partial``:
    only the labelled instances are known (composites), so the structure map is unknown everywhere."""
    ids = truth.instance_ids.astype(np.int64)
    if ids.max() > 254:
        raise DataError(f"{ids.max()} instances: at most 254 fit the uint8 cache")
    stuff = np.concatenate([[False], truth.stuff.astype(bool)])
    structure = np.full(ids.shape, UNKNOWN, np.uint8)
    if not partial:
        structure[ids > 0] = stuff[ids[ids > 0]]
    occluder = np.full(ids.shape, UNKNOWN, np.uint8)
    h, w = ids.shape
    rows, cols = np.nonzero(ids > 0)
    own = ids[rows, cols]
    for dy in range(-OCCLUDER_REACH, OCCLUDER_REACH + 1):
        for dx in range(-OCCLUDER_REACH, OCCLUDER_REACH + 1):
            if dy == 0 and dx == 0:
                continue
            r, c = rows + dy, cols + dx
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            neighbour = np.zeros_like(own)
            neighbour[inside] = ids[r[inside], c[inside]]
            near = (neighbour > 0) & (neighbour != own)
            if not near.any():
                continue
            rr, cc, nb, me = rows[near], cols[near], neighbour[near], own[near]
            hides = truth.amodal_masks[nb - 1, rr, cc] & ~(stuff[nb] & stuff[me])
            current = occluder[rr, cc]
            occluder[rr, cc] = np.where(current == UNKNOWN, hides, current | hides).astype(np.uint8)
    return ids.astype(np.uint8), structure, occluder


@dataclass
class FrameCache:
    """Frames of one size as arrays (memory-mapped from ``folder`` when loaded): rgb (N, H, W, 3) uint8,
    depth (N, H, W) float16 metres (NaN = none), ids / structure / occluder (N, H, W) uint8, intrinsics
    (N, 4) float32 (fx, fy, cx, cy), rendered (N,) bool (rendered depth gets sensor noise in training)."""

    rgb: np.ndarray
    depth: np.ndarray
    ids: np.ndarray
    structure: np.ndarray
    occluder: np.ndarray
    intrinsics: np.ndarray
    rendered: np.ndarray

    def __len__(self) -> int:
        return len(self.rgb)

    @classmethod
    def create(cls, folder: Path, count: int, height: int, width: int) -> FrameCache:
        folder.mkdir(parents=True, exist_ok=True)
        shapes = {"rgb": ((count, height, width, 3), np.uint8), "depth": ((count, height, width), np.float16),
                  "ids": ((count, height, width), np.uint8), "structure": ((count, height, width), np.uint8),
                  "occluder": ((count, height, width), np.uint8), "intrinsics": ((count, 4), np.float32),
                  "rendered": ((count,), np.bool_)}
        return cls(**{name: np.lib.format.open_memmap(folder / f"{name}.npy", "w+", dtype, shape)
                      for name, (shape, dtype) in shapes.items()})

    @classmethod
    def open(cls, folder: Path) -> FrameCache:
        return cls(**{name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in FIELDS})

    def put(self, index: int, row: dict[str, np.ndarray]) -> None:
        """Store one ``cache_row``."""
        for name in FIELDS:
            getattr(self, name)[index] = row[name]

    def flush(self, folder: Path, meta: dict) -> None:
        for name in FIELDS:
            array = getattr(self, name)
            if isinstance(array, np.memmap):
                array.flush()
        tmp = folder / "cache.tmp.json"
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(tmp, folder / "cache.json")   # written last: no cache.json, no cache


def cache_row(truth: GroundTruthFrame, width: int, height: int, rendered: bool, partial: bool = False
              ) -> dict[str, np.ndarray]:
    """The cached arrays of one frame at ``width`` x ``height`` (compact: no per-object masks or depths)."""
    if truth.depth.shape != (height, width):
        truth = resized(truth, width, height)
    ids, structure, occluder = frame_labels(truth, partial)
    i = truth.intrinsics
    return {"rgb": truth.rgb, "depth": truth.depth.astype(np.float16), "ids": ids, "structure": structure,
            "occluder": occluder, "intrinsics": np.array([i.fx, i.fy, i.cx, i.cy], np.float32),
            "rendered": np.array(rendered)}   # 0-d: every value is an array


def resized(truth: GroundTruthFrame, width: int, height: int) -> GroundTruthFrame:
    """``truth`` at another size: nearest neighbour for depth, labels and masks, area for colour."""
    def nearest(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (width, height), interpolation=cv2.INTER_NEAREST)
    masks = np.stack([nearest(m.view(np.uint8)) for m in truth.amodal_masks]).astype(bool)
    depths = np.stack([nearest(d) for d in truth.object_depths])
    return GroundTruthFrame(cv2.resize(truth.rgb, (width, height), interpolation=cv2.INTER_AREA), nearest(truth.depth),
                            nearest(truth.instance_ids.astype(np.int32)), masks, depths, truth.names,
                            truth.intrinsics.scaled(width, height), truth.occlusion_pairs, truth.stuff)


def outline(ids: np.ndarray) -> np.ndarray:
    """(H, W) bool: the outline the network learns and the occluder map is scored on: pixels with a
    4-neighbour of another id (both sides of every instance border, two pixels wide). A one-pixel outline
    (one side only) keeps more of thin slivers but leaks: tried, 0.82 against 0.90 overlap F at 2000 steps."""
    b = np.zeros(ids.shape, bool)
    dy = ids[1:] != ids[:-1]
    dx = ids[:, 1:] != ids[:, :-1]
    b[1:] |= dy
    b[:-1] |= dy
    b[:, 1:] |= dx
    b[:, :-1] |= dx
    return b


def _colour_jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, gamma, per-channel gains, channel order, grey, blur and noise: colour is the
    second cue, and rendered colours must not be the one the network relies on."""
    x: np.ndarray = rgb.astype(np.float32) / 255.0
    x = x[..., rng.permutation(3)] if rng.random() < 0.5 else x
    x = x * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    x = (x - 0.5) * rng.uniform(0.6, 1.4) + 0.5 + rng.uniform(-0.2, 0.2)
    x = np.clip(x, 0.0, 1.0) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.15:
        x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    x = x + rng.normal(0.0, rng.uniform(0.0, 0.04), x.shape).astype(np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass
class Crop:
    """One training example: network input and its targets (uint8 maps, UNKNOWN = not scored)."""

    inputs: np.ndarray      # (C, h, w) float32
    boundary: np.ndarray    # (h, w) uint8 0/1/UNKNOWN
    structure: np.ndarray   # (h, w) uint8
    occluder: np.ndarray    # (h, w) uint8, scored on outline pixels only


def training_crop(cache: FrameCache, index: int, rng: np.random.Generator, size: tuple[int, int],
                  scale_range: tuple[float, float] = (0.7, 1.4)) -> Crop:
    """A random ``size`` = (w, h) window of cached frame ``index``, rescaled by a random factor, maybe
    mirrored, with sensor-like depth when rendered and jittered colour."""
    w, h = size
    frame_h, frame_w = cache.ids.shape[1:]
    scale = rng.uniform(max(scale_range[0], w / frame_w, h / frame_h), max(scale_range[1], w / frame_w, h / frame_h))
    win_w, win_h = min(frame_w, int(round(w / scale))), min(frame_h, int(round(h / scale)))
    x0, y0 = int(rng.integers(0, frame_w - win_w + 1)), int(rng.integers(0, frame_h - win_h + 1))
    window = (slice(y0, y0 + win_h), slice(x0, x0 + win_w))

    def nearest(a: np.ndarray) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(a[window]), (w, h), interpolation=cv2.INTER_NEAREST)

    ids, structure = nearest(cache.ids[index]), nearest(cache.structure[index])
    occluder = nearest(cache.occluder[index])
    depth: np.ndarray = nearest(cache.depth[index]).astype(np.float32)
    rgb = cv2.resize(np.ascontiguousarray(cache.rgb[index][window]), (w, h), interpolation=cv2.INTER_AREA)
    fx, fy, cx, cy = (float(v) for v in cache.intrinsics[index])
    sx, sy = w / win_w, h / win_h
    intr = CameraIntrinsics(fx * sx, fy * sy, (cx - x0 + 0.5) * sx - 0.5, (cy - y0 + 0.5) * sy - 0.5, w, h)
    if rng.random() < 0.5:
        ids, structure, occluder, depth, rgb = (a[:, ::-1].copy() for a in (ids, structure, occluder, depth, rgb))
        intr = CameraIntrinsics(intr.fx, intr.fy, w - 1 - intr.cx, intr.cy, w, h)
    if cache.rendered[index]:
        kind = rng.random()
        if kind < 0.15:
            depth = structured_light_noise(depth, rng)
        elif kind > 0.3:
            depth = rgbd_camera_depth(depth, intr, rng, rng.uniform(0.3, 1.2))
    inputs = segmentation_inputs(_colour_jitter(rgb, rng), depth, intr, (w, h))
    if rng.random() < 0.1:
        inputs[5:8] = 0.0   # colour off now and then: depth alone must do
    known = ids > 0
    boundary = np.where(known, outline(ids), UNKNOWN).astype(np.uint8)
    return Crop(inputs, boundary, structure, np.where(boundary == 1, occluder, UNKNOWN).astype(np.uint8))
