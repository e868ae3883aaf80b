"""Instance segmentation and occlusion-order metrics, following the UOIS / UOAIS evaluation protocol.

Per frame, predicted and true instances are matched one to one by the Hungarian method on the
F-measure of their visible pixel overlap. Then:

* Overlap P/R/F: precision = matched overlap pixels / all predicted instance pixels, recall = matched
  overlap pixels / all true instance pixels, F their harmonic mean.
* Boundary P/R/F: the same with mask boundaries (one pixel wide, ``boundary_map``), a boundary pixel
  counting as matched when the matched mask's boundary lies within ``ceil(0.003 * image diagonal)``
  pixels (2 at 320x240, 3 at 640x480).
* F@.75: the share of true instances whose matched prediction has overlap F > 0.75.

These are computed for the visible masks (every instance: objects and room structure), and, with the
visible matching, for the amodal masks and their occluded parts of the true objects (room structure
is left out there: the generator's floor and walls run on behind one another, which real rooms do
not). Per-frame figures are averaged over frames, as the protocol does.

Occlusion order (SynTable's pairwise accuracy): every true pair "A hides part of B" (A seen inside
B's amodal mask on at least ``MIN_PAIR_PIXELS`` pixels; pairs of two room surfaces left out, as
above) whose two instances are both matched is correct when the prediction has A in front of B,
directly or through a chain, and not B in front of A. ``accuracy`` is over those matched pairs,
``recall`` over all true pairs.

Frames whose truth labels only some pixels (real-image composites: the target and the pasted
occluder) are scored on the labelled pixels only: predictions are cut to them. Real frames labelled with
visible object masks only (``visible_labels_only``: real table tops) are scored as UOIS scores them:
objects only, the truth's support surface and the predicted instances of kind structure are background;
their unlabelled pixels (mOSD's: no depth, where the clouds were cropped to the table) are not scored.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..core.types import OcclusionGraph
from ..groundtruth import GroundTruthFrame

F_THRESHOLD = 0.75
MIN_PAIR_PIXELS = 10
PRF_KEYS = ("overlap_p", "overlap_r", "overlap_f", "boundary_p", "boundary_r", "boundary_f", "f75")


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a bool mask: pixels that differ from their right, lower or lower-right
    neighbour (the Berkeley / DAVIS ``seg2bmap`` convention, boundary offset half a pixel to the origin)."""
    b = np.zeros(mask.shape, bool)
    b[:, :-1] |= mask[:, :-1] ^ mask[:, 1:]
    b[:-1, :] |= mask[:-1, :] ^ mask[1:, :]
    b[:-1, :-1] |= mask[:-1, :-1] ^ mask[1:, 1:]
    return b


