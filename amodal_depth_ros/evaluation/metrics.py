"""Amodal depth and amodal mask metrics, following the Amodal Depth Anything protocol.

Only the occluded part of each target object is scored (amodal mask minus visible mask, where
ground truth is valid). Depth metrics are reported raw and after a least-squares scale+shift
alignment fitted on the object's visible pixels (prediction against observed depth), which
separates relative-shape errors from metric-scale errors. Main metric: aligned AbsRel.
Depths are float32 metres with NaN = unknown; masks are bool (H, W).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ..core.geometry import fit_scale_shift
from .segmentation import SegmentationScore, SegmentationTable

DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "silog")
VISIBLE_RATIO_BUCKETS = (">0.75", "0.5-0.75", "<=0.5")
MIN_DEPTH = 1e-3  # aligned predictions can go <= 0; logs and ratios need a positive depth


def depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Standard depth metrics over 1-D arrays of finite values with gt > 0.

    pred is clamped to >= 1e-3 m for the log and ratio metrics (log, log10, delta, silog).
    silog = 100 * sqrt(mean(d^2) - mean(d)^2), d = ln pred - ln gt: the KITTI benchmark
    definition, i.e. the scale-invariant log error with lambda = 1.
    """
    p = np.asarray(pred, dtype=np.float64).ravel()
    g = np.asarray(gt, dtype=np.float64).ravel()
    if p.size == 0 or p.size != g.size:
        raise ValueError(f"need two non-empty arrays of equal length, got {p.size} and {g.size}")
    diff = p - g
    pc = np.maximum(p, MIN_DEPTH)
    d = np.log(pc) - np.log(g)
    ratio = np.maximum(pc / g, g / pc)
    out = {
        "abs_rel": np.mean(np.abs(diff) / g),
        "sq_rel": np.mean(diff**2 / g),
        "rmse": np.sqrt(np.mean(diff**2)),
        "rmse_log": np.sqrt(np.mean(d**2)),
        "log10": np.mean(np.abs(np.log10(pc) - np.log10(g))),
        **{f"delta{k}": np.mean(ratio < 1.25**k) for k in (1, 2, 3)},
        "silog": 100.0 * np.sqrt(max(np.mean(d**2) - np.mean(d) ** 2, 0.0)),
    }
    return {k: float(v) for k, v in out.items()}


@dataclass
class ObjectDepthScore:
    visible_ratio: float
    hidden_pixels: int  # occluded pixels with valid ground truth
    coverage: float  # fraction of hidden_pixels where the prediction is finite
    scale: float
    shift: float
    raw: dict[str, float]
    aligned: dict[str, float]


def score_object_depth(pred: np.ndarray, gt: np.ndarray, observed: np.ndarray, visible: np.ndarray,
                       amodal: np.ndarray, min_pixels: int = 20) -> ObjectDepthScore | None:
    """Score one object's depth on its occluded pixels; None if fewer than min_pixels of them.

    pred: the method's depth over the amodal mask (NaN elsewhere); gt: the object's true
    own-surface depth; observed: sensor depth; visible, amodal: the object's true masks.
    A method predicting nothing there still gets a score (coverage 0, NaN metrics), so the
    failure shows in the results instead of the object silently dropping out.
    """
    amodal = amodal.astype(bool)
    visible = visible.astype(bool) & amodal
    pred_ok = np.isfinite(pred)
    with np.errstate(invalid="ignore"):  # NaN comparisons are False, which is what we want
        hidden = amodal & ~visible & np.isfinite(gt) & (gt > 0)
        fit = visible & pred_ok & np.isfinite(observed) & (observed > 0)
    n_hidden = int(hidden.sum())
    if n_hidden == 0 or n_hidden < min_pixels:
        return None
    covered = hidden & pred_ok
    scale, shift = fit_scale_shift(pred[fit], observed[fit]) if fit.sum() >= 2 else (1.0, 0.0)
    if covered.any():
        p, g = pred[covered].astype(np.float64), gt[covered].astype(np.float64)
        raw, aligned = depth_errors(p, g), depth_errors(scale * p + shift, g)
    else:
        raw = dict.fromkeys(DEPTH_METRICS, float("nan"))
        aligned = dict.fromkeys(DEPTH_METRICS, float("nan"))
    return ObjectDepthScore(visible_ratio=float(visible.sum() / amodal.sum()), hidden_pixels=n_hidden,
                            coverage=float(covered.sum() / n_hidden), scale=scale, shift=shift,
                            raw=raw, aligned=aligned)


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two bool masks; two empty masks agree perfectly (1.0)."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    union = int((pred | gt).sum())
    return 1.0 if union == 0 else float((pred & gt).sum() / union)


@dataclass
class MaskScore:
    visible_ratio: float
    iou: float
    occluded_iou: float


def score_amodal_mask(pred_amodal: np.ndarray, gt_amodal: np.ndarray, visible: np.ndarray) -> MaskScore | None:
    """Full and occluded-part IoU of a predicted amodal mask; None if the object is not occluded."""
    pred, gt, vis = pred_amodal.astype(bool), gt_amodal.astype(bool), visible.astype(bool)
    if not (gt & ~vis).any():
        return None
    return MaskScore(visible_ratio=float((vis & gt).sum() / gt.sum()), iou=mask_iou(pred, gt),
                     occluded_iou=mask_iou(pred & ~vis, gt & ~vis))


