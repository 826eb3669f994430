"""Evaluation on a split, with metrics on each frame's own pixel grid: frames are prepared and
outputs mapped back (and cleared outside the imaging sector) by ``usfm_edge.contracts.prepare``,
as in the export gate and the runtime."""

from __future__ import annotations

import numpy as np
import torch

from usfm_edge.contracts import Preprocess
from usfm_edge.contracts.prepare import View, prepare, softmax
from usfm_edge.metrics import classification_metrics
from usfm_edge.metrics.segmentation import aggregate
from usfm_edge.metrics.task_eval import enhancement_case, segmentation_case

__all__ = ["evaluate", "headline", "predict"]


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield list(range(start, min(n, start + size)))


@torch.no_grad()
def predict(model: torch.nn.Module, frames: list[np.ndarray], spec: Preprocess,
            device: torch.device) -> tuple[np.ndarray, list[View]]:
    """Captured frames -> (raw outputs (N, ...), the view each was cropped by)."""
    prepared = [prepare(f, spec) for f in frames]
    x = torch.from_numpy(np.concatenate([x for x, _ in prepared])).to(device)
    return model(x).float().cpu().numpy(), [view for _, view in prepared]


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: str, split, spec: Preprocess, device: torch.device,
             *, batch_size: int = 8, num_classes: int = 2) -> dict:
    """{"mean": {...}, "per_case": [...]} for seg/enhance; classification metrics for cls."""
    model.eval()
    per_case, truths, probs = [], [], []
    for batch in _batches(len(split), batch_size):
        loaded = [split.load(i) for i in batch]
        outputs, views = predict(model, [image for image, _ in loaded], spec, device)
        for i, (_, target), out, view in zip(batch, loaded, outputs, views):
            if task == "seg":
                per_case.append({"name": split.samples[i].name, **segmentation_case(
                    out, target, spec, view, num_classes=num_classes, spacing_mm=split.samples[i].spacing_mm)})
            elif task == "cls":
                truths.append(target)
                probs.append(softmax(out))
            else:
                per_case.append({"name": split.samples[i][0], **enhancement_case(out, target, spec, view)})
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
