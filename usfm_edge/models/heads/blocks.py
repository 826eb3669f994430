"""Small building blocks shared by the heads."""

from __future__ import annotations

import torch
from torch import nn


class ConvNormAct(nn.Sequential):
    """Conv -> BatchNorm -> ReLU. BatchNorm folds into the conv at export, which keeps the
    INT8 graph simple."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


def rescale_module(cin: int, factor: float) -> nn.Module:
    """A module that changes a map's resolution by ``factor`` (4, 2, 1, 0.5, ...), as in
    ViTDet's simple feature pyramid: transposed convs up, max-pool down."""
    if factor == 1:
        return nn.Identity()
    if factor < 1:
        return nn.MaxPool2d(kernel_size=round(1 / factor), stride=round(1 / factor))
    layers: list[nn.Module] = []
    while factor > 1:
        layers += [nn.ConvTranspose2d(cin, cin, kernel_size=2, stride=2)]
        factor /= 2
        if factor > 1:
            layers += [nn.BatchNorm2d(cin), nn.GELU()]
    return nn.Sequential(*layers)


def simple_pyramid(in_channels: list[int], reductions: list[int]) -> tuple[nn.ModuleList, list[int]]:
    """For an encoder whose maps all share one stride (a ViT), make strides 4, 8, 16, 32 from
    its first four taps. For a CNN (strides already differ) keep the maps as they are."""
    if len(set(reductions)) > 1 or len(reductions) < 4:
        return nn.ModuleList(nn.Identity() for _ in in_channels), list(reductions)
    r = reductions[0]
    targets = [max(r // 4, 1), max(r // 2, 1), r, r * 2]
    modules = [rescale_module(c, r / t) for c, t in zip(in_channels[:4], targets)]
    return nn.ModuleList(modules + [nn.Identity()] * (len(in_channels) - 4)), targets + reductions[4:]


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
