"""What a depth sensor does to rendered depth, so that models and tools fed rendered frames see
sensor-like input."""
from __future__ import annotations

import cv2
import numpy as np

from ..core.types import CameraIntrinsics


def structured_light_noise(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Structured-light noise: sigma = 1.2 mm + 1.9 mm * (z - 0.4 m)^2 (Nguyen et al. 2012), 1 mm steps,
    and 1 % of the readings dropped (NaN)."""
    sigma = 0.0012 + 0.0019 * (depth - 0.4) ** 2
    noisy = np.round((depth + rng.standard_normal(depth.shape) * sigma) * 1000.0) / 1000.0
    noisy[rng.random(depth.shape) < 0.01] = np.nan
    return noisy.astype(np.float32)


def _blobs(shape: tuple[int, int], rng: np.random.Generator, fraction: float, scale: float) -> np.ndarray:
    """Random smooth blobs covering about ``fraction`` of the image (a threshold of low-pass noise)."""
    if fraction <= 0:
        return np.zeros(shape, bool)
    noise = rng.standard_normal((max(2, int(shape[0] / scale)), max(2, int(shape[1] / scale)))).astype(np.float32)
    field = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return field > np.quantile(field, 1.0 - fraction)


def rgbd_camera_depth(depth: np.ndarray, intrinsics: CameraIntrinsics, rng: np.random.Generator,
                      strength: float = 1.0) -> np.ndarray:
    """Rendered depth as a RealSense / Kinect-like active stereo camera delivers it, with random
    settings per call (``strength`` scales every effect; 0 returns the depth unchanged):

    * quantisation in disparity (steps grow with z^2) and axial noise of a few mm at 1 m;
    * flying pixels: readings on depth edges mixed between the two surfaces;
    * the projector's shadow: background beside the left edge of a nearer surface gets no reading;
    * missing readings along depth edges, in blobs (dark, shiny or far surfaces), scattered, and in
      margins along the image border (registration to the colour camera);
    * a working range: nothing nearer than ~0.2 m or farther than 2.5-9 m.
    """
    if strength <= 0:
        return depth.astype(np.float32, copy=True)
    h, w = depth.shape
    z = depth.astype(np.float32, copy=True)
    valid = np.isfinite(z) & (z > 0)
    z[~valid] = np.nan
    # Disparity of a virtual baseline of 5-7.5 cm at this camera's focal length.
    focal_baseline = intrinsics.fx * rng.uniform(0.05, 0.075)
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = focal_baseline / z
    # Flying pixels: on a depth edge, a pixel takes a value between its own depth and its neighbour's.
    right = np.roll(z, -1, axis=1)
    down = np.roll(z, -1, axis=0)
    with np.errstate(invalid="ignore"):
        edge_r = np.abs(z - right) > 0.03 * np.fmin(z, right)
        edge_d = np.abs(z - down) > 0.03 * np.fmin(z, down)
    edge = edge_r | edge_d
    edge[:, -1] = edge[-1, :] = False
    flying = edge & (rng.random((h, w)) < 0.5 * strength)
    other = np.where(edge_r, right, down)
    mix = rng.uniform(0.0, 1.0, (h, w)).astype(np.float32)
    z = np.where(flying, mix * z + (1.0 - mix) * other, z)
    # Axial noise (in disparity, so it grows with z^2) and sub-pixel disparity quantisation.
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = focal_baseline / z
        disparity = disparity + rng.standard_normal((h, w)).astype(np.float32) * rng.uniform(0.03, 0.1) * strength
        step = rng.choice((1 / 8, 1 / 16, 1 / 32))
        disparity = np.round(disparity / step) * step
        z = np.where(disparity > 0, focal_baseline / disparity, np.nan).astype(np.float32)
    # Projector shadow: a pixel is unlit when a nearer surface up to `reach` pixels to its right blocks
    # the projector (disparity difference larger than the offset), left of the foreground's edge.
    shadow = np.zeros((h, w), bool)
    reach = int(min(24, max(2, 0.06 * w)))
    base = np.nan_to_num(disparity, nan=0.0)
    for s in range(1, reach + 1):
        shifted = np.zeros_like(base)
        shifted[:, :-s] = base[:, s:]
        shadow |= shifted - base > s * 0.9
    missing = shadow & (rng.random() < 0.8)
    # Missing readings: along edges, in blobs, scattered.
    grow = cv2.dilate(edge.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    missing |= grow & (rng.random((h, w)) < rng.uniform(0.0, 0.5) * strength)
    missing |= _blobs((h, w), rng, rng.uniform(0.0, 0.1 if rng.random() < 0.3 else 0.04) * strength,
                      rng.uniform(8, 30))
    missing |= rng.random((h, w)) < rng.uniform(0.0, 0.02) * strength
    # The margin a registered depth image leaves where the depth camera does not see the colour camera's view.
    if rng.random() < 0.3 * strength:
        for side in np.flatnonzero(rng.random(4) < 0.5):
            band = int(rng.uniform(0.02, 0.1) * (h if side < 2 else w))
            edge_slice = (slice(0, band), slice(h - band, h), slice(0, band), slice(w - band, w))[side]
            if side < 2:
                missing[edge_slice] = True
            else:
                missing[:, edge_slice] = True
    with np.errstate(invalid="ignore"):
        missing |= (z < rng.uniform(0.15, 0.3)) | (z > rng.uniform(2.5 if rng.random() < 0.3 else 4.0, 9.0))
    z[missing] = np.nan
    return z
