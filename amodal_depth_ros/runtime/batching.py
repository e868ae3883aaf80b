"""Fixed-batch networks (CUDA graphs, static-shape ONNX and TensorRT engines) called with any number of items."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def fixed_batch(run: Callable[..., np.ndarray], batch: int) -> Callable[..., np.ndarray]:
    """``run`` takes exactly ``batch`` items; the result takes any number (zero-padded up to the batch, split above)."""
    def call(*arrays: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(arrays[0]), batch):
            chunk = [a[start:start + batch] for a in arrays]
            n = len(chunk[0])
            if n < batch:
                chunk = [np.concatenate([c, np.zeros((batch - n,) + c.shape[1:], c.dtype)]) for c in chunk]
            outputs.append(run(*chunk)[:n])
        return np.concatenate(outputs)
    return call
