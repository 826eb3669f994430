"""Segmentation heads: UPerNet for large encoders, a light FPN-style head for students."""

from __future__ import annotations

import torch
from torch import nn

from usfm_edge.models.heads.blocks import ConvNormAct, resize_to, simple_pyramid
from usfm_edge.models.registry import register_head


@register_head
class UperNetHead(nn.Module):
    """UPerNet (Xiao et al. 2018) over a simple feature pyramid built from ViT taps: a pyramid
    pooling module on the coarsest map, a top-down FPN, all levels fused at the finest."""

    name = "upernet"
    tasks = ("seg",)

    def __init__(
        self,
        *,
        in_channels: list[int],
        reductions: list[int],
        num_outputs: int,
        channels: int = 256,
        pool_scales: tuple[int, ...] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.pyramid, self.reductions = simple_pyramid(in_channels, reductions)
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvNormAct(in_channels[-1], channels, 1)) for s in pool_scales
        )
        self.ppm_out = ConvNormAct(in_channels[-1] + len(pool_scales) * channels, channels)
        self.lateral = nn.ModuleList(ConvNormAct(c, channels, 1) for c in in_channels[:-1])
        self.fpn = nn.ModuleList(ConvNormAct(channels, channels) for _ in in_channels[:-1])
        self.fuse = ConvNormAct(len(in_channels) * channels, channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_outputs, 1)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        maps = [m(f) for m, f in zip(self.pyramid, features)]  # strides 4, 8, 16, 32 for a ViT
        top = maps[-1]
        pooled = [resize_to(p(top), top.shape[-2:]) for p in self.ppm]
        levels = [self.ppm_out(torch.cat([top, *pooled], dim=1))]
        for i in range(len(maps) - 2, -1, -1):  # top-down
            lateral = self.lateral[i](maps[i])
            levels.insert(0, lateral + resize_to(levels[0], lateral.shape[-2:]))
        size = levels[0].shape[-2:]
        outs = [self.fpn[i](lvl) for i, lvl in enumerate(levels[:-1])] + [levels[-1]]
        fused = self.fuse(torch.cat([resize_to(o, size) for o in outs], dim=1))
        return resize_to(self.classifier(self.dropout(fused)), image.shape[-2:])  # (B, K, H, W)


@register_head
class LightSegHead(nn.Module):
    """For students on a cart: project each map to a few channels, sum at the finest stride,
    one 3x3 conv, classify. A few hundred thousand parameters."""

    name = "light_seg"
    tasks = ("seg",)

    def __init__(
        self, *, in_channels: list[int], reductions: list[int], num_outputs: int, channels: int = 64
    ) -> None:
        super().__init__()
        self.pyramid, self.reductions = simple_pyramid(in_channels, reductions)
        self.project = nn.ModuleList(ConvNormAct(c, channels, 1) for c in in_channels)
        self.refine = ConvNormAct(channels, channels)
        self.classifier = nn.Conv2d(channels, num_outputs, 1)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        maps = [p(m(f)) for m, p, f in zip(self.pyramid, self.project, features)]
        size = maps[0].shape[-2:]
        x = sum(resize_to(m, size) for m in maps)
        return resize_to(self.classifier(self.refine(x)), image.shape[-2:])  # (B, K, H, W)
