"""Mixed precision for every training loop: one name (auto / fp32 / bf16 / fp16) -> autocast.

Weights, optimizer state and losses stay fp32; autocast runs the matmuls in the low precision.
On CPUs with AVX-512 BF16 or AMX, bf16 autocast fine-tunes ViT-S/16 at 2.4x the img/s of
fp32 (224 px, batch 8, the 2-core development machine; benchmarks/train_precision.py)."""

from __future__ import annotations

import contextlib

import torch

from usfm_edge.errors import SchemaError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# fp16 needs loss scaling, which only the pretraining loop does (its GradScaler state is part
# of its checkpoints); fine-tuning and distillation take bf16, which needs none.
UNSCALED = ("auto", "fp32", "bf16")


def check_precision(precision: str, allowed: tuple[str, ...] = PRECISIONS) -> None:
    if precision not in allowed:
        raise SchemaError(f"precision {precision!r}; use {', '.join(allowed)}")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32. ``auto``: bf16 on CUDA, fp32 on CPU (not
    every CPU has fast bf16; ask for it with ``bf16``)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
