"""The accuracy gate: every artifact is measured against its fp32 source on the same frames.

Metric (with --val): Dice for segmentation, balanced accuracy for classification, PSNR for
enhancement, each on the frames' own grid. Parity (always): max absolute and relative error of
the artifact's outputs against the fp32 torch model's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usfm_edge.errors import InputError
from usfm_edge.export.calibration import validation_pairs
from usfm_edge.metrics import classification_metrics
from usfm_edge.metrics.task_eval import HEADLINE, enhancement_case, segmentation_case, softmax
from usfm_edge.preprocess import preprocess_frame
from usfm_edge.spec import Preprocess

DEFAULT_MAX_DROP = {"seg": 0.01, "cls": 0.01, "enhance": 0.5}
Runner = Callable[[np.ndarray], np.ndarray]  # (B, C, H, W) -> outputs


@dataclass
class ValSet:
    task: str
    inputs: np.ndarray  # (N, C, H, W) preprocessed
    targets: list  # per case: mask, class index or clean image
    names: list[str]


def load_val(root: str | Path, task: str, spec: Preprocess, *, num_classes: int, limit: int = 200) -> ValSet:
    """Validation frames: a dataset root's validation split (or, for segmentation, a folder
    with image/ and mask/)."""
    if task == "seg":
        cases = validation_pairs(root, num_classes=num_classes, limit=limit)
    elif task == "cls":
        from usfm_edge.data.layouts import load_classification

        split = load_classification(root, "val")
        cases = [(p.stem, *split.load(i)) for i, (p, _) in enumerate(split.samples[:limit])]
    elif task == "enhance":
        from usfm_edge.data.layouts import load_enhancement

        split = load_enhancement(root, "val")
        cases = [(split.samples[i][0], *split.load(i)) for i in range(min(limit, len(split)))]
    else:
        raise InputError(f"--val has no metric for task {task!r}")
    # Segmentation masks are on the full frame: frames are not cropped for the gate.
    inputs = np.concatenate([preprocess_frame(image, spec) for _, image, _ in cases])
    return ValSet(task, inputs, [target for _, _, target in cases], [name for name, _, _ in cases])


def run_batched(run: Runner, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([run(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])


def score(val: ValSet, outputs: np.ndarray, spec: Preprocess, *, num_classes: int) -> tuple[float, list[float]]:
    """The headline metric's mean and its per-case values (per-case only for seg/enhance)."""
    if val.task == "cls":
        m = classification_metrics(np.array(val.targets), np.stack([softmax(o) for o in outputs]))
        return m["balanced_accuracy"], []
    if val.task == "seg":
        cases = [segmentation_case(o, t, spec, num_classes=num_classes)["dice"] for o, t in zip(outputs, val.targets)]
    else:
        cases = [enhancement_case(o, t, spec)["psnr"] for o, t in zip(outputs, val.targets)]
    return float(np.mean(cases)), cases


def parity(reference: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    diff = np.abs(outputs.astype(np.float64) - reference.astype(np.float64))
    scale = np.abs(reference).max() or 1.0
    return {"max_abs": float(diff.max()), "max_rel": float(diff.max() / scale), "mean_abs": float(diff.mean())}


def metric_name(task: str) -> str:
    return HEADLINE[task]


__all__ = ["DEFAULT_MAX_DROP", "ValSet", "load_val", "metric_name", "parity", "run_batched", "score"]
