"""Evaluation on a split, with metrics on each frame's own pixel grid."""

from __future__ import annotations

import numpy as np
import torch

from usfm_edge.metrics import classification_metrics
from usfm_edge.metrics.segmentation import aggregate
from usfm_edge.metrics.task_eval import enhancement_case, segmentation_case, softmax, to_display
from usfm_edge.preprocess import preprocess_frame
from usfm_edge.spec import Preprocess

__all__ = ["evaluate", "headline", "predict", "softmax", "to_display"]


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield list(range(start, min(n, start + size)))


@torch.no_grad()
def predict(model: torch.nn.Module, frames: list[np.ndarray], spec: Preprocess, device: torch.device) -> np.ndarray:
    x = torch.from_numpy(np.concatenate([preprocess_frame(f, spec) for f in frames])).to(device)
    return model(x).float().cpu().numpy()


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: str, split, spec: Preprocess, device: torch.device,
             *, batch_size: int = 8, num_classes: int = 2) -> dict:
    """{"mean": {...}, "per_case": [...]} for seg/enhance; classification metrics for cls."""
    model.eval()
    per_case, truths, probs = [], [], []
    for batch in _batches(len(split), batch_size):
        loaded = [split.load(i) for i in batch]
        outputs = predict(model, [image for image, _ in loaded], spec, device)
        for i, (image, target), out in zip(batch, loaded, outputs):
            if task == "seg":
                per_case.append({"name": split.samples[i].name, **segmentation_case(
                    out, target, spec, num_classes=num_classes, spacing_mm=split.samples[i].spacing_mm)})
            elif task == "cls":
                truths.append(target)
                probs.append(softmax(out))
            else:
                per_case.append({"name": split.samples[i][0], **enhancement_case(out, target, spec)})
    if task == "cls":
        return classification_metrics(np.array(truths), np.stack(probs))
    names = [c.pop("name") for c in per_case]
    return {"mean": aggregate(per_case), "per_case": [{"name": n, **c} for n, c in zip(names, per_case)]}


def headline(task: str, result: dict) -> float:
    """The number that picks the best epoch (higher is better)."""
    if task == "seg":
        return result["mean"]["dice_mean"]
    if task == "cls":
        return result["balanced_accuracy"]
    return result["mean"]["ssim_mean"]
