"""Enhancement head: a pixel decoder that restores the image."""

from __future__ import annotations

import torch
from torch import nn

from usfm_edge.models.heads.blocks import ConvNormAct, resize_to
from usfm_edge.models.registry import register_head


@register_head
class PixelDecoderHead(nn.Module):
    """Upsample the last map by 2x steps (conv + PixelShuffle, as SimMIM's decoder but
    progressive), mix in the input image at full resolution, and predict a residual: the
    output is input + correction, in the normalized intensity space of the input."""

    name = "pixel_decoder"
    tasks = ("enhance",)

    def __init__(
        self, *, in_channels: list[int], reductions: list[int], num_outputs: int, channels: int = 64
    ) -> None:
        super().__init__()
        steps = max(int(reductions[-1]).bit_length() - 1, 0)  # log2(stride)
        if 2**steps != reductions[-1]:
            raise ValueError(f"pixel_decoder needs a power-of-two stride, got {reductions[-1]}")
        layers: list[nn.Module] = [ConvNormAct(in_channels[-1], channels, 1)]
        for _ in range(steps):
            layers += [nn.Conv2d(channels, channels * 4, 3, padding=1), nn.PixelShuffle(2), nn.GELU()]
        self.up = nn.Sequential(*layers)
        self.skip = ConvNormAct(num_outputs, channels)
        self.out = nn.Conv2d(2 * channels, num_outputs, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # start as the identity: output == input
        nn.init.zeros_(self.out.bias)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        up = resize_to(self.up(features[-1]), image.shape[-2:])
        return image + self.out(torch.cat([up, self.skip(image)], dim=1))  # (B, C, H, W)
