"""What a depth sensor does to rendered depth, so that models and tools fed rendered frames see
sensor-like input."""
from __future__ import annotations

import numpy as np


def structured_light_noise(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Structured-light noise: sigma = 1.2 mm + 1.9 mm * (z - 0.4 m)^2 (Nguyen et al. 2012), 1 mm steps,
    and 1 % of the readings dropped (NaN)."""
    sigma = 0.0012 + 0.0019 * (depth - 0.4) ** 2
    noisy = np.round((depth + rng.standard_normal(depth.shape) * sigma) * 1000.0) / 1000.0
    noisy[rng.random(depth.shape) < 0.01] = np.nan
    return noisy.astype(np.float32)
