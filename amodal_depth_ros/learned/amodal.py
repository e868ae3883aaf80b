"""The learned amodal stages: amodal masks and SPADE amodal depth, with iterative peeling.

Instances are completed in passes front to back (``peeling_levels``): an instance's occluders are
the completed amodal masks of everything in front of it, and the depth in front of its hidden part
is the completed surface directly in front, not the front-most visible one. Objects behind objects
behind objects thus see their real occluders (Jo et al.: iterative estimation for deep occlusions).
All instances of one pass run as one batch.

Large planar instances (walls, floors) are the exception in the depth stage: their hidden part is the
same plane, which the plane fit extends exactly, while a 48-pixel crop of a wall is too coarse for the
network (3 cm off on a flat wall at 3 m).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from ..core.amodal_depth import NearestVisibleFill, PlaneFitCompletion
from ..core.amodal_mask import hull_completion
from ..core.config import AmodalDepthSettings, AmodalMaskSettings, InferenceSettings
from ..core.geometry import fit_scale_shift, normalized_coords
from ..core.types import (
    KIND_STRUCTURE,
    AmodalInstance,
    AmodalMasks,
    OcclusionGraph,
    RGBDFrame,
    Segmentation,
    Window,
    mask_window,
    overlap,
    window_union,
)
from ..networks.amodal_nets import AmodalMaskNet, SpadeAmodalDepthNet
from ..networks.checkpoints import WEIGHTS_DIR, load_weights
from ..networks.crops import CropBox, object_inputs, peeled_front, reference_depth, with_nearest_fill
from ..runtime.backends import Runner, make_runner, reported
from ..runtime.devices import inference_device

MASK_GROW, DEPTH_GROW = 0.75, 0.15   # crop margins: the hidden extent is unknown to the mask net
MAX_PASSES = 3   # peeling passes per stage: deeper instances join the last (each pass is one network call)


def peeling_levels(ids: list[int], occlusion: OcclusionGraph) -> list[list[int]]:
    """Passes of instance ids: an instance comes one pass after the deepest of its occluders.
    Occluders outside ``ids`` count as pass 0; cycles (contradictory evidence) are cut."""
    known = set(ids)
    level: dict[int, int] = {}

    def depth_of(i: int, trail: frozenset) -> int:
        if i in level:
            return level[i]
        fronts = [a for a in occlusion.occluders_of(i).tolist() if a in known and a not in trail]
        level[i] = 1 + max((depth_of(a, trail | {a}) for a in fronts), default=-1)
        return level[i]

    for i in ids:
        depth_of(i, frozenset({i}))
    passes: list[list[int]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for i in ids:
        passes[level[i]].append(i)
    return passes


def capped_passes(levels: list[list[int]], chosen: set[int], first: int) -> list[list[int]]:
    """The ``chosen`` ids of peeling ``levels`` from pass ``first`` on, in at most MAX_PASSES passes (the
    deeper levels join the last one): the network calls of a frame are bounded, however deep its clutter."""
    passes = [[i for i in ids if i in chosen] for ids in levels[first:]]
    head, tail = passes[:MAX_PASSES - 1], passes[MAX_PASSES - 1:]
    return [p for p in [*head, [i for ids in tail for i in ids]] if p]


def enclosed_holes(mask: np.ndarray) -> np.ndarray:
    """Pixels outside ``mask`` that cannot reach the border of the array without crossing it."""
    r0, c0, r1, c1 = mask_window(mask)
    holes = np.zeros(mask.shape, bool)
    if r1 == r0:
        return holes
    box = (slice(r0, r1), slice(c0, c1))
    # Pad the bounding box with one free pixel all round: flooding from it reaches every non-hole.
    free = np.pad(~mask[box], 1, constant_values=True).astype(np.uint8)
    flood = np.zeros((free.shape[0] + 2, free.shape[1] + 2), np.uint8)
    cv2.floodFill(free, flood, (0, 0), 2)
    holes[box] = free[1:-1, 1:-1] == 1
    return holes


def occluder_union(fronts: set[int], masks: AmodalMasks, window: Window, own: np.ndarray) -> np.ndarray:
    """Inside ``window``: the union of the (completed) amodal masks of ``fronts`` (the instances in front),
    less ``own`` (the instance's mask in the window). Each mask is read where it reaches the window only: in
    clutter an instance has dozens in front of it."""
    union = np.zeros((window[2] - window[0], window[3] - window[1]), bool)
    for a in fronts:
        if a in masks:
            masks.or_into(union, window, a)
    union &= ~own
    return union


def nearest_room_surface(structure: list[int], windows: dict[int, Window],
                         crops: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Where the hidden parts of two room surfaces (floor, wall, table top; each extended as far as whatever
    hides it) meet, the nearer one ends the farther: a wall continues down behind a desk to the floor, not
    below it. The farther one's hidden depth there becomes NaN (and leaves its amodal mask)."""
    for k, a in enumerate(structure):
        for b in structure[k + 1:]:
            where = overlap(windows[a], windows[b])
            if where is None:
                continue
            in_a, in_b = where
            (visible_a, amodal_a, own_a), (visible_b, amodal_b, own_b) = crops[a], crops[b]
            depth_a, depth_b = own_a[in_a], own_b[in_b]
            both = (amodal_a[in_a] & ~visible_a[in_a]) & (amodal_b[in_b] & ~visible_b[in_b])
            both &= np.isfinite(depth_a) & np.isfinite(depth_b)
            if both.any():
                a_farther = both & (depth_a > depth_b)
                depth_a[a_farther] = np.nan
                depth_b[both & ~a_farther] = np.nan


class LearnedStage:
    """What the learned stages share: their network's runner and what it says about the backend serving it."""
    run: Runner

    @property
    def backend_status(self) -> str:
        return self.run.status

    @property
    def backend_error(self) -> str:
        """Why the configured backend is not serving, for good ('' when it serves or is still being built)."""
        return self.run.error


class LearnedAmodalMask(LearnedStage):
    """Amodal mask stage (``amodal_mask.method: learned``); ``settings.threshold`` is read at each frame."""

    def __init__(self, settings: AmodalMaskSettings, inference: InferenceSettings) -> None:
        path = Path(settings.weights or WEIGHTS_DIR / "amodal_mask.pt")
        self.settings = settings
        device, why = inference_device(inference.device)
        self.run = reported(make_runner(load_weights(AmodalMaskNet(), path, "amodal mask"), "amodal_mask", path,
                                        inference.backend, device, inference.precision, inference.cpu_precision), why)

    def __call__(self, segmentation: Segmentation, occlusion: OcclusionGraph, depth: np.ndarray,
                 record: dict[int, tuple[CropBox, np.ndarray]] | None = None) -> AmodalMasks:
        """The amodal masks; ``record``, where given, receives each network input by instance id with its crop box
        (training samples cut from the segmenter's instances exactly as the stage cuts them)."""
        labels, shape = segmentation.labels, segmentation.labels.shape
        ids = [int(i) for i in segmentation.ids]
        windows = segmentation.windows
        masks = AmodalMasks(shape)
        visible = {}   # each instance's visible mask in its own (tight) window
        for i in ids:
            r0, c0, r1, c1 = windows[i]
            visible[i] = labels[r0:r1, c0:c1] == i
            masks.set(i, windows[i], visible[i].copy())   # (grows in place: ``visible`` stays)
        levels = peeling_levels(ids, occlusion)
        # The network completes the largest occluded instances, at most max_instances of them (a frame of clutter
        # costs what a busy one does); the others get the convex hull of what is seen of them.
        occluded = [i for ids_ in levels[1:] for i in ids_]
        area = segmentation.pixel_counts
        chosen = set(sorted(occluded, key=lambda i: -area[i])[:self.settings.max_instances])
        fronts = occlusion.ancestor_map()
        def hull(i: int) -> None:
            masks.set(i, windows[i], hull_completion(labels, windows[i], i, fronts.get(i)))

        for i in occluded:
            if i not in chosen and fronts.get(i):
                hull(i)
        for ids_ in capped_passes(levels, chosen, 1):   # pass 0: nothing in front, amodal = visible
            jobs = []
            for i in ids_:
                box = CropBox.around_window(windows[i], MASK_GROW)
                window = box.bounds(shape)
                r0, c0, r1, c1 = window
                own = labels[r0:r1, c0:c1] == i   # its visible mask: an instance is completed in its pass only
                occluder = occluder_union(fronts.get(i, set()), masks, window, own)
                t0, u0, t1, u1 = windows[i]   # (the median of the same pixels as in ``own``, in less area)
                z0 = reference_depth(depth[t0:t1, u0:u1], visible[i]) if occluder.any() else None
                if z0 is None:   # no depth to scale the crop by: the convex hull, as beyond the cap
                    if fronts.get(i):
                        hull(i)
                    continue
                holes = enclosed_holes(own) & occluder   # of the visible mask, before it grows
                jobs.append((i, occluder, holes, box, window,
                             object_inputs(box, own, occluder, depth[r0:r1, c0:c1], z0, shape, (r0, c0))))
            if not jobs:
                continue
            if record is not None:
                record.update((j[0], (j[3], j[5])) for j in jobs)
            logits = self.run(np.stack([j[5] for j in jobs]))
            for (i, occluder, holes, box, window, _), logit in zip(jobs, logits, strict=False):
                _, prob = box.put(1.0 / (1.0 + np.exp(-logit)), shape)   # over the window, clipped to the image
                # PCNet-M: only pixels under occluders can be hidden parts; elsewhere the visible mask stands.
                # A hole in the visible surface filled by things in front of it is hidden surface, however
                # small it looks in a crop of a large instance (a wall behind a box).
                masks.add(i, window, ((prob > self.settings.threshold) & occluder) | holes)
        return masks


class SpadeAmodalDepth(LearnedStage):
    """SPADE amodal depth stage (``amodal_depth.method: spade``); large planar instances are extended by the
    plane fit instead. min_gap, planar_tolerance, planar_min_area and boundary_band are read at each frame."""

    def __init__(self, settings: AmodalDepthSettings, inference: InferenceSettings) -> None:
        path = Path(settings.weights or WEIGHTS_DIR / "amodal_depth.pt")
        device, why = inference_device(inference.device)
        self.run = reported(make_runner(load_weights(SpadeAmodalDepthNet(), path, "amodal depth"), "amodal_depth",
                                        path, inference.backend, device, inference.precision, inference.cpu_precision),
                            why)
        self.settings = settings

    @property
    def settings(self) -> AmodalDepthSettings:
        return self.planes.settings

    @settings.setter
    def settings(self, settings: AmodalDepthSettings) -> None:
        # The fills share the settings: one assignment updates all.
        self.planes, self.nearest = PlaneFitCompletion(settings), NearestVisibleFill(settings)

    def __call__(self, frame: RGBDFrame, depth: np.ndarray, segmentation: Segmentation,
                 occlusion: OcclusionGraph, amodal_masks: Mapping[int, np.ndarray]) -> list[AmodalInstance]:
        labels, shape = segmentation.labels, segmentation.labels.shape
        ids = [int(i) for i in segmentation.ids]
        x_n, y_n = normalized_coords(frame.intrinsics)
        masks = AmodalMasks.of(amodal_masks, shape)
        # Each instance lives in its window (holding its visible and amodal masks): visible and amodal crops, and
        # its own surface depth there, visible part observed, hidden part completed below.
        seen = segmentation.windows
        # (tight: the depth network's crop box grows around it)
        windows = {i: window_union(seen[i], masks.bounds(i)) for i in ids}
        crops = {}
        for i in ids:
            r0, c0, r1, c1 = windows[i]
            visible = labels[r0:r1, c0:c1] == i
            crops[i] = (visible, masks.within(i, windows[i]) | visible,
                        np.where(visible, depth[r0:r1, c0:c1], np.float32(np.nan)).astype(np.float32))
        hidden_area = {i: int(np.count_nonzero(amodal & ~visible)) for i, (visible, amodal, _) in crops.items()}
        completed: set[int] = set()   # instances whose hidden part was given depth
        network: list[int] = []
        for i in ids:
            if hidden_area[i] == 0:
                continue
            visible, amodal, own = crops[i]
            r0, c0, r1, c1 = windows[i]
            # A large instance whose visible surface around the hidden part is a plane (a floor behind objects,
            # even where the segmentation did not cut it from the wall) is extended as that plane.
            s = self.settings
            if (s.planar_tolerance > 0 and np.count_nonzero(visible) >= s.planar_min_area * depth.size
                    and self.planes.complete_if_planar(visible, amodal & ~visible, depth[r0:r1, c0:c1], own,
                                                       x_n[c0:c1], y_n[r0:r1], s.planar_tolerance) is not None):
                completed.add(i)
            else:
                network.append(i)
        # The network completes the largest hidden parts, at most max_instances of them (planes above are not
        # counted); the others take the depth of their nearest visible pixel (a baseline as good as Telea
        # inpainting, and a few tenths of a millisecond an instance).
        chosen = set(sorted(network, key=lambda i: -hidden_area[i])[:self.settings.max_instances])
        for i in network:
            if i not in chosen:
                visible, amodal, own = crops[i]
                r0, c0, r1, c1 = windows[i]
                self.nearest.complete(visible, amodal & ~visible, depth[r0:r1, c0:c1], own, x_n[c0:c1], y_n[r0:r1])
                completed.add(i)
        fronts = occlusion.ancestor_map()
        for ids_ in capped_passes(peeling_levels(ids, occlusion), chosen, 0):
            jobs = []
            for i in ids_:
                visible, amodal, own = crops[i]
                r0, c0, r1, c1 = windows[i]
                z0 = reference_depth(depth[r0:r1, c0:c1], visible)
                if z0 is None:
                    continue
                completed.add(i)
                box = CropBox.around_window(windows[i], DEPTH_GROW)
                window = box.bounds(shape)
                b0, d0, b1, d1 = window
                own_box = labels[b0:b1, d0:d1] == i
                ahead = {a for a in fronts.get(i, set()) if a in crops}
                occluder = occluder_union(ahead, masks, window, own_box)
                # Peeled only inside the crop: that is all the network sees, and all that is read of it.
                front = peeled_front(depth[b0:b1, d0:d1], window, [(windows[a], crops[a][2]) for a in ahead])
                jobs.append((i, z0, box, window, front,
                             object_inputs(box, own_box, occluder, front, z0, shape, (b0, d0)),
                             box.shifted(windows[i][0], windows[i][1]).take(crops[i][1], 0.0)))
            if not jobs:
                continue
            ratios = self.run(with_nearest_fill(np.stack([j[5] for j in jobs])), np.stack([j[6] for j in jobs]))
            for (i, z0, box, window, front, _, _), ratio in zip(jobs, ratios, strict=False):
                self._hidden_depth(ratio, box, z0, windows[i], window, crops[i], front, depth)
        structure = [i for k, i in enumerate(ids) if segmentation.kind(k) == KIND_STRUCTURE and i in completed]
        nearest_room_surface(structure, windows, crops)
        # Hidden pixels that got no depth (no visible depth to anchor them) leave the amodal mask.
        instances = []
        for k, i in enumerate(ids):
            visible, amodal, own = crops[i]
            amodal = visible | (amodal & np.isfinite(own)) if i in completed else visible
            instances.append(AmodalInstance(i, segmentation.class_name(k), float(segmentation.scores[k]), windows[i],
                                            visible, amodal, tuple(sorted(occlusion.occluders_of(i).tolist())),
                                            shape, own, segmentation.kind(k)))
        return instances

    def _hidden_depth(self, ratio: np.ndarray, box: CropBox, z0: float, instance_window: Window, window: Window,
                      crop: tuple[np.ndarray, np.ndarray, np.ndarray], front: np.ndarray, depth: np.ndarray) -> None:
        """Write the hidden part's depth into the instance's own depth crop (``crop``: visible, amodal, own, of
        ``instance_window``, which the network's ``window`` holds: the crop box grows around it)."""
        visible, amodal, own = crop
        _, values = box.put(ratio, depth.shape)   # over ``window``
        r0, c0, r1, c1 = instance_window
        inner = (slice(r0 - window[0], r1 - window[0]), slice(c0 - window[1], c1 - window[1]))
        predicted = z0 * np.exp(values[inner])
        observed = depth[r0:r1, c0:c1]
        # Scale and shift on the visible part (Amodal Depth Anything): the network's shape, the sensor's metric.
        fit = visible & np.isfinite(observed)
        if fit.sum() >= 10:
            p, d = predicted[fit].astype(np.float64), observed[fit].astype(np.float64)
            scale, shift = fit_scale_shift(p, d)
            if not 0.2 < scale < 5.0:   # a degenerate fit would bend the hidden part wildly: keep the shift only
                scale, shift = 1.0, float(d.mean() - p.mean())
            predicted = (scale * predicted + shift).astype(np.float32)
        hid = amodal & ~visible & np.isfinite(predicted) & (predicted > 0)
        # A hidden surface cannot lie in front of what hides it.
        own[hid] = np.fmax(predicted[hid], front[inner][hid] + self.settings.min_gap)
