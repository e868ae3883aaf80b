"""Visible depth stage: the metric depth of what the camera sees, NaN where unknown."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .config import VisibleDepthSettings
from .types import RGBDFrame


class DepthFromTopic:
    """Uses the camera's aligned depth image, with readings outside [min_depth, max_depth] dropped."""

    def __init__(self, settings: VisibleDepthSettings) -> None:
        self.settings = settings

    def __call__(self, frame: RGBDFrame) -> np.ndarray:
        if frame.depth is None:
            raise InputError("missing_depth", "visible_depth.source is 'topic' but the frame has no depth image")
        depth = frame.depth.astype(np.float32, copy=True)
        with np.errstate(invalid="ignore"):
            depth[(depth < self.settings.min_depth) | (depth > self.settings.max_depth)] = np.nan
        return depth
