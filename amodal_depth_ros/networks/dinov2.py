"""DINOv2 ViT encoder (patch 14, LayerScale, no registers) with the official parameter names.

Only what Depth Anything V2 needs at inference: patch tokens of chosen blocks after the final norm.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 14


class PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)          # (B, N, D)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)               # softmax(q k^T / sqrt(hd)) v
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads), LayerScale(dim)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(dim, eps=1e-6), Mlp(dim), LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, img_size: int = 518):
        super().__init__()
        grid = img_size // PATCH
        self.embed_dim = dim
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        # Only used in training (masked tokens); kept so that official checkpoints load with strict=True.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def interpolate_pos_encoding(self, gh: int, gw: int) -> torch.Tensor:
        """Positional embedding for a gh x gw patch grid, resized bicubically exactly as DINOv2 does."""
        n = self.pos_embed.shape[1] - 1
        if gh * gw == n and gh == gw:
            return self.pos_embed
        side = int(math.sqrt(n))
        cls, patches = self.pos_embed[:, :1].float(), self.pos_embed[:, 1:].float()
        patches = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        # DINOv2 resizes by a scale factor with a +0.1 offset (not to a size): the weights were trained with that grid.
        # int(): under ONNX tracing the grid is a traced value; the exported graph has static shapes anyway.
        scale = ((int(gh) + 0.1) / side, (int(gw) + 0.1) / side)
        patches = F.interpolate(patches, scale_factor=scale, mode="bicubic")
        patches = patches.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
        return torch.cat((cls, patches), dim=1).to(self.pos_embed.dtype)

    def get_intermediate_layers(self, x: torch.Tensor,
                                layers: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(patch tokens (B, N, D), class token (B, D)) after the final norm, for each block index in ``layers``."""
        gh, gw = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(gh, gw)
        outputs = []
        for i, block in enumerate(self.blocks[: max(layers) + 1]):   # later blocks do not feed the head
            x = block(x)
            if i in layers:
                y = self.norm(x)
                outputs.append((y[:, 1:], y[:, 0]))
        return outputs
