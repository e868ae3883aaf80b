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

from pathlib import Path

import cv2
import numpy as np

from ..core.amodal_depth import PlaneFitCompletion
from ..core.config import AmodalDepthSettings, AmodalMaskSettings, InferenceSettings
from ..core.geometry import fit_scale_shift, normalized_coords, planar_residual
from ..core.types import AmodalInstance, OcclusionGraph, RGBDFrame, Segmentation
from ..networks.amodal_nets import AmodalMaskNet, SpadeAmodalDepthNet
from ..networks.checkpoints import WEIGHTS_DIR, load_weights
from ..networks.crops import CropBox, front_depth, object_inputs, reference_depth, with_nearest_fill
from ..runtime.backends import Runner, make_runner, reported
from ..runtime.devices import inference_device

MASK_GROW, DEPTH_GROW = 0.75, 0.15   # crop margins: the hidden extent is unknown to the mask net


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


def enclosed_holes(mask: np.ndarray) -> np.ndarray:
    """Pixels outside ``mask`` that cannot reach the image border without crossing it."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    holes = np.zeros(mask.shape, bool)
    if rows.size == 0:
        return holes
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    # Pad the bounding box with one free pixel all round: flooding from it reaches every non-hole.
    free = np.pad(~mask[box], 1, constant_values=True).astype(np.uint8)
    flood = np.zeros((free.shape[0] + 2, free.shape[1] + 2), np.uint8)
    cv2.floodFill(free, flood, (0, 0), 2)
    holes[box] = free[1:-1, 1:-1] == 1
    return holes


def _occluders(i: int, occlusion: OcclusionGraph, masks: dict[int, np.ndarray], box: CropBox,
               own: np.ndarray) -> np.ndarray:
    """Union of the (completed) amodal masks of every instance in front of ``i``, less ``own`` (``i``'s
    mask), inside ``box``'s window (False outside it: the crop is all that the networks see or change)."""
    shape = own.shape
    r0, c0, r1, c1 = box.bounds(shape)
    union = np.zeros(shape, bool)
    window = union[r0:r1, c0:c1]
    for a in occlusion.ancestors_of(i):
        if a in masks:
            window |= masks[a][r0:r1, c0:c1]
    window &= ~own[r0:r1, c0:c1]
    return union


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
                                        inference.backend, device, inference.precision), why)

    def __call__(
        self, segmentation: Segmentation, occlusion: OcclusionGraph, depth: np.ndarray
    ) -> dict[int, np.ndarray]:
        labels = segmentation.labels
        masks = {int(i): labels == i for i in segmentation.ids}
        for ids in peeling_levels(list(masks), occlusion)[1:]:   # pass 0: nothing in front, amodal = visible
            jobs = []
            for i in ids:
                box = CropBox.around(masks[i], MASK_GROW)
                occluder = _occluders(i, occlusion, masks, box, masks[i])
                z0 = reference_depth(depth, masks[i]) if occluder.any() else None
                if z0 is None:
                    continue
                holes = enclosed_holes(masks[i]) & occluder   # of the visible mask, before it grows
                jobs.append((i, occluder, holes, box, object_inputs(box, masks[i], occluder, depth, z0)))
            if not jobs:
                continue
            logits = self.run(np.stack([j[4] for j in jobs]))
            for (i, occluder, holes, box, _), logit in zip(jobs, logits, strict=False):
                window, prob = box.put(1.0 / (1.0 + np.exp(-logit)), labels.shape)
                # PCNet-M: only pixels under occluders can be hidden parts; elsewhere the visible mask stands.
                masks[i][window] |= (prob > self.settings.threshold) & occluder[window]
                # A hole in the visible surface filled by things in front of it is hidden surface, however
                # small it looks in a crop of a large instance (a wall behind a box).
                masks[i] |= holes
        return masks


