"""Validation frames and their scores: what the export gate and ``bench --val`` measure.

Frames are read as captured (a scanner screen, or an image already cropped to its scan region)
and go through the one prepare path (``usfm_edge.contracts.prepare``): located, cropped,
preprocessed, and each output mapped back onto the frame and cleared outside the imaging
sector, exactly as ``usfm-edge run`` does. Metrics: Dice for segmentation, balanced accuracy
for classification, PSNR for enhancement. Torch-free: benchmarks score bundles on a cart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usfm_edge.contracts import Preprocess, Task
from usfm_edge.contracts.prepare import View, prepare, softmax
from usfm_edge.data.images import IMAGE_SUFFIXES, read_image
from usfm_edge.data.layouts import SEG_SPLITS, load_classification, load_enhancement, read_mask
from usfm_edge.errors import InputError
from usfm_edge.metrics.classification import classification_metrics
from usfm_edge.metrics.task_eval import HEADLINE, enhancement_case, segmentation_case

Runner = Callable[[np.ndarray], np.ndarray]  # (B, C, H, W) -> outputs


@dataclass
class ValSet:
    task: str
    inputs: np.ndarray  # (N, C, h, w): each frame prepared as the runtime prepares it
    views: list[View]  # where each input was cropped from its frame
    targets: list  # per frame: mask on the frame's grid, class index or clean frame
    names: list[str]


def load_val(root: str | Path, task: str, spec: Preprocess, *, num_classes: int, limit: int = 200) -> ValSet:
    """Validation frames: a dataset root's validation split (or, for segmentation, a folder
    with image/ and mask/), each prepared by ``spec``'s crop rule."""
    if task == Task.SEGMENTATION:
        cases = validation_pairs(root, num_classes=num_classes, limit=limit)
    elif task == Task.CLASSIFICATION:
        split = load_classification(root, "val")
        cases = [(p.stem, *split.load(i)) for i, (p, _) in enumerate(split.samples[:limit])]
    elif task == Task.ENHANCEMENT:
        split = load_enhancement(root, "val")
        cases = [(split.samples[i][0], *split.load(i)) for i in range(min(limit, len(split)))]
    else:
        raise InputError(f"--val has no metric for task {task!r}")
    prepared = [prepare(image, spec) for _, image, _ in cases]
    return ValSet(str(task), np.concatenate([x for x, _ in prepared]), [view for _, view in prepared],
                  [target for _, _, target in cases], [name for name, _, _ in cases])


def validation_pairs(root: str | Path, *, num_classes: int, limit: int = 200) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, mask) from a dataset root's validation split or a split folder with
    image/ and mask/ (masks of the same stems, on the images' grid)."""
    root = Path(root)
    folder = root / SEG_SPLITS["val"] if (root / SEG_SPLITS["val"]).is_dir() else root
    image_dir, mask_dir = folder / "image", folder / "mask"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise InputError(f"{root}: --val needs a dataset root with {SEG_SPLITS['val']}/ or a folder with image/ and mask/")
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = []
    for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]:
        if image.stem not in masks:
            raise InputError(f"{image}: has no mask in {mask_dir}")
        frame, mask = read_image(image), read_mask(masks[image.stem], num_classes=num_classes)
        if mask.shape != frame.shape[:2]:
            raise InputError(f"{masks[image.stem]}: mask is {mask.shape}, its image {frame.shape[:2]}; they must match")
        pairs.append((image.stem, frame, mask))
    if not pairs:
        raise InputError(f"{image_dir}: no validation images")
    return pairs


def run_batched(run: Runner, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([run(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])


def score(val: ValSet, outputs: np.ndarray, spec: Preprocess, *, num_classes: int) -> tuple[float, list[float]]:
    """The headline metric's mean and its per-case values (per-case only for seg/enhance)."""
    if val.task == Task.CLASSIFICATION:
        m = classification_metrics(np.array(val.targets), np.stack([softmax(o) for o in outputs]))
        return m["balanced_accuracy"], []
    if val.task == Task.SEGMENTATION:
        cases = [segmentation_case(o, t, spec, v, num_classes=num_classes)["dice"]
                 for o, t, v in zip(outputs, val.targets, val.views)]
    else:
        cases = [enhancement_case(o, t, spec, v)["psnr"] for o, t, v in zip(outputs, val.targets, val.views)]
    return float(np.mean(cases)), cases


def parity(reference: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    diff = np.abs(outputs.astype(np.float64) - reference.astype(np.float64))
    scale = np.abs(reference).max() or 1.0
    return {"max_abs": float(diff.max()), "max_rel": float(diff.max() / scale), "mean_abs": float(diff.mean())}


def metric_name(task: str) -> str:
    return HEADLINE[str(task)]


def prepare_record(spec: Preprocess) -> dict[str, Any]:
    """How validation frames were prepared, for the manifest: the crop rule, as captured."""
    return {"frames": "as captured (whole screens or pre-cropped images)", "crop": str(spec.crop),
            "mask_sector": spec.mask_sector, "code": "usfm_edge.contracts.prepare"}


__all__ = ["ValSet", "load_val", "metric_name", "parity", "prepare_record", "run_batched", "score",
           "validation_pairs"]
