"""Depth Anything V2 (DINOv2 encoder + DPT head), loadable from the official ``.pth`` checkpoints.

Relative checkpoints predict inverse depth up to scale and shift (final ReLU); metric ones predict metres
(final sigmoid x ``max_depth``: 20 m for the indoor Hypersim models, 80 m for the outdoor VKITTI ones).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadError
from .checkpoints import read_state_dict
from .dinov2 import PATCH, DinoVisionTransformer
from .dpt import DPTHead

MEAN = np.array([0.485, 0.456, 0.406], np.float32)      # ImageNet statistics the encoder was trained with
STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass(frozen=True)
class EncoderConfig:
    embed_dim: int
    depth: int
    heads: int
    layers: tuple[int, ...]              # blocks whose tokens feed the head (four)
    features: int
    out_channels: tuple[int, ...]


ENCODERS = {
    "vits": EncoderConfig(384, 12, 6, (2, 5, 8, 11), 64, (48, 96, 192, 384)),
    "vitb": EncoderConfig(768, 12, 12, (2, 5, 8, 11), 128, (96, 192, 384, 768)),
    "vitl": EncoderConfig(1024, 24, 16, (4, 11, 17, 23), 256, (256, 512, 1024, 1024)),
}


class DepthAnythingV2(nn.Module):
    """``forward``: normalised (B, 3, H, W), H and W multiples of 14 -> (B, H, W) inverse depth or metres."""

    def __init__(self, config: EncoderConfig, max_depth: float | None = None):
        super().__init__()
        self.config, self.max_depth = config, max_depth
        self.pretrained = DinoVisionTransformer(config.embed_dim, config.depth, config.heads)
        self.depth_head = DPTHead(config.embed_dim, config.features, config.out_channels, metric=max_depth is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % PATCH or w % PATCH:
            raise ValueError(f"input sides must be multiples of {PATCH}, got {h}x{w}")
        tokens = self.pretrained.get_intermediate_layers(x, self.config.layers)
        depth = self.depth_head(tokens, h // PATCH, w // PATCH).squeeze(1)
        return depth if self.max_depth is None else depth * self.max_depth


def _multiple_of_14(x: float, min_val: int) -> int:
    y = int(np.round(x / PATCH) * PATCH)
    return y if y >= min_val else int(np.ceil(x / PATCH) * PATCH)


def preprocess(rgb: np.ndarray, input_size: int = 518) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32: aspect kept, both sides >= input_size and multiples of 14."""
    h, w = rgb.shape[:2]
    scale = max(input_size / h, input_size / w)           # 'lower_bound': the short side reaches input_size
    size = (_multiple_of_14(scale * w, input_size), _multiple_of_14(scale * h, input_size))
    image = cv2.resize(rgb.astype(np.float32) / 255.0, size, interpolation=cv2.INTER_CUBIC)
    image = (image - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def to_image_size(depth: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(1, h, w) network output -> (H, W) float32, resized as the official code does (bilinear, corners
    aligned); shared by every backend so that they agree to the last bit on the same network output."""
    return F.interpolate(depth[:, None].float(), size, mode="bilinear", align_corners=True)[0, 0].cpu().numpy()


@torch.no_grad()
def predict(model: DepthAnythingV2, rgb: np.ndarray, input_size: int = 518) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 prediction at the input resolution."""
    param = next(model.parameters())
    return to_image_size(model(preprocess(rgb, input_size).to(param.device, param.dtype)), rgb.shape[:2])


def infer_encoder(state: dict[str, torch.Tensor]) -> str:
    """Name in ENCODERS whose width and block count match the state dict (only shapes are read)."""
    if "pretrained.pos_embed" not in state or "pretrained.patch_embed.proj.weight" not in state:
        raise ModelLoadError("not a Depth Anything V2 state dict: no 'pretrained.pos_embed' / "
                             f"'pretrained.patch_embed.proj.weight' (first keys: {sorted(state)[:5]})")
    dim = state["pretrained.pos_embed"].shape[-1]
    depth = len({m.group(1) for k in state if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))})
    for name, config in ENCODERS.items():
        if (config.embed_dim, config.depth) == (dim, depth):
            return name
    known = ", ".join(f"{n} ({c.embed_dim} wide, {c.depth} blocks)" for n, c in ENCODERS.items())
    raise ModelLoadError(f"encoder {dim} wide with {depth} blocks is not supported (known: {known})")


def _check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    expected = model.state_dict()
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    if missing or unexpected:
        raise ModelLoadError(f"not a Depth Anything V2 {name} state dict: {len(missing)} missing keys {missing[:4]}, "
                             f"{len(unexpected)} unexpected keys {unexpected[:4]}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise ModelLoadError(f"checkpoint does not fit encoder {name}: {len(wrong)} shape mismatches, e.g. {wrong[:3]}")


def load_depth_anything_v2(path: str | Path, encoder: str | EncoderConfig | None = None,
                           max_depth: float | None = None, device: str | torch.device = "cpu") -> DepthAnythingV2:
    """Model in eval mode from a ``.pth``; ``encoder`` None infers it, ``max_depth`` set means a metric checkpoint."""
    state = read_state_dict(path, "Depth Anything V2")
    if encoder is None:
        encoder = infer_encoder(state)
    if isinstance(encoder, str):
        if encoder not in ENCODERS:
            raise ModelLoadError(f"unknown encoder {encoder!r}, expected one of {sorted(ENCODERS)}")
        name, config = encoder, ENCODERS[encoder]
        try:
            found = infer_encoder(state)
        except ModelLoadError:      # not recognisably DAv2: the key check below says what is wrong
            found = name
        if found != name:
            raise ModelLoadError(f"checkpoint holds a {found} model but encoder {name!r} was requested")
    else:
        name, config = "custom", encoder
    with torch.device("meta"):     # no random initialisation: every tensor comes from the checkpoint
        model = DepthAnythingV2(config, max_depth)
    _check_state_dict(model, state, name)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device=device, dtype=torch.float32).eval()
