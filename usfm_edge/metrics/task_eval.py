"""Score a network's raw outputs for one frame, on the frame's own grid. Shared by fine-tuning
(outputs from torch), the export gate and ``bench --val`` (outputs from any backend): each maps
the output back through ``usfm_edge.contracts.prepare``, as the runtime does."""

from __future__ import annotations

import numpy as np

from usfm_edge.contracts import Preprocess
from usfm_edge.contracts.prepare import View, segment_frame, softmax, to_display
from usfm_edge.metrics.enhancement import enhancement_metrics
from usfm_edge.metrics.segmentation import segmentation_metrics

HEADLINE = {"seg": "dice", "cls": "balanced_accuracy", "enhance": "psnr"}

__all__ = ["HEADLINE", "enhancement_case", "segmentation_case", "softmax", "to_display"]


def segmentation_case(output: np.ndarray, truth: np.ndarray, spec: Preprocess, view: View, *, num_classes: int,
                      spacing_mm: float | None = None) -> dict[str, float]:
    """``output`` (K, h, w) logits for the crop ``view`` of a frame; ``truth`` (H, W) class
    indices on the frame's grid."""
    pred = segment_frame(output, view, spec, truth.shape)
    return segmentation_metrics(pred, truth, num_classes=num_classes, spacing_mm=spacing_mm)


def enhancement_case(output: np.ndarray, target: np.ndarray, spec: Preprocess, view: View) -> dict[str, float]:
    """``output`` (C, h, w) normalized image for the crop ``view``; ``target`` (H, W[, 3]) the
    clean frame. Scored on the crop's grid: the chrome around it is not the model's work."""
    clean = view.crop(target)
    restored = to_display(output, clean.shape[:2], spec)
    clean = clean if clean.ndim == 2 else clean.mean(-1)
    return enhancement_metrics(restored, target=clean.astype(np.float64))
