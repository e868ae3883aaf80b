"""Small networks of the learned amodal stages, on object crops (``networks.crops``).

``AmodalMaskNet``: a U-Net from (visible mask, occluder mask, front depth, ...) to the amodal mask.
Outside the occluders the visible mask is kept (the PCNet-M rule): only hidden pixels are predicted.

``SpadeAmodalDepthNet`` (Jo et al. 2024): an encoder of the crop inputs and a decoder whose features
are normalised and modulated at every stage by gamma/beta computed from the amodal mask and the
visible depth (SPADE), so the hidden surface is shaped by the object's full extent. Output: the
object's log depth ratio ``log(z / z0)`` over the crop; the stage aligns it to the observed depth by
scale and shift on the visible part (Amodal Depth Anything). The network is residual: it corrects the
nearest-visible fill of the crop (input channel ``FILL_CHANNEL``, a baseline as good as Telea on
real surfaces); its correction starts at zero, so untrained it is that baseline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .crops import DEPTH_CHANNELS, FILL_CHANNEL, INPUT_CHANNELS, LOG_RANGE

SPADE_CHANNELS = 4   # amodal mask, visible mask, visible log depth, nearest-visible fill


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...]):
        super().__init__()
        self.stages = nn.ModuleList(conv_block(a, b) for a, b in zip((cin,) + widths[:-1], widths, strict=False))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for k, stage in enumerate(self.stages):
            x = stage(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        return skips


class AmodalMaskNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 64)):
        super().__init__()
        self.encoder = Encoder(INPUT_CHANNELS, widths)
        self.decoder = nn.ModuleList(conv_block(a + b, b) for a, b in zip(widths[:0:-1], widths[-2::-1], strict=False))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, INPUT_CHANNELS, S, S) -> (B, S, S) amodal-mask logits."""
        skips = self.encoder(x)
        y = skips[-1]
        for block, skip in zip(self.decoder, skips[-2::-1], strict=False):
            y = block(torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="nearest"), skip], 1))
        return self.head(y)[:, 0]


class Spade(nn.Module):
    """out = BatchNorm(x, no affine) * (1 + gamma(cond)) + beta(cond), cond nearest-resized to x."""

    def __init__(self, channels: int, hidden: int = 16):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(SPADE_CHANNELS, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.shared(F.interpolate(cond, size=x.shape[-2:], mode="nearest"))
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SpadeUp(nn.Module):
    """Decoder stage: upsample, concatenate the skip, conv, SPADE, ReLU (twice)."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin + cskip, cout, 3, padding=1)
        self.spade1 = Spade(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.spade2 = Spade(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1)
        x = F.relu(self.spade1(self.conv1(x), cond))
        return F.relu(self.spade2(self.conv2(x), cond))


class SpadeAmodalDepthNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 96)):
        super().__init__()
        self.encoder = Encoder(DEPTH_CHANNELS + 1, widths)   # + the amodal mask
        self.decoder = nn.ModuleList(SpadeUp(a, b, b) for a, b in zip(widths[:0:-1], widths[-2::-1], strict=False))
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)
        assert self.head.bias is not None   # Conv2d's default bias=True
        nn.init.zeros_(self.head.weight), nn.init.zeros_(self.head.bias)   # untrained = the baseline fill

    def forward(self, x: torch.Tensor, amodal: torch.Tensor) -> torch.Tensor:
        """x (B, DEPTH_CHANNELS, S, S), amodal (B, S, S) -> (B, S, S) log depth ratio log(z / z0)."""
        amodal = amodal[:, None]
        visible, front, fill = x[:, :1], x[:, 2:3], x[:, FILL_CHANNEL:FILL_CHANNEL + 1]
        cond = torch.cat([amodal, visible, front * visible, fill], 1)
        skips = self.encoder(torch.cat([x, amodal], 1))
        y = skips[-1]
        for block, skip in zip(self.decoder, skips[-2::-1], strict=False):
            y = block(y, skip, cond)
        correction = LOG_RANGE * torch.tanh(self.head(y) / LOG_RANGE)
        return (fill + correction)[:, 0].clamp(-LOG_RANGE, LOG_RANGE)
