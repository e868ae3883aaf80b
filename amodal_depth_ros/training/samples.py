"""Training samples of the learned amodal stages, cut from ground-truth frames exactly as the stages
cut their inputs at run time (``networks.crops``, ``learned.amodal``), so training and inference agree.

Per object with a hidden part (walls and floors included: the node completes them too): a mask sample
(crop around the visible part, occluders = true amodal masks of everything in front, target = true
amodal mask) and a depth sample (crop around the true amodal
mask, front depth peeled with the true surfaces in front, target = true log depth ratio).
The observed depth gets Kinect-like noise so that models trained on rendered depth accept sensors.

``segmented_samples`` cuts the mask samples from the learned segmenter's instances instead, as the stage
cuts them at run time: the amodal mask network then learns the masks, outlines and occlusion order it
is actually given, not only the true ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.types import RGBDFrame
from ..errors import ConfigError
from ..evaluation.harness import match_visible, targets
from ..groundtruth import GroundTruthFrame
from ..learned.amodal import DEPTH_GROW, MASK_GROW, LearnedAmodalMask
from ..networks.crops import CropBox, log_ratio, object_inputs, peeled_front, reference_depth
from ..pipeline import AmodalDepthPipeline
from ..synthetic.sensor import structured_light_noise


@dataclass
class SampleBatch:
    """Arrays of N samples (float16 to halve the cache; masks as 0/1)."""

    mask_inputs: np.ndarray     # (N, C, S, S)
    mask_targets: np.ndarray    # (N, S, S) true amodal mask in the mask crop
    depth_inputs: np.ndarray    # (N, C, S, S)
    depth_amodal: np.ndarray    # (N, S, S) true amodal mask in the depth crop
    depth_targets: np.ndarray   # (N, S, S) true log(z / z0), 0 where unknown
    depth_valid: np.ndarray     # (N, S, S) 1 where the truth is known inside the amodal mask

    FIELDS = ("mask_inputs", "mask_targets", "depth_inputs", "depth_amodal", "depth_targets", "depth_valid")

    @classmethod
    def concatenate(cls, batches: list[SampleBatch]) -> SampleBatch:
        return cls(*(np.concatenate([getattr(b, f) for b in batches]) for f in cls.FIELDS))

    def __len__(self) -> int:
        return len(self.mask_inputs)


def frame_samples(truth: GroundTruthFrame, rng: np.random.Generator, noise: bool = True) -> SampleBatch | None:
    depth = structured_light_noise(truth.depth, rng) if noise else truth.depth
    occlusion = truth.occlusion()
    rows = []
    for i in targets(truth, include_stuff=True):
        visible, amodal = truth.visible_mask(i), truth.amodal_mask(i)
        z0 = reference_depth(depth, visible)
        if z0 is None:
            continue
        ancestors = sorted(occlusion.ancestors_of(i))
        occluder = _true_occluder(truth, visible, ancestors)
        mask_box = CropBox.around(visible, MASK_GROW * rng.uniform(0.8, 1.2))
        rows.append((object_inputs(mask_box, visible, occluder, depth, z0),
                     mask_box.take(amodal.astype(np.float32), 0.0),
                     *_depth_sample(truth, i, depth, visible, occluder, ancestors, z0, rng)))
    return _batch(rows)


def segmented_samples(truth: GroundTruthFrame, pipeline: AmodalDepthPipeline,
                      rng: np.random.Generator) -> SampleBatch | None:
    """Samples whose mask inputs are those the amodal mask stage cuts from ``pipeline``'s own segmentation of the
    frame (sensor-like depth): the visible mask of the segmenter's instance, its occluders from the predicted order
    and the completed masks in front. The target is the amodal mask of the true object the instance matches
    (visible IoU >= MATCH_IOU), plus the instance's visible mask (which the stage always keeps). The depth sample
    of each is cut from the truth, as in ``frame_samples``."""
    if not isinstance(pipeline.amodal_mask, LearnedAmodalMask):
        raise ConfigError("segmented samples need amodal_mask.method 'learned' with loadable weights")
    depth = structured_light_noise(truth.depth, rng)
    frame = RGBDFrame(truth.rgb, truth.intrinsics, depth)
    depth = pipeline.visible_depth(frame)
    segmentation = pipeline.segmentation(frame, depth)
    record: dict[int, tuple[CropBox, np.ndarray]] = {}
    pipeline.amodal_mask(segmentation, pipeline.occlusion(segmentation, depth, frame.intrinsics), depth, record)
    ids = targets(truth, include_stuff=True)
    predicted = [int(k) for k in segmentation.ids]
    occlusion = truth.occlusion()
    rows = []
    for i, k in match_visible([segmentation.labels == k for k in predicted], truth, ids).items():
        if k is None or predicted[k] not in record:
            continue
        box, inputs = record[predicted[k]]
        visible = truth.visible_mask(i)
        z0 = reference_depth(depth, visible)
        if z0 is None:
            continue
        ancestors = sorted(occlusion.ancestors_of(i))
        target = truth.amodal_mask(i) | (segmentation.labels == predicted[k])
        rows.append((inputs, box.take(target.astype(np.float32), 0.0),
                     *_depth_sample(truth, i, depth, visible, _true_occluder(truth, visible, ancestors), ancestors,
                                    z0, rng)))
    return _batch(rows)


def _true_occluder(truth: GroundTruthFrame, visible: np.ndarray, ancestors: list[int]) -> np.ndarray:
    """The union of the true amodal masks of ``ancestors`` (everything in front), less ``visible``."""
    occluder = np.zeros(visible.shape, bool)
    for a in ancestors:
        occluder |= truth.amodal_mask(a)
    return occluder & ~visible


def _depth_sample(truth: GroundTruthFrame, i: int, depth: np.ndarray, visible: np.ndarray, occluder: np.ndarray,
                  ancestors: list[int], z0: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Inputs, amodal mask, target and validity of object ``i``'s depth sample, cut around its true amodal mask."""
    amodal = truth.amodal_mask(i)
    depth_box = CropBox.around(amodal, DEPTH_GROW * rng.uniform(0.7, 1.5))
    whole = (0, 0, *depth.shape)
    front = peeled_front(depth, whole, [(whole, truth.object_depths[a - 1]) for a in ancestors])
    target, known = log_ratio(truth.object_depths[i - 1], z0)
    amodal_crop = depth_box.take(amodal.astype(np.float32), 0.0)
    return (object_inputs(depth_box, visible, occluder, front, z0), amodal_crop,
            depth_box.take(target, 0.0), depth_box.take(known, 0.0) * amodal_crop)


def _batch(rows: list[tuple[np.ndarray, ...]]) -> SampleBatch | None:
    if not rows:
        return None
    return SampleBatch(*(np.stack(column).astype(np.float16) for column in zip(*rows, strict=False)))
