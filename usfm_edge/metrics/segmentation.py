"""Segmentation metrics on the original image grid.

HD95, as defined here: take the boundary pixels of prediction P and truth T (a pixel of the
mask with a 4-neighbour outside it), compute for every boundary pixel of P its Euclidean
distance to the nearest boundary pixel of T and vice versa, in physical units when the
spacing is known, pool both sets, and take the 95th percentile (the symmetric definition of
medpy and most MICCAI challenge evaluations). Empty masks: both empty -> 0 (perfect
agreement); exactly one empty -> the image diagonal, the largest distance the grid allows,
and the case is flagged, so means stay finite and the failure still counts as the worst case.
Dice and IoU of two empty masks are 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred.astype(bool), truth.astype(bool)
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(p, t).sum() / total)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred.astype(bool), truth.astype(bool)
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


def boundary(mask: np.ndarray) -> np.ndarray:
    """(K, 2) row/column coordinates of the mask's boundary pixels."""
    m = mask.astype(np.uint8)
    # pad so pixels on the image border count as boundary
    eroded = cv2.erode(np.pad(m, 1), _CROSS)[1:-1, 1:-1]
    return np.argwhere((m > 0) & (eroded == 0))


def _nearest_distances(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each point of a (N, 2), the distance to the nearest point of b (M, 2)."""
    out = np.empty(len(a))
    for start in range(0, len(a), chunk):
        block = a[start:start + chunk, None, :] - b[None, :, :]
        out[start:start + chunk] = np.sqrt((block**2).sum(-1)).min(axis=1)
    return out


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)) -> tuple[float, bool]:
    """95th-percentile symmetric Hausdorff distance (module docstring) in the units of
    ``spacing`` (row, column) per pixel. Returns (distance, one_mask_empty)."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ; compare on the original grid")
    scale = np.asarray(spacing, dtype=np.float64)
    bp, bt = boundary(pred), boundary(truth)
    if len(bp) == 0 and len(bt) == 0:
        return 0.0, False
    if len(bp) == 0 or len(bt) == 0:
        return float(math.hypot(pred.shape[0] * scale[0], pred.shape[1] * scale[1])), True
    bp, bt = bp * scale, bt * scale
    distances = np.concatenate([_nearest_distances(bp, bt), _nearest_distances(bt, bp)])
    return float(np.percentile(distances, 95)), False


def segmentation_metrics(
    pred: np.ndarray, truth: np.ndarray, *, num_classes: int = 2, spacing_mm: float | Sequence[float] | None = None
) -> dict[str, float]:
    """Per-image metrics for index masks (H, W) on the original grid; foreground classes
    1..K-1 are averaged. ``hd95`` is in pixels, ``hd95_mm`` when the spacing is known."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ; resize the prediction back first")
    spacing = None if spacing_mm is None else (
        (float(spacing_mm),) * 2 if np.isscalar(spacing_mm) else tuple(float(s) for s in spacing_mm))
    rows: dict[str, list[float]] = {"dice": [], "iou": [], "hd95": [], "hd95_mm": [], "hd95_empty": []}
    for cls in range(1, num_classes):
        p, t = pred == cls, truth == cls
        rows["dice"].append(dice(p, t))
        rows["iou"].append(iou(p, t))
        distance, empty = hd95(p, t)
        rows["hd95"].append(distance)
        rows["hd95_empty"].append(float(empty))
        if spacing is not None:
            rows["hd95_mm"].append(hd95(p, t, spacing)[0])
    return {k: float(np.mean(v)) for k, v in rows.items() if v}


def aggregate(per_case: list[dict[str, float]]) -> dict[str, float]:
    """Mean and standard deviation over cases of every metric present in all of them."""
    keys = set.intersection(*(set(c) for c in per_case)) if per_case else set()
    out = {}
    for key in sorted(keys):
        values = np.array([c[key] for c in per_case], dtype=np.float64)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    return out
