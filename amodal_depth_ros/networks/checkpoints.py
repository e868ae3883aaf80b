"""Reading network weights: the one loader for the shipped checkpoints and for users' own files."""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from ..errors import ModelLoadError

Net = TypeVar("Net", bound=nn.Module)
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"   # the weights `amodal-depth train --install` ships


def read_state_dict(path: str | Path, kind: str = "model") -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint: a plain state dict, or one under "model" / "state_dict" (as ``amodal-depth
    train`` and most training scripts write them). ModelLoadError says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{kind} checkpoint not found: weights {path} do not exist", "model_missing")
    try:
        # weights_only: a checkpoint is user-supplied data, it must not run code when unpickled.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # truncated zip, random bytes, pickled objects: torch raises many types
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"cannot read checkpoint {path}: {kind} weights unreadable (truncated, corrupt or not "
                             f"a PyTorch weights file): {detail}", "model_unreadable") from error
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path} does not hold a state dict (name -> tensor), got {type(obj).__name__}",
                             "model_unreadable")
    # Checkpoints saved from DataParallel/DDP prefix every name with "module.".
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_weights(net: Net, path: str | Path, kind: str) -> Net:
    """``net`` with the weights of ``path`` (fp16 or fp32 on disk), in eval mode; the names must match exactly."""
    state = read_state_dict(path, kind)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except (RuntimeError, AttributeError) as exc:
        raise ModelLoadError(f"{kind} weights {path} do not fit the {type(net).__name__} network: "
                             f"{str(exc).splitlines()[0]}", "model_mismatch") from exc
    return net.eval()
