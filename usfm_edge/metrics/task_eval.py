"""Score a network's raw outputs for one frame, on the frame's own grid. Shared by
fine-tuning (outputs from torch) and the export gate (outputs from any backend)."""

from __future__ import annotations

import numpy as np

from usfm_edge.metrics.enhancement import enhancement_metrics
from usfm_edge.metrics.segmentation import segmentation_metrics
from usfm_edge.preprocess import to_original_grid
from usfm_edge.spec import Preprocess

HEADLINE = {"seg": "dice", "cls": "balanced_accuracy", "enhance": "psnr"}


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def to_display(output: np.ndarray, original: tuple[int, int], spec: Preprocess) -> np.ndarray:
    """A normalized (C, h, w) restored image -> (H, W) 0..255 gray on the original grid."""
    mean = np.asarray(spec.mean, np.float32)[:, None, None]
    std = np.asarray(spec.std, np.float32)[:, None, None]
    unit = np.clip(output * std + mean, 0, 1).mean(0, keepdims=True)
    return to_original_grid(unit, original, spec)[0] * 255.0


def segmentation_case(output: np.ndarray, truth: np.ndarray, spec: Preprocess, *, num_classes: int,
                      spacing_mm: float | None = None) -> dict[str, float]:
    """``output`` (K, h, w) logits; ``truth`` (H, W) indices."""
    pred = to_original_grid(softmax(output), truth.shape, spec).argmax(0).astype(np.uint8)
    return segmentation_metrics(pred, truth, num_classes=num_classes, spacing_mm=spacing_mm)


def enhancement_case(output: np.ndarray, target: np.ndarray, spec: Preprocess) -> dict[str, float]:
    """``output`` (C, h, w) normalized image; ``target`` (H, W[, 3]) clean image."""
    restored = to_display(output, target.shape[:2], spec)
    clean = target if target.ndim == 2 else target.mean(-1)
    return enhancement_metrics(restored, target=clean.astype(np.float64))
