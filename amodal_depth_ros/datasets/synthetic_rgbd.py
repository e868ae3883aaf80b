"""Procedural rooms as plain RGB-D frames, the way a sensor delivers them: a source of composites.

Composites cut from rendered rooms (``amodal-depth composites synthetic:SEEDS``) have the same kind of
targets as composites of real frames (regions the geometric segmenter finds, partly hidden by a pasted
occluder), so networks can train on that task without touching the real evaluation frames. The depth
carries structured-light noise, and so does the truth under the occluder: as with a real sensor.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..synthetic.procedural import generate
from ..synthetic.sensor import structured_light_noise
from .rgbd_folder import RGBDSample


class SyntheticRGBD(Sequence[RGBDSample]):
    """``RGBDSample`` k = procedural room ``seeds[k]`` at ``width`` x ``height``, rendered on access."""

    def __init__(self, seeds: range, width: int = 320, height: int = 240):
        self.seeds, self.width, self.height = seeds, width, height
        # Composite building reads each frame twice (as target frame, as occluder source): keep a few.
        self._render = lru_cache(maxsize=8)(self._render_seed)

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> RGBDSample:   # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._render(self.seeds[index])

    def _render_seed(self, seed: int) -> RGBDSample:
        frame = generate(seed, self.width, self.height)
        depth = structured_light_noise(frame.depth, np.random.default_rng([seed, 11]))
        return RGBDSample(f"synthetic_{seed}", frame.rgb, depth, frame.intrinsics)
