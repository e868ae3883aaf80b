"""Typed data passed between pipeline stages. Arrays are numpy, images are row-major (H, W).

Conventions: depth in metres as float32 with NaN for "unknown" (REP-118 32FC1); points in the
camera optical frame (REP-103: x right, y down, z forward); instance id 0 means "no instance".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class InputError(ValueError):
    """Input that cannot be processed. ``reason`` is a short stable key for counting and throttling."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an undistorted (rectified) image."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise InputError("invalid_intrinsics", f"intrinsics contain NaN/inf: fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}")
        if self.fx <= 0 or self.fy <= 0:
            raise InputError("invalid_intrinsics", f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise InputError("invalid_intrinsics", f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> "CameraIntrinsics":
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(width), int(height))

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> "CameraIntrinsics":
        sx, sy = width / self.width, height / self.height
        # Pixel centres sit at +0.5: scale about the image corner, not the first pixel centre.
        return CameraIntrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                                (self.cy + 0.5) * sy - 0.5, width, height)


@dataclass
class RGBDFrame:
    """One synchronised camera frame as the pipeline sees it."""

    rgb: np.ndarray                     # (H, W, 3) uint8, RGB order
    intrinsics: CameraIntrinsics
    depth: np.ndarray | None = None     # (H, W) float32 metres, NaN = unknown
    stamp_ns: int = 0
    frame_id: str = "camera_optical_frame"

    def __post_init__(self) -> None:
        h, w = self.intrinsics.height, self.intrinsics.width
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise InputError("bad_image", f"rgb must be (H, W, 3) uint8, got {self.rgb.shape} {self.rgb.dtype}")
        if self.rgb.shape[:2] != (h, w):
            raise InputError("size_mismatch", f"image is {self.rgb.shape[1]}x{self.rgb.shape[0]} but camera_info says {w}x{h}")
        if self.depth is not None and self.depth.shape != (h, w):
            raise InputError("size_mismatch", f"depth is {self.depth.shape[1]}x{self.depth.shape[0]} but camera_info says {w}x{h}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.intrinsics.height, self.intrinsics.width


@dataclass
class Segmentation:
    """Visible (modal) instance segmentation: visible masks never overlap, so one label image holds them."""

    labels: np.ndarray                  # (H, W) int32, 0 = no instance, else instance id
    ids: np.ndarray                     # (N,) int32, ids present in ``labels`` in ascending order
    scores: np.ndarray                  # (N,) float32 in [0, 1]
    class_names: tuple[str, ...] = ()   # per instance; empty = class-agnostic ("object")

    def mask(self, instance_id: int) -> np.ndarray:
        return self.labels == instance_id

    def class_name(self, index: int) -> str:
        return self.class_names[index] if self.class_names else "object"


@dataclass
class OcclusionGraph:
    """Directed "A occludes B" edges between instance ids, with the boundary evidence behind each."""

    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32))   # (E, 2): occluder, occluded
    support: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))       # (E,) boundary pixel pairs

    def occluders_of(self, instance_id: int) -> np.ndarray:
        return self.edges[self.edges[:, 1] == instance_id, 0]

    def ancestors_of(self, instance_id: int) -> set[int]:
        """Every instance in front of ``instance_id``, directly or through a chain of occluders."""
        found: set[int] = set()
        frontier = [instance_id]
        while frontier:
            current = frontier.pop()
            for occluder in self.occluders_of(current).tolist():
                if occluder not in found and occluder != instance_id:
                    found.add(occluder)
                    frontier.append(occluder)
        return found


@dataclass
class AmodalInstance:
    """An instance with its full (visible + hidden) extent and the depth of its hidden part."""

    id: int
    label: str
    score: float
    visible_mask: np.ndarray            # (H, W) bool
    amodal_mask: np.ndarray             # (H, W) bool, a superset of visible_mask
    occluded_by: tuple[int, ...]        # ids of the instances directly in front of it
    depth: np.ndarray | None = None     # (H, W) float32: own surface depth inside amodal_mask, NaN elsewhere

    @property
    def hidden_mask(self) -> np.ndarray:
        return self.amodal_mask & ~self.visible_mask

    @property
    def visible_ratio(self) -> float:
        total = int(self.amodal_mask.sum())
        return float(self.visible_mask.sum()) / total if total else 0.0

    def bbox(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the amodal mask; zeros when empty."""
        rows = np.flatnonzero(self.amodal_mask.any(axis=1))
        cols = np.flatnonzero(self.amodal_mask.any(axis=0))
        if rows.size == 0:
            return 0, 0, 0, 0
        return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


@dataclass
class LayeredCloud:
    """Completed point cloud: visible points (layer 0) and hidden surfaces (layer k = k-th hidden surface)."""

    points: np.ndarray                  # (N, 3) float32, optical frame, metres, all finite
    colors: np.ndarray                  # (N, 3) uint8 RGB
    layer: np.ndarray                   # (N,) uint8
    instance: np.ndarray                # (N,) uint16, 0 = no instance

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass
class PipelineResult:
    """Everything the pipeline computed for one frame."""

    frame: RGBDFrame
    visible_depth: np.ndarray           # (H, W) float32 metres, NaN = unknown
    segmentation: Segmentation
    occlusion: OcclusionGraph
    instances: list[AmodalInstance]
    amodal_depth: np.ndarray            # (H, W) float32: nearest hidden surface where one exists, else visible depth
    cloud: LayeredCloud
    timings_ms: dict[str, float]
