"""The one device choice for every network: ``inference.device`` (or ``--device``) to a torch device."""
from __future__ import annotations

import torch

from ..errors import ModelLoadError

DEVICES = ("auto", "cpu", "cuda")


def select_device(name: str) -> torch.device:
    """``auto``: CUDA when torch sees a device, else the CPU; ``cuda`` without one is a ModelLoadError."""
    if name not in DEVICES:
        raise ModelLoadError(f"device must be one of {DEVICES}, got {name!r}", "bad_device")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelLoadError("inference.device is 'cuda' but torch sees no CUDA device", "no_cuda")
        return torch.device("cuda")
    return torch.device("cpu")
