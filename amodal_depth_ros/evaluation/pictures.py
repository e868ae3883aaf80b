"""Pictures of an evaluation: per-frame method comparisons and a bar chart of the main metric."""
from __future__ import annotations

import cv2
import numpy as np

from ..visualize import colorize_depth, depth_range
from .harness import FramePredictions
from .occluders import OccluderPredictions

ERROR_RANGE_M = (0.0, 0.3)   # colour scale of the absolute-error maps
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def titled(image: np.ndarray, title: str) -> np.ndarray:
    out = image.copy()
    scale = max(image.shape[1] / 700.0, 0.35)
    (w, h), base = cv2.getTextSize(title, _FONT, scale, 1)
    out[:h + base + 6, :w + 8] //= 3
    cv2.putText(out, title, (4, h + 3), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _crop_box(mask: np.ndarray, margin: float = 0.35, minimum: int = 48) -> tuple[slice, slice]:
    """The mask's bounding box grown by ``margin`` of its size (at least ``minimum`` pixels a side)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    out = []
    for lo, hi, size in ((rows[0], rows[-1] + 1, h), (cols[0], cols[-1] + 1, w)):
        grow = max(int((hi - lo) * margin), (minimum - (hi - lo)) // 2, 0)
        out.append(slice(max(lo - grow, 0), min(hi + grow, size)))
    return out[0], out[1]


def comparison(predictions: FramePredictions, target: int | None = None, panel_height: int = 240) -> np.ndarray:
    """(2 rows) x (2 + methods) RGB panel for one target: input with the true amodal outline (green) and
    the occluded part (magenta outline); true object depth; each method's object depth (top) and its
    absolute error on the occluded pixels (bottom). Default target: the most occluded one."""
    truth = predictions.truth
    if target is None:
        target = max(predictions.targets, key=lambda i: int(truth.hidden_mask(i).sum()))
    amodal, hidden = truth.amodal_mask(target), truth.hidden_mask(target)
    gt = truth.object_depths[target - 1]
    vmin, vmax = depth_range(gt)
    vmin, vmax = vmin - 0.1, vmax + 0.1

    def object_view(depth: np.ndarray) -> np.ndarray:
        background = (truth.rgb // 4)
        shown = np.where(amodal & np.isfinite(depth), depth, np.nan)
        return np.where(np.isfinite(shown)[..., None], colorize_depth(shown, vmin, vmax), background)

    rgb = truth.rgb.copy()
    for mask, colour in ((amodal, (0, 255, 0)), (hidden, (255, 0, 255))):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(rgb, contours, -1, colour, 1)
    top = [(rgb, "input, target"), (object_view(gt), f"truth {vmin:.2f}-{vmax:.2f} m")]
    blank = np.zeros_like(rgb)
    bottom = [(blank, "abs error on"), (blank, "occluded px, 0-0.3 m")]
    for name, by_id in predictions.depth.items():
        depth = by_id[target]
        top.append((object_view(depth), name))
        error = np.where(hidden, np.abs(depth - gt), np.nan)
        err_img = np.where(hidden[..., None], colorize_depth(error + 1e-6, *ERROR_RANGE_M), truth.rgb // 4)
        scored = hidden & np.isfinite(error)
        label = f"mean {np.mean(error[scored]):.3f} m" if scored.any() else "no prediction"
        bottom.append((err_img, label))
    box = _crop_box(amodal)
    scale = panel_height / (box[0].stop - box[0].start)

    def zoom(panel: np.ndarray) -> np.ndarray:
        return cv2.resize(panel[box], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)

    top_row = [titled(zoom(p), t) for p, t in top]
    bottom_row = [titled(zoom(p), t) for p, t in bottom]
    return np.concatenate([np.concatenate(top_row, axis=1), np.concatenate(bottom_row, axis=1)], axis=0)


def bar_chart(summary: dict, metric: str = "abs_rel", title: str = "") -> np.ndarray:
    """Grouped bars of the aligned ``metric`` per method, for all objects and per visible-ratio bucket."""
    depth = summary.get("depth", {})
    methods = list(depth)
    groups = ["all", ">0.75", "0.5-0.75", "<=0.5"]
    values = np.array([[depth[m].get(g, {}).get("aligned", {}).get(metric, np.nan) for m in methods] for g in groups])
    width, height, margin = 900, 420, 60
    image = np.full((height, width, 3), 255, np.uint8)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) * 1.15 if finite.size else 1.0
    palette = (cv2.applyColorMap(np.linspace(0, 255, max(len(methods), 2)).astype(np.uint8)[:, None],
                                 cv2.COLORMAP_VIRIDIS)[:, 0, ::-1]).tolist()
    group_w = (width - 2 * margin) / len(groups)
    bar_w = group_w * 0.8 / max(len(methods), 1)
    base_y = height - margin
    cv2.line(image, (margin, base_y), (width - margin, base_y), (0, 0, 0), 1)
    for g, group in enumerate(groups):
        x0 = margin + g * group_w + group_w * 0.1
        cv2.putText(image, group, (int(x0), base_y + 20), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for m in range(len(methods)):
            v = values[g, m]
            if not np.isfinite(v):
                continue
            x = int(x0 + m * bar_w)
            y = int(base_y - (height - 2 * margin) * v / top)
            cv2.rectangle(image, (x, y), (int(x + bar_w) - 2, base_y), palette[m], -1)
            cv2.putText(image, f"{v:.3f}", (x, y - 4), _FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for m, name in enumerate(methods):
        cv2.rectangle(image, (margin + m * 150, 12), (margin + m * 150 + 14, 26), palette[m], -1)
        cv2.putText(image, name, (margin + m * 150 + 20, 25), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, title or f"aligned {metric} on occluded pixels (lower is better)", (margin, 50), _FONT, 0.55,
                (0, 0, 0), 1, cv2.LINE_AA)
    return image


def occluder_comparison(predictions: OccluderPredictions, methods: list[str]) -> np.ndarray:
    """RGB panel of one real occluder composite: the composite and the truth under the occluder, then each
    method's fill of it and its relative error (0-20 %), two tiles a row."""
    item = predictions.item
    depth = item.frame.depth
    assert depth is not None
    vmin, vmax = depth_range(item.truth)
    vmin, vmax = vmin - 0.1, vmax + 0.1

    def under(values: np.ndarray) -> np.ndarray:
        return colorize_depth(np.where(item.occluder, values, depth), vmin, vmax)

    tiles = [titled(item.frame.rgb, item.name), titled(under(item.truth), f"truth {vmin:.2f}-{vmax:.2f} m")]
    for method in methods:
        values = predictions.depth[method]
        error = np.where(item.hidden & np.isfinite(values), np.abs(values - item.truth) / item.truth, np.nan)
        tiles += [titled(under(values), method), titled(colorize_depth(error, 0.0, 0.2), f"{method} error 0-20 %")]
    rows = [np.concatenate(tiles[k:k + 2], axis=1) for k in range(0, len(tiles), 2)]
    return np.concatenate(rows, axis=0)
