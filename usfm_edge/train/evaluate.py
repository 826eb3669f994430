"""Evaluation on a split, with metrics on each frame's own pixel grid."""

from __future__ import annotations

import numpy as np
import torch

from usfm_edge.metrics import classification_metrics, enhancement_metrics, segmentation_metrics
from usfm_edge.metrics.segmentation import aggregate
from usfm_edge.preprocess import preprocess_frame, to_original_grid
from usfm_edge.spec import Preprocess


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
                probabilities = to_original_grid(softmax(out), target.shape, spec)
                pred = probabilities.argmax(0).astype(np.uint8)
                spacing = split.samples[i].spacing_mm
                per_case.append({"name": split.samples[i].name,
                                 **segmentation_metrics(pred, target, num_classes=num_classes, spacing_mm=spacing)})
            elif task == "cls":
                truths.append(target)
                probs.append(softmax(out))
            else:
                restored = to_display(out, target.shape[:2], spec)
                clean = target if target.ndim == 2 else target.mean(-1)
                per_case.append({"name": split.samples[i][0],
                                 **enhancement_metrics(restored, target=clean.astype(np.float64))})
    if task == "cls":
        return classification_metrics(np.array(truths), np.stack(probs))
    names = [c.pop("name") for c in per_case]
    return {"mean": aggregate(per_case), "per_case": [{"name": n, **c} for n, c in zip(names, per_case)]}


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


def headline(task: str, result: dict) -> float:
    """The number that picks the best epoch (higher is better)."""
    if task == "seg":
        return result["mean"]["dice_mean"]
    if task == "cls":
        return result["balanced_accuracy"]
    return result["mean"]["ssim_mean"]
