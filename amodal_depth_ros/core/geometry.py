"""Pinhole geometry shared by the stages: normalised rays, back-projection, inverse-depth planes, poses."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .types import CameraIntrinsics


@lru_cache(maxsize=8)
def normalized_coords(intr: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(x_n (W,), y_n (H,)) with x_n = (u - cx) / fx: a pixel's ray is (x_n, y_n, 1)."""
    x = ((np.arange(intr.width, dtype=np.float64) - intr.cx) / intr.fx).astype(np.float32)
    y = ((np.arange(intr.height, dtype=np.float64) - intr.cy) / intr.fy).astype(np.float32)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def backproject(depth: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """(H, W, 3) float32 optical-frame points; NaN depth gives NaN points."""
    x, y = normalized_coords(intr)
    points = np.empty(depth.shape + (3,), np.float32)
    np.multiply(depth, x[None, :], out=points[..., 0])
    np.multiply(depth, y[:, None], out=points[..., 1])
    points[..., 2] = depth
    return points


def pose_matrix(translation: npt.ArrayLike, quaternion: npt.ArrayLike) -> np.ndarray:
    """(4, 4) rigid transform of a translation (x, y, z) and a rotation quaternion (x, y, z, w; normalised
    here); ValueError for non-finite values or a zero quaternion."""
    t, q = np.asarray(translation, float), np.asarray(quaternion, float)
    norm = float(np.linalg.norm(q))
    if not (np.isfinite(t).all() and np.isfinite(q).all()) or norm < 1e-9:
        raise ValueError(f"not a pose: translation {t.tolist()}, quaternion {q.tolist()}")
    x, y, z, w = q / norm
    pose = np.eye(4)
    pose[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    pose[:3, 3] = t
    return pose


def median(values: np.ndarray) -> float:
    """np.median of a 1-D array without NaN, by partition: a third of np.median's time on a few thousand values
    (which matters in the plane fits run several times a frame)."""
    k = values.size // 2
    if values.size % 2:
        return float(np.partition(values, k)[k])
    middle = np.partition(values, [k - 1, k])
    return 0.5 * float(middle[k - 1] + middle[k])


def fit_inverse_depth_plane(xn: np.ndarray, yn: np.ndarray, depth: np.ndarray, weights: np.ndarray,
                            iterations: int = 3) -> np.ndarray | None:
    """Weighted robust fit of 1/z = a*x_n + b*y_n + c, which is exact for any 3D plane.

    Returns (a, b, c) or None when the points do not determine a plane. Iteratively reweighted so
    that points of other faces (a box's second side, say) stop pulling the fit.
    """
    if depth.size < 3:
        return None
    inv = 1.0 / depth.astype(np.float64)
    design = np.stack([xn.astype(np.float64), yn.astype(np.float64), np.ones_like(inv)], axis=1)
    w = weights.astype(np.float64)
    floor = 1e-9 * median(inv)   # keeps the scale positive for points exactly on the plane
    coef = None
    for _ in range(iterations):
        # Weighted normal equations: a 3x3 solve instead of an SVD of the (N, 3) design (5x faster).
        weighted = design * w[:, None]
        normal = weighted.T @ design
        if not np.isfinite(normal).all():
            return coef
        eigenvalues = np.linalg.eigvalsh(normal)   # ascending; their ratio is the condition number (symmetric)
        if not eigenvalues[0] * 1e13 >= eigenvalues[2]:
            return coef
        coef = np.linalg.solve(normal, weighted.T @ inv)
        residual = np.abs(design @ coef - inv)
        scale = 1.4826 * median(residual) + floor
        # Cauchy weights: residuals many times the typical one count for almost nothing.
        w = weights * (1.0 / (1.0 + (residual / (3.0 * scale + 1e-12)) ** 2))
    return coef


def relative_to_plane(coef: np.ndarray, xn: np.ndarray, yn: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Relative distance of points in front of the inverse-depth plane ``coef`` (1 - z / the plane's depth along
    the ray; > 0 in front), without a division."""
    return 1.0 - depth * (coef[0] * xn + coef[1] * yn + coef[2])


def plane_of(xn: np.ndarray, yn: np.ndarray, depth: np.ndarray, points: int, tolerance: float, share: float,
             iterations: int = 3) -> tuple[np.ndarray, np.ndarray] | None:
    """(coef, relative distance of every point to it) of the plane fitted to at most ``points`` evenly spread of
    the points, when at least ``share`` of all of them lie within ``tolerance`` of it; else None. How a segment
    is found to be a plane (a wall, a floor, a table top)."""
    step = max(1, depth.size // points)
    coef = fit_inverse_depth_plane(xn[::step], yn[::step], depth[::step], np.ones(depth[::step].size), iterations)
    if coef is None:
        return None
    relative = relative_to_plane(coef, xn, yn, depth)
    return (coef, relative) if np.count_nonzero(np.abs(relative) < tolerance) >= share * depth.size else None


def fit_scale_shift(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Least-squares (s, t) minimising sum (s * pred + t - target)^2: the one scale-and-shift alignment
    (Amodal Depth Anything) that evaluation, monocular depth and the SPADE stage share.

    Degenerate input (< 2 points or pred variance < 1e-12) has no defined scale: s = 1 and t the
    mean offset. Empty input: (1.0, 0.0).
    """
    p = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    if p.size == 0:
        return 1.0, 0.0
    pm, ym = p.mean(), y.mean()
    var = np.mean((p - pm) ** 2)  # centred sums: stable for depths far from 0
    if p.size < 2 or var < 1e-12:
        return 1.0, float(ym - pm)
    scale = np.mean((p - pm) * (y - ym)) / var
    return float(scale), float(ym - scale * pm)