def boundary_tolerance(shape: tuple[int, int]) -> int:
    return int(np.ceil(0.003 * np.hypot(*shape)))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _harmonic(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _empty_scores(n_true: int, n_pred: int) -> dict[str, float]:
    """The protocol's edge cases: nothing predicted, nothing true, or neither."""
    if n_true == 0 and n_pred == 0:
        return dict.fromkeys(PRF_KEYS, 1.0)
    if n_pred == 0:
        return {"overlap_p": 1.0, "overlap_r": 0.0, "overlap_f": 0.0, "boundary_p": 1.0, "boundary_r": 0.0,
                "boundary_f": 0.0, "f75": 0.0}
    return {"overlap_p": 0.0, "overlap_r": 1.0, "overlap_f": 0.0, "boundary_p": 0.0, "boundary_r": 1.0,
            "boundary_f": 0.0, "f75": 1.0}


def match(true_masks: list[np.ndarray], pred_masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (K, 2) of (true index, predicted index) from the Hungarian method on overlap F, the (T, P)
    overlap F matrix). Pairs without any overlap are dropped."""
    f = np.zeros((len(true_masks), len(pred_masks)))
    for i, t in enumerate(true_masks):
        t_count = t.sum()
        for j, p in enumerate(pred_masks):
            tp = np.count_nonzero(t & p)
            if tp:
                f[i, j] = 2 * tp / (t_count + p.sum())   # = 2PR / (P + R)
    if f.size == 0:
        return np.zeros((0, 2), int), f
    rows, cols = linear_sum_assignment(-f)
    keep = f[rows, cols] > 0
    return np.stack([rows[keep], cols[keep]], axis=1), f


def prf(true_masks: list[np.ndarray], pred_masks: list[np.ndarray],
        pairs: np.ndarray | None = None) -> dict[str, float]:
    """Overlap and boundary P/R/F and F@.75 of one frame; ``pairs`` (true, predicted) is the Hungarian
    matching of these masks unless given (the amodal scores reuse the visible matching)."""
    if not true_masks or not pred_masks:
        return _empty_scores(len(true_masks), len(pred_masks))
    if pairs is None:
        pairs, f = match(true_masks, pred_masks)
    else:
        f = np.zeros((len(true_masks), len(pred_masks)))
        for i, j in pairs.tolist():
            overlap = np.count_nonzero(true_masks[i] & pred_masks[j])
            f[i, j] = 2 * overlap / (true_masks[i].sum() + pred_masks[j].sum())
    radius = boundary_tolerance(true_masks[0].shape)
    true_b = [boundary_map(m) for m in true_masks]
    pred_b = [boundary_map(m) for m in pred_masks]
    tp = b_prec = b_rec = 0.0
    for i, j in pairs.tolist():
        tp += np.count_nonzero(true_masks[i] & pred_masks[j])
        true_dil = cv2.dilate(true_b[i].view(np.uint8), _disk(radius)).view(bool)
        pred_dil = cv2.dilate(pred_b[j].view(np.uint8), _disk(radius)).view(bool)
        b_prec += np.count_nonzero(pred_b[j] & true_dil)
        b_rec += np.count_nonzero(true_b[i] & pred_dil)
    p = tp / max(sum(int(m.sum()) for m in pred_masks), 1)
    r = tp / max(sum(int(m.sum()) for m in true_masks), 1)
    bp = b_prec / max(sum(int(b.sum()) for b in pred_b), 1)
    br = b_rec / max(sum(int(b.sum()) for b in true_b), 1)
    matched_f = f[pairs[:, 0], pairs[:, 1]] if len(pairs) else np.zeros(0)
    return {"overlap_p": p, "overlap_r": r, "overlap_f": _harmonic(p, r), "boundary_p": bp, "boundary_r": br,
            "boundary_f": _harmonic(bp, br), "f75": float(np.count_nonzero(matched_f > F_THRESHOLD)) / len(true_masks)}


def true_order_pairs(truth: GroundTruthFrame) -> list[tuple[int, int]]:
    """(occluder id, occluded id) of the truth that the order is scored on (see the module docstring)."""
    pairs = []
    for a, b in truth.occlusion_pairs.reshape(-1, 2).tolist():
        if truth.stuff[a - 1] and truth.stuff[b - 1]:
            continue
        if np.count_nonzero(truth.visible_mask(a) & truth.amodal_mask(b)) >= MIN_PAIR_PIXELS:
            pairs.append((a, b))
    return pairs


@dataclass
class SegmentationScore:
    """One frame's scores of one segmentation method."""

    visible: dict[str, float]
    amodal: dict[str, float] | None      # None: no true object, or no amodal masks given
    occluded: dict[str, float] | None    # None: no true object with a hidden part, or no amodal masks given
    order_pairs: int = 0                 # true pairs scored
    order_matched: int = 0               # of which both instances matched a prediction
    order_correct: int = 0
    segmentation_ms: float = float("nan")   # the segmenter's time on this frame
    pipeline_ms: float = float("nan")       # the whole pipeline's (for the pipeline's own segmenter)


def score_segmentation(truth: GroundTruthFrame, labels: np.ndarray, occlusion: OcclusionGraph,
                       amodal_masks: Mapping[int, np.ndarray] | None = None,
                       structure: set[int] | None = None) -> SegmentationScore:
    """Score a predicted visible label image (0 = none), its occlusion graph and (optionally) its amodal
    masks by instance id against ``truth``. ``structure``: the predicted ids the segmenter calls room
    structure; on ``visible_labels_only`` frames (real table tops) they are background, as the truth's
    structure is (the UOIS protocol: objects only)."""
    if truth.visible_labels_only:
        known = truth.instance_ids > 0
        true_ids = [i for i in truth.object_ids if not truth.stuff[i - 1] and np.any(truth.instance_ids == i)]
        pred_ids = [int(i) for i in np.unique(labels[known]) if i > 0 and int(i) not in (structure or set())]
        visible = prf([truth.instance_ids == i for i in true_ids], [(labels == j) & known for j in pred_ids])
        return SegmentationScore(visible, None, None)
    known = truth.instance_ids > 0
    partial = not known.all()
    true_ids = [i for i in truth.object_ids if np.any(truth.instance_ids == i)]
    pred_ids = [int(i) for i in np.unique(labels[known]) if i > 0] if partial else \
        [int(i) for i in np.unique(labels) if i > 0]
    true_vis = [truth.instance_ids == i for i in true_ids]
    pred_vis = [(labels == j) & known if partial else labels == j for j in pred_ids]
    pairs, _ = match(true_vis, pred_vis)
    visible = prf(true_vis, pred_vis, pairs)
    assigned = {true_ids[i]: pred_ids[j] for i, j in pairs.tolist()}

    amodal = occluded = None
    objects = [k for k, i in enumerate(true_ids) if not truth.stuff[i - 1]]
    if amodal_masks is not None and objects:
        matched = dict(pairs.tolist())
        kept = [k for k in objects if k in matched]    # true objects with a prediction, in order
        pred_vis_full = {k: labels == pred_ids[matched[k]] for k in kept}
        pred_am = [amodal_masks.get(pred_ids[matched[k]], pred_vis_full[k]) for k in kept]
        if partial:
            pred_am = [m & known for m in pred_am]
        amodal = prf([truth.amodal_mask(true_ids[k]) for k in objects], pred_am,
                     np.array([(objects.index(k), n) for n, k in enumerate(kept)], int).reshape(-1, 2))
        hidden = [k for k in objects if truth.hidden_mask(true_ids[k]).any()]
        if hidden:
            hidden_kept = [k for k in hidden if k in matched]
            occluded = prf([truth.hidden_mask(true_ids[k]) for k in hidden],
                           [pred_am[kept.index(k)] & ~pred_vis_full[k] for k in hidden_kept],
                           np.array([(hidden.index(k), n) for n, k in enumerate(hidden_kept)], int).reshape(-1, 2))

    score = SegmentationScore(visible, amodal, occluded)
    for a, b in true_order_pairs(truth):
        score.order_pairs += 1
        if a in assigned and b in assigned:
            score.order_matched += 1
            pa, pb = assigned[a], assigned[b]
            score.order_correct += int(pa in occlusion.ancestors_of(pb) and pb not in occlusion.ancestors_of(pa))
    return score


@dataclass
class SegmentationTable:
    """Per-frame segmentation scores of several methods, summarised as per-frame means."""

    scores: dict[str, list[SegmentationScore]] = field(default_factory=dict)

    def add(self, method: str, score: SegmentationScore) -> None:
        self.scores.setdefault(method, []).append(score)

    @staticmethod
    def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
        return {k: float(np.mean([r[k] for r in rows])) for k in PRF_KEYS} if rows else {}

    def summary(self) -> dict:
        out = {}
        for method, scores in self.scores.items():
            pairs = sum(s.order_pairs for s in scores)
            matched = sum(s.order_matched for s in scores)
            correct = sum(s.order_correct for s in scores)
            out[method] = {
                "frames": len(scores),
                "visible": self._mean([s.visible for s in scores]),
                "amodal": self._mean([s.amodal for s in scores if s.amodal is not None]),
                "occluded": self._mean([s.occluded for s in scores if s.occluded is not None]),
                "order": {"pairs": pairs, "matched": matched,
                          "accuracy": correct / matched if matched else float("nan"),
                          "recall": correct / pairs if pairs else float("nan")},
                **{key: _percentiles([getattr(s, key) for s in scores]) for key in ("segmentation_ms", "pipeline_ms")}}
        return out


def _percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p95 of the finite ``values`` (NaN when there is none)."""
    finite = np.array([v for v in values if np.isfinite(v)])
    return {f"p{q}": float(np.percentile(finite, q)) if finite.size else float("nan") for q in (50, 95)}


def format_segmentation(summary: dict) -> str:
    """Fixed-width table: visible and amodal overlap / boundary F, F@.75, order accuracy and recall."""
    if not summary:
        return ""
    head = ["method", "vis P", "vis R", "vis F", "bnd F", "F@.75", "amod F", "amod bndF", "occl F", "order acc",
            "order rec", "seg ms", "frame ms"]
    width = max(len("method"), *map(len, summary))
    lines = ["instance segmentation (UOIS protocol; order = pairwise occlusion order)",
             "  ".join([head[0].ljust(width)] + [h.rjust(9) for h in head[1:]])]
    for method, s in summary.items():
        v, a, o = s["visible"], s["amodal"] or {}, s["occluded"] or {}
        cells = [v.get("overlap_p"), v.get("overlap_r"), v.get("overlap_f"), v.get("boundary_f"), v.get("f75"),
                 a.get("overlap_f"), a.get("boundary_f"), o.get("overlap_f"), s["order"]["accuracy"],
                 s["order"]["recall"], s["segmentation_ms"]["p50"], s["pipeline_ms"]["p50"]]
        lines.append("  ".join([method.ljust(width)] + ["-".rjust(9) if c is None or c != c else f"{c:9.4f}"
                                                        for c in cells]))
    return "\n".join(lines) + "\n"
