"""A synthetic RGB-D camera for demos: a random table-top scene seen by a gently swaying camera.

The camera translates sideways and bobs while staying aimed at the objects, so parallax makes the
occlusions change over time; frame 0 is ``random_scene(seed)`` exactly. Frame ``i`` depends only on
(seed, size, i): streams are reproducible and frames can be rendered in any order.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from ..core.types import CameraIntrinsics
from ..groundtruth import GroundTruthFrame
from .scene import SceneObject, random_world


class SyntheticCamera:
    """Endless stream of ``GroundTruthFrame``s; ``fps`` only sets the time base of motion and stamps."""

    def __init__(self, seed: int = 0, width: int = 640, height: int = 480, fps: float = 10.0,
                 sway_m: float = 0.3, period_s: float = 8.0, depth_noise_std: float = 0.0):
        if fps <= 0 or period_s <= 0:
            raise ValueError(f"fps and period_s must be positive, got {fps}, {period_s}")
        self.seed = seed
        self.fps = fps
        self.depth_noise_std = depth_noise_std
        self._world = random_world(seed, width, height)
        self._sway_m = sway_m
        self._period_s = period_s

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self._world.intrinsics

    def stamp_ns(self, index: int) -> int:
        """Capture time of frame ``index`` on the stream's own clock (frame 0 at 0 ns)."""
        return round(index * 1e9 / self.fps)

    def eye_offset(self, index: int) -> np.ndarray:
        """Camera displacement (world frame, metres) at frame ``index``: sideways sway plus a slower bob."""
        angle = 2.0 * math.pi * index / (self.fps * self._period_s)
        return np.array([self._sway_m * math.sin(angle), 0.1 * self._sway_m * math.sin(0.37 * angle), 0.0])

    def objects(self, index: int) -> list[SceneObject]:
        """The scene in the optical frame of frame ``index``."""
        return self._world.view(self.eye_offset(index))

    def frame(self, index: int) -> GroundTruthFrame:
        return self._world.render(self.eye_offset(index), self.depth_noise_std, (self.seed, index))

    def __iter__(self) -> Iterator[GroundTruthFrame]:
        return (self.frame(i) for i in itertools.count())
