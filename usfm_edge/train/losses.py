"""Losses per task."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over foreground classes. logits (B, K, H, W), target (B, H, W)."""
    probs = logits.softmax(dim=1)[:, 1:]  # (B, K-1, H, W): background is left to the CE term
    onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return 1.0 - ((2 * inter + eps) / (total + eps)).mean()


class SegLoss(torch.nn.Module):
    """Cross-entropy + soft Dice: CE gives every pixel a gradient from the start, Dice keeps
    small lesions from drowning in background."""

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.ce_weight, self.dice_weight = ce_weight, dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce_weight * F.cross_entropy(logits, target.long()) + self.dice_weight * soft_dice_loss(logits, target)


class ClsLoss(torch.nn.Module):
    def __init__(self, label_smoothing: float = 0.1) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target.long(), label_smoothing=self.label_smoothing)


class EnhanceLoss(torch.nn.Module):
    """L1 on intensities plus L1 on image gradients, so edges are restored, not smoothed away."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        def grads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]

        (oy, ox), (ty, tx) = grads(output), grads(target)
        return F.l1_loss(output, target) + 0.5 * (F.l1_loss(oy, ty) + F.l1_loss(ox, tx))


def task_loss(task: str, *, ce_weight: float = 1.0, dice_weight: float = 1.0,
              label_smoothing: float = 0.1) -> torch.nn.Module:
    """The supervised loss of a task (defaults: those of ``FinetuneConfig``)."""
    if task == "seg":
        return SegLoss(ce_weight, dice_weight)
    if task == "cls":
        return ClsLoss(label_smoothing)
    return EnhanceLoss()
