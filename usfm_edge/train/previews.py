"""Preview PNGs: predictions drawn over the frames they came from."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

GREEN, RED = (0, 220, 0), (230, 40, 40)


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()


def draw_mask_contours(image: np.ndarray, pred: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """RGB frame with the prediction's outline in green and the truth's in red."""
    out = _rgb(image)
    for mask, colour in ((truth, RED), (pred, GREEN)):
        if mask is None:
            continue
        contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, colour, max(1, round(min(out.shape[:2]) / 200)))
    return out


def side_by_side(*panels: np.ndarray) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    rgb = [_rgb(p.astype(np.uint8) if p.dtype != np.uint16 else p) for p in panels]
    rgb = [cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height)) for p in rgb]
    return np.concatenate(rgb, axis=1)


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
