"""Drawing results onto the captured frame: mask fill and contour, class call, the enhanced
image beside the input, and a HUD with fps and latency. RGB in, RGB out."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from usfm_edge.runtime.frame import Box

# One colour per foreground class (RGB), chosen to stand out on gray speckle.
PALETTE = ((255, 200, 0), (0, 220, 255), (255, 80, 80), (120, 255, 120), (220, 120, 255), (255, 160, 60))


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3), uint8 or uint16 -> (H, W, 3) uint8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()


def draw_mask(canvas: np.ndarray, box: Box, mask: np.ndarray, *, alpha: float = 0.35) -> None:
    """Fill each class of ``mask`` (the crop's (h, w) class indices) translucently and trace
    its outline, inside ``box`` of ``canvas`` (in place)."""
    x, y, w, h = box
    roi = canvas[y:y + h, x:x + w]
    for k in range(1, int(mask.max()) + 1 if mask.size else 1):
        region = mask == k
        if not region.any():
            continue
        color = np.array(PALETTE[(k - 1) % len(PALETTE)], np.float32)
        roi[region] = (roi[region] * (1 - alpha) + color * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(roi, contours, -1, tuple(int(c) for c in color), max(1, round(min(h, w) / 200)), cv2.LINE_AA)


def draw_label(canvas: np.ndarray, box: Box, text: str) -> None:
    x, y, _, _ = box
    scale = max(0.5, canvas.shape[0] / 900)
    cv2.putText(canvas, text, (x + 6, y + int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 230, 0), 2,
                cv2.LINE_AA)


def draw_result(frame: np.ndarray, boxes: list[Box], outputs: list[dict[str, Any]], *,
                side_by_side: bool = True) -> np.ndarray:
    """The frame with every region's result drawn; an enhancement shows the restored image
    beside the input (or in its place when ``side_by_side`` is False)."""
    canvas = as_rgb8(frame)
    restored = None
    for box, out in zip(boxes, outputs):
        if "mask" in out:
            draw_mask(canvas, box, out["mask"])
        if "label" in out:
            draw_label(canvas, box, f"{out['label']} {out['score']:.2f}")
        if "image" in out:
            restored = canvas.copy() if restored is None else restored
            x, y, w, h = box
            restored[y:y + h, x:x + w] = as_rgb8(out["image"])
    if restored is None:
        return canvas
    return np.concatenate([canvas, restored], axis=1) if side_by_side else restored


def draw_hud(canvas: np.ndarray, fps: float, latency_ms: float, dropped: int) -> np.ndarray:
    text = f"{fps:5.1f} fps  {latency_ms:6.1f} ms  dropped {dropped}"
    scale = max(0.45, canvas.shape[0] / 1200)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = canvas.shape[1] - tw - 10, canvas.shape[0] - 10
    cv2.rectangle(canvas, (x - 4, y - th - 6), (x + tw + 4, y + 4), (0, 0, 0), -1)
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