class SpadeAmodalDepth(LearnedStage):
    """SPADE amodal depth stage (``amodal_depth.method: spade``); large planar instances are extended by the
    plane fit instead. min_gap, planar_tolerance, planar_min_area and boundary_band are read at each frame."""

    def __init__(self, settings: AmodalDepthSettings, inference: InferenceSettings) -> None:
        path = Path(settings.weights or WEIGHTS_DIR / "amodal_depth.pt")
        device, why = inference_device(inference.device)
        self.run = reported(make_runner(load_weights(SpadeAmodalDepthNet(), path, "amodal depth"), "amodal_depth",
                                        path, inference.backend, device, inference.precision), why)
        self.settings = settings

    @property
    def settings(self) -> AmodalDepthSettings:
        return self.planes.settings

    @settings.setter
    def settings(self, settings: AmodalDepthSettings) -> None:
        self.planes = PlaneFitCompletion(settings)   # shares the settings: one assignment updates both

    def _large_plane(self, visible: np.ndarray, hidden: np.ndarray, depth: np.ndarray, x_n: np.ndarray,
                     y_n: np.ndarray) -> bool:
        """Whether the instance is extended as a plane rather than by the network: a large one whose
        visible surface around the hidden part (the plane fit's neighbourhood) is planar, like a
        floor behind objects, even where the segmentation did not cut it from the wall."""
        if (self.settings.planar_tolerance <= 0
                or np.count_nonzero(visible) < self.settings.planar_min_area * visible.size):
            return False
        reach = 4.0 * self.settings.boundary_band
        # Only pixels within ``reach`` of the hidden part matter: measure distances in that window alone.
        grow = int(np.ceil(reach)) + 1
        hr, hc = np.flatnonzero(hidden.any(axis=1)), np.flatnonzero(hidden.any(axis=0))
        r0, c0 = max(hr[0] - grow, 0), max(hc[0] - grow, 0)
        window = (slice(r0, hr[-1] + grow + 1), slice(c0, hc[-1] + grow + 1))
        near = cv2.distanceTransform((~hidden[window]).view(np.uint8), cv2.DIST_L2, 3) < reach
        rows, cols = np.nonzero(visible[window] & near & np.isfinite(depth[window]))
        rows, cols = rows + r0, cols + c0
        residual = planar_residual(x_n[cols], y_n[rows], depth[rows, cols]) if rows.size >= 50 else np.inf
        return bool(residual < self.settings.planar_tolerance)

    def __call__(self, frame: RGBDFrame, depth: np.ndarray, segmentation: Segmentation,
                 occlusion: OcclusionGraph, amodal_masks: dict[int, np.ndarray]) -> list[AmodalInstance]:
        labels, shape = segmentation.labels, segmentation.labels.shape
        visible = {int(i): labels == i for i in segmentation.ids}
        amodal = {i: amodal_masks[i] | visible[i] for i in visible}
        own = {i: np.where(visible[i], depth, np.float32(np.nan)).astype(np.float32, copy=False) for i in visible}
        x_n, y_n = normalized_coords(frame.intrinsics)
        completed: set[int] = set()   # instances whose hidden part was given depth
        for ids in peeling_levels(list(visible), occlusion):
            jobs = []
            for i in ids:
                hidden = amodal[i] & ~visible[i]
                z0 = reference_depth(depth, visible[i]) if hidden.any() else None
                if z0 is None:
                    continue
                completed.add(i)
                if self._large_plane(visible[i], hidden, depth, x_n, y_n):
                    self.planes.complete(visible[i], hidden, depth, own[i], x_n, y_n)
                    continue
                ancestors = [a for a in occlusion.ancestors_of(i) if a in own]
                box = CropBox.around(amodal[i], DEPTH_GROW)
                occluder = _occluders(i, occlusion, amodal, box, visible[i])
                r0, c0, r1, c1 = box.bounds(shape)
                # Peeled only inside the crop: that is all the network sees, and all that is read of it.
                front = np.empty_like(depth)
                front[r0:r1, c0:c1] = front_depth(depth[r0:r1, c0:c1], [own[a][r0:r1, c0:c1] for a in ancestors])
                jobs.append((i, hidden, front, z0, box, object_inputs(box, visible[i], occluder, front, z0),
                             box.take(amodal[i], 0.0)))
            if not jobs:
                continue
            ratios = self.run(with_nearest_fill(np.stack([j[5] for j in jobs])), np.stack([j[6] for j in jobs]))
            for (i, hidden, front, z0, box, _, _), ratio in zip(jobs, ratios, strict=False):
                own[i] = self._hidden_depth(ratio, box, z0, hidden, front, visible[i], depth, own[i])
        # Hidden pixels that got no depth (no visible depth to anchor them) leave the amodal mask.
        amodal = {i: visible[i] | (amodal[i] & np.isfinite(own[i])) if i in completed else visible[i]
                  for i in visible}
        return [AmodalInstance(id=i, label=segmentation.class_name(k), score=float(segmentation.scores[k]),
                               visible_mask=visible[i], amodal_mask=amodal[i],
                               occluded_by=tuple(sorted(occlusion.occluders_of(i).tolist())), depth=own[i])
                for k, i in enumerate(visible)]

    def _hidden_depth(self, ratio: np.ndarray, box: CropBox, z0: float, hidden: np.ndarray,
                      front: np.ndarray, visible: np.ndarray, depth: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Write the hidden part's depth into ``own`` (inside the crop window only) and return it."""
        window, values = box.put(ratio, hidden.shape)
        predicted = z0 * np.exp(values)
        observed = depth[window]
        # Scale and shift on the visible part (Amodal Depth Anything): the network's shape, the sensor's metric.
        fit = visible[window] & np.isfinite(observed)
        if fit.sum() >= 10:
            p, d = predicted[fit].astype(np.float64), observed[fit].astype(np.float64)
            scale, shift = fit_scale_shift(p, d)
            if not 0.2 < scale < 5.0:   # a degenerate fit would bend the hidden part wildly: keep the shift only
                scale, shift = 1.0, float(d.mean() - p.mean())
            predicted = (scale * predicted + shift).astype(np.float32)
        hid = hidden[window] & np.isfinite(predicted) & (predicted > 0)
        # A hidden surface cannot lie in front of what hides it.
        own[window][hid] = np.fmax(predicted[hid], front[window][hid] + self.settings.min_gap)
        return own