def visible_ratio_bucket(ratio: float) -> str:
    """The visible-ratio bucket of an object: '>0.75', '0.5-0.75' or '<=0.5'."""
    return ">0.75" if ratio > 0.75 else "0.5-0.75" if ratio > 0.5 else "<=0.5"


def _nanmean(values: Sequence[float]) -> float:
    # np.nanmean without its all-NaN RuntimeWarning: an all-failed group is simply NaN
    arr = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(arr)
    return float(arr[ok].mean()) if ok.any() else float("nan")


_Score = TypeVar("_Score", ObjectDepthScore, MaskScore)


class ResultTable:
    """Per-object depth and mask scores of several methods, summarised per visible-ratio bucket."""

    def __init__(self) -> None:
        self.depth: dict[str, list[ObjectDepthScore]] = {}
        self.mask: dict[str, list[MaskScore]] = {}
        self.segmentation = SegmentationTable()

    def add_depth(self, method: str, score: ObjectDepthScore) -> None:
        self.depth.setdefault(method, []).append(score)

    def add_mask(self, method: str, score: MaskScore) -> None:
        self.mask.setdefault(method, []).append(score)

    def add_segmentation(self, method: str, score: SegmentationScore) -> None:
        self.segmentation.add(method, score)

    @staticmethod
    def _depth_group(scores: list[ObjectDepthScore]) -> dict:
        # per-object means: each occluded object weighs the same, however many pixels it hides
        return {"objects": len(scores), "pixels": int(sum(s.hidden_pixels for s in scores)),
                "coverage": _nanmean([s.coverage for s in scores]),
                "raw": {m: _nanmean([s.raw[m] for s in scores]) for m in DEPTH_METRICS},
                "aligned": {m: _nanmean([s.aligned[m] for s in scores]) for m in DEPTH_METRICS}}

    @staticmethod
    def _mask_group(scores: list[MaskScore]) -> dict:
        return {"objects": len(scores), "iou": _nanmean([s.iou for s in scores]),
                "occluded_iou": _nanmean([s.occluded_iou for s in scores])}

    @staticmethod
    def _by_bucket(scores: list[_Score], group: Callable[[list[_Score]], dict]) -> dict:
        out = {"all": group(scores)}
        for bucket in VISIBLE_RATIO_BUCKETS:
            members = [s for s in scores if visible_ratio_bucket(s.visible_ratio) == bucket]
            out[bucket] = group(members) if members else {"objects": 0}
        return out

    def summary(self) -> dict:
        """JSON-serialisable means per method and bucket (NaN where no object had a prediction)."""
        return {"depth": {m: self._by_bucket(s, self._depth_group) for m, s in self.depth.items()},
                "mask": {m: self._by_bucket(s, self._mask_group) for m, s in self.mask.items()},
                "segmentation": self.segmentation.summary()}


def _cell(value: object, width: int) -> str:
    text = "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
    return text.rjust(width)


def format_table(summary: dict, metrics: Sequence[str] = ("abs_rel", "rmse", "delta1", "silog")) -> str:
    """Fixed-width text table of a ResultTable summary: one block per visible-ratio bucket, "all" first.

    Depth columns: objects, coverage, the aligned ``metrics``, raw abs_rel; then, if any masks were
    scored, iou and occluded_iou. Empty buckets show the object count 0 and "-".
    """
    methods = list(summary.get("depth", {})) + list(summary.get("mask", {}))
    name_w = max([len("method"), *map(len, methods)])
    lines: list[str] = []

    def block(title: str, section: dict, columns: list[tuple[str, Callable[[dict], float]]]) -> None:
        widths = [max(len(header), 9) for header, _ in columns]
        for bucket in ("all", *VISIBLE_RATIO_BUCKETS):
            lines.append(f"{title} [{bucket}]")
            lines.append(
                "  ".join(["method".ljust(name_w)] + [h.rjust(w) for (h, _), w in zip(columns, widths, strict=False)])
            )
            for method, buckets in section.items():
                group = buckets[bucket]
                cells = [group["objects"]] + [get(group) if group["objects"] else None for _, get in columns[1:]]
                lines.append(
                    "  ".join([method.ljust(name_w)] + [_cell(c, w) for c, w in zip(cells, widths, strict=False)])
                )
            lines.append("")

    if summary.get("depth"):
        block("depth on occluded pixels (aligned metrics, then raw abs_rel)", summary["depth"],
              [("objects", lambda g: g["objects"]), ("coverage", lambda g: g["coverage"])]
              + [(m, lambda g, m=m: g["aligned"][m]) for m in metrics]
              + [("raw abs_rel", lambda g: g["raw"]["abs_rel"])])
    if summary.get("mask"):
        block(
            "amodal mask",
            summary["mask"],
            [
                ("objects", lambda g: g["objects"]),
                ("iou", lambda g: g["iou"]),
                ("occluded_iou", lambda g: g["occluded_iou"]),
            ],
        )
    return "\n".join(lines).rstrip("\n") + "\n"
