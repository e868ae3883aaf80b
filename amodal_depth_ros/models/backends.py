"""Where a network runs: torch (CPU or CUDA) or onnxruntime, behind one call on numpy arrays.

The onnxruntime backend exports the network once per weights file to ONNX with a fixed batch (static
shapes, as TensorRT engines need too) into a cache keyed by the weights' hash, the batch and the crop
size; calls are padded up to that batch and split above it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .crops import CROP_SIZE
from .export import INPUT_NAMES, OUTPUT_NAMES, example_inputs, export_onnx, onnxruntime_session

Runner = Callable[..., np.ndarray]
ONNX_BATCH = 8


def cache_dir() -> Path:
    """$AMODAL_DEPTH_CACHE, else $XDG_CACHE_HOME/amodal_depth_ros, else ~/.cache/amodal_depth_ros."""
    explicit = os.environ.get("AMODAL_DEPTH_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amodal_depth_ros"


def torch_runner(net: torch.nn.Module, device: torch.device) -> Runner:
    def run(*arrays: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(*(torch.from_numpy(a).to(device) for a in arrays)).float().cpu().numpy()
    return run


def onnxruntime_runner(net: torch.nn.Module, kind: str, weights: Path, batch: int = ONNX_BATCH) -> Runner:
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    path = cache_dir() / "onnx" / f"{kind}-{digest}-b{batch}-s{CROP_SIZE}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(net.cpu(), example_inputs(kind, batch), path, INPUT_NAMES[kind], OUTPUT_NAMES[kind])
    session = onnxruntime_session(path)
    names = [i.name for i in session.get_inputs()]

    def run(*arrays: np.ndarray) -> np.ndarray:
        n = len(arrays[0])
        outputs = []
        for start in range(0, n, batch):
            chunk = [a[start:start + batch] for a in arrays]
            pad = batch - len(chunk[0])
            feeds = {name: np.concatenate([c, np.zeros((pad,) + c.shape[1:], c.dtype)]) if pad else c
                     for name, c in zip(names, chunk)}
            outputs.append(session.run(None, feeds)[0][:batch - pad])
        return np.concatenate(outputs)
    return run


def make_runner(net: torch.nn.Module, kind: str, weights: Path, backend: str, device: torch.device) -> Runner:
    if backend == "onnxruntime":
        return onnxruntime_runner(net, kind, weights)
    return torch_runner(net.to(device), device)
