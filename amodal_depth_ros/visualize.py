"""Images and files for looking at the node's outputs: shared by the demo and later tools (replay, eval).

Every image helper takes and returns RGB order (the package convention); ``write_png`` converts to
the BGR order cv2 writes. Everything is vectorised numpy/cv2.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from .core.mesh import write_ply_records
from .core.types import CameraIntrinsics, LayeredCloud

COLORMAP = cv2.COLORMAP_TURBO


def colormap_rgb(colormap: int = COLORMAP) -> np.ndarray:
    """(256, 3) uint8 RGB lookup table of a cv2 colormap."""
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 256)
    return cv2.cvtColor(cv2.applyColorMap(ramp, colormap), cv2.COLOR_BGR2RGB).reshape(256, 3)


def colorize_depth(depth: np.ndarray, vmin: float, vmax: float, colormap: int = COLORMAP) -> np.ndarray:
    """(H, W, 3) uint8 **RGB**: depth mapped linearly from [vmin, vmax] (clipped) to the colormap;
    NaN / inf / non-positive depth is black."""
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    scale = 255.0 / max(vmax - vmin, 1e-6)
    index = np.clip(np.rint((np.where(valid, depth, vmin) - vmin) * scale), 0, 255).astype(np.uint8)
    out = colormap_rgb(colormap)[index]
    out[~valid] = 0
    return out


def depth_range(*depths: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """One (vmin, vmax) for several depth images so their colours compare; percentiles ignore outliers
    such as a floor running off to the horizon."""
    values = np.concatenate([d[np.isfinite(d) & (d > 0)].ravel() for d in depths])
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, percentiles)
    return float(lo), float(max(hi, lo + 1e-3))


def add_colorbar(image: np.ndarray, vmin: float, vmax: float, colormap: int = COLORMAP) -> np.ndarray:
    """Copy of an RGB image with a colour bar and its range in metres drawn in the bottom-right corner
    (inside the image, so its size stays that of the camera)."""
    out = image.copy()
    h, w = out.shape[:2]
    bar_w, bar_h, pad = max(w // 3, 60), max(h // 40, 6), max(w // 100, 4)
    text_scale = max(w / 1600.0, 0.3)
    (text_w, text_h), baseline = cv2.getTextSize("00.00 m", cv2.FONT_HERSHEY_SIMPLEX, text_scale, 1)
    x0, x1 = w - pad - bar_w, w - pad
    y1 = h - pad
    y0 = y1 - bar_h - text_h - baseline - pad
    if x0 < 0 or y0 < 0:
        return out  # image too small for a legend
    out[y0 - pad:h, x0 - pad:w] //= 3  # dark backdrop keeps the labels readable on any scene
    out[y1 - bar_h:y1, x0:x1] = colormap_rgb(colormap)[np.linspace(0, 255, bar_w).astype(np.uint8)][None]
    for label, x in ((f"{vmin:.2f} m", x0), (f"{vmax:.2f} m", x1 - text_w)):
        cv2.putText(out, label, (x, y1 - bar_h - baseline), cv2.FONT_HERSHEY_SIMPLEX, text_scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out


def hidden_mask(visible: np.ndarray, amodal: np.ndarray, tolerance_m: float = 1e-4) -> np.ndarray:
    """(H, W) bool: pixels where the amodal depth reports a hidden surface behind the visible one."""
    return np.isfinite(visible) & np.isfinite(amodal) & (np.abs(amodal - visible) > tolerance_m)


def hidden_overlay(rgb: np.ndarray, visible: np.ndarray, amodal: np.ndarray, vmin: float | None = None,
                   vmax: float | None = None, alpha: float = 0.75) -> np.ndarray:
    """(H, W, 3) uint8 **RGB**: the image darkened, and where a surface is hidden (amodal depth differs
    from visible depth) tinted with the colormap colour of the hidden surface's depth, so the overlay
    shows both where something is hidden and how far back it is. Default range: that of the hidden depths."""
    mask = hidden_mask(visible, amodal)
    if vmin is None or vmax is None:
        vmin, vmax = depth_range(amodal[mask])
    out = (np.asarray(rgb, dtype=np.float32) * 0.35).astype(np.uint8)
    tint = colorize_depth(amodal[mask], vmin, vmax).astype(np.float32)
    out[mask] = (alpha * tint + (1.0 - alpha) * rgb[mask].astype(np.float32)).astype(np.uint8)
    return out


def instance_colors(count: int) -> np.ndarray:
    """(count + 1, 3) uint8 RGB, row 0 black: well separated hues (golden-ratio steps), bright and saturated."""
    hues = (np.arange(count) * 0.618034) % 1.0
    hsv = np.stack([hues * 180, np.full(count, 200), np.full(count, 255)], axis=1).astype(np.uint8)[None]
    return np.concatenate([[[0, 0, 0]], cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]]).astype(np.uint8)


def segmentation_overlay(rgb: np.ndarray, labels: np.ndarray, structure: np.ndarray | None = None,
                         alpha: float = 0.55) -> np.ndarray:
    """(H, W, 3) uint8 **RGB**: each instance of ``labels`` (0 = none) tinted in its own colour with a white
    outline; instances whose id is set in the bool array ``structure`` (room structure) are shown grey."""
    colors = instance_colors(int(labels.max()))
    if structure is not None:
        colors[1:][np.asarray(structure, bool)[:len(colors) - 1]] = (150, 150, 150)
    tint = colors[labels].astype(np.float32)
    out = np.where((labels > 0)[..., None], alpha * tint + (1 - alpha) * rgb.astype(np.float32), rgb * 0.4)
    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:] |= labels[1:] != labels[:-1]
    out[edge] = 255
    return out.astype(np.uint8)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


PLY_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                      ("layer", "u1"), ("instance", "<u2")])


def write_ply(path: str | Path, cloud: LayeredCloud | Mapping[str, np.ndarray]) -> int:
    """Binary little-endian PLY with x y z (float), red green blue layer (uchar), instance (ushort).

    ``cloud`` is a ``LayeredCloud`` or the dict of ``conversions.cloud_from_msg`` (x, y, z, (N, 3)
    rgb, layer, instance). Returns the number of points written.
    """
    if isinstance(cloud, LayeredCloud):
        xyz, rgb, layer, instance = cloud.points, cloud.colors, cloud.layer, cloud.instance
    else:
        xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1)
        rgb, layer, instance = cloud["rgb"], cloud["layer"], cloud["instance"]
    n = len(xyz)
    data = np.empty(n, PLY_DTYPE)
    for axis, name in enumerate("xyz"):
        data[name] = xyz[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        data[name] = rgb[:, channel]
    data["layer"], data["instance"] = layer, instance
    write_ply_records(path, data)
    return n


LAYER_RGB = np.array([(0, 0, 0), (255, 0, 200), (255, 160, 0), (0, 220, 255), (120, 255, 0)], np.uint8)


def orbit_view(points: np.ndarray, yaw_deg: float, pitch_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of a camera that has moved around the cloud's median point by ``yaw`` (about the optical y
    axis) and ``pitch`` (about x), still looking at it: p_new = R @ p + t."""
    centre = np.median(points, axis=0)
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    rotation = rx @ ry
    return rotation, centre - rotation @ centre


