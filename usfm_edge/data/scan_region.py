"""Where the B-mode image is in a frame: the simplest rule, the non-dark area. Crops for
pretraining and calibration frames use it, so black background and UI margins do not
dominate what the model or the quantizer sees. (The runtime's detector handles UI chrome.)"""

from __future__ import annotations

import numpy as np


def scan_box(gray: np.ndarray, threshold: float | None = None) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of rows and columns with more than 5 % of pixels brighter
    than the background; the whole frame when nothing stands out. ``gray`` is (H, W); the
    default threshold is 2 % of its range."""
    if threshold is None:
        threshold = 0.02 * (float(gray.max()) or 1.0)
    bright = gray > threshold
    rows = np.nonzero(bright.mean(1) > 0.05)[0]
    cols = np.nonzero(bright.mean(0) > 0.05)[0]
    if len(rows) < 8 or len(cols) < 8:
        return 0, 0, gray.shape[0], gray.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1
