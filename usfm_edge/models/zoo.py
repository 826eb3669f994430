"""Registered encoders. One builder per released or student size, same block design."""

from __future__ import annotations

from typing import Any

from usfm_edge.models.registry import register_model
from usfm_edge.models.vit import UsfmViT


@register_model
def usfm_vit_b16(**kwargs: Any) -> UsfmViT:
    """USFM's released encoder: ViT-B/16 (86 M parameters)."""
    return UsfmViT(**{"patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, **kwargs})


@register_model
def usfm_vit_s16(**kwargs: Any) -> UsfmViT:
    """Student: ViT-S/16 with the USFM block design (22 M parameters)."""
    return UsfmViT(**{"patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6, **kwargs})


@register_model
def usfm_vit_t16(**kwargs: Any) -> UsfmViT:
    """Student: ViT-Ti/16 with the USFM block design (5.5 M parameters)."""
    return UsfmViT(**{"patch_size": 16, "embed_dim": 192, "depth": 12, "num_heads": 3, **kwargs})