def render_points(points: np.ndarray, colors: np.ndarray, intr: CameraIntrinsics, rotation: np.ndarray,
                  translation: np.ndarray, radius: int = 1, background: int = 24) -> np.ndarray:
    """(H, W, 3) RGB view of a coloured point cloud through pinhole ``intr`` after the motion (R, t):
    square splats of (2 * radius + 1) pixels, the nearest point wins every pixel (a z-buffer by sorting)."""
    p = points.astype(np.float64) @ rotation.T + translation
    front = p[:, 2] > 0.05
    p, colors = p[front], colors[front]
    u = np.rint(intr.fx * p[:, 0] / p[:, 2] + intr.cx).astype(np.int64)
    v = np.rint(intr.fy * p[:, 1] / p[:, 2] + intr.cy).astype(np.int64)
    offsets = np.arange(-radius, radius + 1)
    du, dv = (a.ravel() for a in np.meshgrid(offsets, offsets))
    uu, vv = (u[:, None] + du[None]).ravel(), (v[:, None] + dv[None]).ravel()
    z = np.repeat(p[:, 2], du.size)
    source = np.repeat(np.arange(len(p)), du.size)
    inside = (uu >= 0) & (uu < intr.width) & (vv >= 0) & (vv < intr.height)
    pixel, z, source = vv[inside] * intr.width + uu[inside], z[inside], source[inside]
    order = np.lexsort((z, pixel))                     # by pixel, nearest first
    first = np.unique(pixel[order], return_index=True)[1]
    image = np.full((intr.height * intr.width, 3), background, np.uint8)
    image[pixel[order][first]] = colors[source[order][first]]
    return image.reshape(intr.height, intr.width, 3)


def cloud_view(cloud: LayeredCloud, intr: CameraIntrinsics, yaw_deg: float = 35.0,
               pitch_deg: float = -15.0) -> np.ndarray:
    """The completed cloud seen from beside the camera: seen points in their (dimmed) colour, hidden
    points highlighted by layer (1 magenta, 2 orange, 3 cyan, 4+ green)."""
    colors = (cloud.colors.astype(np.float32) * 0.55).astype(np.uint8)
    hidden = cloud.layer > 0
    colors[hidden] = LAYER_RGB[np.clip(cloud.layer[hidden], 1, len(LAYER_RGB) - 1)]
    rotation, translation = orbit_view(cloud.points[~hidden] if (~hidden).any() else cloud.points, yaw_deg, pitch_deg)
    return render_points(cloud.points, colors, intr, rotation, translation)
