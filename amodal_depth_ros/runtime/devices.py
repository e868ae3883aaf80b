"""The one device choice for every network: ``inference.device`` (or ``--device``) to a torch device."""
from __future__ import annotations

import functools

import torch

from ..errors import ModelLoadError

DEVICES = ("auto", "cpu", "cuda")


@functools.cache
def cuda_unusable() -> str:
    """Why torch cannot compute on CUDA here ('' when it can). A device torch sees may still be unusable: a
    build without kernels for its architecture or a driver that does not match fails at the first kernel."""
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        (torch.ones(2, device="cuda") * 2).sum().item()
    except RuntimeError as exc:
        return f"CUDA is unusable: {str(exc).splitlines()[0]}"
    return ""


def select_device(name: str) -> torch.device:
    """``auto``: CUDA when it is usable, else the CPU; ``cuda`` without a usable CUDA is a ModelLoadError
    (for training, where a CPU run instead would be a surprise of hours)."""
    device, why = inference_device(name)
    if why:
        raise ModelLoadError(f"device is 'cuda' but {why}", "no_cuda")
    return device


def inference_device(name: str) -> tuple[torch.device, str]:
    """The device the networks run on, and why it is not the one configured ('' when it is). ``cuda`` without
    a usable CUDA serves on the CPU instead: the learned stages there beat the geometric fallbacks by far,
    and the reason is reported as a fallback."""
    if name not in DEVICES:
        raise ModelLoadError(f"device must be one of {DEVICES}, got {name!r}", "bad_device")
    if name == "cpu":
        return torch.device("cpu"), ""
    why = cuda_unusable()
    if not why:
        return torch.device("cuda"), ""
    return torch.device("cpu"), (f"inference.device 'cuda': {why}, serving on the CPU" if name == "cuda" else "")
