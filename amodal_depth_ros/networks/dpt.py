"""DPT head of Depth Anything V2 (reassemble, fuse, upsample to the input), with the official parameter names."""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)           # unused by refinenet4 but present in checkpoints
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: Sequence[int] | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        resize = {"size": tuple(size)} if size is not None else {"scale_factor": 2}
        x = F.interpolate(x, **resize, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    def __init__(self, in_channels: int, features: int, out_channels: Sequence[int], metric: bool = False):
        super().__init__()
        c = out_channels
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, ch, 1) for ch in c)
        # Token grids at 1/14 become a pyramid at 4x, 2x, 1x and 1/2x the grid.
        self.resize_layers = nn.ModuleList([nn.ConvTranspose2d(c[0], c[0], 4, 4), nn.ConvTranspose2d(c[1], c[1], 2, 2),
                                            nn.Identity(), nn.Conv2d(c[3], c[3], 3, 2, 1)])
        self.scratch = nn.Module()
        for i, ch in enumerate(c, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(ch, features, 3, 1, 1, bias=False))
            setattr(self.scratch, f"refinenet{i}", FeatureFusionBlock(features))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, 1, 1)
        self.scratch.output_conv2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, 1, 1), nn.ReLU(),
                                                  nn.Conv2d(32, 1, 1), nn.Sigmoid() if metric else nn.ReLU())

    def forward(self, tokens: Sequence[tuple[torch.Tensor, torch.Tensor]], gh: int, gw: int) -> torch.Tensor:
        s = self.scratch
        feats = []
        for i, (x, _cls) in enumerate(tokens):
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], gh, gw)
            feats.append(self.resize_layers[i](self.projects[i](x)))
        l1, l2, l3, l4 = (getattr(s, f"layer{i}_rn")(f) for i, f in enumerate(feats, start=1))
        # The scratch modules are set by name in __init__ (the official parameter names); typed here.
        refine1, refine2, refine3, refine4 = (cast(FeatureFusionBlock, getattr(s, f"refinenet{i}"))
                                              for i in range(1, 5))
        path = refine4(l4, size=l3.shape[2:])
        path = refine3(path, l3, size=l2.shape[2:])
        path = refine2(path, l2, size=l1.shape[2:])
        path = refine1(path, l1)
        out = F.interpolate(cast(nn.Conv2d, s.output_conv1)(path), (gh * 14, gw * 14), mode="bilinear",
                            align_corners=True)
        return cast(nn.Sequential, s.output_conv2)(out)
