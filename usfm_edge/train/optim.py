"""AdamW with layer-wise learning-rate decay and a warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn


def _layer_id(name: str, depth: int) -> int:
    """0 for the embeddings, i + 1 for block i, depth + 1 for the final norm and the head."""
    if name.startswith("encoder."):
        rest = name[len("encoder."):]
        if rest.startswith(("cls_token", "patch_embed", "rel_pos_bias")):
            return 0
        if rest.startswith("blocks."):
            return int(rest.split(".")[1]) + 1
    return depth + 1


def _no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1 or name.endswith(("cls_token", "relative_position_bias_table"))


def param_groups(model: nn.Module, *, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
    """Layer-wise decay applies to ViT encoders (``blocks.N``), whatever the head, so a
    segmentation fine-tune keeps the early layers close to the pretrained ones as well (the
    official USFM code does this for classification only). Other encoders get one rate."""
    depth = len(getattr(model.encoder, "blocks", [])) if hasattr(model, "encoder") else 0
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = _layer_id(name, depth) if depth else depth + 1
        no_decay = _no_decay(name, param)
        key = (layer, no_decay)
        if key not in groups:
            scale = layer_decay ** (depth + 1 - layer)
            groups[key] = {"params": [], "lr_scale": scale, "lr": lr * scale,
                           "weight_decay": 0.0 if no_decay else weight_decay}
        groups[key]["params"].append(param)
    return list(groups.values())


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float, layer_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, lr=lr, weight_decay=weight_decay, layer_decay=layer_decay),
                             lr=lr, betas=(0.9, 0.999))


def warmup_cosine(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int,
                  base_lr: float, min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to the base rate, then cosine to ``min_lr``; per-group scales kept."""
    floor = min_lr / base_lr if base_lr > 0 else 0.0

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    for group in optimizer.param_groups:
        group["initial_lr"] = base_lr * group.get("lr_scale", 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
