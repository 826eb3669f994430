"""Classification head."""

from __future__ import annotations

import torch
from torch import nn

from usfm_edge.models.registry import register_head


@register_head
class LinearClsHead(nn.Module):
    """Mean of the last map's positions (ViT: patch tokens) -> LayerNorm -> linear, as BEiT
    and USFM classify."""

    name = "linear"
    tasks = ("cls",)

    def __init__(
        self, *, in_channels: list[int], reductions: list[int], num_outputs: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_channels[-1], eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels[-1], num_outputs)
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        pooled = features[-1].mean(dim=(2, 3))  # (B, C, h, w) -> (B, C)
        return self.fc(self.dropout(self.norm(pooled)))  # (B, K)
