"""The real occluder benchmark: the pipeline's hidden surfaces behind an occluder pasted onto a real frame,
against the frame's own depth there, beside what inpainting the depth image gives.

Every hidden pixel with a true depth is scored (``OccludedFrame.hidden``), whatever surface it belongs to.
A pipeline (the configured one, and one per baseline segmenter) sees only the composite frame; its
prediction at a pixel is its first hidden surface there (layer 1, the amodal depth image where it differs
from the visible depth), and ``coverage`` is the share of hidden pixels that got one. The baselines are
given the occluder's mask and fill all of it from the depth around it: ``telea`` (OpenCV inpainting),
``nearest`` (the nearest pixel outside) and ``plane_fit`` (the node's plane fit, one plane for the region).
Metrics (metric depth, no alignment): AbsRel, RMSE, delta1 on the covered pixels, averaged over composites;
``abs_rel_telea`` is Telea's AbsRel on the same pixels as the row's, the fair comparison for a row that
covers less than all. Figures come per source (the folder of the frame) and over ``all`` composites.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..core import config
from ..core.amodal_depth import HiddenPart, NearestVisibleFill, PlaneFitCompletion, TeleaInpaintFill
from ..core.geometry import normalized_coords
from ..datasets.occluded_frames import OccludedFrame
from ..pipeline import AmodalDepthPipeline
from ..visualize import hidden_mask
from .metrics import depth_errors

BASELINES = ("telea", "nearest", "plane_fit")
METRICS = ("coverage", "abs_rel", "rmse", "delta1", "abs_rel_telea")
RING = 25   # pixels around the occluder the baselines fill from (Telea reads its own radius)


def first_hidden_surface(visible: np.ndarray, amodal: np.ndarray) -> np.ndarray:
    """(H, W) float32: the amodal depth where it is a hidden surface (differs from the visible depth), NaN
    elsewhere."""
    return np.where(hidden_mask(visible, amodal), amodal, np.float32(np.nan)).astype(np.float32)


def baseline_fill(method: str, item: OccludedFrame, settings: config.AmodalDepthSettings) -> np.ndarray:
    """(H, W) float32 depth under the occluder filled by a baseline from the pixels around it; NaN elsewhere."""
    depth, mask = item.frame.depth, item.occluder
    assert depth is not None
    rows, cols = np.nonzero(mask)
    r0, c0 = max(rows.min() - RING, 0), max(cols.min() - RING, 0)
    r1, c1 = min(rows.max() + RING + 1, depth.shape[0]), min(cols.max() + RING + 1, depth.shape[1])
    box = (slice(r0, r1), slice(c0, c1))
    around = ~mask[box] & np.isfinite(depth[box])
    x_n, y_n = normalized_coords(item.frame.intrinsics)
    fill = {"telea": TeleaInpaintFill, "nearest": NearestVisibleFill, "plane_fit": PlaneFitCompletion}[method]
    part = HiddenPart(box, around, mask[box], depth[box], x_n[c0:c1], y_n[r0:r1])
    out = np.full(depth.shape, np.nan, np.float32)
    if around.any():
        out[box][part.hidden] = fill(settings).fill(part)
    return out


def scores(predicted: np.ndarray, item: OccludedFrame, telea: np.ndarray) -> dict[str, float]:
    """One composite's figures (see the module docstring)."""
    hidden = item.hidden
    covered = hidden & np.isfinite(predicted) & (predicted > 0)
    out = {"coverage": float(covered.sum() / max(hidden.sum(), 1))}
    if not covered.any():
        return {**out, **dict.fromkeys(METRICS[1:], float("nan"))}
    truth, ref = item.truth[covered], telea[covered]
    errors = depth_errors(predicted[covered], truth)
    known = np.isfinite(ref)
    return {**out, **{m: errors[m] for m in ("abs_rel", "rmse", "delta1")},
            "abs_rel_telea": depth_errors(ref[known], truth[known])["abs_rel"] if known.any() else float("nan")}


@dataclass
class OccluderTable:
    """Per-composite figures by source (the folder a frame came from) and method."""

    # source -> method -> per-composite rows (METRICS, and frame_ms for the pipelines)
    rows: dict[str, dict[str, list[dict[str, float]]]] = field(default_factory=dict)

    def add(self, source: str, method: str, row: dict[str, float]) -> None:
        self.rows.setdefault(source, {}).setdefault(method, []).append(row)

    @staticmethod
    def _means(by_method: dict[str, list[dict[str, float]]]) -> dict:
        return {method: {"composites": len(rows), **{m: float(np.nanmean([r[m] for r in rows])) for m in METRICS},
                         "frame_ms_p50": float(np.median([r["frame_ms"] for r in rows])) if "frame_ms" in rows[0]
                         else float("nan")}
                for method, rows in by_method.items()}

    def summary(self) -> dict:
        """``all`` (every composite) and each source: method -> composites, METRICS, frame_ms_p50."""
        pooled: dict[str, list[dict[str, float]]] = {}
        for by_method in self.rows.values():
            for method, rows in by_method.items():
                pooled.setdefault(method, []).extend(rows)
        return {"all": self._means(pooled), **{source: self._means(m) for source, m in self.rows.items()}}


@dataclass
class OccluderPredictions:
    """One composite and what each method put under its occluder: for the pictures of the report."""

    item: OccludedFrame
    depth: dict[str, np.ndarray] = field(default_factory=dict)


def evaluate_occluders(items: Iterable[OccludedFrame], pipelines: dict[str, AmodalDepthPipeline],
                       settings: config.AmodalDepthSettings, keep: int = 4) -> tuple[OccluderTable,
                                                                                   list[OccluderPredictions]]:
    """Score the ``pipelines`` (name -> pipeline) and the baselines on every composite; the first ``keep``
    composites' predictions come back for pictures."""
    table, kept = OccluderTable(), []
    for index, item in enumerate(items):
        predictions = OccluderPredictions(item)
        for method in BASELINES:
            predictions.depth[method] = baseline_fill(method, item, settings)
        frame_ms = {}
        for name, pipeline in pipelines.items():
            result = pipeline(item.frame)
            predictions.depth[name] = first_hidden_surface(result.visible_depth, result.amodal_depth)
            frame_ms[name] = {"frame_ms": result.timings_ms["total"]}
        for name, predicted in predictions.depth.items():
            table.add(item.source, name, {**scores(predicted, item, predictions.depth["telea"]),
                                          **frame_ms.get(name, {})})
        if index < keep:
            kept.append(predictions)
    return table, kept


def format_occluders(summary: dict) -> str:
    """One block per source, ``all`` first: the METRICS, AbsRel against Telea's on the same pixels, ms."""
    head = ("composites", "coverage", "abs_rel", "rmse", "delta1", "telea same px", "x telea", "frame ms")
    lines = ["real occluder benchmark (every hidden pixel; baselines are given the occluder's mask)"]
    for source, by_method in summary.items():
        lines += ["", f"[{source}]", "method".ljust(22) + "".join(h.rjust(14) for h in head)]
        for method, s in by_method.items():
            ratio = s["abs_rel"] / s["abs_rel_telea"] if s["abs_rel_telea"] > 0 else float("nan")
            cells = [s["composites"], *[s[m] for m in METRICS], ratio, s["frame_ms_p50"]]
            lines.append(method.ljust(22) + "".join(
                (f"{c:14d}" if isinstance(c, int) else "-".rjust(14) if c != c else f"{c:14.4f}") for c in cells))
    return "\n".join(lines) + "\n"
